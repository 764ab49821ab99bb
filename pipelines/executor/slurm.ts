/**
 * The Slurm executor (docs/architecture.md#executors): each execution one batch job. `start`
 * writes the job script (readable, resubmittable with `sbatch <file>`: options as #SBATCH lines,
 * the environment Baton sets as `export` lines, then `exec` of the command, so Slurm's signals to
 * the batch shell reach the trainer itself), submits it with an argument array — chained after an
 * earlier execution with `--dependency=afterok` and `--kill-on-invalid-dep=yes`, so a chain whose
 * stage failed never leaves jobs pending forever — and follows it (slurm-follow.ts).
 *
 * Its executions outlive the process that started them (`detached`): a Ctrl+C ends the following
 * only, `follow` picks a job up again from its id and log, `inspect` says where jobs stand and
 * `cancel` ends them, with the processes Slurm lost track of on this host (proctrack/linuxproc).
 */

import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { EXIT, UserError } from "../../lib/cli/errors.ts";
import { makeDir } from "../../lib/fs/make-dir.ts";
import {
  baseSbatchOptions,
  cancelJobs,
  describeJobs,
  JOB_START_MARKER,
  type JobInfo,
  processesOfJobs,
  type SbatchOptions,
  type SlurmEnvSettings,
  submitJob,
  writeJobScript,
} from "../../lib/slurm/index.ts";
import { neverRan, notStarted } from "./local.ts";
import { followJob } from "./slurm-follow.ts";
import { JobMonitor, lookUp } from "./slurm-monitor.ts";
import type {
  ExecutionRef,
  ExecutionStatus,
  Executor,
  StageCommand,
  StageExecution,
  StageExit,
  StartOptions,
} from "./types.ts";

export interface SlurmExecutorOptions {
  slurm: SlurmEnvSettings;
  /** The jobs' working directory (--chdir): relative paths in their commands mean the same there. */
  cwd?: string;
  /** How often to ask Slurm where the followed jobs stand. */
  pollMs?: number;
  /** Told about Slurm not answering while jobs are followed. */
  warn?(line: string): void;
}

/** `slurm-%j.out` beside the command's log: Slurm names the file after the job. */
export const SLURM_LOG_PATTERN = "slurm-%j.out";
/** Slurm's KillWait (30 s by default) and a margin: how long a cancelled job may take to end. */
const CANCEL_WAIT_MS = 45_000;

export function slurmExecutor(config: SlurmExecutorOptions): Executor {
  const monitor = new JobMonitor({ intervalMs: config.pollMs, warn: config.warn });
  const cwd = config.cwd ?? process.cwd();
  /** Each execution's job id once sbatch answered (null: never submitted), and whether it ended badly. */
  const jobs = new WeakMap<StageExecution, { id: Promise<string | null>; failed: boolean }>();
  const cancel = (ids: readonly string[]) => cancelAndReap(ids);

  return {
    name: "slurm",
    detached: true,

    start(command: StageCommand, options: StartOptions): StageExecution {
      let inner: StageExecution | null = null;
      let stopWhy: string | null = null;
      let resolveId: (id: string | null) => void = () => {};
      const id = new Promise<string | null>((resolve) => {
        resolveId = resolve;
      });
      const submittedRun = (submitted: { jobId: string; log: string; script: string }) => {
        resolveId(submitted.jobId);
        options.onEvent({
          kind: "submitted",
          id: submitted.jobId,
          log: submitted.log,
          script: submitted.script,
        });
        inner = followJob({
          monitor,
          jobId: submitted.jobId,
          label: command.label,
          trainerTag: command.trainerTag,
          log: submitted.log,
          offset: 0,
          options,
          cancel: (jobId) => cancelJobs([jobId]),
        });
        if (stopWhy !== null) inner.stop(stopWhy);
        return inner.done;
      };

      const done = (async (): Promise<StageExit> => {
        const before = options.after === undefined ? undefined : jobs.get(options.after);
        if (options.after !== undefined && before === undefined) {
          const message = `[${command.label}] not submitted: it is chained after an execution of another executor`;
          return neverRan(command.label, message, "failed", options);
        }
        const afterId = before === undefined ? null : await before.id;
        if (options.after !== undefined && (afterId === null || before?.failed)) {
          // Never submitted, or already failed: a dependency on it could never be satisfied.
          return notStarted(command.label, await options.after.done, options);
        }
        if (options.stop.reason !== null || stopWhy !== null) {
          return neverRan(command.label, `not submitted: stop requested`, "interrupted", options);
        }
        let submitted: { jobId: string; log: string; script: string };
        try {
          submitted = await submit(command, afterId, cwd, config.slurm);
        } catch (error) {
          const message = `[${command.label}] ${error instanceof Error ? error.message : String(error)}`;
          const exitCode = error instanceof UserError ? error.exitCode : EXIT.failure;
          return { ...neverRan(command.label, message, "failed", options), exitCode };
        }
        return submittedRun(submitted);
      })().finally(() => resolveId(null)); // a no-op once it was resolved with the job id

      const record = { id, failed: false };
      const execution: StageExecution = {
        stop(why) {
          stopWhy ??= why;
          inner?.stop(why);
        },
        done: done.then((exit) => {
          if (exit.state === "failed") record.failed = true;
          return exit;
        }),
      };
      jobs.set(execution, record);
      return execution;
    },

    follow(ref: ExecutionRef, options: StartOptions): StageExecution {
      const execution = lazyFollow(ref, options, monitor);
      jobs.set(execution, { id: Promise.resolve(ref.id), failed: false });
      return execution;
    },

    async inspect(ids: readonly string[]): Promise<ExecutionStatus[]> {
      const answers = await lookUp(ids);
      return ids.map((id) => status(id, answers.get(id) ?? null));
    },

    cancel,
  };
}

async function submit(
  command: StageCommand,
  afterId: string | null,
  cwd: string,
  slurm: SlurmEnvSettings,
): Promise<{ jobId: string; log: string; script: string }> {
  const logsDir = dirname(command.logFile);
  const options: SbatchOptions = {
    ...baseSbatchOptions(slurm),
    jobName: `baton-${command.label.replace(/[^A-Za-z0-9_.:-]/g, "_")}`,
    output: join(logsDir, SLURM_LOG_PATTERN),
    chdir: cwd,
    ...(afterId === null ? {} : { afterOk: [afterId], killOnInvalidDependency: true }),
  };
  const script = command.scriptFile ?? join(logsDir, "job.sh");
  // Slurm does not create the folder of --output: a job whose log folder is missing fails unseen.
  await makeDir(logsDir);
  await makeDir(dirname(script));
  await writeJobScript(script, {
    description: `Baton: ${command.label}`,
    options,
    env: exportedEnv(command.env, process.env),
    command: [command.file, ...command.args],
  });
  const { jobId } = await submitJob({ script, options, cwd });
  return { jobId, log: join(logsDir, SLURM_LOG_PATTERN.replace("%j", jobId)), script };
}

/**
 * What the job script exports: the variables the caller set or changed on purpose (childEnv's
 * TF_* defaults, a test's stand-in trainer…). The rest of this environment reaches the job through
 * sbatch's default --export=ALL, and would make the script a copy of one shell's secrets.
 */
export function exportedEnv(
  wanted: Readonly<Record<string, string>>,
  own: Readonly<Record<string, string | undefined>>,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(wanted)) if (own[name] !== value) env[name] = value;
  return env;
}

/** Follow a job found again: from the start of its current run in the log (earlier runs were shown before). */
function lazyFollow(ref: ExecutionRef, options: StartOptions, monitor: JobMonitor): StageExecution {
  let inner: StageExecution | null = null;
  let stopWhy: string | null = null;
  const done = (async () => {
    const offset = await currentRunOffset(ref.log);
    inner = followJob({
      monitor,
      jobId: ref.id,
      label: ref.label,
      trainerTag: ref.trainerTag,
      log: ref.log,
      offset,
      options,
      cancel: (jobId) => cancelJobs([jobId]),
    });
    if (stopWhy !== null) inner.stop(stopWhy);
    return inner.done;
  })();
  return {
    stop(why) {
      stopWhy ??= why;
      inner?.stop(why);
    },
    done,
  };
}

/** Byte offset of the last `[slurm] job` start line of a log (0 when there is none yet). */
export async function currentRunOffset(log: string): Promise<number> {
  const text = await readFile(log).catch(() => Buffer.alloc(0));
  const last = text.lastIndexOf(Buffer.from(`\n${JOB_START_MARKER} `));
  return last === -1 ? 0 : last + 1;
}

function status(id: string, info: JobInfo | null): ExecutionStatus {
  if (info === null) return { id, phase: "unknown", state: "unknown to Slurm", restarts: 0 };
  const phase = info.phase === "pending" ? "waiting" : info.phase === "active" ? "running" : "ended";
  return { id, phase, state: describeJobs([info]).replace(/^\S+ /, ""), restarts: info.restartCount };
}

/**
 * scancel the jobs still queued or running, wait for them to end (Slurm SIGKILLs what it tracks
 * after KillWait), then end what escaped it on this host, of those and of the jobs that had ended
 * already: with proctrack/linuxproc a process whose parent died is not tracked.
 */
export async function cancelAndReap(ids: readonly string[]): Promise<void> {
  if (ids.length === 0) return;
  // Jobs that ended are only reaped: a finished job's escaped processes outlive it just as well.
  const before = await lookUp(ids);
  const open = ids.filter((id) => {
    const info = before.get(id);
    return info !== null && info !== undefined && info.phase !== "finished";
  });
  if (open.length > 0) await cancelJobs(open);
  const deadline = Date.now() + CANCEL_WAIT_MS;
  for (;;) {
    const answers = await lookUp(ids);
    const open = [...answers.values()].filter((info) => info !== null && info.phase !== "finished");
    if (open.length === 0 || Date.now() > deadline) break;
    await sleep(250);
  }
  let leftovers = await processesOfJobs(ids);
  for (const signal of ["SIGTERM", "SIGKILL"] as const) {
    if (leftovers.length === 0) return;
    for (const pid of leftovers) {
      try {
        process.kill(pid, signal);
      } catch {
        // gone meanwhile
      }
    }
    await sleep(signal === "SIGTERM" ? 5_000 : 500);
    leftovers = await processesOfJobs(ids);
  }
}
