/**
 * Weights and model shape for inference from what a user points at: a step checkpoint, a stage
 * (or checkpoints) folder — its latest checkpoint whose hashes verify — or a bare weights file.
 *
 * The shape comes from the checkpoint's state.json `model_config`. A bare `.safetensors` file has no
 * state.json: its shape is read from the tensors (vocabulary, hidden size, layers, key/value width,
 * MLP width, revision: MiniMind-3 weights have q/k norms, one head wide), except MiniMind2's number
 * of attention heads, which no tensor shape reveals — that comes from --num_attention_heads
 * (default 4, the trainers' default).
 */
import type { CheckpointState } from "../../lib/checkpoint/index.ts";
import { UserError } from "../../lib/cli/errors.ts";
import type { SafeTensor } from "../../lib/safetensors/index.ts";
import {
  EMBEDDING_NAME,
  type ModelConfig,
  QK_NORM_PROBE,
  resolveModelConfig,
  savedModelConfig,
  TIED_HEAD_NAME,
} from "../model/config.ts";
import { readNamedWeights, type StateDict, weightsFromTensors } from "../model/state-dict.ts";

export interface ShapeHints {
  /** Attention heads of a bare weights file (state.json knows it for checkpoints). */
  numAttentionHeads: number;
  /** Context length; 0: the checkpoint's training length, or 128 for a bare file. */
  maxSeqLen: number;
}

export interface LoadedModel {
  config: ModelConfig;
  weights: StateDict;
  /** The checkpoint directory or file the weights came from. */
  source: string;
  /** state.json of the checkpoint, when there is one. */
  state: CheckpointState | null;
}

const DEFAULT_CONTEXT = 128;

function tensorShape(tensors: Map<string, SafeTensor>, name: string, source: string): number[] {
  const tensor = tensors.get(name);
  if (!tensor) throw new UserError(`${source}: no tensor ${name} (is it a MiniMind weights file?)`);
  return tensor.shape;
}

/** The model shape a bare weights file implies (MiniMind2's head count from the hints). */
export function configFromTensors(
  tensors: Map<string, SafeTensor>,
  source: string,
  hints: ShapeHints,
): ModelConfig {
  const embedding = tensors.has(EMBEDDING_NAME) ? EMBEDDING_NAME : TIED_HEAD_NAME;
  const [vocab, hidden] = tensorShape(tensors, embedding, source) as [number, number];
  let layers = 0;
  while (tensors.has(`model.layers.${layers}.self_attn.q_proj.weight`)) layers++;
  if (layers === 0)
    throw new UserError(`${source}: no model.layers.0.* tensors (is it a MiniMind weights file?)`);
  // MiniMind-3's q_norm is one head wide, so its files tell the head count; MiniMind2's do not.
  const qNorm = tensors.get(QK_NORM_PROBE);
  const [queryWidth] = tensorShape(tensors, "model.layers.0.self_attn.q_proj.weight", source) as [number];
  const heads = qNorm?.shape.length === 1 ? queryWidth / (qNorm.shape[0] as number) : hints.numAttentionHeads;
  const headSize = hidden / heads;
  const [kvWidth] = tensorShape(tensors, "model.layers.0.self_attn.k_proj.weight", source) as [number];
  const [intermediate] = tensorShape(tensors, "model.layers.0.mlp.gate_proj.weight", source) as [number];
  if (!Number.isInteger(headSize) || !Number.isInteger(kvWidth / headSize)) {
    throw new UserError(
      `${source}: hidden size ${hidden} and key/value width ${kvWidth} do not fit --num_attention_heads ${heads}`,
    );
  }
  let config: ModelConfig;
  try {
    config = resolveModelConfig({
      // Only MiniMind-3 weights have per-head query/key norms.
      model_revision: tensors.has(QK_NORM_PROBE) ? "minimind3" : "minimind2",
      vocab_size: vocab,
      hidden_size: hidden,
      num_hidden_layers: layers,
      num_attention_heads: heads,
      num_key_value_heads: kvWidth / headSize,
      max_seq_len: hints.maxSeqLen || DEFAULT_CONTEXT,
    });
  } catch (error) {
    throw new UserError(`${source}: ${(error as Error).message}`);
  }
  return { ...config, intermediate_size: intermediate };
}

export async function loadModelForInference(
  path: string,
  hints: ShapeHints,
  warn: (m: string) => void,
): Promise<LoadedModel> {
  // Inference only reads: it never repairs a checkpoint folder another process may own.
  const named = await readNamedWeights(path, "--checkpoint", { onWarning: warn, repair: false });
  const config = named.state
    ? savedModelConfig(named.state.model_config, named.source, hints.maxSeqLen)
    : configFromTensors(named.tensors, named.source, hints);
  return {
    config,
    weights: weightsFromTensors(config, named.tensors, named.file),
    source: named.source,
    state: named.state,
  };
}
