/** A model's current weights as arrays, read back from the backend (one read per variable). */
import type { MiniMind } from "./minimind.ts";
import type { StateDict } from "./state-dict.ts";

export async function readWeights(model: MiniMind): Promise<StateDict> {
  const weights: StateDict = new Map();
  for (const [name, variable] of model.weights) weights.set(name, (await variable.data()) as Float32Array);
  return weights;
}

/** The first weight holding a NaN or an infinity, or null: non-finite weights are never saved. */
export function firstNonFinite(weights: StateDict): string | null {
  for (const [name, values] of weights) {
    for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i])) return name;
  }
  return null;
}
