/** The next-token loss that pretrain, SFT and R1 share; they differ in data format and loss weights. */
import * as tf from "@tensorflow/tfjs-core";
import type { Batch } from "../data/samples.ts";
import type { BatchLoss } from "../loop/task.ts";
import { weightedCrossEntropy } from "../model/loss.ts";
import type { MiniMind } from "../model/minimind.ts";

export function batchTensors(batch: Batch) {
  return {
    ids: tf.tensor2d(batch.input, [batch.rows, batch.seqLen], "int32"),
    targets: tf.tensor1d(batch.target, "int32"),
    weights: tf.tensor1d(batch.weight, "float32"),
  };
}

export function languageModelLoss(model: MiniMind, batch: Batch): BatchLoss {
  const { ids, targets, weights } = batchTensors(batch);
  const logits = model.logits(model.hidden(ids));
  return { loss: weightedCrossEntropy(logits, targets, weights, batch.lossTokens) };
}
