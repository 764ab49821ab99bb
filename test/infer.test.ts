/**
 * Inference: the key/value cache gives the same logits as recomputing the whole prefix, batched
 * generation equals one prompt at a time, nothing leaks; `trainer/infer.ts` is deterministic for a
 * seed and reads the model shape from a checkpoint's state.json or a bare weights file.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import * as tf from "@tensorflow/tfjs-core";
import { saveCheckpoint } from "../lib/checkpoint/index.ts";
import { Rng } from "../lib/rng/index.ts";
import { loadBackend } from "../trainer/backend/load.ts";
import { DecodeSession, generate, lastLogitsNoCache } from "../trainer/eval/generate.ts";
import { chooseToken } from "../trainer/eval/sampling.ts";
import { resolveModelConfig } from "../trainer/model/config.ts";
import { MiniMind } from "../trainer/model/minimind.ts";
import { encodeWeights, initialWeights } from "../trainer/model/state-dict.ts";
import { assertOneLineError } from "./support/one-line-error.ts";
import { BYTE_VOCAB, tinyConfig, writeInitialWeights } from "./support/stage-fixtures.ts";
import { REPO } from "./support/trainer-process.ts";

const root = mkdtempSync(join(tmpdir(), "baton-infer-"));
after(() => rmSync(root, { recursive: true, force: true }));

// Two layers and grouped-query attention (4 heads sharing 2 key/value heads), so the cache path
// is exercised where it can go wrong.
const config = resolveModelConfig({
  vocab_size: BYTE_VOCAB,
  hidden_size: 32,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  max_seq_len: 48,
});
const tokens = Array.from({ length: 20 }, (_, i) => 7 + ((i * 37) % 200));

for (const backend of ["wasm", "cpu"] as const) {
  describe(`generation on ${backend}`, () => {
    let model: MiniMind;
    before(async () => {
      await loadBackend(backend);
      model = new MiniMind(config, initialWeights(config, Rng.fromSeed(3, "init")));
    });
    after(() => model.dispose());

    test("cached logits equal the no-cache logits at every position", async () => {
      const full = tf.tidy(() =>
        model.logits(model.hidden(tf.tensor2d([tokens], [1, tokens.length], "int32"))),
      );
      const expected = (await full.array()) as number[][];
      full.dispose();
      const session = new DecodeSession(model);
      // A 5-token prefill, then one position at a time.
      const positions: Array<[number, number[]]> = [];
      let logits = session.step(tf.tensor2d([tokens.slice(0, 5)], [1, 5], "int32"));
      positions.push([4, ((await logits.array()) as number[][])[0] as number[]]);
      logits.dispose();
      for (let t = 5; t < tokens.length; t++) {
        logits = session.step(tf.tensor2d([[tokens[t] as number]], [1, 1], "int32"));
        positions.push([t, ((await logits.array()) as number[][])[0] as number[]]);
        logits.dispose();
      }
      session.dispose();
      let worst = 0;
      for (const [t, row] of positions) {
        const want = expected[t] as number[];
        for (let v = 0; v < row.length; v++)
          worst = Math.max(worst, Math.abs((row[v] as number) - (want[v] as number)));
      }
      assert.ok(worst <= 1e-5, `largest logit difference ${worst}`);
      // Same for the helper the benchmark uses as its no-cache path.
      const last = lastLogitsNoCache(model, tf.tensor2d([tokens], [1, tokens.length], "int32"));
      const lastRow = ((await last.array()) as number[][])[0] as number[];
      last.dispose();
      assert.ok(lastRow.every((x, v) => Math.abs(x - ((expected.at(-1) as number[])[v] as number)) <= 1e-5));
    });

    test("a batch of equal-length prompts generates what each prompt does alone, without leaks", async () => {
      const prompts = [tokens.slice(0, 6), tokens.slice(6, 12), tokens.slice(2, 5), tokens.slice(10, 16)];
      const options = { maxNewTokens: 12, stopIds: [2] };
      await generate(model, prompts, options); // the model's per-shape mask cache fills up here
      const before = tf.memory().numTensors;
      const together = await generate(model, prompts, options);
      assert.equal(tf.memory().numTensors, before, "generation leaked tensors");
      const alone = [];
      for (const prompt of prompts) alone.push(...(await generate(model, [prompt], options)));
      assert.deepEqual(together, alone);
      assert.ok(together.every((ids) => ids.length > 0));
    });
  });
}

test("top-p sampling is a pure function of the logits and the seed", () => {
  const logits = Float32Array.from({ length: 50 }, (_, i) => Math.sin(i));
  const draw = (seed: number) => {
    const rng = Rng.fromSeed(seed, "sample");
    return Array.from({ length: 30 }, () => chooseToken(logits, { temperature: 0.8, topP: 0.9, rng }));
  };
  assert.deepEqual(draw(1), draw(1));
  assert.notDeepEqual(draw(1), draw(2));
  // top_p tiny keeps only the most likely token: greedy.
  const rng = Rng.fromSeed(1, "sample");
  const best = chooseToken(logits, { temperature: 0, topP: 1 });
  assert.equal(chooseToken(logits, { temperature: 1, topP: 1e-9, rng }), best);
});

function infer(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", join(REPO, "trainer", "infer.ts"), ...args], {
      cwd: REPO,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => (stdout += c));
    child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

describe("trainer/infer.ts", { concurrency: 3 }, () => {
  let weightsFile = "";
  let stageDir = "";
  before(async () => {
    weightsFile = writeInitialWeights(join(root, "tiny.safetensors"), tinyConfig(64));
    // A checkpoint with 4 heads over 2 key/value heads: only its state.json says so.
    stageDir = join(root, "stage");
    await saveCheckpoint(join(stageDir, "checkpoints"), {
      step: 5,
      files: { "model.safetensors": encodeWeights(config, initialWeights(config, Rng.fromSeed(3, "init"))) },
      state: {
        stage: "r1",
        epoch: 0,
        step_in_epoch: 5,
        global_step: 5,
        tokens_seen: 0,
        finished: true,
        args: { tokenizer: "" },
        model_config: { ...config },
        metrics: {},
        tokenizer: "byte-v1",
      },
      keepLast: 3,
      resumedFrom: null,
    });
  });

  test("the same seed gives the same sampled reply; another seed another", async () => {
    const args = (seed: number) => [
      ...["--checkpoint", weightsFile, "--prompt", "Where does Nuvo live?", "--max_new_tokens", "24"],
      ...["--temperature", "1", "--top_p", "0.95", "--seed", String(seed), "--backend", "wasm"],
    ];
    const [a, b, c] = await Promise.all([infer(args(5)), infer(args(5)), infer(args(6))]);
    assert.equal(a.code, 0, a.stderr);
    assert.ok(a.stdout.length > 1);
    assert.equal(a.stdout, b.stdout);
    assert.notEqual(a.stdout, c.stdout);
    assert.match(a.stderr, /tokens in .* s \(.* tokens\/s\)/);
  });

  test("a stage folder: shape from state.json, greedy reply equals the in-process greedy reply", async () => {
    const run = await infer([
      "--checkpoint",
      stageDir,
      "--prompt",
      "hi",
      "--max_new_tokens",
      "10",
      "--backend",
      "cpu",
    ]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stderr, /step_00000005: hidden 32, 2 layers, context 48/);
    await loadBackend("cpu");
    const model = new MiniMind(config, initialWeights(config, Rng.fromSeed(3, "init")));
    const { ByteTokenizer } = await import("../trainer/data/tokenizer.ts");
    const { renderPrompt } = await import("../trainer/data/chat-template.ts");
    const tokenizer = new ByteTokenizer();
    const prompt = tokenizer.encode(renderPrompt([{ role: "user", content: "hi" }]));
    const [ids] = await generate(model, [prompt], { maxNewTokens: 10, stopIds: [tokenizer.eosId] });
    model.dispose();
    assert.equal(run.stdout, `${tokenizer.decode(ids as number[])}\n`);
  });

  test("a bare weights file with another head count needs --num_attention_heads", async () => {
    const file = join(root, "heads4.safetensors");
    const { writeFileSync } = await import("node:fs");
    writeFileSync(
      file,
      Buffer.concat(encodeWeights(config, initialWeights(config, Rng.fromSeed(3, "init")))),
    );
    const ok = await infer([
      "--checkpoint",
      file,
      "--num_attention_heads",
      "4",
      "--prompt",
      "hi",
      "--max_new_tokens",
      "4",
      "--backend",
      "cpu",
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stderr, /hidden 32, 2 layers, context 128/);
    const bad = await infer(["--checkpoint", join(root, "missing"), "--prompt", "hi", "--backend", "cpu"]);
    assertOneLineError(bad, /^infer: error: --checkpoint .*missing: no such file or directory$/);
  });
});
