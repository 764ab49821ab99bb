/**
 * AdamW with decoupled weight decay, as torch.optim.AdamW (MiniMind's optimizer). Written out
 * rather than using tf.train.adam because that one has no decoupled decay and keeps its bias
 * corrections as running products that `setWeights()` cannot restore bit for bit; here the
 * bias corrections are recomputed from the step count in float64, so the whole state is the two
 * moments per parameter plus one integer.
 */
import * as tf from "@tensorflow/tfjs-core";

export interface AdamWOptions {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export const ADAMW_DEFAULTS: AdamWOptions = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 };

interface Slots {
  expAvg: tf.Variable;
  expAvgSq: tf.Variable;
}

export class AdamW {
  readonly options: AdamWOptions;
  /** Optimizer updates applied so far (torch's `state['step']`, the same for every parameter). */
  step = 0;
  private readonly slots = new Map<string, Slots>();

  constructor(params: Map<string, tf.Variable>, options: AdamWOptions = ADAMW_DEFAULTS) {
    this.options = options;
    for (const [name, param] of params) {
      this.slots.set(name, {
        expAvg: tf.variable(tf.zerosLike(param), false, `${name}.exp_avg`),
        expAvgSq: tf.variable(tf.zerosLike(param), false, `${name}.exp_avg_sq`),
      });
    }
  }

  /** One update of every parameter in `params` from `grads` (same names) at learning rate `lr`. */
  apply(params: Map<string, tf.Variable>, grads: Map<string, tf.Tensor>, lr: number): void {
    this.step += 1;
    const { beta1, beta2, eps, weightDecay } = this.options;
    const correction1 = 1 - beta1 ** this.step;
    const sqrtCorrection2 = Math.sqrt(1 - beta2 ** this.step);
    for (const [name, param] of params) {
      const grad = grads.get(name);
      const slots = this.slots.get(name);
      if (!grad || !slots) throw new Error(`AdamW: no gradient or state for ${name}`);
      tf.tidy(() => {
        const expAvg = tf.add(tf.mul(slots.expAvg, beta1), tf.mul(grad, 1 - beta1));
        const expAvgSq = tf.add(tf.mul(slots.expAvgSq, beta2), tf.mul(tf.square(grad), 1 - beta2));
        const denominator = tf.add(tf.div(tf.sqrt(expAvgSq), sqrtCorrection2), eps);
        const decayed = tf.mul(param, 1 - lr * weightDecay);
        param.assign(tf.sub(decayed, tf.div(tf.mul(expAvg, lr / correction1), denominator)));
        slots.expAvg.assign(expAvg);
        slots.expAvgSq.assign(expAvgSq);
      });
    }
  }

  /** Every slot tensor by name (`<param>.exp_avg`, `<param>.exp_avg_sq`), in parameter order. */
  slotTensors(): Map<string, tf.Variable> {
    const out = new Map<string, tf.Variable>();
    for (const [name, slots] of this.slots) {
      out.set(`${name}.exp_avg`, slots.expAvg);
      out.set(`${name}.exp_avg_sq`, slots.expAvgSq);
    }
    return out;
  }

  /** Restore moments saved by `slotTensors()`; every slot must be present with the same shape. */
  restore(step: number, values: Map<string, Float32Array>): void {
    for (const [name, variable] of this.slotTensors()) {
      const saved = values.get(name);
      if (!saved) throw new Error(`optimizer state has no ${name}`);
      if (saved.length !== variable.size) {
        throw new Error(`optimizer state ${name} has ${saved.length} values, expected ${variable.size}`);
      }
      tf.tidy(() => variable.assign(tf.tensor(saved, variable.shape, "float32")));
    }
    this.step = step;
  }

  dispose(): void {
    for (const { expAvg, expAvgSq } of this.slots.values()) {
      expAvg.dispose();
      expAvgSq.dispose();
    }
  }
}
