/**
 * MiniMind's own weights files: the state dict `MiniMindForCausalLM.state_dict()` has (its names,
 * its order, `lm_head.weight` beside the tied embedding) as a PyTorch .pth in float32, float16
 * or bfloat16 — what MiniMind's `eval_llm.py` loads with `load_state_dict(strict=True)` — and the
 * strict check of a file's tensors against a model shape. TensorFlow-free.
 */
import { UserError } from "../../lib/cli/errors.ts";
import { type FloatDtype, fromFloat32 } from "../../lib/safetensors/index.ts";
import {
  compareTensorShapes,
  describeMismatch,
  encodePth,
  type PthTensor,
  writePth,
} from "../../lib/torch/index.ts";
import {
  EMBEDDING_NAME,
  type ModelConfig,
  parameterShapes,
  QK_NORM_PROBE,
  TIED_HEAD_NAME,
} from "./config.ts";

/** Module order inside each MiniMind block: attention, the two norms, then the MLP. */
const LAYER_ORDER = [
  "self_attn.q_proj",
  "self_attn.k_proj",
  "self_attn.v_proj",
  "self_attn.o_proj",
  "self_attn.q_norm",
  "self_attn.k_norm",
  "input_layernorm",
  "post_attention_layernorm",
  "mlp.gate_proj",
  "mlp.down_proj",
  "mlp.up_proj",
];

/** Every tensor of the model with its shape, in the order MiniMind's `state_dict()` lists them. */
export function miniMindStateDictShapes(config: ModelConfig): Array<[name: string, shape: number[]]> {
  const shapes = new Map(parameterShapes(config));
  const names = [EMBEDDING_NAME];
  for (let i = 0; i < config.num_hidden_layers; i++) {
    for (const module of LAYER_ORDER) names.push(`model.layers.${i}.${module}.weight`);
  }
  names.push("model.norm.weight");
  const ordered: Array<[string, number[]]> = [];
  for (const name of names) {
    const shape = shapes.get(name);
    if (shape) ordered.push([name, shape]);
  }
  ordered.push([TIED_HEAD_NAME, [config.vocab_size, config.hidden_size]]);
  return ordered;
}

/**
 * The state dict as .pth tensors in `dtype`: `lm_head.weight` shares the embedding's storage,
 * as in `torch.save(model.state_dict())` of a model with tied embeddings.
 */
export function pthStateDict(
  config: ModelConfig,
  weights: ReadonlyMap<string, Float32Array>,
  dtype: FloatDtype,
): Array<[string, PthTensor]> {
  const converted = new Map<string, Float32Array | Uint16Array>();
  const entries: Array<[string, PthTensor]> = [];
  for (const [name, shape] of miniMindStateDictShapes(config)) {
    const source = name === TIED_HEAD_NAME ? EMBEDDING_NAME : name;
    let data = converted.get(source);
    if (!data) {
      const values = weights.get(source);
      if (!values) throw new Error(`pthStateDict: missing ${source}`);
      data = fromFloat32(values, dtype);
      converted.set(source, data);
    }
    entries.push([name, { dtype, shape, data }]);
  }
  return entries;
}

/** The bytes of a MiniMind .pth (see pthStateDict). */
export function encodeWeightsPth(
  config: ModelConfig,
  weights: ReadonlyMap<string, Float32Array>,
  dtype: FloatDtype,
): Uint8Array {
  return encodePth(pthStateDict(config, weights, dtype));
}

/** Write a MiniMind .pth atomically (see pthStateDict). */
export function writeWeightsPth(
  path: string,
  config: ModelConfig,
  weights: ReadonlyMap<string, Float32Array>,
  dtype: FloatDtype,
): Promise<void> {
  return writePth(path, pthStateDict(config, weights, dtype));
}

interface TensorLike {
  shape: readonly number[];
  data: ArrayBufferView;
}

function sameBytes(a: ArrayBufferView, b: ArrayBufferView): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(
    Buffer.from(b.buffer, b.byteOffset, b.byteLength),
  );
}

/**
 * Require `tensors` to be exactly the model's state dict: every parameter with its shape, nothing
 * else, `lm_head.weight` optional but equal to the embedding (Baton's head is tied). One line
 * names the file, what is missing, extra or mis-shaped, and the revision the names point to.
 */
export function requireMiniMindTensors(
  config: ModelConfig,
  tensors: ReadonlyMap<string, TensorLike>,
  source: string,
): void {
  const named = new Map(tensors);
  const head = named.get(TIED_HEAD_NAME);
  const embedding = named.get(EMBEDDING_NAME);
  if (head && !embedding) named.set(EMBEDDING_NAME, head);
  named.delete(TIED_HEAD_NAME);
  const mismatch = compareTensorShapes(named, parameterShapes(config));
  let problem = describeMismatch(mismatch);
  if (
    !problem &&
    head &&
    (head.shape.join("x") !== embedding?.shape.join("x") || !sameBytes(head.data, embedding.data))
  )
    problem = `${TIED_HEAD_NAME} differs from ${EMBEDDING_NAME}, but Baton's output head is tied to the embedding`;
  if (!problem) return;
  const fileRevision = tensors.has(QK_NORM_PROBE) ? "minimind3" : "minimind2";
  const hint =
    fileRevision !== config.model_revision
      ? ` — the file holds ${fileRevision} weights (${fileRevision === "minimind3" ? "with" : "without"} q/k norms), the model is ${config.model_revision}`
      : mismatch.misshaped.length > 0
        ? " — the weights were trained with a different hidden size, layer count, head count or vocabulary"
        : "";
  throw new UserError(`${source}: tensors do not fit the model: ${problem}${hint}`);
}
