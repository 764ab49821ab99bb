/**
 * Run pipelines/dpo_sweep.ts as a real process leading its own process group, its output captured
 * and watchable line by line, and read what the stand-in DPO trainer recorded.
 */
import type { ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { REPO } from "./trainer-process.ts";
import { type ProcessExit, startWatched, type WatchedProcess } from "./watched-process.ts";

export const SWEEP = join(REPO, "pipelines", "dpo_sweep.ts");
export const FAKE_DPO = join(REPO, "test", "fixtures", "fake-dpo-trainer.mjs");

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

export function startSweep(args: string[], env: NodeJS.ProcessEnv, execArgv: string[] = []): WatchedProcess {
  const sweep = startWatched(SWEEP, args, {
    label: "sweep",
    cwd: REPO,
    env: { FORCE_COLOR: "0", TB_AUTO: "0", ...env },
    execArgv,
    detached: true,
  });
  started.add(sweep.child);
  void sweep.done.then(() => started.delete(sweep.child));
  return sweep;
}

export function runSweepToEnd(args: string[], env: NodeJS.ProcessEnv): Promise<ProcessExit> {
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
