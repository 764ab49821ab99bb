/**
 * A pipeline run on a detached executor (EXECUTOR=slurm): every stage to train submitted at once,
 * each after the one before it, then followed to the chain's end — or found again and followed
 * by a later run of the same command. The run record keeps each stage's job id and state.
 */
import { join } from "node:path";
import { chalk } from "zx";
import { EXIT } from "../../lib/cli/errors.ts";
import { failureExitCode, interruptExitCode, type StopController } from "../../lib/process/index.ts";
import { stagePaths } from "../../lib/stages/paths.ts";
import { moveRunAside } from "../../lib/stages/restart.ts";
import { surveyFolder } from "../../lib/stages/survey.ts";
import type { StageName } from "../../lib/stages/table.ts";
import { type Supervised, supervise } from "../executor/attempt.ts";
import { linkStop } from "../executor/local.ts";
import { nodeScript } from "../executor/node-script.ts";
import type { Executor, StageEvent, StageExecution, StartOptions } from "../executor/types.ts";
import { PIPELINE, type PipelineRun, say, show, tag, warn } from "../pipeline/context.ts";
import { attemptFields, type RunState, type StepRecord } from "../pipeline/run-record.ts";
import { planChain } from "./plan.ts";

/** One stage of the chain: its job's outcome once it ends (or once following stops). */
export interface Member {
  stage: StageName;
  outcome: Promise<Supervised>;
  jobId(): string | null;
}

/** Where the jobs' scripts go: one per stage, in the run folder, readable and resubmittable. */
export const jobScriptFile = (outDir: string, stage: StageName): string =>
  join(outDir, "slurm", `${stage}.sh`);

/**
 * Plan the chain, then submit its jobs in order, each after the previous one. A signal while
 * submitting waits until the last job is in (a half-submitted chain would stop at its gap);
 * `follow` is linked to the run's stop decision afterwards.
 */
export async function submitChain(
  run: PipelineRun,
  executor: Executor,
  stages: readonly StageName[],
  follow: StopController,
  maxRequeues: number,
): Promise<{ members: Member[]; failed: Supervised | null }> {
  const { settings, recorder } = run;
  const chain = await planChain(settings, stages, {
    restarts: run.restarts,
    initOverride: settings.initOverride,
    maxRequeues,
    show,
  });
  const members: Member[] = [];
  let previous: StageExecution | undefined;
  for (const item of chain) {
    const { stage } = item;
    const own = settings.stages[stage];
    if (!item.submit) {
      say(`${tag(stage)} ${item.line}`);
      const decision = item.plan.decision;
      if (decision.kind === "skip") {
        for (const note of decision.notes) warn(`${tag(stage)} warning: ${note}`);
        await recorder.update(stage, {
          state: "finished",
          decision: item.line,
          checkpoint: decision.checkpoint.path,
          last_checkpoint: decision.checkpoint.path,
          message: "already finished",
        });
      }
      continue;
    }
    if (run.restarts.done.has(stage)) {
      say(`${tag(stage)} the interrupted run of this command already restarted it; resuming the new run`);
    }
    if (item.restart) {
      const runId = item.plan.survey.own.latest?.runId ?? "none";
      const moved = await moveRunAside(stagePaths(own.args));
      say(`${tag(stage)} --restart: moved its earlier run to ${show(moved)} (nothing was deleted)`);
      await recorder.update(stage, { restart_of_run: runId });
    }
    const attempts = recorder.step(stage).attempts + 1;
    await recorder.update(stage, {
      ...freshStep,
      state: "pending",
      attempts,
      decision: item.line,
      checkpoint: null,
    });
    const after = previous;
    const chainedTo = members.at(-1);
    let execution: StageExecution | null = null;
    let submitted: () => void = () => {};
    const inQueue = new Promise<void>((resolve) => {
      submitted = resolve;
    });
    let jobId: string | null = null;
    const outcome = supervise(
      (options: StartOptions) =>
        executor.start(
          {
            label: stage,
            ...nodeScript(own.trainer, own.trainerArgs(item.jobFlags)),
            env: run.env,
            logFile: join(stagePaths(own.args).logsDir, `attempt-${attempts}.log`),
            scriptFile: jobScriptFile(settings.outDir, stage),
          },
          options,
        ),
      {
        stop: follow,
        graceMs: settings.stopGraceMs,
        echo: { stdout: process.stdout, stderr: process.stderr },
        stallTimeoutMs: settings.stallTimeoutMs,
        ...(after ? { after } : {}),
        onExecution: (x) => {
          execution = x;
        },
        onEvent: (event) => {
          if (event.kind === "submitted") {
            jobId = event.id;
            const chained = chainedTo?.jobId();
            say(`${tag(stage)} job ${event.id}${chained ? ` (after job ${chained})` : ""}: ${item.line}`);
            submitted();
          }
          onStageEvent(run, stage, event);
        },
      },
    );
    previous = execution ?? undefined;
    members.push({ stage, outcome, jobId: () => jobId });
    // One at a time: a refused submission stops the chain before any later job exists.
    const first = await Promise.race([inQueue.then(() => null), outcome]);
    if (first !== null) return { members, failed: first };
  }
  linkStop(run.stop, follow);
  return { members, failed: null };
}

/** Follow the jobs of an earlier run of this command that are still queued or running. */
export function followChain(
  run: PipelineRun,
  executor: Executor,
  follow: StopController,
  open: ReadonlyMap<StageName, { id: string; log: string }>,
): Member[] {
  const members: Member[] = [];
  const followAgain = executor.follow;
  if (followAgain === undefined) return members;
  for (const [stage, ref] of open) {
    say(`${tag(stage)} following job ${ref.id} again (log ${show(ref.log)})`);
    const outcome = supervise((options) => followAgain.call(executor, { label: stage, ...ref }, options), {
      stop: follow,
      graceMs: run.settings.stopGraceMs,
      echo: { stdout: process.stdout, stderr: process.stderr },
      stallTimeoutMs: run.settings.stallTimeoutMs,
      onEvent: (event) => onStageEvent(run, stage, event),
    });
    members.push({ stage, outcome, jobId: () => ref.id });
  }
  linkStop(run.stop, follow);
  return members;
}

/** The record and the one-line notices for what a job does. */
function onStageEvent(run: PipelineRun, stage: StageName, event: StageEvent): void {
  const { recorder } = run;
  const update = (changes: Partial<StepRecord>): void => void recorder.update(stage, changes).catch(() => {});
  switch (event.kind) {
    case "submitted":
      update({ job_id: event.id, job_script: event.script, log: event.log, message: null });
      return;
    case "waiting": {
      if (event.reason === "None" || event.reason === "Dependency") return;
      say(`${tag(stage)} job ${event.id} waiting in the queue (${event.reason})`);
      return;
    }
    case "started": {
      const restart = event.restart ?? 0;
      say(`${tag(stage)} job ${event.id} running${restart > 0 ? ` again (restart ${restart})` : ""}`);
      const step = recorder.step(stage);
      update({
        state: "running",
        restarts: restart,
        ...(step.started_at === null ? { started_at: new Date().toISOString() } : {}),
      });
      return;
    }
    case "checkpoint":
      update({ last_checkpoint: event.path });
      return;
    case "start":
      update({ checkpoint: event.from });
      return;
    default:
  }
}

export const freshStep: Partial<StepRecord> = {
  ...attemptFields,
  job_id: null,
  job_script: null,
  restarts: 0,
};

/** How a chain ended, and the run's exit code. */
export interface ChainEnd {
  exitCode: number;
  state: RunState;
}

/**
 * The chain's result, stage by stage in order: a finished stage lets the next count; the first
 * that failed ends the run (its later jobs are cancelled: they could never start); when the
 * following was stopped, the jobs go on and the run is `detached`.
 */
export async function awaitChain(
  run: PipelineRun,
  executor: Executor,
  members: readonly Member[],
): Promise<ChainEnd> {
  const { recorder } = run;
  for (const [index, member] of members.entries()) {
    const { stage } = member;
    const outcome = await member.outcome;
    const { exit } = outcome;
    if (exit.state === "interrupted" && exit.interrupted !== null) {
      return { exitCode: detachedExit(run, executor, members), state: "detached" };
    }
    const ended = {
      exit_code: exit.exitCode,
      signal: exit.signal,
      ended_at: new Date().toISOString(),
      message: exit.message,
    };
    if (exit.state === "finished") {
      await recorder.update(stage, { state: "finished", ...ended });
      say(`${tag(stage)} job ${member.jobId()} finished`);
      const latest = (await surveyFolder(run.settings.stages[stage].ckptDir)).latest;
      if (latest?.finished !== true) {
        warn(
          `${tag(stage)} warning: its job ended 0 but ${show(run.settings.stages[stage].ckptDir)} holds no finished checkpoint`,
        );
      }
      continue;
    }
    const cancelled = exit.state === "interrupted";
    await recorder.update(stage, { state: cancelled ? "interrupted" : "failed", ...ended });
    const later = members.slice(index + 1);
    const open = later.map((m) => m.jobId()).filter((id): id is string => id !== null);
    if (open.length > 0) await executor.cancel?.(open).catch(() => {});
    for (const m of later) {
      await recorder.update(m.stage, {
        state: "pending",
        message: `cancelled: ${stage} ${cancelled ? "was cancelled" : "failed"}`,
      });
      await m.outcome.catch(() => {});
    }
    if (cancelled) {
      warn(
        `${tag(PIPELINE)} ${exit.message}; its checkpoints are kept: run the same command again to resume`,
      );
      return { exitCode: interruptExitCode("SIGTERM"), state: "interrupted" };
    }
    warn(exit.report || exit.message || `[${stage}] failed`);
    warn(
      `${tag(PIPELINE)} ${chalk.red(`stopped: ${stage} failed`)}` +
        (open.length > 0 ? ` (cancelled the jobs after it: ${open.join(", ")})` : "") +
        "; fix the cause and run the same command again to resume it",
    );
    return {
      exitCode: outcome.stalled ? EXIT.failure : failureExitCode(exit.exitCode),
      state: "failed",
    };
  }
  return { exitCode: EXIT.ok, state: "finished" };
}

function detachedExit(run: PipelineRun, executor: Executor, members: readonly Member[]): number {
  const reason = run.stop.reason ?? "SIGINT";
  const ids = members.map((m) => `${m.stage} ${m.jobId() ?? "(not submitted)"}`).join(", ");
  warn(
    `${tag(PIPELINE)} ${reason}: stopped following; the jobs go on in ${executor.name === "slurm" ? "Slurm" : executor.name} (${ids}). ` +
      "Run the same command again to follow them; --status shows where they stand, --cancel cancels them",
  );
  return interruptExitCode(reason);
}
