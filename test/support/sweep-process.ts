/**
 * Run pipelines/dpo_sweep.ts as a real process leading its own process group, its output captured
 * and watchable line by line, and read what the stand-in DPO trainer recorded.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { REPO } from "./trainer-process.ts";

export const SWEEP = join(REPO, "pipelines", "dpo_sweep.ts");
export const FAKE_DPO = join(REPO, "test", "fixtures", "fake-dpo-trainer.mjs");

export interface SweepExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface StartedSweep {
  child: ChildProcess;
  /** Resolves with the first stdout line matching (lines printed before the call count too). */
  waitForLine(pattern: RegExp): Promise<string>;
  exited(): boolean;
  done: Promise<SweepExit>;
}

const started = new Set<ChildProcess>();

/** SIGKILL every sweep a test started that is still running (its DPO children: killMentioning). */
export function killSweeps(): void {
  for (const child of started) {
    try {
      process.kill(-(child.pid as number), "SIGKILL");
    } catch {
      // gone
    }
  }
  started.clear();
}

export function startSweep(args: string[], env: NodeJS.ProcessEnv, execArgv: string[] = []): StartedSweep {
  const child = spawn(
    process.execPath,
    [...execArgv, "--import", import.meta.resolve("tsx"), SWEEP, ...args],
    {
      cwd: REPO,
      env: { ...process.env, NODE_OPTIONS: "", FORCE_COLOR: "0", TB_AUTO: "0", ...env },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    },
  );
  started.add(child);
  let stdout = "";
  let stderr = "";
  let pending = "";
  let exited = false;
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
  const done = new Promise<SweepExit>((resolve) => {
    child.on("close", (code, signal) => {
      exited = true;
      started.delete(child);
      for (const waiter of waiters.splice(0)) {
        waiter.reject(
          new Error(
            `sweep exited (${code ?? signal}) before printing ${waiter.pattern}\n${stdout}\n${stderr}`,
          ),
        );
      }
      resolve({ code, signal, stdout, stderr });
    });
  });
  return {
    child,
    done,
    exited: () => exited,
    waitForLine(pattern) {
      const seen = lines.find((line) => pattern.test(line));
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve, reject) => waiters.push({ pattern, resolve, reject }));
    },
  };
}

export function runSweepToEnd(args: string[], env: NodeJS.ProcessEnv): Promise<SweepExit> {
  return startSweep(args, env).done;
}

export interface FakeRun {
  event: "start" | "end" | "stopped";
  step: number;
  initFrom: string;
  cuda: string | null;
  pid: number;
  /** The sweep that started it. */
  sweep: number;
  t: number;
}

export function fakeRuns(recordFile: string): FakeRun[] {
  if (!existsSync(recordFile)) return [];
  return readFileSync(recordFile, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((line) => JSON.parse(line) as FakeRun);
}

/** Each stand-in run as an interval: start and end (or stop) time, by pid. */
export function intervals(
  runs: FakeRun[],
): Array<{ step: number; cuda: string | null; sweep: number; from: number; to: number }> {
  const starts = runs.filter((r) => r.event === "start");
  return starts.map((start) => {
    const end = runs.find((r) => r.pid === start.pid && r.event !== "start");
    return {
      step: start.step,
      cuda: start.cuda,
      sweep: start.sweep,
      from: start.t,
      to: end?.t ?? Number.POSITIVE_INFINITY,
    };
  });
}

/** Placeholder SFT checkpoint folders (the stand-in only needs them to exist). */
export function fakeCheckpoints(root: string, steps: number[]): Array<{ checkpoint: string; step: number }> {
  return steps.map((step) => {
    const checkpoint = join(root, "sft", "checkpoints", `step_${String(step).padStart(8, "0")}`);
    mkdirSync(checkpoint, { recursive: true });
    return { checkpoint, step };
  });
}
