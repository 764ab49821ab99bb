/**
 * The training loop every stage shares, read top to bottom: from the session's position, read the
 * batches of one optimizer update, take the step, log, save every --save_interval updates; on
 * Ctrl+C save and stop; at the end save the finished checkpoint and evaluate. What differs per
 * stage comes in as a few plain values: the objective (its loss), an optional evaluation, and
 * optional checkpoint hooks (the SFT queue).
 */
import { dirname } from "node:path";
import type { ProtectHook } from "../../lib/checkpoint/index.ts";
import { EXIT, UserError } from "../../lib/cli/errors.ts";
import { makeDir } from "../../lib/fs/make-dir.ts";
import { moveNewerAside } from "../../lib/stages/restart.ts";
import { EventWriter } from "../../lib/tensorboard/event-writer.ts";
import type { DataFormat } from "../data/records.ts";
import { readBatch } from "../data/samples.ts";
import { countParameters } from "../model/config.ts";
import type { MiniMind } from "../model/minimind.ts";
import { cosineLearningRate } from "../optim/schedule.ts";
import type { GradientWorkers } from "../parallel/pool.ts";
import { startWorkers } from "../parallel/threads.ts";
import type { Objective } from "../stages/objective.ts";
import { appendEvalResult } from "./eval-results.ts";
import { describeMetrics, Meter, Progress } from "./progress.ts";
import { RunMetadataWriter } from "./run-metadata.ts";
import { saveStep, warnIfDiskTight } from "./save.ts";
import type { Session } from "./session.ts";
import { yieldToEventLoop } from "./stop-signal.ts";
import { trainingStep } from "./update.ts";

export interface StagePlan {
  objective: Objective;
  /** Held-out metrics of a model; measured on the initial weights too, so results show what the stage changed. */
  evaluate?: (model: MiniMind) => Promise<Record<string, number>>;
  /** Called after each checkpoint is committed (the SFT trainer's work queue). */
  onCheckpoint?: (path: string, step: number) => Promise<void>;
  /** Checkpoints this stage must never prune (the work queue's pending ones). */
  protect?: ProtectHook;
  /** Extra state.json fields, saved with every checkpoint (DPO's reference hash). */
  state?: Record<string, unknown>;
}

/** state.json field carrying the initial weights' evaluation, so a resumed run still reports it. */
const BASELINE_KEY = "baseline_eval";

export async function train<F extends DataFormat>(session: Session<F>, plan: StagePlan): Promise<number> {
  const { args, stage, model, optimizer, position, start, stop, heartbeat } = session;
  const metadata = new RunMetadataWriter(args, stage, start.resume?.path ?? start.startedFrom?.path ?? null);
  let workers: GradientWorkers | null = null;
  let events: EventWriter | null = null;
  try {
    // Every folder the session writes to, first: an unwritable one is reported before any thread starts.
    for (const dir of outputDirs(args)) await makeDir(dir);
    if (start.rewind && start.resume) {
      const { target, moved } = await moveNewerAside(args.ckpt_dir, position.globalStep);
      session.warn(
        `--resume ${args.resume}: moved the ${moved} newer checkpoint(s) of its folder to ${target} (nothing was deleted), ` +
          "so the two histories never mix",
      );
    }
    const started = await startWorkers(session, plan.objective);
    workers = started.workers;
    const threads = started.threads;
    const pool = workers;
    heartbeat.holdWhile(() => pool?.busy ?? false);
    await warnIfDiskTight(session, estimatedCheckpointBytes(session));
    events = await EventWriter.open(args.tensorboard_dir);
    // TensorBoard drops every event at or after a START's step: start at the first step this session logs.
    events.sessionStart(position.globalStep + 1);
    await metadata.started(position);
    const baseline = await initialEvaluation(session, plan);

    let lastSaved = start.resume?.path ?? null;
    let lastSavedStep = start.resume ? position.globalStep : -1;
    let metrics: Record<string, number> = {};
    const save = async (finished: boolean): Promise<string> => {
      const path = await saveStep(
        session,
        {
          finished,
          threads,
          metrics,
          extraState: { ...plan.state, ...(baseline ? { [BASELINE_KEY]: baseline } : {}) },
          protect: plan.protect,
        },
        lastSaved,
      );
      lastSaved = path;
      lastSavedStep = position.globalStep;
      await plan.onCheckpoint?.(path, position.globalStep);
      await events?.flush();
      return path;
    };

    const { sampler, totalUpdates } = session;
    const progress = new Progress(`[${stage}]`, totalUpdates, position.globalStep);
    const meter = new Meter();
    let badInARow = 0;
    training: for (let epoch = position.epoch; epoch < args.epochs; epoch++) {
      let batchIndex = epoch === position.epoch ? position.stepInEpoch : 0;
      position.epoch = epoch;
      while (batchIndex < sampler.batchesPerEpoch) {
        if (position.globalStep >= totalUpdates || stop.requested) break training;
        const count = Math.min(args.accumulation_steps, sampler.batchesPerEpoch - batchIndex);
        const batches = Array.from({ length: count }, (_, k) =>
          readBatch(session.dataset, sampler.batch(epoch, batchIndex + k), session.encoder),
        );
        const lr = cosineLearningRate(position.globalStep, totalUpdates, args.learning_rate);
        const step = await trainingStep(model, plan.objective, optimizer, workers, batches, {
          lr,
          accumulationSteps: args.accumulation_steps,
          gradClip: args.grad_clip,
        });
        batchIndex += count;
        position.stepInEpoch = batchIndex;
        if (batchIndex >= sampler.batchesPerEpoch) {
          // Record a finished epoch as the start of the next, so a resume never replays its end.
          position.epoch = epoch + 1;
          position.stepInEpoch = 0;
        }
        if (!step.applied) {
          step.dispose();
          badInARow += 1;
          session.warn(
            `update ${position.globalStep + 1} skipped: loss ${step.loss}, gradient norm ${step.gradNorm} ` +
              `(${badInARow} in a row; weights and optimizer unchanged)`,
          );
          if (badInARow >= args.max_bad_steps) throw numericalFailure(session, step.loss, lastSaved);
          heartbeat.beat();
          await yieldToEventLoop();
          continue;
        }
        badInARow = 0;
        position.globalStep += 1;
        const tokens = batches.reduce((sum, b) => sum + b.tokens, 0);
        position.tokensSeen += tokens;
        meter.add(tokens);

        const atLog = position.globalStep % args.log_interval === 0 || position.globalStep === totalUpdates;
        if (atLog || process.stdout.isTTY) {
          metrics = {
            loss: step.loss,
            lr,
            grad_norm: step.gradNorm,
            tokens_per_sec: meter.tokensPerSecond(),
            ...(await step.metrics()),
          };
          if (atLog) {
            events.scalars(prefixed(stage, metrics), position.globalStep);
            await events.flush();
            heartbeat.metrics(position.globalStep, metrics);
          }
          progress.update(
            {
              step: position.globalStep,
              total: totalUpdates,
              epoch,
              epochs: args.epochs,
              loss: step.loss,
              lr,
              meter,
            },
            atLog,
          );
          if (atLog) meter.restart();
        }
        step.dispose();
        if (position.globalStep % args.save_interval === 0 && position.globalStep < totalUpdates)
          await save(false);
        heartbeat.beat();
        await yieldToEventLoop();
      }
    }
    progress.stop();

    if (stop.requested) {
      if (lastSavedStep !== position.globalStep) await save(false);
      session.log(`interrupted by ${stop.requested}: saved step ${position.globalStep}; run again to resume`);
      await metadata.ended("interrupted", position);
      // On Slurm's time-limit warning the job may requeue itself now that the checkpoint is saved.
      return await stop.afterSave();
    }
    const finalCheckpoint = await save(true);
    session.log(`finished: ${position.globalStep} steps, ${position.tokensSeen} tokens`);
    let evaluation: Record<string, number> | null = null;
    if (plan.evaluate && session.evalIndices.length > 0) {
      const measured = await plan.evaluate(model);
      evaluation = {
        ...measured,
        ...Object.fromEntries(Object.entries(baseline ?? {}).map(([k, v]) => [`baseline_${k}`, v])),
      };
      events.scalars(prefixed(`${stage}/eval`, evaluation), position.globalStep);
      await appendEvalResult(args, stage, position.globalStep, evaluation, finalCheckpoint);
      session.log(`evaluation: ${describeMetrics(evaluation)}`);
    }
    await metadata.ended("finished", position, evaluation);
    return EXIT.ok;
  } catch (error) {
    await metadata.ended("failed", position).catch(() => {});
    throw error;
  } finally {
    // Every path out: no thread, timer or file handle may keep the process alive.
    heartbeat.stop();
    await workers?.close();
    await events?.close().catch(() => {});
    stop.dispose();
  }
}

/**
 * The initial weights' evaluation, measured once before the first update of a run and carried in
 * every state.json, so a resumed run reports it without the initial weights at hand.
 */
async function initialEvaluation<F extends DataFormat>(
  session: Session<F>,
  plan: StagePlan,
): Promise<Record<string, number> | null> {
  const saved = session.start.resume?.state[BASELINE_KEY];
  if (session.start.resume) {
    if (typeof saved !== "object" || saved === null) return null;
    return Object.fromEntries(
      Object.entries(saved).filter((e): e is [string, number] => typeof e[1] === "number"),
    );
  }
  if (!plan.evaluate || session.evalIndices.length === 0) return null;
  const started = performance.now();
  const baseline = await plan.evaluate(session.model);
  session.log(
    `initial weights: ${describeMetrics(baseline)} (${((performance.now() - started) / 1000).toFixed(1)} s)`,
  );
  return baseline;
}

function outputDirs(args: Session<DataFormat>["args"]): string[] {
  return [
    args.out_dir,
    args.ckpt_dir,
    args.tensorboard_dir,
    dirname(args.legacy_weights),
    dirname(args.eval_results),
  ];
}

/** A resumed run's checkpoint size from its manifest; a new run's from the model: weights and two AdamW moments. */
function estimatedCheckpointBytes<F extends DataFormat>(session: Session<F>): number {
  const files = session.start.resume?.state.files;
  if (files) return Object.values(files).reduce((sum, f) => sum + f.bytes, 0);
  return countParameters(session.config) * 4 * 3;
}

function prefixed(prefix: string, values: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(values).map(([k, v]) => [`${prefix}/${k}`, v]));
}

/** Too many non-finite updates in a row: stop, naming the step and the likely cause; the last good checkpoint stays latest. */
function numericalFailure<F extends DataFormat>(
  session: Session<F>,
  loss: number,
  lastSaved: string | null,
): UserError {
  const { args, position } = session;
  const cause =
    position.globalStep === 0 && session.start.resume === null
      ? `the initial weights or the data (the very first update failed${args.init_from ? `; check --init_from ${args.init_from}` : ""})`
      : `--learning_rate ${shortNumber(args.learning_rate)} is likely too high (try a tenth of it, or a smaller --grad_clip)`;
  return new UserError(
    `${args.max_bad_steps} updates in a row after step ${position.globalStep} had a non-finite loss or gradient ` +
      `(last loss ${loss}); stopped without saving: ${cause}. ` +
      (lastSaved ? `The last good checkpoint, ${lastSaved}, is still the latest.` : "Nothing was saved."),
    EXIT.failure,
  );
}

/** 0.001, 100, 1e+6: a number as a person would type it. */
function shortNumber(value: number): string {
  return Math.abs(value) >= 1e4 || (value !== 0 && Math.abs(value) < 1e-3)
    ? value.toExponential()
    : String(value);
}
