import { UserError } from "../../lib/cli/errors.ts";
import { DEFAULT_MODEL_REVISION, MODEL_REVISIONS, type ModelRevision } from "../../lib/stages/table.ts";

/**
 * MiniMind model hyper-parameters (jingyaogong/minimind's `MiniMindConfig`, dense variant), for
 * either of the two layouts MiniMind has had. TensorFlow-free.
 */

/**
 * The MiniMind code revision the weights belong to (the names live with the stage defaults, so the
 * TensorFlow-free flag parser knows them):
 * - "minimind2": MiniMind2 (2025), RMSNorm eps 1e-5, MLP width 64·⌈⌊8h/3⌋/64⌉;
 * - "minimind3": MiniMind-3 (2026, model/model_minimind.py today), which adds an RMSNorm over each
 *   head's query and key before the rotary embedding (`self_attn.q_norm`, `self_attn.k_norm`),
 *   uses eps 1e-6 for every norm and an MLP width of 64·⌈πh/64⌉.
 * DEFAULT_MODEL_REVISION is what checkpoints without a `model_revision` (every one written before
 * it existed) hold.
 */
export { DEFAULT_MODEL_REVISION, MODEL_REVISIONS, type ModelRevision };

export function isModelRevision(value: unknown): value is ModelRevision {
  return (MODEL_REVISIONS as readonly unknown[]).includes(value);
}

export interface ModelConfig {
  model_revision: ModelRevision;
  vocab_size: number;
  hidden_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  intermediate_size: number;
  max_position_embeddings: number;
  rms_norm_eps: number;
  rope_theta: number;
  tie_word_embeddings: true;
}

export interface ModelShapeArgs {
  /** Default: DEFAULT_MODEL_REVISION. */
  model_revision?: ModelRevision;
  vocab_size: number;
  hidden_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  max_seq_len: number;
}

/** The MLP width each revision's MiniMindConfig derives from the hidden size. */
export function intermediateSize(
  hiddenSize: number,
  revision: ModelRevision = DEFAULT_MODEL_REVISION,
): number {
  // minimind3: math.ceil(hidden_size * math.pi / 64) * 64 — the same double arithmetic as Python's.
  if (revision === "minimind3") return Math.ceil((hiddenSize * Math.PI) / 64) * 64;
  // minimind2: 8/3 of the hidden size, rounded up to a multiple of 64.
  return 64 * Math.ceil(Math.floor((hiddenSize * 8) / 3) / 64);
}

/** The revision a checkpoint's state.json `model_config` records (MiniMind2 when it predates the field). */
export function savedModelRevision(modelConfig: Record<string, unknown>, source: string): ModelRevision {
  const saved = modelConfig.model_revision;
  if (saved === undefined) return DEFAULT_MODEL_REVISION;
  if (!isModelRevision(saved)) {
    throw new UserError(
      `${source}: model_config.model_revision is ${JSON.stringify(saved)}, expected one of ${MODEL_REVISIONS.join(", ")}`,
    );
  }
  return saved;
}

/**
 * The model a checkpoint was trained as, from its state.json `model_config` (`source` names the
 * checkpoint in errors); `maxSeqLen` overrides the context length when not 0.
 */
export function savedModelConfig(saved: Record<string, unknown>, source: string, maxSeqLen = 0): ModelConfig {
  const need = (key: keyof ModelConfig): number => {
    const value = saved[key];
    if (typeof value !== "number") throw new UserError(`${source}: state.json model_config has no ${key}`);
    return value;
  };
  const config = resolveModelConfig({
    model_revision: savedModelRevision(saved, `${source}/state.json`),
    vocab_size: need("vocab_size"),
    hidden_size: need("hidden_size"),
    num_hidden_layers: need("num_hidden_layers"),
    num_attention_heads: need("num_attention_heads"),
    num_key_value_heads: need("num_key_value_heads"),
    max_seq_len: maxSeqLen || need("max_position_embeddings"),
  });
  return { ...config, intermediate_size: need("intermediate_size") };
}

export function resolveModelConfig(args: ModelShapeArgs): ModelConfig {
  const problems: string[] = [];
  if (args.hidden_size % args.num_attention_heads !== 0) {
    problems.push(
      `--hidden_size ${args.hidden_size} must be divisible by --num_attention_heads ${args.num_attention_heads}`,
    );
  }
  if (args.num_attention_heads % args.num_key_value_heads !== 0) {
    problems.push(
      `--num_attention_heads ${args.num_attention_heads} must be a multiple of --num_key_value_heads ${args.num_key_value_heads}`,
    );
  }
  if ((args.hidden_size / args.num_attention_heads) % 2 !== 0) {
    problems.push(
      `head size ${args.hidden_size / args.num_attention_heads} must be even for rotary embeddings`,
    );
  }
  if (problems.length > 0) throw new RangeError(problems.join("; "));
  const revision = args.model_revision ?? DEFAULT_MODEL_REVISION;
  return {
    model_revision: revision,
    vocab_size: args.vocab_size,
    hidden_size: args.hidden_size,
    num_hidden_layers: args.num_hidden_layers,
    num_attention_heads: args.num_attention_heads,
    num_key_value_heads: args.num_key_value_heads,
    intermediate_size: intermediateSize(args.hidden_size, revision),
    max_position_embeddings: args.max_seq_len,
    rms_norm_eps: revision === "minimind3" ? 1e-6 : 1e-5,
    rope_theta: 1e6,
    tie_word_embeddings: true,
  };
}

export function headDim(config: ModelConfig): number {
  return config.hidden_size / config.num_attention_heads;
}

/**
 * Every parameter with its MiniMind state-dict name and PyTorch shape ([out, in] for linear layers).
 * `lm_head.weight` is tied to the embedding and so is not a separate parameter; it is written to
 * safetensors under both names so PyTorch's `load_state_dict` finds it.
 */
export function parameterShapes(config: ModelConfig): Array<[name: string, shape: number[]]> {
  const h = config.hidden_size;
  const d = headDim(config);
  const shapes: Array<[string, number[]]> = [["model.embed_tokens.weight", [config.vocab_size, h]]];
  for (let i = 0; i < config.num_hidden_layers; i++) {
    const p = `model.layers.${i}`;
    shapes.push(
      [`${p}.input_layernorm.weight`, [h]],
      [`${p}.self_attn.q_proj.weight`, [config.num_attention_heads * d, h]],
      [`${p}.self_attn.k_proj.weight`, [config.num_key_value_heads * d, h]],
      [`${p}.self_attn.v_proj.weight`, [config.num_key_value_heads * d, h]],
      [`${p}.self_attn.o_proj.weight`, [h, config.num_attention_heads * d]],
      ...qkNormShapes(config, p),
      [`${p}.post_attention_layernorm.weight`, [h]],
      [`${p}.mlp.gate_proj.weight`, [config.intermediate_size, h]],
      [`${p}.mlp.up_proj.weight`, [config.intermediate_size, h]],
      [`${p}.mlp.down_proj.weight`, [h, config.intermediate_size]],
    );
  }
  shapes.push(["model.norm.weight", [h]]);
  return shapes;
}

/** MiniMind-3's per-head query and key norms (none in MiniMind2). */
function qkNormShapes(config: ModelConfig, prefix: string): Array<[string, number[]]> {
  if (config.model_revision !== "minimind3") return [];
  return [
    [`${prefix}.self_attn.q_norm.weight`, [headDim(config)]],
    [`${prefix}.self_attn.k_norm.weight`, [headDim(config)]],
  ];
}

/** A name only MiniMind-3 weights have: how a bare weights file tells its revision. */
export const QK_NORM_PROBE = "model.layers.0.self_attn.q_norm.weight";

export const TIED_HEAD_NAME = "lm_head.weight";
export const EMBEDDING_NAME = "model.embed_tokens.weight";

export function countParameters(config: ModelConfig): number {
  return parameterShapes(config).reduce((sum, [, shape]) => sum + shape.reduce((a, b) => a * b, 1), 0);
}
