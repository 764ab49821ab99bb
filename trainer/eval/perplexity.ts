/** Perplexity on held-out records: exp of the mean negative log-likelihood over the learned tokens. */
import * as tf from "@tensorflow/tfjs-core";
import type { DataFormat } from "../data/records.ts";
import type { TrainingData } from "../data/training-data.ts";
import { tokenNll } from "../model/loss.ts";
import type { MiniMind } from "../model/minimind.ts";
import { batchTensors } from "../stages/language-model.ts";
import { evalBatches } from "./batches.ts";

/** Every position with weight > 0 counts once (R1's heavier tag weights do not skew it). */
export async function heldOutPerplexity<F extends DataFormat>(
  run: TrainingData<F>,
  model: MiniMind,
  batchSize = 32,
): Promise<{ perplexity: number; nll: number }> {
  let nllSum = 0;
  let tokens = 0;
  for (const { batch } of evalBatches(run.evalDataset, run.evalIndices, run.encoder, batchSize)) {
    const counted = batch.weight.map((w: number) => (w > 0 ? 1 : 0));
    const sum = tf.tidy(() => {
      const { ids, targets } = batchTensors(batch);
      const logits = model.logits(model.hidden(ids));
      return tf.sum(tf.mul(tokenNll(logits, targets), tf.tensor1d(counted, "float32")));
    });
    nllSum += (await sum.data())[0] as number;
    sum.dispose();
    for (const c of counted) tokens += c;
  }
  const nll = nllSum / Math.max(tokens, 1);
  return { perplexity: Math.exp(nll), nll };
}
