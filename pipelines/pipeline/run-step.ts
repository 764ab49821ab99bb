/**
 * Run one step of the pipeline (a trainer or the inference sample) through the executor, numbering
 * its attempts, and keep its entry of out/pipeline.json current.
 */
import type { Writable } from "node:stream";
import type { StopController } from "../../lib/process/index.ts";
import { type AttemptOutcome, runAttempt } from "../executor/attempt.ts";
import type { Executor } from "../executor/types.ts";
import type { RunRecorder, StepName, StepState } from "./run-record.ts";

export interface StepRunSpec {
  step: StepName;
  executor: Executor;
  /** Executable and arguments: `process.execPath`, `--import <tsx>`, the script, its flags. */
  file: string;
  args: string[];
  env: Record<string, string>;
  /** The attempt's log goes to `<logsDir>/attempt-N.log`. */
  logsDir: string;
  recorder: RunRecorder;
  stop: StopController;
  graceMs: number;
  stallTimeoutMs: number;
  /** The plan, in words, and the checkpoint or weights it starts from. */
  decision: string;
  checkpoint: string | null;
  /** Where to echo the child's lines (default: this process's stdout and stderr); false: log only. */
  echo?: { stdout: Writable; stderr: Writable } | false;
}

export interface StepOutcome extends AttemptOutcome {
  state: StepState;
}

export async function runStep(spec: StepRunSpec): Promise<StepOutcome> {
  const { recorder, step } = spec;
  const outcome = await runAttempt({
    executor: spec.executor,
    command: { label: step, file: spec.file, args: spec.args, env: spec.env },
    logsDir: spec.logsDir,
    attemptsBefore: recorder.step(step).attempts,
    stop: spec.stop,
    graceMs: spec.graceMs,
    stallTimeoutMs: spec.stallTimeoutMs,
    echo: spec.echo ?? { stdout: process.stdout, stderr: process.stderr },
    onAttempt: (attempt, logFile) =>
      recorder.update(step, {
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
        stderr_tail: null,
      }),
    onEvent(event) {
      // A failed write of the record must not disturb the child; the final update reports it.
      if (event.kind === "started") recorder.update(step, { pid: Number(event.id) || null }).catch(() => {});
      if (event.kind === "checkpoint") recorder.update(step, { last_checkpoint: event.path }).catch(() => {});
      // What the trainer really started from (a damaged checkpoint makes it fall back to an older one).
      if (event.kind === "start") recorder.update(step, { checkpoint: event.from }).catch(() => {});
    },
  });
  const { exit } = outcome;
  await recorder.update(step, {
    state: exit.state,
    exit_code: exit.exitCode,
    signal: exit.signal,
    ended_at: new Date().toISOString(),
    duration_ms: exit.durationMs,
    message: exit.message,
    stderr_tail: exit.state === "failed" ? (exit.stderrTail ?? null) : null,
  });
  return { ...outcome, state: exit.state };
}
