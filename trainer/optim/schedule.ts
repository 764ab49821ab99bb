/**
 * MiniMind's learning-rate schedule (`trainer_utils.get_lr`): cosine from `lr` down to lr/10 over the
 * run. `step` and `total` count optimizer updates.
 */
export function cosineLearningRate(step: number, total: number, lr: number): number {
  return lr * (0.1 + 0.45 * (1 + Math.cos((Math.PI * step) / Math.max(total, 1))));
}
