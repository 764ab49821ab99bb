/**
 * Everything a stage's training session needs before its first update, from its flags: the data,
 * the backend, where it starts (a checkpoint to resume, initial weights, or random ones), the model
 * and the optimizer at that point, and the data position. A stage whose run is already finished
 * opens no model at all.
 */
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { EXIT, UserError } from "../../lib/cli/errors.ts";
import { claimFolder } from "../../lib/process/folder-claim.ts";
import { Rng, rngStreamsFromJson } from "../../lib/rng/index.ts";
import { parseTrainerArgs, type TrainerArgs } from "../../lib/stages/args.ts";
import { requirePresetVocabulary } from "../../lib/stages/presets.ts";
import { START_LINE } from "../../lib/stages/protocol.ts";
import type { StageName } from "../../lib/stages/table.ts";
import { type LoadedBackend, loadBackend } from "../backend/load.ts";
import type { DataFormat } from "../data/records.ts";
import { DEFAULT_DATA_DIR, ensureSampleData } from "../data/sample/generate.ts";
import { BatchSampler } from "../data/sampler.ts";
import { openTrainingData, type TrainingData } from "../data/training-data.ts";
import { countParameters, type ModelConfig, resolveModelConfig } from "../model/config.ts";
import { MiniMind } from "../model/minimind.ts";
import { ADAMW_DEFAULTS, AdamW } from "../optim/adamw.ts";
import { restoreOptimizer } from "./checkpoint-files.ts";
import { type Heartbeat, startHeartbeat } from "./heartbeat.ts";
import { RunMetadataWriter } from "./run-metadata.ts";
import { chooseStart, type StartPoint } from "./start.ts";
import { StopSignal } from "./stop-signal.ts";

export interface Position {
  epoch: number;
  /** Batches consumed in the current epoch. */
  stepInEpoch: number;
  /** Optimizer updates applied. */
  globalStep: number;
  tokensSeen: number;
}

export type StartedSession = Extract<StartPoint, { finished: false }>;

export interface Session<F extends DataFormat> extends TrainingData<F> {
  finished: false;
  stage: StageName;
  args: TrainerArgs;
  config: ModelConfig;
  backend: LoadedBackend;
  start: StartedSession;
  model: MiniMind;
  optimizer: AdamW;
  sampler: BatchSampler;
  /** Optimizer updates this run makes in all (max_steps, or every epoch). */
  totalUpdates: number;
  position: Position;
  stop: StopSignal;
  heartbeat: Heartbeat;
  log(message: string): void;
  warn(message: string): void;
}

/** The run is already finished: `report()` says so, writes metadata.json and returns exit 0. */
export interface FinishedSession {
  finished: true;
  report(): Promise<number>;
}

/** The data-order stream of one epoch: a pure function of (seed, epoch), so resume needs only the position. */
export function dataStream(seed: number, epoch: number): Rng {
  return Rng.fromSeed(seed, `data-epoch-${epoch}`);
}

export async function openSession<F extends DataFormat>(
  stage: StageName,
  format: F,
  argv: readonly string[],
): Promise<Session<F> | FinishedSession> {
  const args = parseTrainerArgs(stage, argv);
  const log = (message: string) => process.stdout.write(`[${stage}] ${message}\n`);
  const warn = (message: string) => process.stderr.write(`warning: ${message}\n`);
  const stop = new StopSignal({ requeueLimit: args.requeue_on_stop, log }).install();
  const position: Position = { epoch: 0, stepInEpoch: 0, globalStep: 0, tokensSeen: 0 };
  const heartbeat = startHeartbeat(() => position.globalStep);
  try {
    // Before anything is read from or written to the checkpoints: one trainer per folder.
    const claim = await claimFolder(args.ckpt_dir, `${stage}'s checkpoints`);
    if (claim.tookOverFrom) log(`took over ${args.ckpt_dir} from ${claim.tookOverFrom}`);
    // The default data files are generated on first use, so a fresh clone trains without a download.
    if (!existsSync(args.data_path) && resolve(args.data_path).startsWith(`${resolve(DEFAULT_DATA_DIR)}/`)) {
      const written = await ensureSampleData(DEFAULT_DATA_DIR);
      if (written) log(`wrote the embedded sample dataset to ${DEFAULT_DATA_DIR} (${written.length} files)`);
    }
    const data = await openTrainingData(args, format, warn);
    const config = modelConfig(args, data.tokenizer.vocabSize);
    const sampler = new BatchSampler({
      indices: data.trainIndices,
      batchSize: args.batch_size,
      randomForEpoch: (epoch) => dataStream(args.seed, epoch),
    });
    const updatesPerEpoch = Math.ceil(sampler.batchesPerEpoch / args.accumulation_steps);
    const planned = args.epochs * updatesPerEpoch;
    const totalUpdates = args.max_steps > 0 ? Math.min(args.max_steps, planned) : planned;

    const start = await chooseStart(stage, args, config, data.tokenizer, updatesPerEpoch, log, warn);
    if (start.finished) {
      heartbeat.stop();
      stop.dispose();
      return {
        finished: true,
        async report() {
          log(`${start.description}; nothing to do`);
          await new RunMetadataWriter(args, stage, start.checkpoint.path).alreadyFinished(start.state);
          return EXIT.ok;
        },
      };
    }
    const backend = await loadBackend(args.backend);
    log(backend.description);
    log(
      `model: ${(countParameters(config) / 1e6).toFixed(2)}M parameters (${config.model_revision}` +
        `${args.preset ? ` --preset ${args.preset}` : ""}, hidden ${config.hidden_size}, ` +
        `${config.num_hidden_layers} layers, ${config.num_attention_heads} heads, ${config.num_key_value_heads} kv heads, ` +
        `vocab ${config.vocab_size}); data: ${args.data_path} (${data.trainIndices.length} training records, ` +
        `${data.evalIndices.length} held out)`,
    );
    log(start.description);
    process.stdout.write(`${START_LINE}${start.resume?.path ?? start.startedFrom?.path ?? "random"}\n`);

    const model = new MiniMind(config, start.weights);
    const optimizer = new AdamW(model.weights, { ...ADAMW_DEFAULTS, weightDecay: args.weight_decay });
    if (start.resume) {
      const s = start.resume.state;
      restoreOptimizer(optimizer, start.resume.optimizer, `${start.resume.path}/optimizer.safetensors`);
      const streams = rngStreamsFromJson(start.resume.rng, `${start.resume.path}/rng.json`);
      if (streams.init) start.initRng = streams.init;
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
    return {
      finished: false,
      ...data,
      stage,
      args,
      config,
      backend,
      start,
      model,
      optimizer,
      sampler,
      totalUpdates,
      position,
      stop,
      heartbeat,
      log,
      warn,
    };
  } catch (error) {
    heartbeat.stop();
    stop.dispose();
    throw error;
  }
}

function modelConfig(args: TrainerArgs, tokenizerVocab: number): ModelConfig {
  if (args.preset) requirePresetVocabulary(args.preset, args.tokenizer, tokenizerVocab);
  if (args.vocab_size !== 0 && args.vocab_size < tokenizerVocab) {
    throw new UserError(
      `--vocab_size ${args.vocab_size} is smaller than the tokenizer's ${tokenizerVocab} tokens`,
    );
  }
  try {
    return resolveModelConfig({
      model_revision: args.model_revision,
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
