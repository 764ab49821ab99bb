/** What a stage trains the model to minimise: its loss over a batch, and how that loss splits across workers. */
import type * as tf from "@tensorflow/tfjs-core";
import type { TrainerArgs } from "../../lib/stages/args.ts";
import type { Batch } from "../data/samples.ts";
import type { ModelConfig } from "../model/config.ts";
import type { MiniMind } from "../model/minimind.ts";

export interface BatchLoss {
  /** Normalised loss of the batch (what the gradient is taken of). */
  loss: tf.Scalar;
  /** Extra per-batch scalars to log as their mean over the log interval (kept alive by the caller). */
  metrics?: Record<string, tf.Scalar>;
}

export interface Objective {
  /** Loss of one batch; called inside tf.variableGrads. */
  loss(model: MiniMind, batch: Batch): BatchLoss;
  /** What the loss is a mean over, for splitting a batch across workers (default: its loss tokens). */
  normaliser?: (batch: Batch) => number;
  /** Rows come as B chosen then B rejected, and a shard must keep pairs whole (DPO). */
  pairedRows?: boolean;
  /**
   * URL of a module exporting `workerObjective: WorkerObjectiveFactory` — the same objective built
   * inside a data-parallel worker thread. Without it the stage trains on one thread.
   */
  workerModule?: string;
}

/** What a worker thread knows when it builds its copy of the objective. */
export interface WorkerContext {
  args: TrainerArgs;
  config: ModelConfig;
}

export type WorkerObjectiveFactory = (context: WorkerContext) => Promise<Objective>;
