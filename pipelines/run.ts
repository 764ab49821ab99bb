#!/usr/bin/env -S node --import tsx
/**
 * `npm run pipeline` — the run.sh rewrite (docs/pipeline.md): pretrain → sft → dpo → r1 → an
 * inference sample. Each stage resumes from its latest valid checkpoint, else starts from the stage
 * before it; its trainer runs as a child in its own process group, with TensorBoard started in the
 * background. Never loads TensorFlow.js: training happens only in the children.
 */
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chalk } from "zx";
import { EXIT, UserError } from "../lib/cli/errors.ts";
import { runMain } from "../lib/cli/main.ts";
import { makeDir } from "../lib/fs/make-dir.ts";
import { childEnv, interruptExitCode, StopController } from "../lib/process/index.ts";
import { STAGE_NAMES, type StageName } from "../lib/stages/table.ts";
import { boardLabel } from "../lib/tensorboard/launcher.ts";
import { localExecutor } from "./executor/local.ts";
import { isTrainingStage, parsePipelineFlags } from "./pipeline/cli.ts";
import { PIPELINE, type PipelineRun, type StepEnd, say, show, tag, warn } from "./pipeline/context.ts";
import { HELP } from "./pipeline/help.ts";
import { runInference } from "./pipeline/infer-step.ts";
import { interrupted } from "./pipeline/interrupted.ts";
import { planRestarts } from "./pipeline/restarts.ts";
import { RunRecorder, type RunState } from "./pipeline/run-record.ts";
import { type PipelineSettings, pipelineSettings } from "./pipeline/settings.ts";
import { routeStopSignals } from "./pipeline/signals.ts";
import { clearSmokeOutputs } from "./pipeline/smoke.ts";
import { runTrainingStage } from "./pipeline/stage-step.ts";
import { startTensorBoard } from "./pipeline/tensorboard-step.ts";
import { reportCommand } from "./sweep/command.ts";
import { type PipelineSweep, startPipelineSweep } from "./sweep/pipeline-step.ts";
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
      if (flags.dpoSweep && stage === sweepFrom) sweep = startSweep(run, stage === "sft");
      // INIT_FROM: weights for the first stage of this run that has nothing of its own (never pretrain).
      const initOverride = stage === training[0] ? settings.initOverride : null;
      const end =
        stage === "dpo" && sweep
          ? await sweepEnd(run, sweep)
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

/** Signals, the run record and its final state around the stage loop. */
async function withRun(
  settings: PipelineSettings,
  flags: ReturnType<typeof parsePipelineFlags>,
  body: (run: PipelineRun) => Promise<number>,
): Promise<number> {
  // A closed terminal (SIGHUP) makes writes fail with EIO; that must not crash us mid-stop.
  process.stdout.on("error", () => {});
  process.stderr.on("error", () => {});
  const stop = new StopController();
  const unroute = routeStopSignals(stop, {
    onSignal(signal, outcome) {
      if (outcome === "stop") {
        warn(
          `${tag(PIPELINE)} ${signal}: stopping — the running stage saves a checkpoint and exits (Ctrl+C again kills it at once)`,
        );
      } else if (outcome === "force") warn(`${tag(PIPELINE)} ${signal} again: killing the running stage now`);
    },
  });
  let recorder: RunRecorder | null = null;
  try {
    if (settings.cleanSmokeOutputs) await clearSmokeOutputs(settings);
    await makeDir(settings.outDir);
    const argv = process.argv.slice(2);
    recorder = await RunRecorder.begin(settings.recordFile, { argv, outDir: resolve(settings.outDir) });
    const training = flags.steps.filter(isTrainingStage);
    const restarts = await planRestarts(settings, flags.restart, training, argv, recorder.previous);
    for (const step of [...STAGE_NAMES, "infer" as const]) {
      if (!flags.steps.includes(step))
        await recorder.update(step, { state: "skipped", decision: "not selected" });
    }
    const run: PipelineRun = {
      settings,
      flags,
      recorder,
      stop,
      executor: localExecutor,
      env: childEnv(process.env),
      restarts,
      tsxLoader: import.meta.resolve("tsx"),
    };
    const exitCode = await body(run);
    const state: RunState =
      stop.reason !== null && exitCode === interruptExitCode(stop.reason)
        ? "interrupted"
        : exitCode === EXIT.ok
          ? "finished"
          : "failed";
    await recorder.finish(state, exitCode);
    return exitCode;
  } catch (error) {
    // An unreadable checkpoint folder, a full disk…: runMain reports it; the record must not say "running".
    const exitCode = error instanceof UserError ? error.exitCode : EXIT.failure;
    await recorder?.finish("failed", exitCode).catch(() => {});
    throw error;
  } finally {
    unroute();
  }
}

function startSweep(run: PipelineRun, besideSft: boolean): PipelineSweep {
  return startPipelineSweep({
    settings: run.settings,
    executor: run.executor,
    watch: run.flags.dpoSweep?.watch === true,
    besideSft,
    maxParallel: run.flags.dpoSweep?.maxParallel ?? 1,
    recorder: run.recorder,
    stop: run.stop,
    env: run.env,
    say,
    warn,
  });
}

async function sweepEnd(run: PipelineRun, sweep: PipelineSweep): Promise<StepEnd> {
  const outcome = await sweep.finish();
  if (outcome.exitCode === EXIT.ok) return { go: true };
  if (outcome.interrupted !== null) return { go: false, exitCode: interrupted(run) };
  warn(
    `${tag(PIPELINE)} ${chalk.red("stopped: the DPO sweep failed")}; fix the cause and run the same command again to resume it`,
  );
  return { go: false, exitCode: outcome.exitCode };
}

function duration(ms: number): string {
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
}
