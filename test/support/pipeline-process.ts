/**
 * Run pipelines/run.ts as a real process, the way a terminal does: leading its own process group
 * (so a "Ctrl+C" is a signal to that group), output captured and watchable line by line.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { RunRecord } from "../../lib/pipeline/run-record.ts";
import { REPO } from "./trainer-process.ts";

export { REPO };
export const PIPELINE = join(REPO, "pipelines", "run.ts");

/** Trainer flags for a model that trains in tens of milliseconds per step (after `--`). */
export const TINY_TRAINER_FLAGS = [
  "--num_attention_heads",
  "2",
  "--num_key_value_heads",
  "1",
  "--max_seq_len",
  "64",
  "--batch_size",
  "4",
  "--eval",
  "false",
];

export interface PipelineExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface StartedPipeline {
  child: ChildProcess;
  /** Resolves with the first stdout line matching (lines printed before the call count too). */
  waitForLine(pattern: RegExp): Promise<string>;
  done: Promise<PipelineExit>;
}

export interface PipelineOptions {
  env?: NodeJS.ProcessEnv;
  /** node flags before the script, e.g. `--import <hook>`. */
  execArgv?: string[];
  cwd?: string;
}

export function startPipeline(args: string[], options: PipelineOptions = {}): StartedPipeline {
  // tsx by absolute URL: the working directory may be anywhere.
  const tsx = import.meta.resolve("tsx");
  const child = spawn(process.execPath, [...(options.execArgv ?? []), "--import", tsx, PIPELINE, ...args], {
    cwd: options.cwd ?? REPO,
    // NODE_OPTIONS cleared: nothing (e.g. a test's loader hook) may reach the trainers through it.
    env: { ...process.env, NODE_OPTIONS: "", FORCE_COLOR: "0", TB_AUTO: "0", ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let stdout = "";
  let stderr = "";
  let pending = "";
  const lines: string[] = [];
  const waiters: Array<{ pattern: RegExp; resolve: (line: string) => void; reject: (e: Error) => void }> = [];
  child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
    stdout += chunk;
    pending += chunk;
    const complete = pending.split("\n");
    pending = complete.pop() ?? "";
    for (const line of complete) {
      lines.push(line);
      for (const waiter of [...waiters]) {
        if (!waiter.pattern.test(line)) continue;
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(line);
      }
    }
  });
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  const done = new Promise<PipelineExit>((resolve) => {
    child.on("close", (code, signal) => {
      for (const waiter of waiters.splice(0)) {
        waiter.reject(
          new Error(
            `pipeline exited (${code ?? signal}) before printing ${waiter.pattern}\n${stdout}\n${stderr}`,
          ),
        );
      }
      resolve({ code, signal, stdout, stderr });
    });
  });
  return {
    child,
    done,
    waitForLine(pattern) {
      const seen = lines.find((line) => pattern.test(line));
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve, reject) => waiters.push({ pattern, resolve, reject }));
    },
  };
}

export function runPipeline(args: string[], options: PipelineOptions = {}): Promise<PipelineExit> {
  return startPipeline(args, options).done;
}

export function readRecord(outDir: string): RunRecord {
  return JSON.parse(readFileSync(join(outDir, "pipeline.json"), "utf8")) as RunRecord;
}

/**
 * Living processes whose command line mentions `text` (a test's temp dir): whatever the pipeline
 * claims, none may remain once it has exited.
 */
export function processesMentioning(text: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
      const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
      const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
      if (cmdline.includes(text) && state !== "Z" && state !== "X") found.push(pid);
    } catch {
      // exited while we looked
    }
  }
  return found;
}

/** Kill whatever a failed test left behind. */
export function killMentioning(text: string): void {
  for (const pid of processesMentioning(text)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone
    }
  }
}
