/**
 * What the daemon writes to the registry while runs go on: events queued and written together in
 * small transactions (every `flushMs`, or sooner once `maxPending` wait), with the run fields they
 * move (log offset, heartbeat, step) in the same transaction — so after a crash the stored log
 * offset is exactly where the stored events end, and a daemon that follows on from it neither
 * repeats nor loses a line. Events reach live streams only once committed, in order.
 *
 * A write that fails (disk full, SQLITE_BUSY past the busy timeout) wrote nothing — one transaction
 * — so it stays queued, in order, and is tried again every `retryMs`; the outage is logged once when
 * it starts and once when it ends, and health shows it (`lastError`). `add()` and `patch()` never
 * throw: they are called from timers and from the log tail, where a throw would take the daemon down.
 * Only `change()` throws, and then nothing of that change stays queued: the caller decides.
 *
 * While writes fail the queue grows. Past `10 × maxPending` events, plain `line` events are no
 * longer queued but counted into a `dropped` event at their place in the run's stream
 * (`{count, reason}`), as the line budget (line-budget.ts) counts what it leaves out: the log file
 * keeps every line and the log offset moves past them, so the stored offset is still where the
 * stored events end — the left-out lines accounted for by the marker — and a daemon following on
 * from it neither repeats nor loses one. Every other event (state changes, checkpoints, heartbeats,
 * metric points…) is kept whatever the queue's length: they are few, and what the registry is for.
 * (Pausing the log tail instead would also starve the stall clock of heartbeats, and a run would be
 * killed for a full disk.)
 */
import type { EventRow, RunPatch, RunRegistry } from "../../lib/registry/index.ts";
import type { EventHub } from "./hub.ts";

interface PendingEvent {
  runId: number;
  type: string;
  data: object;
  at: string;
}

/** The data of a `dropped` event the journal counts lines into while the registry cannot be written. */
interface DropMarker {
  count: number;
  reason: string;
}

export interface JournalOptions {
  flushMs?: number;
  maxPending?: number;
  /** How soon a failed write is tried again. */
  retryMs?: number;
  log?(line: string): void;
}

export class Journal {
  readonly #registry: RunRegistry;
  readonly #hub: EventHub;
  readonly #flushMs: number;
  readonly #maxPending: number;
  readonly #retryMs: number;
  readonly #log: (line: string) => void;
  #events: PendingEvent[] = [];
  #patches = new Map<number, RunPatch>();
  /** Per run, the queued `dropped` marker its lines are counted into, until another event of the run is queued. */
  #openDrops = new Map<number, DropMarker>();
  #timer: NodeJS.Timeout | null = null;
  /** Since when writes fail, and how many lines were left out since. */
  #outage: { since: number; dropped: number } | null = null;
  /** Set while writes fail (disk full…): reported by health; the daemon keeps going. */
  lastError: string | null = null;

  constructor(registry: RunRegistry, hub: EventHub, options: JournalOptions = {}) {
    this.#registry = registry;
    this.#hub = hub;
    this.#flushMs = options.flushMs ?? 100;
    this.#maxPending = options.maxPending ?? 500;
    this.#retryMs = options.retryMs ?? 1000;
    this.#log = options.log ?? (() => {});
  }

  /** Events waiting to be written (`dropped` markers included). */
  get pending(): number {
    return this.#events.length;
  }

  /** Queue an event for the next flush. Never throws. */
  add(runId: number, type: string, data: object): void {
    if (type === "line" && this.#events.length >= 10 * this.#maxPending) this.#drop(runId);
    else {
      this.#openDrops.delete(runId);
      this.#events.push({ runId, type, data, at: new Date().toISOString() });
    }
    // While writes fail, only the retry timer writes: one failing transaction per line would stall the daemon.
    if (this.#events.length >= this.#maxPending && this.#outage === null) this.#flushQuietly();
    else this.#schedule(this.#outage === null ? this.#flushMs : this.#retryMs);
  }

  /** Fields to set with the next flush (later ones win). Never throws. */
  patch(runId: number, patch: RunPatch): void {
    this.#patches.set(runId, { ...this.#patches.get(runId), ...patch });
    this.#schedule(this.#outage === null ? this.#flushMs : this.#retryMs);
  }

  /**
   * A state change, written now: what is queued first (so events stay in order), then `patch` and
   * the event in the same transaction. Returns the event. Throws if the write fails, and then
   * nothing of this change is left queued (what was queued before stays, and is retried).
   */
  change(runId: number, patch: RunPatch, type: string, data: object): EventRow {
    return this.changes(runId, patch, [{ type, data }]).at(-1) as EventRow;
  }

  /** `change()` with several events of the run, all written or none. Returns them. */
  changes(
    runId: number,
    patch: RunPatch,
    changed: ReadonlyArray<{ type: string; data: object }>,
  ): EventRow[] {
    if (changed.length === 0) throw new Error("Journal.changes: no event");
    this.#cancelTimer();
    const at = new Date().toISOString();
    const events = [...this.#events, ...changed.map(({ type, data }) => ({ runId, type, data, at }))];
    const patches = new Map(this.#patches).set(runId, { ...this.#patches.get(runId), ...patch });
    let written: EventRow[];
    try {
      written = this.#write(events, patches);
    } catch (error) {
      if (this.#events.length > 0 || this.#patches.size > 0) this.#schedule(this.#retryMs);
      throw error;
    }
    this.#events = [];
    this.#patches = new Map();
    this.#openDrops.clear();
    this.#publish(written);
    return written.slice(-changed.length);
  }

  /** Write everything queued in one transaction and hand it to the live streams; throws if the write fails (it stays queued, retried). */
  flush(): EventRow[] {
    this.#cancelTimer();
    if (this.#events.length === 0 && this.#patches.size === 0) return [];
    const events = this.#events;
    const patches = this.#patches;
    this.#events = [];
    this.#patches = new Map();
    this.#openDrops.clear();
    let written: EventRow[];
    try {
      written = this.#write(events, patches);
    } catch (error) {
      // Nothing was written: back in front of anything queued meanwhile, newer fields winning.
      this.#events = [...events, ...this.#events];
      for (const [runId, patch] of this.#patches) patches.set(runId, { ...patches.get(runId), ...patch });
      this.#patches = patches;
      this.#schedule(this.#retryMs);
      throw error;
    }
    this.#publish(written);
    return written;
  }

  /** Write what is queued and stop; throws, naming the registry and what is lost, if that write fails. */
  close(): void {
    const queued = this.#events.length;
    try {
      this.flush();
    } catch (error) {
      throw new Error(
        `the run registry ${this.#registry.path} could not be written at close, ${queued} event(s) lost: ${(error as Error).message}`,
      );
    } finally {
      this.#cancelTimer();
    }
  }

  /** One transaction; on failure it throws, the outage begins (logged once) and nothing was written. */
  #write(events: readonly PendingEvent[], patches: ReadonlyMap<number, RunPatch>): EventRow[] {
    let written: EventRow[];
    try {
      written = this.#registry.write(() => {
        const rows = events.map((event) =>
          this.#registry.appendEvent(event.runId, event.type, event.data, event.at),
        );
        for (const [runId, patch] of patches) this.#registry.updateRun(runId, patch);
        return rows;
      });
    } catch (error) {
      this.lastError = `registry write failed: ${(error as Error).message}`;
      if (this.#outage === null) {
        this.#outage = { since: Date.now(), dropped: 0 };
        this.#log(
          `the run registry ${this.#registry.path} cannot be written (${(error as Error).message}): events stay queued and are retried every ${this.#retryMs} ms`,
        );
      }
      throw error;
    }
    if (this.#outage !== null) {
      const seconds = Math.round((Date.now() - this.#outage.since) / 1000);
      const dropped = this.#outage.dropped;
      this.#log(
        `the run registry ${this.#registry.path} is written again after ${seconds} s${dropped > 0 ? `; ${dropped} log line(s) were left out of the streams meanwhile (the log files have them)` : ""}`,
      );
      this.#outage = null;
    }
    this.lastError = null;
    return written;
  }

  /** A line past the queue's cap: counted into the run's open `dropped` marker (queued in its place). */
  #drop(runId: number): void {
    let marker = this.#openDrops.get(runId);
    if (marker === undefined) {
      marker = { count: 0, reason: "the run registry could not be written" };
      this.#openDrops.set(runId, marker);
      this.#events.push({ runId, type: "dropped", data: marker, at: new Date().toISOString() });
    }
    marker.count++;
    if (this.#outage !== null) this.#outage.dropped++;
  }

  #publish(written: readonly EventRow[]): void {
    try {
      this.#hub.publish(written);
    } catch (error) {
      // Committed already: a failing listener must not pass for a failed write.
      this.#log(`a live stream failed: ${(error as Error).message}`);
    }
  }

  #flushQuietly(): void {
    try {
      this.flush();
    } catch {
      // Logged when the outage began, in lastError until it ends; the retry timer is set.
    }
  }

  #cancelTimer(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }

  #schedule(ms: number): void {
    this.#timer ??= setTimeout(() => {
      this.#timer = null;
      this.#flushQuietly();
    }, ms);
  }
}
