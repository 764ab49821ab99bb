/**
 * What the daemon writes to the registry while runs go on: events queued and written together in
 * small transactions (every `flushMs`, or sooner once `maxPending` wait), with the run fields they
 * move (log offset, heartbeat, step) in the same transaction — so after a crash the stored log
 * offset is exactly where the stored events end, and a daemon that follows on from it neither
 * repeats nor loses a line. Events reach live streams only once committed, in order.
 */
import type { EventRow, RunPatch, RunRegistry } from "../../lib/registry/index.ts";
import type { EventHub } from "./hub.ts";

interface PendingEvent {
  runId: number;
  type: string;
  data: object;
  at: string;
}

export class Journal {
  readonly #registry: RunRegistry;
  readonly #hub: EventHub;
  readonly #flushMs: number;
  readonly #maxPending: number;
  #events: PendingEvent[] = [];
  #patches = new Map<number, RunPatch>();
  #timer: NodeJS.Timeout | null = null;
  /** Set when a write failed (disk full…): reported by health; the daemon keeps going. */
  lastError: string | null = null;

  constructor(registry: RunRegistry, hub: EventHub, options: { flushMs?: number; maxPending?: number } = {}) {
    this.#registry = registry;
    this.#hub = hub;
    this.#flushMs = options.flushMs ?? 100;
    this.#maxPending = options.maxPending ?? 500;
  }

  /** Queue an event for the next flush. */
  add(runId: number, type: string, data: object): void {
    this.#events.push({ runId, type, data, at: new Date().toISOString() });
    if (this.#events.length >= this.#maxPending) this.flush();
    else this.#schedule();
  }

  /** Fields to set with the next flush (later ones win). */
  patch(runId: number, patch: RunPatch): void {
    this.#patches.set(runId, { ...this.#patches.get(runId), ...patch });
    this.#schedule();
  }

  /**
   * A state change, written now: what is queued first (so events stay in order), then `patch` and
   * the event in the same transaction. Returns the event.
   */
  change(runId: number, patch: RunPatch, type: string, data: object): EventRow {
    this.patch(runId, patch);
    this.add(runId, type, data);
    const written = this.flush();
    return written[written.length - 1] as EventRow;
  }

  /** Write everything queued in one transaction and hand it to the live streams. */
  flush(): EventRow[] {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    if (this.#events.length === 0 && this.#patches.size === 0) return [];
    const events = this.#events;
    const patches = this.#patches;
    this.#events = [];
    this.#patches = new Map();
    let written: EventRow[];
    try {
      written = this.#registry.write(() => {
        const rows = events.map((event) =>
          this.#registry.appendEvent(event.runId, event.type, event.data, event.at),
        );
        for (const [runId, patch] of patches) this.#registry.updateRun(runId, patch);
        return rows;
      });
      this.lastError = null;
    } catch (error) {
      // Nothing was written (one transaction): keep it for the next try, bounded so memory cannot run away.
      this.lastError = `registry write failed: ${(error as Error).message}`;
      this.#events = [...events, ...this.#events].slice(-10 * this.#maxPending);
      for (const [runId, patch] of patches)
        this.#patches.set(runId, { ...patch, ...this.#patches.get(runId) });
      this.#schedule(1000);
      throw error;
    }
    this.#hub.publish(written);
    return written;
  }

  close(): void {
    try {
      this.flush();
    } finally {
      if (this.#timer) clearTimeout(this.#timer);
      this.#timer = null;
    }
  }

  #schedule(ms = this.#flushMs): void {
    this.#timer ??= setTimeout(() => {
      this.#timer = null;
      try {
        this.flush();
      } catch {
        // lastError says it; retried.
      }
    }, ms);
  }
}
