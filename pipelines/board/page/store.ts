/*
 * The page's copy of the series, kept equal to the server's: each series is fetched whole once,
 * stamped with the change number (`seq`) its answer includes, and then only changes numbered
 * after that stamp are applied. Changes that arrive while its fetch is in flight wait for it.
 */
import type { FeedMessage, SeriesBlock } from "./api.ts";

export class Column {
  data: Float64Array;
  length = 0;
  constructor(initial: Float64Array) {
    this.data = initial;
    this.length = initial.length;
  }
  push(value: number): void {
    if (this.length === this.data.length) {
      const grown = new Float64Array(Math.max(64, this.data.length * 2));
      grown.set(this.data);
      this.data = grown;
    }
    this.data[this.length++] = value;
  }
  view(): Float64Array {
    return this.data.subarray(0, this.length);
  }
}

export class Series {
  readonly wallTime: Column;
  readonly step: Column;
  readonly value: Column;
  constructor(
    readonly run: string,
    readonly tag: string,
    wallTime: Float64Array,
    step: Float64Array,
    value: Float64Array,
    public seq: number,
  ) {
    this.wallTime = new Column(wallTime);
    this.step = new Column(step);
    this.value = new Column(value);
  }
  get length(): number {
    return this.step.length;
  }
  append(wallTime: number, step: number, value: number): void {
    this.wallTime.push(wallTime);
    this.step.push(step);
    this.value.push(value);
  }
  keepStepsBelow(step: number): void {
    const steps = this.step.view();
    const wall = this.wallTime.view();
    const values = this.value.view();
    let kept = 0;
    for (let i = 0; i < steps.length; i++) {
      if ((steps[i] as number) >= step) continue;
      wall[kept] = wall[i] as number;
      steps[kept] = steps[i] as number;
      values[kept] = values[i] as number;
      kept++;
    }
    this.wallTime.length = kept;
    this.step.length = kept;
    this.value.length = kept;
  }
  /** [[wall_time, step, value], …] as TensorBoard's JSON endpoint gives them. */
  points(): Array<[number, number, number]> {
    const wall = this.wallTime.view();
    const steps = this.step.view();
    const values = this.value.view();
    return Array.from(steps, (step, i) => [wall[i] as number, step, values[i] as number]);
  }
}

const key = (run: string, tag: string): string => `${run}\u0000${tag}`;

/** A number the feed sent as text (NaN, Infinity) back to a number. */
function num(value: number | string): number {
  return typeof value === "number" ? value : Number(value);
}

export class SeriesStore {
  private readonly series = new Map<string, Series>();
  private readonly inFlight = new Map<string, FeedMessage[]>();
  private readonly listeners = new Set<(run: string, tag: string) => void>();

  onChange(listener: (run: string, tag: string) => void): void {
    this.listeners.add(listener);
  }

  get(run: string, tag: string): Series | undefined {
    return this.series.get(key(run, tag));
  }

  has(run: string, tag: string): boolean {
    return this.series.has(key(run, tag)) || this.inFlight.has(key(run, tag));
  }

  /** Mark series as being fetched, so changes for them are held until the answer arrives. */
  fetching(run: string, tag: string): void {
    if (!this.inFlight.has(key(run, tag))) this.inFlight.set(key(run, tag), []);
  }

  /** Give up a fetch that failed: the series can be fetched again. */
  abandon(run: string, tag: string): void {
    this.inFlight.delete(key(run, tag));
  }

  /** Install fetched series, then apply what arrived after their stamp. */
  receive(block: SeriesBlock): void {
    for (const entry of block.runs) {
      const id = key(entry.run, block.tag);
      const series = new Series(entry.run, block.tag, entry.wallTime, entry.step, entry.value, block.seq);
      this.series.set(id, series);
      const held = this.inFlight.get(id) ?? [];
      this.inFlight.delete(id);
      for (const message of held) this.applyTo(series, message);
      this.notify(entry.run, block.tag);
    }
  }

  /** Forget everything (after the change stream was lost, the page fetches afresh). */
  clear(): void {
    this.series.clear();
    this.inFlight.clear();
  }

  apply(message: FeedMessage): void {
    if (message.type === "points") {
      const id = key(message.run, message.tag);
      const held = this.inFlight.get(id);
      if (held) held.push(message);
      const series = this.series.get(id);
      if (series && this.applyTo(series, message)) this.notify(message.run, message.tag);
    } else if (message.type === "purge") {
      for (const series of this.series.values()) {
        if (series.run !== message.run) continue;
        if (this.applyTo(series, message)) this.notify(series.run, series.tag);
      }
      for (const [id, held] of this.inFlight) if (id.startsWith(`${message.run}\u0000`)) held.push(message);
    }
  }

  private applyTo(series: Series, message: FeedMessage): boolean {
    if (message.seq <= series.seq) return false;
    series.seq = message.seq;
    if (message.type === "points") {
      for (let i = 0; i < message.step.length; i++) {
        series.append(
          num(message.wallTime[i] as number),
          num(message.step[i] as number),
          num(message.value[i] as number),
        );
      }
      return true;
    }
    if (message.type === "purge") {
      if (message.tags && !message.tags.includes(series.tag)) return false;
      series.keepStepsBelow(message.fromStep);
      return true;
    }
    return false;
  }

  private notify(run: string, tag: string): void {
    for (const listener of this.listeners) listener(run, tag);
  }
}
