/**
 * One attempt at a stage through an executor, as the pipeline and the sweep both run it: the next
 * `attempt-N.log` in the stage's logs folder, the trainer's announcements collected, and a watchdog
 * that stops a trainer which stops sending heartbeats (STALL_TIMEOUT) — the sign of a deadlocked
 * backend or driver — and reports the stage as failed because it stalled. The watchdog runs only
 * while the trainer runs: a job waiting in a scheduler's queue (or requeued) owes no heartbeats.
 */
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import type { Writable } from "node:stream";
import type { StopController } from "../../lib/process/index.ts";
import type { Executor, StageCommand, StageEvent, StageExecution, StageExit, StartOptions } from "./types.ts";

export interface AttemptSpec {
  executor: Executor;
  command: Omit<StageCommand, "logFile">;
  /** The attempt's log goes to `<logsDir>/attempt-N.log`. */
  logsDir: string;
  /** Attempts already counted elsewhere (the run record): N is above both. */
  attemptsBefore?: number;
  stop: StopController;
  graceMs: number;
  /** Stop the trainer when this long passes without a heartbeat; 0: never. */
  stallTimeoutMs: number;
  echo: { stdout: Writable; stderr: Writable } | false;
  /** Run after this earlier execution finished (StartOptions.after). */
  after?: StageExecution;
  /** Told about the attempt's number and log before it starts. */
  onAttempt?(attempt: number, logFile: string): void | Promise<void>;
  onEvent?(event: StageEvent): void;
  /** Told about the execution as soon as it exists (to chain the next one after it). */
  onExecution?(execution: StageExecution): void;
}

export interface Supervised {
  exit: StageExit;
  /** The last `CHECKPOINT:` and `METADATA_FILE:` paths it announced. */
  lastCheckpoint: string | null;
  metadataFile: string | null;
  /** It was stopped for missing heartbeats. */
  stalled: boolean;
}

export interface AttemptOutcome extends Supervised {
  attempt: number;
  logFile: string;
}

export async function runAttempt(spec: AttemptSpec): Promise<AttemptOutcome> {
  const attempt = Math.max(spec.attemptsBefore ?? 0, await highestAttempt(spec.logsDir)) + 1;
  const logFile = join(spec.logsDir, `attempt-${attempt}.log`);
  await spec.onAttempt?.(attempt, logFile);
  const supervised = await supervise(
    (options) => spec.executor.start({ ...spec.command, logFile }, options),
    {
      stop: spec.stop,
      graceMs: spec.graceMs,
      echo: spec.echo,
      ...(spec.after ? { after: spec.after } : {}),
      stallTimeoutMs: spec.stallTimeoutMs,
      onEvent: spec.onEvent,
      onExecution: spec.onExecution,
    },
  );
  return { ...supervised, attempt, logFile };
}

export interface SuperviseOptions extends Omit<StartOptions, "onEvent"> {
  stallTimeoutMs: number;
  onEvent?(event: StageEvent): void;
  onExecution?(execution: StageExecution): void;
}

/**
 * Start (or follow) one execution with `begin` and watch it to its end: its announcements
 * collected, the stall watchdog armed while it runs (each `started` and heartbeat re-arms it) and
 * disarmed while it waits in a queue.
 */
export async function supervise(
  begin: (options: StartOptions) => StageExecution,
  options: SuperviseOptions,
): Promise<Supervised> {
  let lastCheckpoint: string | null = null;
  let metadataFile: string | null = null;
  let stalled = false;
  let timer: NodeJS.Timeout | undefined;
  let execution: StageExecution | null = null;
  const seconds = Math.round(options.stallTimeoutMs / 1000);
  const arm = (): void => {
    if (options.stallTimeoutMs <= 0) return;
    clearTimeout(timer);
    timer = setTimeout(() => {
      stalled = true;
      execution?.stop(`stalled: no heartbeat for ${seconds} s (STALL_TIMEOUT)`);
    }, options.stallTimeoutMs);
  };
  const { stallTimeoutMs: _, onEvent, onExecution, ...start } = options;
  execution = begin({
    ...start,
    onEvent(event) {
      if (event.kind === "heartbeat" || event.kind === "started") arm();
      else if (event.kind === "waiting" || event.kind === "submitted") clearTimeout(timer);
      else if (event.kind === "checkpoint") lastCheckpoint = event.path;
      else if (event.kind === "metadata") metadataFile = event.path;
      onEvent?.(event);
    },
  });
  onExecution?.(execution);
  try {
    const exit = await execution.done;
    return { exit, lastCheckpoint, metadataFile, stalled: stalled && exit.state !== "finished" };
  } finally {
    clearTimeout(timer);
  }
}

/** The highest N among `attempt-N.log` files, so every attempt gets a log of its own. */
async function highestAttempt(logsDir: string): Promise<number> {
  const names = await readdir(logsDir).catch(() => [] as string[]);
  let highest = 0;
  for (const name of names) {
    const match = /^attempt-(\d+)\.log$/.exec(name);
    if (match) highest = Math.max(highest, Number(match[1]));
  }
  return highest;
}
