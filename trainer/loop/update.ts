/**
 * One optimizer update: forward and backward over `accumulation_steps` batches (MiniMind divides
 * each batch's loss by accumulation_steps and sums the gradients), global-norm clipping, AdamW.
 * With data-parallel workers each batch is split into shards computed concurrently and the
 * gradients summed in a fixed order. Without workers nothing is read back here, so a GPU backend
 * never stalls; values are read at log intervals.
 */
import * as tf from "@tensorflow/tfjs-core";
import type { DataFormat } from "../data/records.ts";
import type { Batch } from "../data/samples.ts";
import type { AdamW } from "../optim/adamw.ts";
import { shardGradients } from "../parallel/shard-gradients.ts";
import { byLossTokens, type Shard, splitBatch } from "../parallel/shards.ts";
import type { RunContext, StageTask } from "./task.ts";

export interface UpdateOptions {
  lr: number;
  accumulationSteps: number;
  gradClip: number;
}

export interface UpdateResult {
  /** Mean loss over the batches, the gradient norm before clipping, and the stage's metrics. */
  read(): Promise<{ loss: number; gradNorm: number; metrics: Record<string, number> }>;
  dispose(): void;
}

export async function trainingStep<F extends DataFormat>(
  run: RunContext<F>,
  task: StageTask<F>,
  optimizer: AdamW,
  batches: Batch[],
  options: UpdateOptions,
): Promise<UpdateResult> {
  const workers = run.workers ?? null;
  const parts = (workers?.count ?? 0) + 1;
  const split = batches.map((batch) =>
    splitBatch(batch, parts, task.pairedRows ?? false, task.normaliser ?? byLossTokens),
  );
  const shardsOf = (part: number) =>
    split.map((shards) => shards[part]).filter((s): s is Shard => s !== null);

  const remote = workers?.dispatch(
    Array.from({ length: workers.count }, (_, i) => shardsOf(i + 1)),
    options.accumulationSteps,
  );
  const local = shardGradients(run, task, shardsOf(0), options.accumulationSteps);
  const grads = local.grads;
  let loss = local.loss;
  const metrics = local.metrics;
  if (workers && remote) {
    const replies = await remote;
    tf.tidy(() => {
      for (const [name, variable] of run.model.weights) {
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
  const clipped = new Map<string, tf.Tensor>();
  tf.tidy(() => {
    // torch.nn.utils.clip_grad_norm_: scale by max_norm / (norm + 1e-6) when that is below 1.
    const scale =
      options.gradClip > 0 ? tf.minimum(1, tf.div(options.gradClip, tf.add(gradNorm, 1e-6))) : tf.scalar(1);
    for (const [name, grad] of grads) clipped.set(name, tf.keep(tf.mul(grad, scale)));
  });
  tf.dispose([...grads.values()]);
  optimizer.apply(run.model.weights, clipped, options.lr);
  tf.dispose([...clipped.values()]);
  workers?.publish(run.model);

  const count = batches.length;
  return {
    async read() {
      const values: Record<string, number> = {};
      for (const [name, sum] of metrics) values[name] = (await sum.data())[0] / count;
      return { loss: (await loss.data())[0] / count, gradNorm: (await gradNorm.data())[0], metrics: values };
    },
    dispose() {
      loss.dispose();
      gradNorm.dispose();
      tf.dispose([...metrics.values()]);
    },
  };
}
