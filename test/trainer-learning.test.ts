/**
 * The model learns: pretrain loss on the embedded sample data falls well below the unigram entropy
 * of its bytes (what a model that ignores context can reach), the losses reach TensorBoard, and a
 * training step leaks no tensors.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import * as tf from "@tensorflow/tfjs-core";
import { Rng } from "../lib/rng/index.ts";
import { readRunEvents, scalarSeries } from "../lib/tensorboard/index.ts";
import { loadBackend } from "../trainer/backend/load.ts";
import { openDataset } from "../trainer/data/dataset.ts";
import { readBatch, SampleEncoder } from "../trainer/data/samples.ts";
import { ByteTokenizer } from "../trainer/data/tokenizer.ts";
import { trainingStep } from "../trainer/loop/update.ts";
import { MiniMind } from "../trainer/model/minimind.ts";
import { initialWeights } from "../trainer/model/state-dict.ts";
import { AdamW } from "../trainer/optim/adamw.ts";
import { languageModelObjective } from "../trainer/stages/language-model.ts";
import { tinyConfig } from "./support/stage-fixtures.ts";
import { REPO, runDirs, runTrainerToEnd } from "./support/trainer-process.ts";

const root = mkdtempSync(join(tmpdir(), "baton-learn-"));
after(() => rmSync(root, { recursive: true, force: true }));

function unigramEntropy(path: string): number {
  const counts = new Map<number, number>();
  let total = 0;
  for (const line of readFileSync(path, "utf8").split("\n")) {
    if (!line) continue;
    for (const byte of Buffer.from(JSON.parse(line).text as string))
      counts.set(byte, (counts.get(byte) ?? 0) + 1);
    counts.set(-1, (counts.get(-1) ?? 0) + 1); // the end-of-text token
    total += Buffer.byteLength(JSON.parse(line).text as string) + 1;
  }
  let h = 0;
  for (const n of counts.values()) h -= (n / total) * Math.log(n / total);
  return h;
}

test("pretrain loss falls well below the unigram entropy of the sample data", async () => {
  const run = await runTrainerToEnd("train_pretrain.ts", [
    ...runDirs(root, "pretrain"),
    ...[
      "--hidden_size",
      "64",
      "--num_hidden_layers",
      "2",
      "--num_attention_heads",
      "2",
      "--num_key_value_heads",
      "1",
    ],
    ...["--max_steps", "80", "--log_interval", "10", "--backend", "wasm", "--eval", "false"],
  ]);
  assert.equal(run.code, 0, run.stderr);
  const losses = [...run.stdout.matchAll(/ loss (\d+\.\d+)/g)].map((m) => Number(m[1]));
  assert.equal(losses.length, 8);
  const entropy = unigramEntropy(join(REPO, "data", "pretrain_hq.jsonl"));
  const last = losses.at(-1) as number;
  assert.ok(last < losses[0] * 0.7, `loss went from ${losses[0]} to ${last}`);
  assert.ok(
    last < entropy - 0.5,
    `final loss ${last} is not well below the unigram entropy ${entropy.toFixed(3)}`,
  );

  const { events } = await readRunEvents(join(root, "tb", "pretrain"));
  const series = scalarSeries(events, "pretrain/loss");
  assert.deepEqual(
    series.map(([step]) => step),
    [10, 20, 30, 40, 50, 60, 70, 80],
  );
  assert.ok(Math.abs((series.at(-1)?.[1] ?? 0) - last) < 1e-3);
  assert.ok(events.some((e) => e.sessionLog?.status === "START"));
  for (const tag of ["pretrain/lr", "pretrain/grad_norm", "pretrain/tokens_per_sec"]) {
    assert.equal(scalarSeries(events, tag).length, 8, `${tag} missing`);
  }
});

test("a training step leaks no tensors", async () => {
  await loadBackend("wasm");
  const tokenizer = new ByteTokenizer();
  const config = tinyConfig(64, 2);
  const model = new MiniMind(config, initialWeights(config, Rng.fromSeed(1, "init")));
  const optimizer = new AdamW(model.weights);
  const dataset = await openDataset(join(REPO, "data", "sft_mini_512.jsonl"), "sft", { cachePath: null });
  const encoder = new SampleEncoder("sft", tokenizer, { maxSeqLen: 64 });
  const counts: number[] = [];
  for (let step = 0; step < 4; step++) {
    const batches = [0, 1].map((k) => readBatch(dataset, [step * 8 + k * 4, step * 8 + k * 4 + 1], encoder));
    const result = await trainingStep(model, languageModelObjective, optimizer, null, batches, {
      lr: 1e-3,
      accumulationSteps: 2,
      gradClip: 1,
    });
    await result.metrics();
    result.dispose();
    counts.push(tf.memory().numTensors);
  }
  assert.equal(new Set(counts.slice(1)).size, 1, `live tensors per step: ${counts.join(", ")}`);
  dataset.close();
});
