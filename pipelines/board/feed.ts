/*
 * Server-Sent Events that keep an open page's curves current without reloading. Changes are
 * numbered (`seq`); every data answer says the last number it includes, so a page that opens the
 * stream first, waits for its `hello`, and then fetches, applies exactly the changes after each
 * fetch — none twice, none lost. Appends are gathered for `flushMs` and sent in order with purges.
 * A page that stops reading is cut off past `maxBufferedBytes` (lib/http/sse.ts); when it
 * reconnects, its `hello` makes it fetch afresh, so it misses nothing.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { SseStream } from "../../lib/http/sse.ts";
import type { LogdirChange, LogdirScalars } from "../../lib/tensorboard/logdir-scalars.ts";

/** Unread bytes after which a page is cut off (as the daemon's --stream-buffer default). */
const MAX_BUFFERED_BYTES = 4 * 1024 * 1024;

export type FeedMessage =
  | {
      seq: number;
      type: "points";
      run: string;
      tag: string;
      wallTime: number[];
      step: number[];
      value: number[];
    }
  | { seq: number; type: "purge"; run: string; tags: readonly string[] | null; fromStep: number }
  | { seq: number; type: "runs" };

type Pending =
  | Omit<Extract<FeedMessage, { type: "points" }>, "seq">
  | Omit<Extract<FeedMessage, { type: "purge" }>, "seq">
  | Omit<Extract<FeedMessage, { type: "runs" }>, "seq">;

export class ChangeFeed {
  private seq = 0;
  private readonly clients = new Set<SseStream>();
  private pending: Pending[] = [];
  /** The still-open append of each series, so a burst of points goes out as one message. */
  private openAppends = new Map<string, Extract<Pending, { type: "points" }>>();
  private flushTimer: NodeJS.Timeout | null = null;
  private readonly unsubscribe: () => void;

  constructor(
    scalars: LogdirScalars,
    private readonly flushMs = 150,
    private readonly maxBufferedBytes = MAX_BUFFERED_BYTES,
  ) {
    this.unsubscribe = scalars.onChange((change) => this.note(change));
  }

  get clientCount(): number {
    return this.clients.size;
  }

  /** Everything noted so far, sent; returns the number of the last change, for a data answer to carry. */
  currentSeq(): number {
    this.flush();
    return this.seq;
  }

  attach(req: IncomingMessage, res: ServerResponse): void {
    this.flush();
    const stream: SseStream = new SseStream(req, res, {
      maxBufferedBytes: this.maxBufferedBytes,
      onClose: () => this.clients.delete(stream),
    });
    this.clients.add(stream);
    stream.send({ event: "hello", data: JSON.stringify({ seq: this.seq }) });
  }

  /** End every stream (the page reconnects to whoever serves next) and stop listening. */
  close(): void {
    this.unsubscribe();
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    for (const client of [...this.clients]) client.close();
    this.clients.clear();
  }

  private note(change: LogdirChange): void {
    // Nobody listens: nothing to keep (a page that connects later fetches what it needs).
    if (this.clients.size === 0) return;
    if (change.kind === "append") {
      const key = `${change.run}\u0000${change.tag}`;
      let open = this.openAppends.get(key);
      if (!open) {
        open = { type: "points", run: change.run, tag: change.tag, wallTime: [], step: [], value: [] };
        this.openAppends.set(key, open);
        this.pending.push(open);
      }
      open.wallTime.push(change.wallTime);
      open.step.push(change.step);
      open.value.push(change.value);
    } else if (change.kind === "purge") {
      // Later points of the run's series must follow the purge, not join an append before it.
      for (const key of [...this.openAppends.keys()]) {
        if (key.startsWith(`${change.run}\u0000`)) this.openAppends.delete(key);
      }
      this.pending.push({ type: "purge", run: change.run, tags: change.tags, fromStep: change.fromStep });
    } else {
      this.pending.push({ type: "runs" });
    }
    this.flushTimer ??= setTimeout(() => this.flush(), this.flushMs);
  }

  private flush(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    const pending = this.pending;
    this.pending = [];
    this.openAppends = new Map();
    if (pending.length === 0) return;
    const data = pending.map((message) => JSON.stringify({ seq: ++this.seq, ...message }, finiteOrText));
    for (const client of [...this.clients]) {
      // Cut off part-way: it gets nothing more, and fetches afresh when it reconnects.
      for (const message of data) if (!client.send({ data: message })) break;
    }
  }
}

/** JSON has no NaN or infinities: send them as text, as TensorBoard's JSON does. */
function finiteOrText(_key: string, value: unknown): unknown {
  if (typeof value === "number" && !Number.isFinite(value)) return String(value);
  return value;
}
