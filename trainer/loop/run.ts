/**
 * The training loop every stage shares: data, model, optimizer, resume, the update loop with
 * gradient accumulation and clipping, step checkpoints, TensorBoard events, signals, evaluation.
 * A stage supplies only its loss (and, for DPO, a reference model) through a StageTask.
 */
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { resolve } from "node:path";
import { DEFAULT_DATA_DIR, ensureSampleData } from "../../data/generate.ts";
import { saveCheckpoint, writeLegacyWeights } from "../../lib/checkpoint/index.ts";
import { EXIT, UserError } from "../../lib/cli/errors.ts";
import { Rng, rngStreamsFromJson } from "../../lib/rng/index.ts";
import { EventWriter } from "../../lib/tensorboard/event-writer.ts";
import { parseTrainerArgs, type TrainerArgs } from "../args.ts";
import { loadBackend } from "../backend/load.ts";
import { openDataset } from "../data/dataset.ts";
import type { DataFormat } from "../data/records.ts";
import { BatchSampler } from "../data/sampler.ts";
import { readBatch, SampleEncoder } from "../data/samples.ts";
import { loadTokenizer } from "../data/tokenizer.ts";
import { countParameters, resolveModelConfig } from "../model/config.ts";
import { MiniMind } from "../model/minimind.ts";
import { MODEL_FILE } from "../model/state-dict.ts";
import { ADAMW_DEFAULTS, AdamW } from "../optim/adamw.ts";
import { cosineLearningRate } from "../optim/schedule.ts";
import { GradientWorkers } from "../parallel/pool.ts";
import { checkpointFiles, restoreOptimizer } from "./checkpoint-files.ts";
import { appendEvalResult } from "./eval-results.ts";
import { Progress } from "./progress.ts";
import { RunMetadataWriter } from "./run-metadata.ts";
import { chooseStart } from "./start.ts";
import { StopSignal, yieldToEventLoop } from "./stop-signal.ts";
import type { RunContext, StageTask } from "./task.ts";
import { trainingStep } from "./update.ts";

const log = (message: string) => process.stdout.write(`${message}\n`);
const warn = (message: string) => process.stderr.write(`warning: ${message}\n`);

/** Default data files are generated on first use, so a fresh clone trains without a download. */
async function ensureData(args: TrainerArgs): Promise<void> {
  if (existsSync(args.data_path)) return;
  if (resolve(args.data_path).startsWith(resolve(DEFAULT_DATA_DIR)) && !process.env.DATA_DIR) {
    const written = await ensureSampleData(DEFAULT_DATA_DIR);
    if (written) log(`wrote the embedded sample dataset to ${DEFAULT_DATA_DIR} (${written.length} files)`);
  }
}

export async function runTrainer<F extends DataFormat>(task: StageTask<F>, argv: string[]): Promise<number> {
  const args = parseTrainerArgs(argv, task.flags);
  const stop = new StopSignal().install();
  try {
    return await train(task, args, stop);
  } finally {
    stop.dispose();
  }
}

async function train<F extends DataFormat>(
  task: StageTask<F>,
  args: TrainerArgs,
  stop: StopSignal,
): Promise<number> {
  const stage = task.flags.stage;
  await ensureData(args);
  const tokenizer = await loadTokenizer(args.tokenizer || null);
  const dataset = await openDataset(args.data_path, task.format, {
    skipBadLines: args.skip_bad_lines,
    onWarning: warn,
  });
  const evalDataset = args.eval_path
    ? await openDataset(args.eval_path, task.format, { skipBadLines: args.skip_bad_lines, onWarning: warn })
    : dataset;
  const split = dataset.split(args.eval_path ? 0 : Math.min(args.eval_size, Math.floor(dataset.length / 2)));
  const evalIndices = args.eval_path ? evalDataset.split(0).train : split.eval;
  if (split.train.length === 0) throw new UserError(`${args.data_path}: no records left to train on`);

  const config = resolveModelConfigOrExit(args, tokenizer.vocabSize);
  const backend = await loadBackend(args.backend);
  log(`[${stage}] ${backend.description}`);
  log(
    `[${stage}] model: ${(countParameters(config) / 1e6).toFixed(2)}M parameters ` +
      `(hidden ${config.hidden_size}, ${config.num_hidden_layers} layers, ${config.num_attention_heads} heads, ` +
      `${config.num_key_value_heads} kv heads, vocab ${config.vocab_size}); data: ${args.data_path} ` +
      `(${split.train.length} training records, ${evalIndices.length} held out)`,
  );

  const start = await chooseStart(args, config, tokenizer, warn, task.defaultInit);
  log(`[${stage}] ${start.description}`);
  if (start.resume?.state.finished) {
    log(`[${stage}] already finished at step ${start.resume.state.global_step}; nothing to do`);
    await new RunMetadataWriter(args, stage, start).alreadyFinished(start.resume.state);
    return EXIT.ok;
  }
  const model = new MiniMind(config, start.weights);
  const optimizer = new AdamW(model.weights, { ...ADAMW_DEFAULTS, weightDecay: args.weight_decay });
  const encoder = new SampleEncoder(task.format, tokenizer, {
    maxSeqLen: args.max_seq_len,
    specialTokenWeight:
      typeof args.extra.special_token_weight === "number" ? args.extra.special_token_weight : undefined,
  });
  const run: RunContext<F> = {
    args,
    config,
    model,
    tokenizer,
    encoder,
    dataset,
    evalDataset,
    trainIndices: split.train,
    evalIndices,
    resumedFrom: start.resume ? { path: start.resume.path, state: start.resume.state } : null,
    initialisedFrom: start.initialisedFrom,
    log: (m) => log(`[${stage}] ${m}`),
    warn,
  };
  await task.prepare?.(run);
  const threads = dataParallelThreads(
    args,
    backend.name,
    task.workerModule,
    start.resume?.state.data_parallel,
    warn,
  );
  run.workers =
    threads > 1 && task.workerModule
      ? await GradientWorkers.start({
          count: threads - 1,
          stageModule: task.workerModule,
          backend: backend.name,
          config,
          args,
          model,
        })
      : null;
  if (threads > 1) log(`[${stage}] data parallel: ${threads} threads share each update`);

  const sampler = new BatchSampler({
    indices: split.train,
    batchSize: args.batch_size,
    randomForEpoch: (epoch) => dataStream(args.seed, epoch),
  });
  const updatesPerEpoch = Math.ceil(sampler.batchesPerEpoch / args.accumulation_steps);
  const plannedUpdates = args.epochs * updatesPerEpoch;
  const totalUpdates = args.max_steps > 0 ? Math.min(args.max_steps, plannedUpdates) : plannedUpdates;

  const position = { epoch: 0, stepInEpoch: 0, globalStep: 0, tokensSeen: 0 };
  let initRng = start.initRng;
  if (start.resume) {
    const s = start.resume.state;
    restoreOptimizer(optimizer, start.resume.optimizer, `${start.resume.path}/optimizer.safetensors`);
    const streams = rngStreamsFromJson(start.resume.rng, `${start.resume.path}/rng.json`);
    initRng = streams.init ?? initRng;
    Object.assign(position, {
      epoch: s.epoch,
      stepInEpoch: s.step_in_epoch,
      globalStep: s.global_step,
      tokensSeen: s.tokens_seen,
    });
    if (optimizer.step !== s.global_step) {
      throw new UserError(
        `${start.resume.path}: optimizer step ${optimizer.step} differs from global_step ${s.global_step}`,
      );
    }
  }

  await mkdir(args.out_dir, { recursive: true });
  const events = await EventWriter.open(args.tensorboard_dir);
  // TensorBoard drops every event at or after a START's step: start at the first step this session logs.
  events.sessionStart(position.globalStep + 1);
  const metadata = new RunMetadataWriter(args, stage, start);
  await metadata.started(position);
  let lastSaved = start.resume ? position.globalStep : -1;
  let lastMetrics: Record<string, number> = {};

  const save = async (finished: boolean): Promise<string> => {
    const files = await checkpointFiles(config, model, optimizer, {
      init: initRng,
      data: dataStream(args.seed, position.epoch),
    });
    const result = await saveCheckpoint(args.ckpt_dir, {
      step: position.globalStep,
      files,
      state: {
        stage,
        epoch: position.epoch,
        step_in_epoch: position.stepInEpoch,
        global_step: position.globalStep,
        tokens_seen: position.tokensSeen,
        finished,
        args: { ...args },
        model_config: { ...config },
        metrics: lastMetrics,
        tokenizer: tokenizer.id,
        data_parallel: threads,
        ...(task.stateExtras?.(run) ?? {}),
      },
      keepLast: args.keep_last_checkpoints,
      resumedFrom: start.resume?.path ?? null,
      protect: task.protect,
    });
    await writeLegacyWeights(args.legacy_weights, files[MODEL_FILE] as Uint8Array[]);
    lastSaved = position.globalStep;
    process.stdout.write(`CHECKPOINT:${result.path}\n`);
    await task.onCheckpoint?.(run, result.path, position.globalStep);
    await events.flush();
    return result.path;
  };

  const progress = new Progress(`[${stage}]`, totalUpdates, position.globalStep);
  let window = { started: performance.now(), updates: 0, tokens: 0 };
  const stepTimes = { started: performance.now(), updates: 0 };
  let interrupted = false;

  training: for (let epoch = position.epoch; epoch < args.epochs; epoch++) {
    const skip = epoch === position.epoch ? position.stepInEpoch : 0;
    if (skip >= sampler.batchesPerEpoch) continue;
    position.epoch = epoch;
    let batchIndex = skip;
    while (batchIndex < sampler.batchesPerEpoch) {
      if (position.globalStep >= totalUpdates) break training;
      if (stop.requested) {
        interrupted = true;
        break training;
      }
      const micro = Math.min(args.accumulation_steps, sampler.batchesPerEpoch - batchIndex);
      const batches = Array.from({ length: micro }, (_, k) =>
        readBatch(dataset, sampler.batch(epoch, batchIndex + k), encoder),
      );
      const lr = cosineLearningRate(position.globalStep, totalUpdates, args.learning_rate);
      const result = await trainingStep(run, task, optimizer, batches, {
        lr,
        accumulationSteps: args.accumulation_steps,
        gradClip: args.grad_clip,
      });
      batchIndex += micro;
      position.globalStep += 1;
      position.stepInEpoch = batchIndex;
      const tokens = batches.reduce((sum, b) => sum + b.tokens, 0);
      position.tokensSeen += tokens;
      window.updates += 1;
      window.tokens += tokens;
      stepTimes.updates += 1;

      const atLog = position.globalStep % args.log_interval === 0 || position.globalStep === totalUpdates;
      if (atLog || process.stdout.isTTY) {
        const values = await result.read();
        const seconds = (performance.now() - window.started) / 1000;
        lastMetrics = {
          loss: values.loss,
          lr,
          grad_norm: values.gradNorm,
          tokens_per_sec: window.tokens / seconds,
          ...values.metrics,
        };
        if (atLog) {
          events.scalars(
            Object.fromEntries(Object.entries(lastMetrics).map(([k, v]) => [`${stage}/${k}`, v])),
            position.globalStep,
          );
          await events.flush();
        }
        progress.update(
          {
            step: position.globalStep,
            total: totalUpdates,
            epoch,
            epochs: args.epochs,
            loss: values.loss,
            lr,
            tokensPerSecond: window.tokens / seconds,
            secondsPerStep: (performance.now() - stepTimes.started) / 1000 / stepTimes.updates,
          },
          atLog,
        );
        if (atLog) window = { started: performance.now(), updates: 0, tokens: 0 };
      }
      result.dispose();

      if (batchIndex >= sampler.batchesPerEpoch) {
        // Record a finished epoch as the start of the next, so a resume never replays its end.
        position.epoch = epoch + 1;
        position.stepInEpoch = 0;
      }
      const finishedNow = position.globalStep >= totalUpdates;
      if (position.globalStep % args.save_interval === 0 && !finishedNow) await save(false);
      await yieldToEventLoop();
    }
  }
  progress.stop();

  if (interrupted || stop.requested) {
    if (lastSaved !== position.globalStep) await save(false);
    log(
      `[${stage}] interrupted by ${stop.requested}: saved step ${position.globalStep}; run again to resume`,
    );
    await metadata.ended("interrupted", position);
    await events.close();
    await run.workers?.close();
    task.dispose?.();
    return stop.exitCode();
  }
  const finalCheckpoint = await save(true);
  let evaluation: Record<string, number> | null = null;
  log(`[${stage}] finished: ${position.globalStep} steps, ${position.tokensSeen} tokens`);
  if (args.eval && task.evaluate && evalIndices.length > 0) {
    const metrics = await task.evaluate(run);
    evaluation = metrics;
    events.scalars(
      Object.fromEntries(Object.entries(metrics).map(([k, v]) => [`${stage}/eval/${k}`, v])),
      position.globalStep,
    );
    await appendEvalResult(args, stage, position.globalStep, metrics, finalCheckpoint);
    log(
      `[${stage}] evaluation: ${Object.entries(metrics)
        .map(([k, v]) => `${k} ${v.toFixed(4)}`)
        .join(", ")}`,
    );
  }
  await metadata.ended("finished", position, evaluation);
  await events.close();
  await run.workers?.close();
  task.dispose?.();
  model.dispose();
  optimizer.dispose();
  return EXIT.ok;
}

/**
 * Threads per update. Auto means one per core (at most 4) on the single-threaded backends — or, on
 * resume, the count the checkpoint was trained with, since the count changes the arithmetic and a
 * resumed run should match an uninterrupted one bit for bit.
 */
function dataParallelThreads(
  args: TrainerArgs,
  backend: string,
  workerModule: string | undefined,
  resumedWith: unknown,
  warn: (m: string) => void,
): number {
  if (!workerModule || (backend !== "wasm" && backend !== "cpu")) return 1;
  if (args.data_parallel !== "auto") {
    const threads = Number(args.data_parallel);
    if (typeof resumedWith === "number" && resumedWith !== threads) {
      warn(
        `resuming with --data_parallel ${threads}, the checkpoint was trained with ${resumedWith}: ` +
          "the result will differ slightly from an uninterrupted run",
      );
    }
    return threads;
  }
  if (typeof resumedWith === "number" && resumedWith >= 1) return resumedWith;
  return Math.max(1, Math.min(4, availableParallelism()));
}

/** The data-order stream of one epoch: a pure function of (seed, epoch), so resume needs only the position. */
function dataStream(seed: number, epoch: number): Rng {
  return Rng.fromSeed(seed, `data-epoch-${epoch}`);
}

function resolveModelConfigOrExit(args: TrainerArgs, tokenizerVocab: number) {
  if (args.vocab_size !== 0 && args.vocab_size < tokenizerVocab) {
    throw new UserError(
      `--vocab_size ${args.vocab_size} is smaller than the tokenizer's ${tokenizerVocab} tokens`,
    );
  }
  try {
    return resolveModelConfig({
      vocab_size: args.vocab_size || tokenizerVocab,
      hidden_size: args.hidden_size,
      num_hidden_layers: args.num_hidden_layers,
      num_attention_heads: args.num_attention_heads,
      num_key_value_heads: args.num_key_value_heads,
      max_seq_len: args.max_seq_len,
    });
  } catch (error) {
    throw new UserError((error as Error).message);
  }
}
