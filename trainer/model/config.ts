/** MiniMind model hyper-parameters (MiniMind2's `MiniMindConfig`, dense variant). TensorFlow-free. */
export interface ModelConfig {
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
  vocab_size: number;
  hidden_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  max_seq_len: number;
}

/** MiniMind2's rule: 8/3 of the hidden size, rounded up to a multiple of 64. */
export function intermediateSize(hiddenSize: number): number {
  return 64 * Math.ceil(Math.floor((hiddenSize * 8) / 3) / 64);
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
  return {
    vocab_size: args.vocab_size,
    hidden_size: args.hidden_size,
    num_hidden_layers: args.num_hidden_layers,
    num_attention_heads: args.num_attention_heads,
    num_key_value_heads: args.num_key_value_heads,
    intermediate_size: intermediateSize(args.hidden_size),
    max_position_embeddings: args.max_seq_len,
    rms_norm_eps: 1e-5,
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
      [`${p}.post_attention_layernorm.weight`, [h]],
      [`${p}.mlp.gate_proj.weight`, [config.intermediate_size, h]],
      [`${p}.mlp.up_proj.weight`, [config.intermediate_size, h]],
      [`${p}.mlp.down_proj.weight`, [h, config.intermediate_size]],
    );
  }
  shapes.push(["model.norm.weight", [h]]);
  return shapes;
}

export const TIED_HEAD_NAME = "lm_head.weight";
export const EMBEDDING_NAME = "model.embed_tokens.weight";

export function countParameters(config: ModelConfig): number {
  return parameterShapes(config).reduce((sum, [, shape]) => sum + shape.reduce((a, b) => a * b, 1), 0);
}
