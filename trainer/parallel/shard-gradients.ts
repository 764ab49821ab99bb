/**
 * The gradient of Σ share·loss(shard) / accumulation_steps over a list of shards — the core of an
 * optimizer update, shared by the training loop (its own shard, or the whole batch) and the workers.
 */
import * as tf from "@tensorflow/tfjs-core";
import type { MiniMind } from "../model/minimind.ts";
import type { Objective } from "../stages/objective.ts";
import type { Shard } from "./shards.ts";

export interface ShardGradients {
  grads: Map<string, tf.Tensor>;
  /** Σ share·loss: the mean loss of the whole batches, as far as these shards go. */
  loss: tf.Scalar;
  metrics: Map<string, tf.Scalar>;
}

export function shardGradients(
  model: MiniMind,
  objective: Objective,
  shards: Shard[],
  accumulationSteps: number,
): ShardGradients {
  const variables = [...model.weights.values()];
  const grads = new Map<string, tf.Tensor>();
  let loss = tf.scalar(0);
  const metrics = new Map<string, tf.Scalar>();
  const accumulate = (into: Map<string, tf.Tensor>, name: string, value: tf.Tensor) => {
    const old = into.get(name);
    into.set(name, old ? tf.add(old, value) : value);
    if (old) {
      old.dispose();
      value.dispose();
    }
  };

  for (const { batch, share } of shards) {
    const batchMetrics: Record<string, tf.Scalar> = {};
    const { value, grads: batchGrads } = tf.variableGrads(() => {
      const out = objective.loss(model, batch);
      for (const [name, metric] of Object.entries(out.metrics ?? {})) batchMetrics[name] = tf.keep(metric);
      return tf.mul(out.loss, share / accumulationSteps) as tf.Scalar;
    }, variables);
    const oldLoss = loss;
    loss = tf.tidy(() => tf.add(oldLoss, tf.mul(value, accumulationSteps)));
    oldLoss.dispose();
    value.dispose();
    for (const [name, metric] of Object.entries(batchMetrics)) {
      accumulate(metrics as Map<string, tf.Tensor>, name, tf.mul(metric, share));
      metric.dispose();
    }
    for (const [name, grad] of Object.entries(batchGrads)) accumulate(grads, name, grad);
  }
  return { grads, loss, metrics };
}
