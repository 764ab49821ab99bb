/**
 * Model weights as plain arrays keyed by MiniMind's state-dict names: random initialisation,
 * safetensors encoding, and loading from a file, a step checkpoint or a stage folder. TensorFlow-free.
 */
import { open, stat } from "node:fs/promises";
import { join } from "node:path";
import { type CheckpointState, type LoadOptions, loadNamedCheckpoint } from "../../lib/checkpoint/index.ts";
import { describeFsError, UserError } from "../../lib/cli/errors.ts";
import type { Rng } from "../../lib/rng/index.ts";
import {
  decodeSafetensors,
  encodeSafetensors,
  type FloatDtype,
  floatToFloat32,
  fromFloat32,
  isFloatDtype,
  readSafetensors,
  type SafeTensor,
} from "../../lib/safetensors/index.ts";
import { isLegacyTorchFormat, isZip, readPth } from "../../lib/torch/index.ts";
import { type ModelConfig, parameterShapes, TIED_HEAD_NAME } from "./config.ts";
import { requireMiniMindTensors } from "./pth.ts";

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

/**
 * model.safetensors bytes: PyTorch layouts, `lm_head.weight` written beside the tied embedding;
 * float32 (a checkpoint's), or rounded to `dtype` as PyTorch's `.half()` / `.bfloat16()` would.
 */
export function encodeWeights(
  config: ModelConfig,
  weights: StateDict,
  metadata: Record<string, string> = {},
  dtype: FloatDtype = "F32",
): Uint8Array[] {
  const entries: Array<[string, { dtype: FloatDtype; shape: number[]; data: Float32Array | Uint16Array }]> =
    [];
  for (const [name, shape] of parameterShapes(config)) {
    const data = weights.get(name);
    if (!data) throw new Error(`encodeWeights: missing ${name}`);
    entries.push([name, { dtype, shape, data: fromFloat32(data, dtype) }]);
  }
  const embedding = entries[0][1];
  entries.push([TIED_HEAD_NAME, { ...embedding }]);
  return encodeSafetensors(entries, { format: "pt", ...metadata });
}

/**
 * The model's weights from a file's tensors, as float32: the tensors must be exactly the model's
 * state dict (see requireMiniMindTensors), each in a float type. Errors name the file and tensor.
 */
export function weightsFromTensors(
  config: ModelConfig,
  tensors: Map<string, SafeTensor>,
  source: string,
): StateDict {
  requireMiniMindTensors(config, tensors, source);
  const weights: StateDict = new Map();
  for (const [name] of parameterShapes(config)) {
    const tensor = (tensors.get(name) ?? tensors.get(TIED_HEAD_NAME)) as SafeTensor;
    if (!isFloatDtype(tensor.dtype)) {
      throw new UserError(
        `${source}: tensor ${name} is ${tensor.dtype}, expected a float type (F32, F16, BF16)`,
      );
    }
    weights.set(name, floatToFloat32(tensor.dtype, tensor.data as Float32Array | Uint16Array));
  }
  return weights;
}

/**
 * The tensors of a bare weights file: a PyTorch .pth (torch.save's zip format, or its legacy
 * format, which gets an error saying how to convert it) or else a .safetensors file.
 */
async function readWeightsFile(path: string): Promise<Map<string, SafeTensor>> {
  const prefix = new Uint8Array(16);
  try {
    const handle = await open(path, "r");
    try {
      await handle.read(prefix, 0, prefix.length, 0);
    } finally {
      await handle.close();
    }
  } catch (error) {
    throw new UserError(`${path}: cannot read weights file: ${describeFsError(error)}`);
  }
  if (isZip(prefix) || isLegacyTorchFormat(prefix) || /\.(pth|pt)$/i.test(path))
    return (await readPth(path)).tensors;
  return (await readSafetensors(path)).tensors;
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
 * Read the weights `flag` names: a `.safetensors` or `.pth` file, a step checkpoint directory, or a stage
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
  if (!isDir) return { tensors: await readWeightsFile(path), file: path, source: path, state: null };
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
