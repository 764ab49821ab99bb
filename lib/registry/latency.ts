/** Durations of the registry's writes: the last few thousand kept, for p50/p99 and the worst. */
export interface LatencySummary {
  count: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export class LatencyWindow {
  readonly #samples: number[] = [];
  #next = 0;
  #count = 0;
  #max = 0;

  constructor(private readonly size = 10_000) {}

  add(ms: number): void {
    if (this.#samples.length < this.size) this.#samples.push(ms);
    else this.#samples[this.#next] = ms;
    this.#next = (this.#next + 1) % this.size;
    this.#count += 1;
    this.#max = Math.max(this.#max, ms);
  }

  summary(): LatencySummary {
    const sorted = [...this.#samples].sort((a, b) => a - b);
    const at = (q: number) =>
      sorted.length === 0
        ? 0
        : (sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number);
    const round = (ms: number) => Math.round(ms * 1000) / 1000;
    return { count: this.#count, p50Ms: round(at(0.5)), p99Ms: round(at(0.99)), maxMs: round(this.#max) };
  }
}
