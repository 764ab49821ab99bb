/**
 * Choosing the next token from one row of logits, on the CPU in float64 so the choice is the same
 * on every backend given the same logits: greedy (temperature 0) or nucleus (top-p) sampling.
 */
import type { Rng } from "../../lib/rng/index.ts";

/** Index of the largest logit; ties go to the lowest index. */
export function argmax(logits: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best;
}

export interface SamplingOptions {
  /** 0: greedy. */
  temperature: number;
  /** Keep the smallest set of most likely tokens whose probability reaches this (1: all). */
  topP: number;
  /** Needed when temperature > 0. */
  rng?: Rng;
}

/** A token id drawn from softmax(logits / temperature), restricted to the top-p nucleus. */
export function chooseToken(logits: ArrayLike<number>, options: SamplingOptions): number {
  if (options.temperature <= 0) return argmax(logits);
  if (!options.rng) throw new Error("chooseToken: sampling needs an rng");
  const n = logits.length;
  const max = logits[argmax(logits)];
  const probs = new Float64Array(n);
  let total = 0;
  for (let i = 0; i < n; i++) {
    probs[i] = Math.exp((logits[i] - max) / options.temperature);
    total += probs[i];
  }
  // Most likely first; equal probabilities keep id order, so the nucleus is well defined.
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => probs[b] - probs[a] || a - b);
  let kept = 0;
  let mass = 0;
  while (kept < n && (kept === 0 || mass < options.topP * total)) mass += probs[order[kept++]];
  let draw = options.rng.nextFloat() * mass;
  for (let k = 0; k < kept; k++) {
    draw -= probs[order[k]];
    if (draw < 0) return order[k];
  }
  return order[kept - 1];
}
