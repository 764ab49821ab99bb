import * as tf from "@tensorflow/tfjs-core";

/** Per-token negative log-likelihood of `targets` under `logits` [rows, vocab] → [rows]. */
export function tokenNll(logits: tf.Tensor2D, targets: tf.Tensor1D): tf.Tensor1D {
  const logProbs = tf.logSoftmax(logits);
  return tf.neg(tf.sum(tf.mul(logProbs, tf.oneHot(targets, logits.shape[1])), -1)) as tf.Tensor1D;
}

/**
 * MiniMind's masked loss: Σ wᵢ·nllᵢ / (number of positions with wᵢ > 0), where w is 0 on padding and
 * prompt tokens and larger than 1 on tokens a stage emphasises (R1's reasoning tags).
 */
export function weightedCrossEntropy(
  logits: tf.Tensor2D,
  targets: tf.Tensor1D,
  weights: tf.Tensor1D,
  lossTokens: number,
): tf.Scalar {
  return tf.div(tf.sum(tf.mul(tokenNll(logits, targets), weights)), Math.max(lossTokens, 1));
}

/** Σ over each sequence of weight·log p(target): [batch]. The DPO stage compares these. */
export function sequenceLogProbs(
  logits: tf.Tensor2D,
  targets: tf.Tensor1D,
  weights: tf.Tensor1D,
  batch: number,
): tf.Tensor1D {
  const perToken = tf.mul(tf.neg(tokenNll(logits, targets)), weights);
  return tf.sum(tf.reshape(perToken, [batch, -1]), 1) as tf.Tensor1D;
}
