/** Live fan-out of committed events to the streams following one run, or every run. */
import type { EventRow } from "../../lib/registry/index.ts";

export type EventListener = (event: EventRow) => void;

export class EventHub {
  readonly #byRun = new Map<number, Set<EventListener>>();
  readonly #all = new Set<EventListener>();

  /** Follow run `runId`'s events, or every run's (null). Returns the unsubscribe. */
  subscribe(runId: number | null, listener: EventListener): () => void {
    let set = this.#all;
    if (runId !== null) {
      set = this.#byRun.get(runId) ?? new Set();
      this.#byRun.set(runId, set);
    }
    set.add(listener);
    return () => {
      set.delete(listener);
      if (runId !== null && set.size === 0) this.#byRun.delete(runId);
    };
  }

  get subscribers(): number {
    let count = this.#all.size;
    for (const set of this.#byRun.values()) count += set.size;
    return count;
  }

  publish(events: readonly EventRow[]): void {
    for (const event of events) {
      for (const listener of [...(this.#byRun.get(event.run_id) ?? [])]) listener(event);
      for (const listener of [...this.#all]) listener(event);
    }
  }
}
