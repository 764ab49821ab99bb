/**
 * Generation speed with and without the key/value cache: `npm run bench:infer`.
 * Prints one JSON object per measurement. A model of the pipeline's default shape (hidden 128,
 * 4 layers, 4 heads over 2 key/value heads) with seeded random weights generates greedily from a
 * 16-token prompt; without the cache every new token recomputes the whole prefix, so its cost per
 * token grows with the length. Both paths must produce the same tokens.
 * Environment: BENCH_BACKEND (wasm), BENCH_NEW_TOKENS (comma list, 112,496), BENCH_HIDDEN (128),
 * BENCH_LAYERS (4), BENCH_REPEATS (2, best kept).
 */
import * as tf from "@tensorflow/tfjs-core";
import { Rng } from "../lib/rng/index.ts";
import type { BackendChoice } from "../lib/stages/args.ts";
import { loadBackend } from "../trainer/backend/load.ts";
import { DecodeSession, lastLogitsNoCache } from "../trainer/eval/generate.ts";
import { argmax } from "../trainer/eval/sampling.ts";
import { resolveModelConfig } from "../trainer/model/config.ts";
import { MiniMind } from "../trainer/model/minimind.ts";
import { initialWeights } from "../trainer/model/state-dict.ts";

const backendName = (process.env.BENCH_BACKEND ?? "wasm") as BackendChoice;
const lengths = (process.env.BENCH_NEW_TOKENS ?? "112,496").split(",").map(Number);
const repeats = Number(process.env.BENCH_REPEATS ?? 2);
const promptTokens = 16;
const config = resolveModelConfig({
  vocab_size: 263,
  hidden_size: Number(process.env.BENCH_HIDDEN ?? 128),
  num_hidden_layers: Number(process.env.BENCH_LAYERS ?? 4),
  num_attention_heads: 4,
  num_key_value_heads: 2,
  max_seq_len: promptTokens + Math.max(...lengths),
});

const print = (record: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(record)}\n`);
const prompt = Array.from({ length: promptTokens }, (_, i) => 7 + ((i * 31) % 256));

async function withCache(model: MiniMind, newTokens: number): Promise<number[]> {
  const session = new DecodeSession(model);
  const out: number[] = [];
  let input = tf.tensor2d([prompt], [1, promptTokens], "int32");
  for (let k = 0; k < newTokens; k++) {
    const logits = session.step(input);
    input.dispose();
    const next = argmax(await logits.data());
    logits.dispose();
    out.push(next);
    input = tf.tensor2d([[next]], [1, 1], "int32");
  }
  input.dispose();
  session.dispose();
  return out;
}

async function withoutCache(model: MiniMind, newTokens: number): Promise<number[]> {
  const ids = [...prompt];
  const out: number[] = [];
  for (let k = 0; k < newTokens; k++) {
    const input = tf.tensor2d([ids], [1, ids.length], "int32");
    const logits = lastLogitsNoCache(model, input);
    input.dispose();
    const next = argmax(await logits.data());
    logits.dispose();
    out.push(next);
    ids.push(next);
  }
  return out;
}

async function main(): Promise<void> {
  const backend = await loadBackend(backendName);
  const model = new MiniMind(config, initialWeights(config, Rng.fromSeed(1, "init")));
  for (const newTokens of lengths) {
    let reference: number[] | null = null;
    for (const [cache, run] of [
      [true, withCache],
      [false, withoutCache],
    ] as const) {
      await run(model, 8); // warm-up: kernels and per-shape caches
      const times: number[] = [];
      for (let r = 0; r < repeats; r++) {
        const started = performance.now();
        const tokens = await run(model, newTokens);
        times.push((performance.now() - started) / 1000);
        reference ??= tokens;
        if (tokens.join() !== reference.join()) throw new Error("cached and uncached generation differ");
      }
      const seconds = Math.min(...times);
      print({
        bench: "infer",
        backend: backend.name,
        kv_cache: cache,
        hidden_size: config.hidden_size,
        layers: config.num_hidden_layers,
        prompt_tokens: promptTokens,
        new_tokens: newTokens,
        seconds: Math.round(seconds * 1000) / 1000,
        tokens_per_sec: Math.round((newTokens / seconds) * 10) / 10,
      });
    }
  }
  model.dispose();
}

await main();
