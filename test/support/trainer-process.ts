/** Run a trainer entry script as a child process, the way the pipeline does (node --import tsx). */
import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";

export const REPO = join(import.meta.dirname, "..", "..");

/** A model small enough that the pure-JS cpu backend trains it in milliseconds per step. */
export const TINY_MODEL = [
  "--hidden_size",
  "32",
  "--num_hidden_layers",
  "1",
  "--num_attention_heads",
  "2",
  "--num_key_value_heads",
  "1",
  "--max_seq_len",
  "64",
  "--batch_size",
  "4",
];

export interface TrainerRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface StartedTrainer {
  child: ChildProcess;
  /** Resolves when a stdout line matches; rejects if the trainer exits first. */
  waitForLine(pattern: RegExp): Promise<string>;
  done: Promise<TrainerRun>;
}

export function startTrainer(script: string, args: string[], env: NodeJS.ProcessEnv = {}): StartedTrainer {
  const child = spawn(process.execPath, ["--import", "tsx", join(REPO, "trainer", script), ...args], {
    cwd: REPO,
    env: { ...process.env, NODE_OPTIONS: "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  const waiters: Array<{ pattern: RegExp; resolve: (line: string) => void; reject: (e: Error) => void }> = [];
  let pending = "";
  child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
    stdout += chunk;
    pending += chunk;
    const lines = pending.split("\n");
    pending = lines.pop() ?? "";
    for (const line of lines) {
      for (const waiter of [...waiters]) {
        if (waiter.pattern.test(line)) {
          waiters.splice(waiters.indexOf(waiter), 1);
          waiter.resolve(line);
        }
      }
    }
  });
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  const done = new Promise<TrainerRun>((resolve) => {
    child.on("close", (code, signal) => {
      for (const waiter of waiters.splice(0)) {
        waiter.reject(
          new Error(`trainer exited (${code ?? signal}) before printing ${waiter.pattern}\n${stderr}`),
        );
      }
      resolve({ code, signal, stdout, stderr });
    });
  });
  return {
    child,
    done,
    waitForLine: (pattern) => new Promise((resolve, reject) => waiters.push({ pattern, resolve, reject })),
  };
}

export function runTrainerToEnd(
  script: string,
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<TrainerRun> {
  return startTrainer(script, args, env).done;
}

export function sha256(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

/** Paths a trainer run needs so it never touches the repository's out/. */
export function runDirs(root: string, stage: string): string[] {
  return ["--out_dir", join(root, stage), "--tensorboard_dir", join(root, "tb", stage)];
}
