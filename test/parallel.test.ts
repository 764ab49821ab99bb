/**
 * Data parallelism: shards cover the batch exactly once with shares summing to 1 (DPO pairs kept
 * whole), and an update computed by the loop plus a worker thread matches the single-thread one.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { Rng } from "../lib/rng/index.ts";
import { loadBackend } from "../trainer/backend/load.ts";
import { openDataset } from "../trainer/data/dataset.ts";
import { type Batch, readBatch, SampleEncoder } from "../trainer/data/samples.ts";
import { ByteTokenizer } from "../trainer/data/tokenizer.ts";
import { trainingStep } from "../trainer/loop/update.ts";
import { MiniMind } from "../trainer/model/minimind.ts";
import { initialWeights } from "../trainer/model/state-dict.ts";
import { AdamW } from "../trainer/optim/adamw.ts";
import { GradientWorkers } from "../trainer/parallel/pool.ts";
import { byLossTokens, splitBatch } from "../trainer/parallel/shards.ts";
import { languageModelObjective } from "../trainer/stages/language-model.ts";
import { tinyConfig } from "./support/stage-fixtures.ts";
import { REPO } from "./support/trainer-process.ts";

function batchOf(rows: number, seqLen: number): Batch {
  const n = rows * seqLen;
  const weight = Float32Array.from({ length: n }, (_, i) =>
    i % seqLen < 3 + (Math.floor(i / seqLen) % 4) ? 1 : 0,
  );
  return {
    rows,
    seqLen,
    input: Int32Array.from({ length: n }, (_, i) => i),
    target: Int32Array.from({ length: n }, (_, i) => i + 1),
    weight,
    tokens: n,
    lossTokens: weight.filter((w) => w > 0).length,
  };
}

test("shards cover every row once and their shares sum to 1", () => {
  const batch = batchOf(7, 5);
  const shards = splitBatch(batch, 3, false, byLossTokens);
  const rows = shards.flatMap((s) =>
    s ? [...s.batch.input.filter((_, i) => i % 5 === 0)].map((v) => v / 5) : [],
  );
  assert.deepEqual(rows, [0, 1, 2, 3, 4, 5, 6]);
  const shares = shards.reduce((sum, s) => sum + (s?.share ?? 0), 0);
  assert.ok(Math.abs(shares - 1) < 1e-12);
  assert.equal(splitBatch(batchOf(1, 5), 2, false, byLossTokens)[1], null, "an empty part is null");
});

test("paired shards keep chosen and rejected rows of a pair together", () => {
  const batch = batchOf(8, 4); // 4 chosen rows (0..3), then their 4 rejected twins (4..7)
  const pairs = (b: Batch) => b.rows / 2;
  const shards = splitBatch(batch, 2, true, pairs);
  const firstRows = (s: (typeof shards)[number]) =>
    [...(s?.batch.input ?? [])].filter((_, i) => i % 4 === 0).map((v) => v / 4);
  assert.deepEqual(firstRows(shards[0]), [0, 1, 4, 5]);
  assert.deepEqual(firstRows(shards[1]), [2, 3, 6, 7]);
  assert.deepEqual(
    shards.map((s) => s?.share),
    [0.5, 0.5],
  );
});

let pool: GradientWorkers | null = null;
before(() => loadBackend("wasm"));
after(() => pool?.close());

test("an update shared with a worker thread matches the single-thread update", async () => {
  const tokenizer = new ByteTokenizer();
  const config = tinyConfig(64, 2);
  const dataset = await openDataset(join(REPO, "data", "sft_mini_512.jsonl"), "sft", { cachePath: null });
  const encoder = new SampleEncoder("sft", tokenizer, { maxSeqLen: 64 });
  const batches = [readBatch(dataset, [0, 1, 2, 3, 4], encoder), readBatch(dataset, [5, 6, 7], encoder)];
  dataset.close();

  async function update(threads: number) {
    const model = new MiniMind(config, initialWeights(config, Rng.fromSeed(3, "init")));
    const optimizer = new AdamW(model.weights);
    if (threads > 1) {
      pool = await GradientWorkers.start({
        count: threads - 1,
        objectiveModule: languageModelObjective.workerModule as string,
        backend: "wasm",
        config,
        args: {} as never,
        model,
      });
    }
    const result = await trainingStep(
      model,
      languageModelObjective,
      optimizer,
      threads > 1 ? pool : null,
      batches,
      {
        lr: 1e-2,
        accumulationSteps: 2,
        gradClip: 1,
      },
    );
    const values = { loss: result.loss, gradNorm: result.gradNorm };
    result.dispose();
    const weights = new Map([...model.weights].map(([name, v]) => [name, v.dataSync() as Float32Array]));
    model.dispose();
    optimizer.dispose();
    return { values, weights };
  }

  const single = await update(1);
  const shared = await update(2);
  assert.ok(
    Math.abs(single.values.loss - shared.values.loss) < 1e-5,
    `${single.values.loss} vs ${shared.values.loss}`,
  );
  assert.ok(Math.abs(single.values.gradNorm - shared.values.gradNorm) / single.values.gradNorm < 1e-4);
  let worst = 0;
  for (const [name, values] of single.weights) {
    const other = shared.weights.get(name) as Float32Array;
    for (let i = 0; i < values.length; i++) worst = Math.max(worst, Math.abs(values[i] - other[i]));
  }
  // Adam divides by √v, so a gradient that differs in its last bits moves a weight by up to a
  // tiny fraction of lr (1e-2 here); anything like a missing shard would move it by ~lr.
  assert.ok(worst < 1e-4, `largest weight difference after one update: ${worst}`);
  assert.equal(pool?.shardsSent, 2, "the worker computed one shard of each of the two batches");
});
