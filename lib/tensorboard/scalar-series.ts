/**
 * One scalar time series as (wall_time, step, value) points, stored in fixed-size chunks of
 * Float64 so a board holding millions of points pays 24 bytes a point plus at most one partly
 * filled chunk per series (growing one big array by doubling would waste up to half of it).
 */
const CHUNK_POINTS = 2048;

export interface SeriesColumns {
  wallTime: Float64Array;
  step: Float64Array;
  value: Float64Array;
}

export class ScalarSeries {
  /** Each chunk holds CHUNK_POINTS wall times, then as many steps, then as many values. */
  private chunks: Float64Array[] = [];
  private count = 0;

  get length(): number {
    return this.count;
  }

  append(wallTime: number, step: number, value: number): void {
    const within = this.count % CHUNK_POINTS;
    if (within === 0) this.chunks.push(new Float64Array(CHUNK_POINTS * 3));
    const chunk = this.chunks[this.chunks.length - 1] as Float64Array;
    chunk[within] = wallTime;
    chunk[CHUNK_POINTS + within] = step;
    chunk[2 * CHUNK_POINTS + within] = value;
    this.count++;
  }

  /** Keep only the points whose step is below `step` (in order); returns how many were dropped. */
  keepStepsBelow(step: number): number {
    const { wallTime, step: steps, value } = this.columns();
    let kept = 0;
    for (let i = 0; i < this.count; i++) if ((steps[i] as number) < step) kept++;
    const dropped = this.count - kept;
    if (dropped === 0) return 0;
    this.chunks = [];
    this.count = 0;
    for (let i = 0; i < steps.length; i++) {
      if ((steps[i] as number) < step)
        this.append(wallTime[i] as number, steps[i] as number, value[i] as number);
    }
    return dropped;
  }

  /** Largest step and wall time seen, as TensorBoard's list_scalars reports them (null when empty). */
  maxima(): { maxStep: number | null; maxWallTime: number | null } {
    if (this.count === 0) return { maxStep: null, maxWallTime: null };
    let maxStep = Number.NEGATIVE_INFINITY;
    let maxWallTime = Number.NEGATIVE_INFINITY;
    this.forEach((wallTime, step) => {
      if (step > maxStep) maxStep = step;
      if (wallTime > maxWallTime) maxWallTime = wallTime;
    });
    return { maxStep, maxWallTime };
  }

  forEach(visit: (wallTime: number, step: number, value: number, index: number) => void): void {
    let index = 0;
    for (const chunk of this.chunks) {
      const filled = Math.min(CHUNK_POINTS, this.count - index);
      for (let i = 0; i < filled; i++) {
        visit(
          chunk[i] as number,
          chunk[CHUNK_POINTS + i] as number,
          chunk[2 * CHUNK_POINTS + i] as number,
          index++,
        );
      }
    }
  }

  /** Every point as [wall_time, step, value], the shape of TensorBoard's JSON. */
  points(): Array<[number, number, number]> {
    const points: Array<[number, number, number]> = [];
    this.forEach((wallTime, step, value) => {
      points.push([wallTime, step, value]);
    });
    return points;
  }

  /**
   * The current points as views on the series' own storage, column by column, without copying.
   * They stay valid and unchanged while the series grows or is purged (an append fills slots past
   * these views; a purge builds new chunks), so they can be written out while reading goes on.
   */
  snapshot(): { length: number; wallTime: Float64Array[]; step: Float64Array[]; value: Float64Array[] } {
    const views = {
      length: this.count,
      wallTime: [] as Float64Array[],
      step: [] as Float64Array[],
      value: [] as Float64Array[],
    };
    let offset = 0;
    for (const chunk of this.chunks) {
      const filled = Math.min(CHUNK_POINTS, this.count - offset);
      views.wallTime.push(chunk.subarray(0, filled));
      views.step.push(chunk.subarray(CHUNK_POINTS, CHUNK_POINTS + filled));
      views.value.push(chunk.subarray(2 * CHUNK_POINTS, 2 * CHUNK_POINTS + filled));
      offset += filled;
    }
    return views;
  }

  /** Fresh contiguous copies of the three columns. */
  columns(): SeriesColumns {
    const wallTime = new Float64Array(this.count);
    const step = new Float64Array(this.count);
    const value = new Float64Array(this.count);
    this.copyColumns(wallTime, step, value);
    return { wallTime, step, value };
  }

  /** Write the three columns into caller-owned arrays of at least `length` elements. */
  copyColumns(wallTime: Float64Array, step: Float64Array, value: Float64Array): void {
    let offset = 0;
    for (const chunk of this.chunks) {
      const filled = Math.min(CHUNK_POINTS, this.count - offset);
      wallTime.set(chunk.subarray(0, filled), offset);
      step.set(chunk.subarray(CHUNK_POINTS, CHUNK_POINTS + filled), offset);
      value.set(chunk.subarray(2 * CHUNK_POINTS, 2 * CHUNK_POINTS + filled), offset);
      offset += filled;
    }
  }
}
