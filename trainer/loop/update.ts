/**
 * One optimizer update: forward and backward over `accumulation_steps` batches (MiniMind divides
 * each batch's loss by accumulation_steps and sums the gradients), global-norm clipping, AdamW.
 * With data-parallel workers each batch is split into shards computed concurrently and the
 * gradients summed in a fixed order.
 *
 * A non-finite loss or gradient norm skips the update: weights and optimizer state stay exactly as
 * they were, so one bad batch cannot poison the run (the loop counts such updates and gives up
 * after --max_bad_steps in a row). Checking costs one read of two scalars per update.
 */
import * as tf from "@tensorflow/tfjs-core";
import type { Batch } from "../data/samples.ts";
import type { MiniMind } from "../model/minimind.ts";
import type { AdamW } from "../optim/adamw.ts";
import type { GradientWorkers } from "../parallel/pool.ts";
import { shardGradients } from "../parallel/shard-gradients.ts";
import { byLossTokens, type Shard, splitBatch } from "../parallel/shards.ts";
import type { Objective } from "../stages/objective.ts";

export interface UpdateOptions {
  lr: number;
  accumulationSteps: number;
  gradClip: number;
}

export interface UpdateResult {
  /** False when the loss or gradient norm was not finite and nothing was changed. */
  applied: boolean;
  /** Mean loss over the batches and the gradient norm before clipping. */
  loss: number;
  gradNorm: number;
  /** The stage's own metrics, averaged over the batches (read only when logged). */
  metrics(): Promise<Record<string, number>>;
  dispose(): void;
}

export async function trainingStep(
  model: MiniMind,
  objective: Objective,
  optimizer: AdamW,
  workers: GradientWorkers | null,
  batches: Batch[],
  options: UpdateOptions,
): Promise<UpdateResult> {
  const parts = (workers?.count ?? 0) + 1;
  const split = batches.map((batch) =>
    splitBatch(batch, parts, objective.pairedRows ?? false, objective.normaliser ?? byLossTokens),
  );
  const shardsOf = (part: number) =>
    split.map((shards) => shards[part]).filter((s): s is Shard => s !== null);

  const remote = workers?.dispatch(
    Array.from({ length: workers.count }, (_, i) => shardsOf(i + 1)),
    options.accumulationSteps,
  );
  const local = shardGradients(model, objective, shardsOf(0), options.accumulationSteps);
  const grads = local.grads;
  let loss = local.loss;
  const metrics = local.metrics;
  if (workers && remote) {
    const replies = await remote;
    tf.tidy(() => {
      for (const [name, variable] of model.weights) {
        let total: tf.Tensor = grads.get(name) ?? tf.zerosLike(variable);
        for (let i = 0; i < workers.count; i++) total = tf.add(total, workers.gradient(i, name));
        const old = grads.get(name);
        grads.set(name, tf.keep(total));
        if (old && old !== total) old.dispose();
      }
      const oldLoss = loss;
      loss = tf.keep(
        tf.add(
          loss,
          replies.reduce((sum, r) => sum + r.loss, 0),
        ),
      );
      oldLoss.dispose();
      for (const reply of replies) {
        for (const [name, value] of Object.entries(reply.metrics)) {
          const old = metrics.get(name);
          metrics.set(name, tf.keep(old ? tf.add(old, value) : tf.scalar(value)));
          old?.dispose();
        }
      }
    });
  }

  const gradNorm = tf.tidy(() => tf.sqrt(tf.addN([...grads.values()].map((g) => tf.sum(tf.square(g))))));
  const [lossSum, norm] = await Promise.all([loss.data(), gradNorm.data()]);
  const count = batches.length;
  const result = {
    loss: (lossSum[0] as number) / count,
    gradNorm: norm[0] as number,
    async metrics() {
      const values: Record<string, number> = {};
      for (const [name, sum] of metrics) values[name] = ((await sum.data())[0] as number) / count;
      return values;
    },
    dispose() {
      loss.dispose();
      gradNorm.dispose();
      tf.dispose([...metrics.values()]);
    },
  };
  if (!Number.isFinite(result.loss) || !Number.isFinite(result.gradNorm)) {
    tf.dispose([...grads.values()]);
    return { ...result, applied: false };
  }

  const clipped = new Map<string, tf.Tensor>();
  tf.tidy(() => {
    // torch.nn.utils.clip_grad_norm_: scale by max_norm / (norm + 1e-6) when that is below 1.
    const scale =
      options.gradClip > 0 ? tf.minimum(1, tf.div(options.gradClip, tf.add(gradNorm, 1e-6))) : tf.scalar(1);
    for (const [name, grad] of grads) clipped.set(name, tf.keep(tf.mul(grad, scale)));
  });
  tf.dispose([...grads.values()]);
  optimizer.apply(model.weights, clipped, options.lr);
  tf.dispose([...clipped.values()]);
  workers?.publish(model);
  return { ...result, applied: true };
}
