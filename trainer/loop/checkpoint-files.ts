/** The files of a step checkpoint besides state.json: weights, optimizer state and RNG streams. */
import { UserError } from "../../lib/cli/errors.ts";
import type { Rng } from "../../lib/rng/index.ts";
import { rngStreamsToJson } from "../../lib/rng/index.ts";
import { decodeSafetensors, encodeSafetensors, requireTensor } from "../../lib/safetensors/index.ts";
import type { ModelConfig } from "../model/config.ts";
import type { MiniMind } from "../model/minimind.ts";
import { firstNonFinite, readWeights } from "../model/read-weights.ts";
import { encodeWeights, MODEL_FILE, type StateDict } from "../model/state-dict.ts";
import type { AdamW } from "../optim/adamw.ts";

export const OPTIMIZER_FILE = "optimizer.safetensors";
export const RNG_FILE = "rng.json";

async function encodeOptimizer(optimizer: AdamW): Promise<Uint8Array[]> {
  const entries: Array<
    [string, { dtype: "F32" | "I64"; shape: number[]; data: Float32Array | BigInt64Array }]
  > = [];
  for (const [name, slot] of optimizer.slotTensors()) {
    entries.push([name, { dtype: "F32", shape: slot.shape, data: (await slot.data()) as Float32Array }]);
  }
  entries.push(["step", { dtype: "I64", shape: [], data: BigInt64Array.of(BigInt(optimizer.step)) }]);
  const { beta1, beta2, eps, weightDecay } = optimizer.options;
  return encodeSafetensors(entries, {
    optimizer: "AdamW",
    betas: JSON.stringify([beta1, beta2]),
    eps: String(eps),
    weight_decay: String(weightDecay),
  });
}

export interface CheckpointFiles {
  /** File name → content, as the store commits them. */
  files: Record<string, Uint8Array[] | string>;
  /** The weights read back from the model, which model.safetensors holds (the legacy files are made from them). */
  weights: StateDict;
}

/** The files of a checkpoint, encoded; refuses weights that are not all finite (they would poison every resume). */
export async function checkpointFiles(
  config: ModelConfig,
  model: MiniMind,
  optimizer: AdamW,
  rngStreams: Record<string, Rng>,
): Promise<CheckpointFiles> {
  const weights = await readWeights(model);
  const bad = firstNonFinite(weights);
  if (bad !== null) throw new Error(`refusing to save: weight ${bad} holds NaN or infinite values`);
  return {
    files: {
      [MODEL_FILE]: encodeWeights(config, weights),
      [OPTIMIZER_FILE]: await encodeOptimizer(optimizer),
      [RNG_FILE]: rngStreamsToJson(rngStreams),
    },
    weights,
  };
}

/** Put the saved AdamW state back; `bytes` is optimizer.safetensors as verified by the store. */
export function restoreOptimizer(optimizer: AdamW, bytes: Uint8Array, source: string): void {
  const file = decodeSafetensors(bytes, source);
  const step = Number(requireTensor(file, "step", "I64", source).data[0]);
  const moments = new Map<string, Float32Array>();
  for (const name of optimizer.slotTensors().keys()) {
    moments.set(name, requireTensor(file, name, "F32", source).data);
  }
  try {
    optimizer.restore(step, moments);
  } catch (error) {
    throw new UserError(`${source}: ${(error as Error).message}`);
  }
}
