#!/usr/bin/env -S node --import tsx
/**
 * `npm run pipeline` — the run.sh rewrite (docs/pipeline.md): pretrain → sft → dpo → r1 → an
 * inference sample. Each stage resumes from its latest valid checkpoint, else starts from the stage
 * before it; its trainer runs as a child in its own process group, with TensorBoard started in the
 * background. Never loads TensorFlow.js: training happens only in the children.
 */
import { fileURLToPath } from "node:url";
import { chalk } from "zx";
import { EXIT } from "../lib/cli/errors.ts";
import { runMain } from "../lib/cli/main.ts";
import type { StageName } from "../lib/stages/table.ts";
import { boardLabel } from "../lib/tensorboard/launcher.ts";
import { chainCommand, refuseOverOpenChain, statusOrCancel } from "./chain/command.ts";
import { localExecutor } from "./executor/local.ts";
import { isTrainingStage, parsePipelineFlags } from "./pipeline/cli.ts";
import { PIPELINE, type PipelineRun, say, show, tag } from "./pipeline/context.ts";
import { HELP } from "./pipeline/help.ts";
import { runInference } from "./pipeline/infer-step.ts";
import { interrupted } from "./pipeline/interrupted.ts";
import { withRun } from "./pipeline/run-scope.ts";
import { pipelineSettings } from "./pipeline/settings.ts";
import { runTrainingStage } from "./pipeline/stage-step.ts";
import { startTensorBoard } from "./pipeline/tensorboard-step.ts";
import { reportCommand } from "./sweep/command.ts";
import { type PipelineSweep, startSweepStep, sweepStepEnd } from "./sweep/pipeline-step.ts";
import { sweepSettings } from "./sweep/settings.ts";

const REPO = fileURLToPath(new URL("..", import.meta.url)).replace(/\/$/, "");

runMain(PIPELINE, async () => {
  const flags = parsePipelineFlags(process.argv.slice(2));
  if (flags.help) {
    process.stdout.write(HELP);
    return EXIT.ok;
  }
  const settings = pipelineSettings(process.env, flags, REPO);
  if (flags.dpoSweepReport) return reportCommand(sweepSettings(settings, process.env, localExecutor), say);
  if (flags.status || flags.cancel) return statusOrCancel(settings, flags);
  // EXECUTOR=slurm: every stage a job, chained, followed (docs/pipeline.md#running-on-slurm).
  if (settings.executor === "slurm") return chainCommand(settings, flags);
  await refuseOverOpenChain(settings);
  return withRun(settings, flags, runStages);
});

/** The stage loop: each selected stage in order, stopping at the first that does not finish. */
async function runStages(run: PipelineRun): Promise<number> {
  const { settings, flags, stop } = run;
  const startedAt = performance.now();
  const training = flags.steps.filter(isTrainingStage);
  say(
    `${tag(PIPELINE)} ${flags.steps.join(" → ")}; model hidden ${settings.hiddenSize} × ${settings.numLayers} layers; ` +
      `outputs in ${show(settings.outDir)} (progress in ${show(settings.recordFile)})`,
  );
  if (training.length > 0) await startTensorBoard(run);

  // --dpo-sweep: the dpo step is the sweep; with --watch it starts with the sft stage, beside it.
  const sweepFrom: StageName = flags.dpoSweep?.watch && training.includes("sft") ? "sft" : "dpo";
  let sweep: PipelineSweep | null = null;
  try {
    for (const stage of training) {
      if (stop.reason !== null) return interrupted(run);
      if (flags.dpoSweep && stage === sweepFrom) sweep = startSweepStep(run, stage === "sft");
      // INIT_FROM: weights for the first stage of this run that has nothing of its own (never pretrain).
      const initOverride = stage === training[0] ? settings.initOverride : null;
      const end =
        stage === "dpo" && sweep
          ? await sweepStepEnd(run, sweep)
          : await runTrainingStage(run, stage, initOverride);
      if (stage === "sft") sweep?.sftDone();
      if (!end.go) return end.exitCode;
    }
  } finally {
    sweep?.sftDone();
    await sweep?.finish().catch(() => {}); // a stopped stage ends the run; the sweep's children must be gone first
  }
  if (flags.steps.includes("infer")) {
    if (stop.reason !== null) return interrupted(run);
    const end = await runInference(run);
    if (!end.go) return end.exitCode;
  }
  if (stop.reason !== null) return interrupted(run);
  say(`${tag(PIPELINE)} ${chalk.green("done")} in ${duration(performance.now() - startedAt)}`);
  const board = run.recorder.record.tensorboard;
  if (board?.url) {
    const label = board.board === "builtin" ? boardLabel("builtin") : "TensorBoard";
    say(`${tag(PIPELINE)} ${label}: ${board.url} (npm run tensorboard -- --stop to stop it)`);
  }
  return EXIT.ok;
}

function duration(ms: number): string {
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
}
