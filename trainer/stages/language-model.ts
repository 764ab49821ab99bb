/** The next-token loss that pretrain, SFT and R1 share; they differ in data format and loss weights. */
import * as tf from "@tensorflow/tfjs-core";
import type { Batch } from "../data/samples.ts";
import { weightedCrossEntropy } from "../model/loss.ts";
import type { MiniMind } from "../model/minimind.ts";
import type { BatchLoss, Objective, WorkerObjectiveFactory } from "./objective.ts";
import { trimBatch } from "./trim-batch.ts";

export function batchTensors(batch: Batch) {
  return {
    ids: tf.tensor2d(batch.input, [batch.rows, batch.seqLen], "int32"),
    targets: tf.tensor1d(batch.target, "int32"),
    weights: tf.tensor1d(batch.weight, "float32"),
  };
}

/** Next-token loss; positions after the last weighted one are cut first (exact: attention is causal). */
export function languageModelLoss(model: MiniMind, batch: Batch): BatchLoss {
  const { ids, targets, weights } = batchTensors(trimBatch(batch));
  const logits = model.logits(model.hidden(ids));
  return { loss: weightedCrossEntropy(logits, targets, weights, batch.lossTokens) };
}

export const languageModelObjective: Objective = {
  loss: languageModelLoss,
  workerModule: import.meta.url,
};

/** In a data-parallel worker the loss is all it needs. */
export const workerObjective: WorkerObjectiveFactory = async () => languageModelObjective;
