/**
 * Run one step of the pipeline (a trainer or the inference sample) as a child process through
 * runChild, numbering its attempts, and keep its entry of out/pipeline.json current.
 */
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import type { Writable } from "node:stream";
import {
  type ChildResult,
  describeExit,
  labelledEcho,
  runChild,
  type StopController,
} from "../process/index.ts";
import type { RunRecorder, StepName, StepState } from "./run-record.ts";

export interface StepRunSpec {
  step: StepName;
  /** Executable and arguments: `process.execPath`, `--import <tsx>`, the script, its flags. */
  file: string;
  args: string[];
  env: Record<string, string>;
  /** The attempt's log goes to `<logsDir>/attempt-N.log`. */
  logsDir: string;
  recorder: RunRecorder;
  stop: StopController;
  graceMs: number;
  /** The plan, in words, and the checkpoint or weights it starts from. */
  decision: string;
  checkpoint: string | null;
  /** Where to echo the child's lines (default: this process's stdout and stderr); false: log only. */
  echo?: { stdout: Writable; stderr: Writable } | false;
}

export interface StepOutcome {
  result: ChildResult;
  state: StepState;
  attempt: number;
}

const CHECKPOINT_LINE = "CHECKPOINT:";

export async function runStep(spec: StepRunSpec): Promise<StepOutcome> {
  const { recorder, step } = spec;
  const attempt = Math.max(recorder.step(step).attempts, await highestAttempt(spec.logsDir)) + 1;
  const logFile = join(spec.logsDir, `attempt-${attempt}.log`);
  await recorder.update(step, {
    state: "running",
    attempts: attempt,
    decision: spec.decision,
    checkpoint: spec.checkpoint,
    last_checkpoint: null,
    pid: null,
    exit_code: null,
    signal: null,
    started_at: new Date().toISOString(),
    ended_at: null,
    duration_ms: null,
    log: logFile,
    message: null,
  });

  const target = spec.echo ?? { stdout: process.stdout, stderr: process.stderr };
  const result = await runChild({
    label: step,
    file: spec.file,
    args: spec.args,
    env: spec.env,
    logFile,
    graceMs: spec.graceMs,
    stop: spec.stop,
    echo:
      target === false
        ? false
        : { stdout: labelledEcho(target.stdout, step), stderr: labelledEcho(target.stderr, step) },
    onStdoutLine: (line) => {
      if (!line.startsWith(CHECKPOINT_LINE)) return;
      // A failed write of the record must not disturb the child; the final update reports it.
      recorder.update(step, { last_checkpoint: line.slice(CHECKPOINT_LINE.length) }).catch(() => {});
    },
  });

  const state = stepState(result);
  await recorder.update(step, {
    state,
    pid: result.pid ?? null,
    exit_code: result.exitCode,
    signal: result.signal,
    ended_at: new Date().toISOString(),
    duration_ms: result.durationMs,
    message: state === "finished" ? null : describeExit(result),
  });
  return { result, state, attempt };
}

/** A child that exited 0 finished, even if a stop came in its last moments. */
export function stepState(result: ChildResult): StepState {
  if (result.exitCode === 0 && result.spawnError === undefined && result.pid !== undefined) return "finished";
  return result.interrupted !== null ? "interrupted" : "failed";
}

/** The highest N among `attempt-N.log` files, so a deleted pipeline.json never reuses a log. */
async function highestAttempt(logsDir: string): Promise<number> {
  let names: string[];
  try {
    names = await readdir(logsDir);
  } catch {
    return 0;
  }
  let highest = 0;
  for (const name of names) {
    const match = /^attempt-(\d+)\.log$/.exec(name);
    if (match) highest = Math.max(highest, Number(match[1]));
  }
  return highest;
}
