import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { EpochRandom, Uint32Source } from "../trainer/data/sampler.ts";
import { BatchSampler, permutationOf } from "../trainer/data/sampler.ts";

/** xorshift32 seeded from (seed, epoch): a stand-in for lib/rng, enough to test the sampler. */
function xorshift(seed: number): Uint32Source {
  let x = seed >>> 0 || 1;
  return {
    nextUint32() {
      x ^= x << 13;
      x >>>= 0;
      x ^= x >>> 17;
      x ^= x << 5;
      x >>>= 0;
      return x;
    },
  };
}
const epochRandom =
  (seed: number): EpochRandom =>
  (epoch) =>
    xorshift(Math.imul(seed, 0x9e3779b1) ^ Math.imul(epoch + 1, 0x85ebca6b));

function allBatches(sampler: BatchSampler, epoch: number, skip = 0): number[][] {
  return [...sampler.batches(epoch, skip)].map((b) => [...b.indices]);
}

describe("batch sampler", () => {
  test("each epoch is a permutation of the training indices; epochs differ", () => {
    const indices = Uint32Array.from([10, 11, 12, 13, 14, 15, 16]);
    const s = new BatchSampler({ indices, batchSize: 3, randomForEpoch: epochRandom(1) });
    assert.equal(s.batchesPerEpoch, 3);
    const e0 = allBatches(s, 0);
    assert.deepEqual(
      e0.map((b) => b.length),
      [3, 3, 1],
    );
    assert.deepEqual(e0.flat().sort(), [...indices]);
    assert.notDeepEqual(e0.flat(), allBatches(s, 1).flat());
  });

  test("the order is a pure function of (seed, epoch): a fresh sampler agrees, another seed does not", () => {
    const make = (seed: number) =>
      new BatchSampler({ indices: 100, batchSize: 8, randomForEpoch: epochRandom(seed) });
    const a = make(7);
    const b = make(7);
    // Visit epochs in a different order on b: no hidden state carried between epochs.
    const bEpoch3 = allBatches(b, 3);
    assert.deepEqual(allBatches(a, 0), allBatches(b, 0));
    assert.deepEqual(allBatches(a, 3), bEpoch3);
    assert.notDeepEqual(allBatches(make(8), 0), allBatches(a, 0));
  });

  test("skipping k batches equals reading through k batches", () => {
    const s = new BatchSampler({ indices: 50, batchSize: 4, randomForEpoch: epochRandom(3) });
    const full = allBatches(s, 2);
    for (const k of [0, 1, 5, 12, 13]) {
      const resumed = new BatchSampler({ indices: 50, batchSize: 4, randomForEpoch: epochRandom(3) });
      assert.deepEqual(allBatches(resumed, 2, k), full.slice(k));
      if (k < full.length) assert.deepEqual([...resumed.batch(2, k)], full[k]);
    }
    assert.throws(() => s.batch(2, 13), RangeError);
  });

  test("dropLast drops the short final batch; shuffle:false keeps file order", () => {
    const s = new BatchSampler({ indices: 10, batchSize: 4, dropLast: true, randomForEpoch: epochRandom(0) });
    assert.equal(s.batchesPerEpoch, 2);
    assert.equal(allBatches(s, 0).flat().length, 8);
    const plain = new BatchSampler({ indices: 5, batchSize: 2, shuffle: false });
    assert.deepEqual(allBatches(plain, 4), [[0, 1], [2, 3], [4]]);
    assert.throws(() => new BatchSampler({ indices: 5, batchSize: 2 }), /needs randomForEpoch/);
  });

  test("permutationOf: Fisher–Yates from uint32s, or the source's own permutation()", () => {
    const p = permutationOf(xorshift(42), 1000);
    assert.deepEqual(
      [...p].sort((a, b) => a - b),
      Array.from({ length: 1000 }, (_, i) => i),
    );
    assert.deepEqual([...permutationOf(xorshift(42), 1000)], [...p]);
    const own = Uint32Array.from([2, 0, 1]);
    assert.equal(permutationOf({ permutation: () => own }, 3), own);
    const s = new BatchSampler({
      indices: Uint32Array.from([7, 8, 9]),
      batchSize: 3,
      randomForEpoch: () => ({ permutation: () => Uint32Array.from([2, 0, 1]) }),
    });
    assert.deepEqual([...s.batch(0, 0)], [9, 7, 8]);
  });
});
