/**
 * Per-epoch shuffled batches of record indices.
 *
 * The order of epoch e comes from `randomForEpoch(e)`, a random source the caller derives from
 * (seed, e) alone — e.g. lib/rng's generator seeded with the run seed and forked by epoch — so
 * the order is a pure function of (seed, epoch) and resuming needs only (epoch, step_in_epoch)
 * from state.json, no RNG state. Skipping k batches is index arithmetic: nothing is read.
 *
 * The last partial batch is kept by default, as MiniMind's DataLoader does (drop_last=False).
 */

/** A source that hands out a whole permutation of 0..n-1 (lib/rng offers this). */
export interface PermutationSource {
  permutation(n: number): Uint32Array;
}

/** A source of uniform 32-bit integers; Baton shuffles with it (Fisher–Yates). */
export interface Uint32Source {
  nextUint32(): number;
}

export type RandomSource = PermutationSource | Uint32Source;

/** Must return a fresh source determined by (seed, epoch) only. */
export type EpochRandom = (epoch: number) => RandomSource;

/** Uniform integer in [0, bound) without modulo bias. */
function below(source: Uint32Source, bound: number): number {
  const limit = 2 ** 32 - (2 ** 32 % bound);
  for (;;) {
    const r = source.nextUint32() >>> 0;
    if (r < limit) return r % bound;
  }
}

/** A permutation of 0..n-1 from either kind of source. */
export function permutationOf(source: RandomSource, n: number): Uint32Array {
  if ("permutation" in source) {
    const p = source.permutation(n);
    if (p.length !== n) throw new Error(`permutation(${n}) returned ${p.length} items`);
    return p;
  }
  const p = new Uint32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = below(source, i + 1);
    const t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  return p;
}

export interface BatchSamplerOptions {
  /** The training record indices (e.g. `split(evalCount).train`), or a count n for 0..n-1. */
  indices: Uint32Array | number;
  batchSize: number;
  /** Drop the last batch when it is short. Default false (MiniMind keeps it). */
  dropLast?: boolean;
  /** Default true; false keeps the file's order (evaluation). */
  shuffle?: boolean;
  /** Required when shuffling. */
  randomForEpoch?: EpochRandom;
}

export interface EpochBatch {
  epoch: number;
  /** Batch number within the epoch, from 0; after it, `index + 1` batches are consumed. */
  index: number;
  indices: Uint32Array;
}

export class BatchSampler {
  readonly batchSize: number;
  readonly dropLast: boolean;
  readonly batchesPerEpoch: number;
  readonly #indices: Uint32Array;
  readonly #shuffle: boolean;
  readonly #randomForEpoch: EpochRandom | undefined;
  #cached: { epoch: number; order: Uint32Array } | null = null;

  constructor(options: BatchSamplerOptions) {
    const { indices, batchSize } = options;
    if (!Number.isInteger(batchSize) || batchSize < 1)
      throw new RangeError(`batch size must be ≥ 1, got ${batchSize}`);
    this.#indices =
      typeof indices === "number" ? Uint32Array.from({ length: indices }, (_, i) => i) : indices;
    this.batchSize = batchSize;
    this.dropLast = options.dropLast ?? false;
    this.#shuffle = options.shuffle ?? true;
    this.#randomForEpoch = options.randomForEpoch;
    if (this.#shuffle && !this.#randomForEpoch)
      throw new Error("BatchSampler: shuffling needs randomForEpoch");
    const n = this.#indices.length;
    this.batchesPerEpoch = this.dropLast ? Math.floor(n / batchSize) : Math.ceil(n / batchSize);
  }

  /** Records per epoch (before any drop of the last batch). */
  get size(): number {
    return this.#indices.length;
  }

  /** Every record index of `epoch`, in the order batches take them. */
  order(epoch: number): Uint32Array {
    if (this.#cached?.epoch === epoch) return this.#cached.order;
    let order = this.#indices;
    if (this.#shuffle) {
      const random = (this.#randomForEpoch as EpochRandom)(epoch);
      const perm = permutationOf(random, this.#indices.length);
      order = new Uint32Array(perm.length);
      for (let i = 0; i < perm.length; i++) order[i] = this.#indices[perm[i]];
    }
    this.#cached = { epoch, order };
    return order;
  }

  /** Batch `k` of `epoch` (0-based): O(1) once the epoch's order exists. */
  batch(epoch: number, k: number): Uint32Array {
    if (!Number.isInteger(k) || k < 0 || k >= this.batchesPerEpoch) {
      throw new RangeError(`batch ${k} is out of range (0..${this.batchesPerEpoch - 1})`);
    }
    const start = k * this.batchSize;
    return this.order(epoch).subarray(start, Math.min(start + this.batchSize, this.size));
  }

  /** The batches of `epoch`, starting after `skip` already-consumed ones (resume). */
  *batches(epoch: number, skip = 0): Generator<EpochBatch> {
    for (let k = skip; k < this.batchesPerEpoch; k++)
      yield { epoch, index: k, indices: this.batch(epoch, k) };
  }
}
