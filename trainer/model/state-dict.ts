/**
 * Model weights as plain arrays keyed by MiniMind's state-dict names: random initialisation,
 * safetensors encoding, and loading from a file, a step checkpoint or a stage folder. TensorFlow-free.
 */
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { type CheckpointState, type LoadOptions, loadNamedCheckpoint } from "../../lib/checkpoint/index.ts";
import { describeFsError, UserError } from "../../lib/cli/errors.ts";
import type { Rng } from "../../lib/rng/index.ts";
import {
  decodeSafetensors,
  encodeSafetensors,
  readSafetensors,
  type SafeTensor,
} from "../../lib/safetensors/index.ts";
import { EMBEDDING_NAME, type ModelConfig, parameterShapes, TIED_HEAD_NAME } from "./config.ts";

export type StateDict = Map<string, Float32Array>;

export const MODEL_FILE = "model.safetensors";

/**
 * Fresh weights: norms at 1, every matrix N(0, 0.02) — what recent `transformers` versions give
 * MiniMind through `post_init()` (initializer_range 0.02), drawn from the seeded "init" stream.
 */
export function initialWeights(config: ModelConfig, rng: Rng): StateDict {
  const weights: StateDict = new Map();
  for (const [name, shape] of parameterShapes(config)) {
    const values = new Float32Array(shape.reduce((a, b) => a * b, 1));
    if (shape.length === 1) values.fill(1);
    else for (let i = 0; i < values.length; i++) values[i] = rng.nextNormal(0, 0.02);
    weights.set(name, values);
  }
  return weights;
}

/** model.safetensors bytes: float32, PyTorch layouts, `lm_head.weight` written beside the tied embedding. */
export function encodeWeights(
  config: ModelConfig,
  weights: StateDict,
  metadata: Record<string, string> = {},
): Uint8Array[] {
  const entries: Array<[string, { dtype: "F32"; shape: number[]; data: Float32Array }]> = [];
  for (const [name, shape] of parameterShapes(config)) {
    const data = weights.get(name);
    if (!data) throw new Error(`encodeWeights: missing ${name}`);
    entries.push([name, { dtype: "F32", shape, data }]);
  }
  const embedding = entries[0][1];
  entries.push([TIED_HEAD_NAME, { ...embedding }]);
  return encodeSafetensors(entries, { format: "pt", ...metadata });
}

function halfToFloat(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 31) return fraction ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}

function toFloat32(tensor: SafeTensor, name: string, source: string): Float32Array {
  switch (tensor.dtype) {
    case "F32":
      return tensor.data;
    case "F16":
      return Float32Array.from(tensor.data, halfToFloat);
    case "BF16": {
      const out = new Uint32Array(tensor.data.length);
      for (let i = 0; i < out.length; i++) out[i] = tensor.data[i] << 16;
      return new Float32Array(out.buffer);
    }
    default:
      throw new UserError(
        `${source}: tensor ${name} is ${tensor.dtype}, expected a float type (F32, F16, BF16)`,
      );
  }
}

/** Check every parameter is present with the config's shape; errors name the file, tensor and both shapes. */
export function weightsFromTensors(
  config: ModelConfig,
  tensors: Map<string, SafeTensor>,
  source: string,
): StateDict {
  const weights: StateDict = new Map();
  for (const [name, shape] of parameterShapes(config)) {
    const tensor = tensors.get(name) ?? (name === EMBEDDING_NAME ? tensors.get(TIED_HEAD_NAME) : undefined);
    if (!tensor) throw new UserError(`${source}: no weight named ${name} (is it a MiniMind checkpoint?)`);
    if (tensor.shape.join("x") !== shape.join("x")) {
      throw new UserError(
        `${source}: ${name} has shape [${tensor.shape}], the model needs [${shape}] — ` +
          "the weights were trained with a different --hidden_size, --num_hidden_layers, head count or vocabulary",
      );
    }
    weights.set(name, toFloat32(tensor, name, source));
  }
  return weights;
}

/** Weights a user names: the tensors, the file they came from, and the checkpoint's state.json if any. */
export interface NamedWeights {
  tensors: Map<string, SafeTensor>;
  file: string;
  /** The weights file, or the checkpoint directory it belongs to. */
  source: string;
  state: CheckpointState | null;
}

/**
 * Read the weights `flag` names: a `.safetensors` file, a step checkpoint directory, or a stage
 * or checkpoints folder (its latest checkpoint whose hashes verify, older ones as fallback).
 */
export async function readNamedWeights(
  path: string,
  flag: string,
  options: Pick<LoadOptions, "onWarning" | "repair">,
): Promise<NamedWeights> {
  let isDir: boolean;
  try {
    isDir = (await stat(path)).isDirectory();
  } catch (error) {
    throw new UserError(`${flag} ${path}: ${describeFsError(error)}`);
  }
  if (!isDir)
    return { tensors: (await readSafetensors(path)).tensors, file: path, source: path, state: null };
  const found = await loadNamedCheckpoint(path, flag, { ...options, keepContents: true });
  const file = join(found.path, MODEL_FILE);
  const bytes = found.contents?.get(MODEL_FILE);
  if (!bytes) throw new UserError(`${found.path}: checkpoint has no ${MODEL_FILE}`);
  return { tensors: decodeSafetensors(bytes, file).tensors, file, source: found.path, state: found.state };
}

export interface WeightsSource {
  weights: StateDict;
  /** What was loaded, for the log: a file, or a checkpoint directory. */
  description: string;
  /** state.json of the checkpoint the weights came from, when they came from one. */
  checkpointState?: CheckpointState;
}

/** Initial weights for `--init_from` (see readNamedWeights), checked against `config`. */
export async function loadWeights(
  path: string,
  config: ModelConfig,
  onWarning: (m: string) => void,
): Promise<WeightsSource> {
  const named = await readNamedWeights(path, "--init_from", { onWarning });
  return {
    weights: weightsFromTensors(config, named.tensors, named.file),
    description: named.source,
    ...(named.state ? { checkpointState: named.state } : {}),
  };
}
