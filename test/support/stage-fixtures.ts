/** Inputs the DPO, R1 and inference tests share: seeded initial weights of a tiny model, data files. */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after } from "node:test";
import { Rng } from "../../lib/rng/index.ts";
import { type ModelConfig, resolveModelConfig } from "../../trainer/model/config.ts";
import { encodeWeights, initialWeights } from "../../trainer/model/state-dict.ts";
import { finalModelPath } from "./crash-resume.ts";
import { REPO, runTrainerToEnd, sha256, startTrainer } from "./trainer-process.ts";

/** The byte tokenizer's vocabulary. */
export const BYTE_VOCAB = 263;

/** TINY_MODEL's shape with another context length or depth. */
export function tinyConfig(maxSeqLen = 64, numHiddenLayers = 1): ModelConfig {
  return resolveModelConfig({
    vocab_size: BYTE_VOCAB,
    hidden_size: 32,
    num_hidden_layers: numHiddenLayers,
    num_attention_heads: 2,
    num_key_value_heads: 1,
    max_seq_len: maxSeqLen,
  });
}

/** Seeded random weights of `config` written as a bare .safetensors file (what --init_from takes). */
export function writeInitialWeights(path: string, config: ModelConfig, seed = 7): string {
  writeFileSync(
    path,
    Buffer.concat(encodeWeights(config, initialWeights(config, Rng.fromSeed(seed, "init")))),
  );
  return path;
}

/**
 * A stage test's scratch folder (removed after the file's tests), its replay seed, and seeded
 * initial weights of the tiny model at context 64 and 128.
 */
export function stageTestSetup(prefix: string): {
  root: string;
  seed: number;
  init64: string;
  init128: string;
} {
  const root = mkdtempSync(join(tmpdir(), prefix));
  after(() => rmSync(root, { recursive: true, force: true }));
  return {
    root,
    seed: Number(process.env.BATON_TEST_SEED ?? Date.now() % 100000),
    init64: writeInitialWeights(join(root, "init64.safetensors"), tinyConfig(64)),
    init128: writeInitialWeights(join(root, "init128.safetensors"), tinyConfig(128)),
  };
}

export function sampleDataPath(file: string): string {
  return join(REPO, "data", file);
}

/** Parsed lines of TF_DIR/eval_results.jsonl (the tests' tensorboard_dir is <root>/tb/<stage>). */
export function evalResults(
  root: string,
): Array<{ stage: string; step: number; checkpoint: string | null; metrics: Record<string, number> }> {
  return readFileSync(join(root, "tb", "eval_results.jsonl"), "utf8")
    .split("\n")
    .filter(Boolean)
    .map((line) => JSON.parse(line));
}

/**
 * Bit-exact resume of one stage: an uninterrupted run of `steps` updates, and a run SIGTERMed once
 * it logs `stopAt` then resumed in a fresh process, must end with byte-identical model.safetensors.
 * `args(dir)` gives the full trainer arguments for a run rooted at `dir`; `betweenSessions` runs
 * after the interrupted session has exited. Returns the two hashes.
 */
export async function interruptedMatchesUninterrupted(
  script: string,
  stage: string,
  steps: number,
  stopAt: number,
  args: (dir: string) => string[],
  root: string,
  betweenSessions?: () => void,
): Promise<{ whole: string; resumed: string; interruptedStdout: string; resumedStdout: string }> {
  const finalModel = (name: string) => finalModelPath(join(root, name), stage, steps);
  const whole = await runTrainerToEnd(script, args(join(root, "whole")));
  if (whole.code !== 0) throw new Error(`uninterrupted run failed (${whole.code}):\n${whole.stderr}`);

  const interrupted = startTrainer(script, args(join(root, "interrupted")));
  await interrupted.waitForLine(new RegExp(`step ${stopAt}/${steps} `));
  interrupted.child.kill("SIGTERM");
  const first = await interrupted.done;
  if (first.code !== 143)
    throw new Error(`expected exit 143 after SIGTERM, got ${first.code}:\n${first.stderr}`);
  betweenSessions?.();
  const saved = [...first.stdout.matchAll(/^CHECKPOINT:(.*)$/gm)].at(-1)?.[1];
  const resumed = await runTrainerToEnd(script, args(join(root, "interrupted")));
  if (resumed.code !== 0) throw new Error(`resumed run failed (${resumed.code}):\n${resumed.stderr}`);
  if (!resumed.stdout.includes(`resuming from ${saved} (`))
    throw new Error(`the resumed run did not resume from ${saved}, the last save:\n${resumed.stdout}`);
  return {
    whole: sha256(finalModel("whole")),
    resumed: sha256(finalModel("interrupted")),
    interruptedStdout: first.stdout,
    resumedStdout: resumed.stdout,
  };
}

/** A step in [2, steps - 2], from BATON_TEST_SEED (printed by the tests, so a failure can be replayed). */
export function randomStopStep(seed: number, salt: number, steps: number): number {
  const x = Math.sin(seed * 9301 + salt * 49297) * 233280;
  return 2 + Math.floor((x - Math.floor(x)) * (steps - 3));
}
