/**
 * DPO evaluation on held-out preference pairs: summed assistant-token log-probabilities of the
 * chosen and the rejected reply under the policy and under the frozen reference.
 */
import * as tf from "@tensorflow/tfjs-core";
import type { JsonlDataset } from "../data/dataset.ts";
import type { Batch } from "../data/samples.ts";
import type { TrainingData } from "../data/training-data.ts";
import { sequenceLogProbs } from "../model/loss.ts";
import type { MiniMind } from "../model/minimind.ts";
import { batchTensors } from "../stages/language-model.ts";
import { evalBatches } from "./batches.ts";

/** Σ log p(assistant tokens) of every row of a batch: [rows]. */
export function batchSequenceLogProbs(model: MiniMind, batch: Batch): tf.Tensor1D {
  return tf.tidy(() => {
    const { ids, targets, weights } = batchTensors(batch);
    return sequenceLogProbs(model.logits(model.hidden(ids)), targets, weights, batch.rows);
  });
}

/**
 * - `preference_accuracy`: share of pairs where the model gives the chosen reply a higher mean
 *   log-prob per assistant token than the rejected one (no reference involved, so it compares any
 *   two models; per token, as MiniMind's DPO averages, so a longer reply is not penalised for its length);
 * - `reward_accuracy`, `reward_margin`: DPO's implicit reward β·(log π − log π_ref), the share of
 *   pairs where chosen beats rejected and the mean of chosen − rejected;
 * - `chosen_reward`, `rejected_reward`: their means.
 */
export async function preferenceMetrics(
  run: TrainingData<"dpo">,
  policy: MiniMind,
  reference: MiniMind,
  beta: number,
  indices: ArrayLike<number> = run.evalIndices,
  dataset: JsonlDataset<"dpo"> = run.evalDataset,
  batchSize = 16,
): Promise<Record<string, number>> {
  let pairs = 0;
  let preferred = 0;
  let rewardWins = 0;
  let marginSum = 0;
  let chosenSum = 0;
  let rejectedSum = 0;
  for (const { batch, records } of evalBatches(dataset, indices, run.encoder, batchSize)) {
    const pi = batchSequenceLogProbs(policy, batch);
    const ref = policy === reference ? pi : batchSequenceLogProbs(reference, batch);
    const [p, r] = [await pi.data(), await ref.data()];
    tf.dispose([pi, ref]);
    const tokens = (row: number) => {
      let count = 0;
      for (let t = 0; t < batch.seqLen; t++) if (batch.weight[row * batch.seqLen + t] > 0) count++;
      return Math.max(count, 1);
    };
    for (let b = 0; b < records; b++) {
      const chosen = beta * ((p[b] as number) - (r[b] as number));
      const rejected = beta * ((p[b + records] as number) - (r[b + records] as number));
      if ((p[b] as number) / tokens(b) > (p[b + records] as number) / tokens(b + records)) preferred++;
      if (chosen > rejected) rewardWins++;
      marginSum += chosen - rejected;
      chosenSum += chosen;
      rejectedSum += rejected;
    }
    pairs += records;
  }
  const n = Math.max(pairs, 1);
  return {
    preference_accuracy: preferred / n,
    reward_accuracy: rewardWins / n,
    reward_margin: marginSum / n,
    chosen_reward: chosenSum / n,
    rejected_reward: rejectedSum / n,
  };
}

/**
 * The DPO stage's evaluation: the metrics above on the held-out pairs, and `seen_*` the same on the
 * first as many training pairs (pairs the stage learns from). In the sample data the chosen reply
 * states the fact in a sentence and the rejected one is a bare wrong word, a preference that
 * carries over to held-out questions even where the model does not know the fact.
 */
export async function dpoEvaluation(
  run: TrainingData<"dpo">,
  policy: MiniMind,
  reference: MiniMind,
  beta: number,
): Promise<Record<string, number>> {
  const heldOut = await preferenceMetrics(run, policy, reference, beta);
  const seenCount = Math.min(run.evalIndices.length, run.trainIndices.length);
  const seen = await preferenceMetrics(
    run,
    policy,
    reference,
    beta,
    run.trainIndices.subarray(0, seenCount),
    run.dataset,
  );
  return {
    ...heldOut,
    seen_preference_accuracy: seen.preference_accuracy as number,
    seen_reward_accuracy: seen.reward_accuracy as number,
    seen_reward_margin: seen.reward_margin as number,
  };
}
