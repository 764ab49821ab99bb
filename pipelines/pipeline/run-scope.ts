/**
 * One pipeline run around its stage loop: signals routed to the shared stop decision, the run
 * record begun and ended with the run's final state, restarts planned before anything runs.
 */
import { resolve } from "node:path";
import { EXIT, UserError } from "../../lib/cli/errors.ts";
import { makeDir } from "../../lib/fs/make-dir.ts";
import { childEnv, interruptExitCode, StopController } from "../../lib/process/index.ts";
import { STAGE_NAMES } from "../../lib/stages/table.ts";
import { localExecutor } from "../executor/local.ts";
import { isTrainingStage, type PipelineFlags } from "./cli.ts";
import { PIPELINE, type PipelineRun, tag, warn } from "./context.ts";
import { planRestarts } from "./restarts.ts";
import { RunRecorder, type RunState } from "./run-record.ts";
import type { PipelineSettings } from "./settings.ts";
import { routeStopSignals } from "./signals.ts";
import { clearSmokeOutputs } from "./smoke.ts";

/**
 * A new run's first records: restarts planned (before anything runs, so a refused one changes
 * nothing) and the steps not selected marked skipped.
 */
export async function beginStages(
  settings: PipelineSettings,
  flags: PipelineFlags,
  recorder: RunRecorder,
  argv: readonly string[],
): Promise<PipelineRun["restarts"]> {
  const training = flags.steps.filter(isTrainingStage);
  const restarts = await planRestarts(settings, flags.restart, training, argv, recorder.previous);
  for (const step of [...STAGE_NAMES, "infer" as const]) {
    if (!flags.steps.includes(step))
      await recorder.update(step, { state: "skipped", decision: "not selected" });
  }
  return restarts;
}

/** Signals, the run record and its final state around the stage loop. */
export async function withRun(
  settings: PipelineSettings,
  flags: PipelineFlags,
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
    const run: PipelineRun = {
      settings,
      flags,
      recorder,
      stop,
      executor: localExecutor,
      env: childEnv(process.env),
      restarts: await beginStages(settings, flags, recorder, argv),
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
