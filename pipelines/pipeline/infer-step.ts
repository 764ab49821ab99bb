/** The pipeline's last step: an inference sample from the newest stage's latest checkpoint (run_mlx.sh's infer). */
import { join } from "node:path";
import { EXIT } from "../../lib/cli/errors.ts";
import { isFile, pathExists } from "../../lib/fs/probe.ts";
import { failureExitCode } from "../../lib/process/index.ts";
import { surveyFolder } from "../../lib/stages/survey.ts";
import { STAGE_NAMES } from "../../lib/stages/table.ts";
import { nodeScript } from "../executor/node-script.ts";
import { fail, type PipelineRun, type StepEnd, say, show, tag, warn } from "./context.ts";
import { interrupted } from "./interrupted.ts";
import { runStep } from "./run-step.ts";
import type { PipelineSettings } from "./settings.ts";

const INFER_SCRIPT = "trainer/infer.ts";

export async function runInference(run: PipelineRun): Promise<StepEnd> {
  const { settings, recorder } = run;
  const script = join(settings.repo, INFER_SCRIPT);
  if (settings.infer.checkpoint !== null && !(await pathExists(settings.infer.checkpoint))) {
    return fail(
      run,
      "infer",
      `error: --infer-checkpoint ${settings.infer.checkpoint}: no such file or directory`,
      EXIT.badInput,
    );
  }
  const checkpoint = settings.infer.checkpoint ?? (await latestOfAnyStage(settings));
  const skip = async (why: string): Promise<StepEnd> => {
    warn(`${tag("infer")} ${why}; skipping the inference sample`);
    await recorder.update("infer", { state: "skipped", decision: why });
    return { go: true };
  };
  if (checkpoint === null) return skip(`no checkpoint under ${show(settings.outDir)} to sample from`);
  if (!(await isFile(script))) return skip(`${INFER_SCRIPT} does not exist yet`);

  const line = `sampling from ${show(checkpoint)}: ${JSON.stringify(settings.infer.prompt)}`;
  say(`${tag("infer")} ${line}`);
  const outcome = await runStep({
    step: "infer",
    executor: run.executor,
    ...nodeScript(script, [
      "--checkpoint",
      checkpoint,
      "--prompt",
      settings.infer.prompt,
      ...settings.infer.args,
    ]),
    env: run.env,
    logsDir: settings.infer.logsDir,
    recorder,
    stop: run.stop,
    graceMs: settings.stopGraceMs,
    // Inference sends no heartbeats: it is short, and the run's Ctrl+C still stops it.
    stallTimeoutMs: 0,
    decision: line,
    checkpoint,
  });
  if (outcome.state === "finished") return { go: true };
  if (outcome.state === "interrupted") return { go: false, exitCode: interrupted(run) };
  warn(outcome.exit.report);
  return { go: false, exitCode: failureExitCode(outcome.exit.exitCode) };
}

/** The newest stage's latest valid checkpoint: r1, else dpo, else sft, else pretrain. */
async function latestOfAnyStage(settings: PipelineSettings): Promise<string | null> {
  for (const stage of [...STAGE_NAMES].reverse()) {
    const latest = (await surveyFolder(settings.stages[stage].ckptDir)).latest;
    if (latest !== null) return latest.path;
  }
  return null;
}
