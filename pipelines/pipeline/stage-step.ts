/**
 * One training stage of the pipeline: plan it (plan.ts), skip it or stop the run when the plan
 * says so, else run its trainer with the plan's flags through the executor and report how it ended.
 */
import { chalk } from "zx";
import { EXIT } from "../../lib/cli/errors.ts";
import { isFile } from "../../lib/fs/probe.ts";
import { failureExitCode } from "../../lib/process/index.ts";
import { stagePaths } from "../../lib/stages/paths.ts";
import { surveyFolder } from "../../lib/stages/survey.ts";
import type { StageName } from "../../lib/stages/table.ts";
import { nodeScript } from "../executor/node-script.ts";
import { fail, PIPELINE, type PipelineRun, type StepEnd, say, show, tag, warn } from "./context.ts";
import { interrupted } from "./interrupted.ts";
import { planStage } from "./plan.ts";
import { runStep } from "./run-step.ts";

export async function runTrainingStage(
  run: PipelineRun,
  stage: StageName,
  initOverride: string | null,
): Promise<StepEnd> {
  const { settings, recorder } = run;
  const own = settings.stages[stage];
  const restart = run.restarts.now.has(stage);
  if (run.restarts.done.has(stage)) {
    say(`${tag(stage)} the interrupted run of this command already restarted it; resuming the new run`);
  }
  const plan = await planStage(settings, stage, { restart, initOverride, show });
  const { decision } = plan;
  if (decision.kind === "refuse" || decision.kind === "blocked") {
    return fail(run, stage, `error: ${plan.line}`, EXIT.badInput);
  }
  if (decision.kind === "skip") {
    say(`${tag(stage)} ${plan.line}`);
    for (const note of decision.notes) warn(`${tag(stage)} warning: ${note}`);
    await recorder.update(stage, {
      state: "finished",
      decision: plan.line,
      checkpoint: decision.checkpoint.path,
      last_checkpoint: decision.checkpoint.path,
      message: "already finished",
    });
    return { go: true };
  }
  if (!(await isFile(own.trainer))) {
    return fail(
      run,
      stage,
      `error: ${show(own.trainer)} does not exist (is this checkout complete?)`,
      EXIT.failure,
    );
  }
  if (restart) await recorder.update(stage, { restart_of_run: plan.survey.own.latest?.runId ?? "none" });

  // The trainer prints where it starts (it verifies the checkpoint, and says so if it must fall back).
  const outcome = await runStep({
    step: stage,
    executor: run.executor,
    ...nodeScript(own.trainer, own.trainerArgs(plan.planFlags)),
    env: run.env,
    logsDir: stagePaths(own.args).logsDir,
    recorder,
    stop: run.stop,
    graceMs: settings.stopGraceMs,
    stallTimeoutMs: settings.stallTimeoutMs,
    decision: plan.line,
    checkpoint:
      decision.kind === "resume" ? decision.checkpoint.path : decision.kind === "init" ? decision.from : null,
  });
  if (outcome.state === "finished") {
    const latest = (await surveyFolder(own.ckptDir)).latest;
    if (latest?.finished !== true) {
      warn(`${tag(stage)} warning: it exited 0 but ${show(own.ckptDir)} holds no finished checkpoint`);
    }
    return { go: true };
  }
  if (outcome.state === "interrupted") return { go: false, exitCode: interrupted(run) };
  warn(outcome.exit.report);
  warn(
    `${tag(PIPELINE)} ${chalk.red(`stopped: ${stage} failed`)}; fix the cause and run the same command again to resume it`,
  );
  return { go: false, exitCode: outcome.stalled ? EXIT.failure : failureExitCode(outcome.exit.exitCode) };
}
