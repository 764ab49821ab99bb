/** What differs between the four stages; everything else is the shared loop in run.ts. */
import type * as tf from "@tensorflow/tfjs-core";
import type { CheckpointState, ProtectHook } from "../../lib/checkpoint/index.ts";
import type { StageFlags, TrainerArgs } from "../args.ts";
import type { JsonlDataset } from "../data/dataset.ts";
import type { DataFormat } from "../data/records.ts";
import type { Batch, SampleEncoder } from "../data/samples.ts";
import type { Tokenizer } from "../data/tokenizer.ts";
import type { ModelConfig } from "../model/config.ts";
import type { MiniMind } from "../model/minimind.ts";
import type { GradientWorkers } from "../parallel/pool.ts";
import type { Normaliser } from "../parallel/shards.ts";

export interface RunContext<F extends DataFormat = DataFormat> {
  args: TrainerArgs;
  config: ModelConfig;
  model: MiniMind;
  tokenizer: Tokenizer;
  encoder: SampleEncoder<F>;
  dataset: JsonlDataset<F>;
  /** Record indices of `dataset` that are trained on (everything but the held-out tail). */
  trainIndices: Uint32Array;
  /** Held-out record indices of `evalDataset`. */
  evalIndices: Uint32Array;
  evalDataset: JsonlDataset<F>;
  /** The checkpoint this session resumed from, or null. */
  resumedFrom: { path: string; state: CheckpointState } | null;
  /** Where the initial weights came from when not resuming (a checkpoint dir or file), or null. */
  initialisedFrom: { path: string; state?: Record<string, unknown> } | null;
  /** Data-parallel worker threads sharing each update (wasm and cpu backends), or null. */
  workers?: GradientWorkers | null;
  log(message: string): void;
  warn(message: string): void;
}

export interface BatchLoss {
  /** Normalised loss of the batch (what the gradient is taken of). */
  loss: tf.Scalar;
  /** Extra per-batch scalars to log as their mean over the log interval (kept alive by the caller). */
  metrics?: Record<string, tf.Scalar>;
}

export interface StageTask<F extends DataFormat> {
  flags: StageFlags;
  format: F;
  /**
   * Initial weights when neither a checkpoint to resume nor --init_from exists (DPO and R1 start
   * from an earlier stage's output); throws a UserError naming the stage to run first. Default: random.
   */
  defaultInit?(args: TrainerArgs): Promise<string>;
  /** Runs once the model exists and its weights are loaded (DPO builds its frozen reference here). */
  prepare?(run: RunContext<F>): Promise<void>;
  /** Loss of one batch; called inside tf.variableGrads. */
  loss(run: RunContext<F>, batch: Batch): BatchLoss;
  /** What the loss is a mean over, for splitting a batch across workers (default: its loss tokens). */
  normaliser?: Normaliser;
  /** Rows come as B chosen then B rejected, and a shard must keep pairs whole (DPO). */
  pairedRows?: boolean;
  /**
   * URL of a module exporting `workerTask`: this stage's loss (and `prepareWorker`) for data-parallel
   * worker threads. Without it the stage trains on one thread.
   */
  workerModule?: string;
  /** In a data-parallel worker: build what `loss` needs besides the model (DPO's reference). */
  prepareWorker?(run: RunContext<F>): Promise<void>;
  /** Extra state.json fields, saved with every checkpoint. */
  stateExtras?(run: RunContext<F>): Record<string, unknown>;
  /** Checkpoints this stage must never prune (the DPO work queue's pending SFT checkpoints). */
  protect?: ProtectHook;
  /** Called after each checkpoint is committed (the SFT trainer's work queue). */
  onCheckpoint?(run: RunContext<F>, path: string, step: number): Promise<void>;
  /** Evaluate on the held-out records; returns metrics by name. */
  evaluate?(run: RunContext<F>): Promise<Record<string, number>>;
  /** Release what prepare() made. */
  dispose?(): void;
}
