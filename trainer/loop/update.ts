/**
 * One optimizer update: forward and backward over `accumulation_steps` batches (MiniMind divides
 * each batch's loss by accumulation_steps and sums the gradients), global-norm clipping, AdamW.
 * Nothing is read back here, so a GPU backend never stalls; values are read at log intervals.
 */
import * as tf from "@tensorflow/tfjs-core";
import type { DataFormat } from "../data/records.ts";
import type { Batch } from "../data/samples.ts";
import type { AdamW } from "../optim/adamw.ts";
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

export function trainingStep<F extends DataFormat>(
  run: RunContext<F>,
  task: StageTask<F>,
  optimizer: AdamW,
  batches: Batch[],
  options: UpdateOptions,
): UpdateResult {
  const params = run.model.weights;
  const variables = [...params.values()];
  let summed: Map<string, tf.Tensor> | null = null;
  let lossSum = tf.scalar(0);
  const metricSums = new Map<string, tf.Tensor>();

  for (const batch of batches) {
    const metrics: Record<string, tf.Scalar> = {};
    const { value, grads } = tf.variableGrads(() => {
      const out = task.loss(run, batch);
      for (const [name, metric] of Object.entries(out.metrics ?? {})) metrics[name] = tf.keep(metric);
      return tf.div(out.loss, options.accumulationSteps) as tf.Scalar;
    }, variables);
    tf.tidy(() => {
      const keepOld = lossSum;
      lossSum = tf.keep(tf.add(lossSum, tf.mul(value, options.accumulationSteps)));
      keepOld.dispose();
      for (const [name, metric] of Object.entries(metrics)) {
        const old = metricSums.get(name);
        metricSums.set(name, tf.keep(old ? tf.add(old, metric) : tf.clone(metric)));
        old?.dispose();
      }
    });
    value.dispose();
    tf.dispose(Object.values(metrics));
    if (!summed) {
      summed = new Map(Object.entries(grads));
    } else {
      for (const [name, grad] of Object.entries(grads)) {
        const total = summed.get(name) as tf.Tensor;
        summed.set(name, tf.add(total, grad));
        total.dispose();
        grad.dispose();
      }
    }
  }

  const grads = summed as Map<string, tf.Tensor>;
  const gradNorm = tf.tidy(() => tf.sqrt(tf.addN([...grads.values()].map((g) => tf.sum(tf.square(g))))));
  const clipped = new Map<string, tf.Tensor>();
  tf.tidy(() => {
    // torch.nn.utils.clip_grad_norm_: scale by max_norm / (norm + 1e-6) when that is below 1.
    const scale =
      options.gradClip > 0 ? tf.minimum(1, tf.div(options.gradClip, tf.add(gradNorm, 1e-6))) : tf.scalar(1);
    for (const [name, grad] of grads) clipped.set(name, tf.keep(tf.mul(grad, scale)));
  });
  tf.dispose([...grads.values()]);
  optimizer.apply(params, clipped, options.lr);
  tf.dispose([...clipped.values()]);

  const count = batches.length;
  return {
    async read() {
      const metrics: Record<string, number> = {};
      for (const [name, sum] of metricSums) metrics[name] = (await sum.data())[0] / count;
      return { loss: (await lossSum.data())[0] / count, gradNorm: (await gradNorm.data())[0], metrics };
    },
    dispose() {
      lossSum.dispose();
      gradNorm.dispose();
      tf.dispose([...metricSums.values()]);
    },
  };
}
