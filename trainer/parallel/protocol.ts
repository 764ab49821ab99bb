/** Messages between the training loop and its data-parallel workers. */
import type { TrainerArgs } from "../../lib/stages/args.ts";
import type { Batch } from "../data/samples.ts";
import type { ModelConfig } from "../model/config.ts";
import type { Shard } from "./shards.ts";

/** Where each parameter lives in the shared parameter and gradient buffers (float32 offsets). */
export interface ParameterLayout {
  name: string;
  shape: number[];
  offset: number;
  size: number;
}

export interface WorkerInit {
  /** URL of the module exporting the stage's `workerObjective` (objective.ts). */
  objectiveModule: string;
  backend: "tensorflow-gpu" | "tensorflow" | "wasm" | "cpu";
  config: ModelConfig;
  args: TrainerArgs;
  layout: ParameterLayout[];
  /** The current parameters, written by the loop after every update. */
  params: SharedArrayBuffer;
  /** This worker's gradient sum for the update, read by the loop. */
  grads: SharedArrayBuffer;
}

export interface StepRequest {
  type: "step";
  /** Bumped by the loop whenever it publishes new parameters. */
  version: number;
  shards: Shard[];
  accumulationSteps: number;
}

export interface StepReply {
  type: "done";
  /** Σ share·loss over this worker's shards (already in units of the whole batch). */
  loss: number;
  metrics: Record<string, number>;
}

export type WorkerMessage = StepReply | { type: "ready" } | { type: "failed"; message: string };

export type ShardBatch = Batch;
