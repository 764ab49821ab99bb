/**
 * How many of a run's plain log lines become events: a token bucket (`ratePerSec` sustained,
 * `burst` at once). A flood beyond it is counted, not stored — the log file keeps every line —
 * and the count goes into the stream as a `dropped` event, so a reader knows what it missed.
 */
export class LineBudget {
  #tokens: number;
  #last = performance.now();
  /** Lines refused since the last take of the count. */
  #pending = 0;

  constructor(
    private readonly ratePerSec: number,
    private readonly burst: number,
  ) {
    this.#tokens = burst;
  }

  /** Whether this line may go into the stream; a refused one is counted. */
  admit(): boolean {
    const now = performance.now();
    this.#tokens = Math.min(this.burst, this.#tokens + ((now - this.#last) / 1000) * this.ratePerSec);
    this.#last = now;
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return true;
    }
    this.#pending += 1;
    return false;
  }

  /** Lines refused since the last call (and resets that count). */
  takeDropped(): number {
    const count = this.#pending;
    this.#pending = 0;
    return count;
  }
}
