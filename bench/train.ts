/**
 * Training speed: ms per optimizer update and tokens/s for MiniMind h128 / 4 layers / 4 heads
 * (2 kv heads) / seq 128 / batch 8, full-length sequences, on the chosen backend — the whole update
 * (forward, backward, clipping, AdamW), as the trainers run it.
 *
 *   npm run bench:train [-- --backend wasm --steps 20 --hidden_size 128 …]
 */
import * as tf from "@tensorflow/tfjs-core";
import yargs from "yargs";
import { Rng } from "../lib/rng/index.ts";
import { BACKEND_CHOICES, type BackendChoice } from "../lib/stages/args.ts";
import { loadBackend } from "../trainer/backend/load.ts";
import type { Batch } from "../trainer/data/samples.ts";
import { trainingStep } from "../trainer/loop/update.ts";
import { countParameters, resolveModelConfig } from "../trainer/model/config.ts";
import { MiniMind } from "../trainer/model/minimind.ts";
import { initialWeights } from "../trainer/model/state-dict.ts";
import { AdamW } from "../trainer/optim/adamw.ts";
import { GradientWorkers } from "../trainer/parallel/pool.ts";
import { languageModelObjective } from "../trainer/stages/language-model.ts";

const args = yargs(process.argv.slice(2))
  .options({
    backend: { choices: BACKEND_CHOICES, default: "auto" as BackendChoice },
    steps: { type: "number", default: 20 },
    warmup: { type: "number", default: 3 },
    hidden_size: { type: "number", default: 128 },
    num_hidden_layers: { type: "number", default: 4 },
    num_attention_heads: { type: "number", default: 4 },
    num_key_value_heads: { type: "number", default: 2 },
    seq: { type: "number", default: 128 },
    batch: { type: "number", default: 8 },
    vocab: { type: "number", default: 263 },
    threads: { type: "number", default: 1, describe: "data-parallel threads (1: the loop alone)" },
  })
  .strict()
  .parseSync();

const backend = await loadBackend(args.backend);
const config = resolveModelConfig({
  vocab_size: args.vocab,
  hidden_size: args.hidden_size,
  num_hidden_layers: args.num_hidden_layers,
  num_attention_heads: args.num_attention_heads,
  num_key_value_heads: args.num_key_value_heads,
  max_seq_len: args.seq,
});
const model = new MiniMind(config, initialWeights(config, Rng.fromSeed(0, "init")));
const optimizer = new AdamW(model.weights);
const rng = Rng.fromSeed(0, "bench");
const size = args.batch * args.seq;
const batch: Batch = {
  rows: args.batch,
  seqLen: args.seq,
  input: Int32Array.from({ length: size }, () => rng.nextInt(args.vocab)),
  target: Int32Array.from({ length: size }, () => rng.nextInt(args.vocab)),
  weight: new Float32Array(size).fill(1),
  tokens: size,
  lossTokens: size,
};
const workers =
  args.threads > 1
    ? await GradientWorkers.start({
        count: args.threads - 1,
        objectiveModule: languageModelObjective.workerModule as string,
        backend: backend.name,
        config,
        args: {} as never,
        model,
      })
    : null;

async function update(): Promise<void> {
  const result = await trainingStep(model, languageModelObjective, optimizer, workers, [batch], {
    lr: 1e-4,
    accumulationSteps: 1,
    gradClip: 1,
  });
  result.dispose();
}

for (let i = 0; i < args.warmup; i++) await update();
const times: number[] = [];
const cpuStart = process.cpuUsage();
for (let i = 0; i < args.steps; i++) {
  const started = performance.now();
  await update();
  times.push(performance.now() - started);
}
const cpu = process.cpuUsage(cpuStart);
// CPU time per step is the steadier figure when other work shares the machine.
const cpuMsPerStep = (cpu.user + cpu.system) / 1000 / args.steps;
times.sort((a, b) => a - b);
const median = times[Math.floor(times.length / 2)];
const mean = times.reduce((a, b) => a + b, 0) / times.length;
console.log(
  JSON.stringify({
    bench: "train.step",
    backend: backend.name,
    params: countParameters(config),
    hidden_size: config.hidden_size,
    layers: config.num_hidden_layers,
    heads: config.num_attention_heads,
    kv_heads: config.num_key_value_heads,
    threads: args.threads,
    seq: args.seq,
    batch: args.batch,
    steps: args.steps,
    ms_per_step_median: Number(median.toFixed(1)),
    ms_per_step_mean: Number(mean.toFixed(1)),
    ms_per_step_min: Number(times[0].toFixed(1)),
    cpu_ms_per_step: Number(cpuMsPerStep.toFixed(1)),
    tokens_per_s: Math.round((size * 1000) / median),
    live_tensors: tf.memory().numTensors,
  }),
);
await workers?.close();
