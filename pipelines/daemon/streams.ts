/**
 * Event streams (Server-Sent Events): a subscriber gets the stored events after the id it names
 * (Last-Event-ID on a reconnect, `?after=` on a first connection, else from the start), then live
 * ones. The replay reads the registry a page at a time and waits for the client to take each page;
 * once a read comes back empty the stream joins the live feed in the same turn of the event loop,
 * and since events reach the feed only once committed, nothing falls between the two nor comes twice.
 * A subscriber that stops reading is cut off (lib/http/sse.ts) without slowing anyone else.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { lastEventId, SseStream } from "../../lib/http/sse.ts";
import type { EventRow, RunRegistry } from "../../lib/registry/index.ts";
import { HttpError } from "../board/http.ts";
import type { EventHub } from "./hub.ts";

const PAGE = 500;

export interface StreamSettings {
  registry: RunRegistry;
  hub: EventHub;
  /** Bytes a subscriber may leave unread before it is cut off. */
  maxBufferedBytes: number;
  /** How long a replay waits for a client to take a page before cutting it off. */
  replayStallMs: number;
}

export interface StreamStats {
  open: number;
  cutOff: number;
  /** The most bytes any one subscriber ever had waiting (bounded by --stream-buffer and one message). */
  peakBufferedBytes: number;
}

export class EventStreams {
  readonly #s: StreamSettings;
  readonly #open = new Set<SseStream>();
  cutOff = 0;
  #peakClosed = 0;

  constructor(settings: StreamSettings) {
    this.#s = settings;
  }

  get stats(): StreamStats {
    let peak = this.#peakClosed;
    for (const stream of this.#open) peak = Math.max(peak, stream.peakBuffered);
    return { open: this.#open.size, cutOff: this.cutOff, peakBufferedBytes: peak };
  }

  /** One run's events (ids: its seq), or every run's (runId null; ids: the global event id). */
  async serve(req: IncomingMessage, res: ServerResponse, url: URL, runId: number | null): Promise<void> {
    const from = lastEventId(req, url);
    const after = from === null ? 0 : Number(from);
    if (!Number.isSafeInteger(after) || after < 0) {
      throw new HttpError(400, `Last-Event-ID / after: expected an event id, got ${JSON.stringify(from)}`);
    }
    const types = url.searchParams.get("types")?.split(",").filter(Boolean) ?? null;
    const stream = new SseStream(req, res, {
      maxBufferedBytes: this.#s.maxBufferedBytes,
      onClose: (why) => {
        this.#open.delete(stream);
        this.#peakClosed = Math.max(this.#peakClosed, stream.peakBuffered);
        if (why === "cut-off") this.cutOff += 1;
        unsubscribe?.();
      },
    });
    this.#open.add(stream);
    let unsubscribe: (() => void) | null = null;
    const idOf = (event: EventRow): number => (runId === null ? event.id : event.seq);
    const send = (event: EventRow): boolean => {
      if (types !== null && !types.includes(event.type)) return true;
      return stream.send({ id: idOf(event), data: toMessage(event) });
    };
    let last = after;
    for (;;) {
      const page =
        runId === null
          ? this.#s.registry.allEventsAfter(last, PAGE)
          : this.#s.registry.eventsAfter(runId, last, PAGE);
      if (page.length === 0) break;
      for (const event of page) {
        if (!send(event)) return;
        last = idOf(event);
      }
      if (stream.behind && !(await stream.drained(this.#s.replayStallMs))) {
        stream.cutOff();
        return;
      }
      if (!stream.open) return;
    }
    // Caught up, in the same turn as the last (empty) read: live from here.
    unsubscribe = this.#s.hub.subscribe(runId, (event) => {
      if (idOf(event) > last) {
        last = idOf(event);
        send(event);
      }
    });
    stream.send({ event: "live", data: JSON.stringify({ after: last }) });
  }

  /** End every stream (shutdown). */
  close(): void {
    for (const stream of [...this.#open]) stream.close();
  }
}

/** An event as the API shows it (one line of JSON). */
export function toMessage(event: EventRow): string {
  return `{"id":${event.id},"run":${event.run_id},"seq":${event.seq},"at":${JSON.stringify(event.at)},"type":${JSON.stringify(event.type)},"data":${event.data}}`;
}
