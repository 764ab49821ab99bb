/**
 * The sweep as the pipeline's dpo step (`npm run pipeline -- --dpo-sweep`), recorded under "dpo" in
 * out/pipeline.json. With --watch it is started alongside the SFT stage and told when that stage is
 * over; without, it runs after it.
 */

import { chalk } from "zx";
import { EXIT } from "../../lib/cli/errors.ts";
import type { StopController } from "../../lib/process/index.ts";
import type { Executor } from "../executor/types.ts";
import { PIPELINE, type PipelineRun, type StepEnd, say, tag, warn } from "../pipeline/context.ts";
import { interrupted } from "../pipeline/interrupted.ts";
import type { RunRecorder } from "../pipeline/run-record.ts";
import type { PipelineSettings } from "../pipeline/settings.ts";
import { sweepCommand } from "./command.ts";
import { sweepSettings } from "./settings.ts";
import type { SweepOutcome } from "./sweep.ts";

export interface PipelineSweepOptions {
  settings: PipelineSettings;
  executor: Executor;
  watch: boolean;
  /** The pipeline runs the SFT stage while this watching sweep runs, and calls sftDone() after it. */
  besideSft: boolean;
  maxParallel: number;
  recorder: RunRecorder;
  stop: StopController;
  /** The children's environment (the pipeline's childEnv()). */
  env: Record<string, string>;
  say(line: string): void;
  warn(line: string): void;
}

export interface PipelineSweep {
  /** The SFT stage is over, however it ended: a watching sweep stops waiting for new lines. */
  sftDone(): void;
  /** The sweep's outcome (the same promise every call); rejects with what the sweep threw. */
  finish(): Promise<SweepOutcome>;
}

export function startPipelineSweep(options: PipelineSweepOptions): PipelineSweep {
  const { recorder } = options;
  const sweep = sweepSettings(options.settings, options.env, options.executor);
  const sftDone = new AbortController();
  const startedAt = Date.now();
  const decision =
    `DPO sweep: one run per line of ${sweep.queueFile} into ${sweep.dpoRoot}/from_step_N` +
    (options.watch ? ", watching for new lines while SFT trains" : "");
  const run = (async (): Promise<SweepOutcome> => {
    await recorder.update("dpo", {
      state: "running",
      decision,
      checkpoint: sweep.queueFile,
      last_checkpoint: null,
      pid: null,
      exit_code: null,
      signal: null,
      started_at: new Date(startedAt).toISOString(),
      ended_at: null,
      duration_ms: null,
      log: null,
      message: null,
    });
    const ended = { ended_at: "", duration_ms: 0 };
    const stamp = (): typeof ended => ({
      ended_at: new Date().toISOString(),
      duration_ms: Date.now() - startedAt,
    });
    try {
      const outcome = await sweepCommand(sweep, {
        watch: options.watch,
        maxParallel: options.maxParallel,
        stop: options.stop,
        say: options.say,
        warn: options.warn,
        ...(options.besideSft ? { sftDone: sftDone.signal } : {}),
      });
      const state =
        outcome.exitCode === 0 ? "finished" : outcome.interrupted !== null ? "interrupted" : "failed";
      await recorder.update("dpo", {
        state,
        exit_code: outcome.exitCode,
        ...stamp(),
        message:
          `${outcome.trained.length} line(s) trained, ${outcome.skipped.length} skipped` +
          (outcome.failed ? `; ${outcome.failed.label} failed` : ""),
      });
      return outcome;
    } catch (error) {
      await recorder
        .update("dpo", {
          state: "failed",
          ...stamp(),
          message: error instanceof Error ? error.message : String(error),
        })
        .catch(() => {});
      throw error;
    }
  })();
  // Settled at once, so a sweep that fails while SFT still trains is never an unhandled rejection.
  const settled = run.then(
    (outcome) => ({ outcome }),
    (error: unknown) => ({ error }),
  );
  return {
    sftDone: () => sftDone.abort(),
    finish: async () => {
      const result = await settled;
      if ("error" in result) throw result.error;
      return result.outcome;
    },
  };
}

/** The pipeline's dpo step as a sweep (--dpo-sweep): started beside the sft stage with --watch, else after it. */
export function startSweepStep(run: PipelineRun, besideSft: boolean): PipelineSweep {
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

/** How the sweep step ended, for the stage loop. */
export async function sweepStepEnd(run: PipelineRun, sweep: PipelineSweep): Promise<StepEnd> {
  const outcome = await sweep.finish();
  if (outcome.exitCode === EXIT.ok) return { go: true };
  if (outcome.interrupted !== null) return { go: false, exitCode: interrupted(run) };
  warn(
    `${tag(PIPELINE)} ${chalk.red("stopped: the DPO sweep failed")}; fix the cause and run the same command again to resume it`,
  );
  return { go: false, exitCode: outcome.exitCode };
}
