/** Run a trainer entry script as a child process, the way the pipeline does (node --import tsx). */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { type ProcessExit, startWatched, type WatchedProcess } from "./watched-process.ts";

export const REPO = join(import.meta.dirname, "..", "..");

/** Heads, sequence and batch of the tiny test model; the pipeline sets its width and depth by env. */
export const TINY_SHAPE = [
  "--num_attention_heads",
  "2",
  "--num_key_value_heads",
  "1",
  "--max_seq_len",
  "64",
  "--batch_size",
  "4",
];

/** A model small enough that the pure-JS cpu backend trains it in milliseconds per step. */
export const TINY_MODEL = ["--hidden_size", "32", "--num_hidden_layers", "1", ...TINY_SHAPE];

export function startTrainer(script: string, args: string[], env: NodeJS.ProcessEnv = {}): WatchedProcess {
  return startWatched(join(REPO, "trainer", script), args, { label: "trainer", cwd: REPO, env });
}

export function runTrainerToEnd(
  script: string,
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<ProcessExit> {
  return startTrainer(script, args, env).done;
}

export function sha256(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

/** Paths a trainer run needs so it never touches the repository's out/. */
export function runDirs(root: string, stage: string): string[] {
  return ["--out_dir", join(root, stage), "--tensorboard_dir", join(root, "tb", stage)];
}
