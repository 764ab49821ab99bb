/**
 * MiniMind decoder (jingyaogong/minimind `model/model_minimind.py`, dense variant) in
 * TensorFlow.js: token embedding, pre-norm blocks of grouped-query causal attention with rotary
 * embeddings and a SwiGLU MLP, final RMSNorm, and an output head tied to the embedding. The
 * "minimind3" revision also RMS-normalises each head's query and key before the rotation.
 *
 * Weights live in `tf.Variable`s under MiniMind's state-dict names and PyTorch's layouts
 * ([out, in] for linear layers), so a checkpoint is a state dict PyTorch can load as is.
 */
import * as tf from "@tensorflow/tfjs-core";
import { EMBEDDING_NAME, headDim, type ModelConfig, parameterShapes } from "./config.ts";

export type Weights = Map<string, tf.Variable>;

/** Keys and values of one attention layer for all positions so far: [batch, kvHeads, positions, headDim]. */
export interface LayerCache {
  k: tf.Tensor4D;
  v: tf.Tensor4D;
}

export class MiniMind {
  readonly config: ModelConfig;
  readonly weights: Weights;
  private readonly ropeCos: tf.Tensor2D;
  private readonly ropeSin: tf.Tensor2D;
  private readonly rotateHalf: tf.Tensor2D;

  /**
   * `options.frozen` makes the variables non-trainable and names them `frozen/<name>`, so a second
   * model (DPO's reference) can live beside the policy: TensorFlow.js refuses duplicate variable names.
   */
  constructor(config: ModelConfig, initial: Map<string, Float32Array>, options: { frozen?: boolean } = {}) {
    this.config = config;
    this.weights = new Map();
    const prefix = options.frozen ? "frozen/" : "";
    for (const [name, shape] of parameterShapes(config)) {
      const values = initial.get(name);
      if (!values) throw new Error(`missing weight ${name}`);
      const variable = tf.tidy(() =>
        tf.variable(tf.tensor(values, shape, "float32"), !options.frozen, prefix + name),
      );
      this.weights.set(name, variable);
    }
    const d = headDim(config);
    const { cos, sin } = ropeTables(d, config.max_position_embeddings, config.rope_theta);
    this.ropeCos = tf.tensor2d(cos, [config.max_position_embeddings, d]);
    this.ropeSin = tf.tensor2d(sin, [config.max_position_embeddings, d]);
    this.rotateHalf = tf.tensor2d(rotateHalfMatrix(d), [d, d]);
  }

  private w(name: string): tf.Variable {
    const weight = this.weights.get(name);
    if (!weight) throw new Error(`unknown weight ${name}`);
    return weight;
  }

  /**
   * Final hidden states [batch*seq, hidden] for token ids [batch, seq]. With `cache`, the positions
   * start after the cached ones and each layer's cache is replaced by one that includes this call's.
   * The replaced tensors are not disposed: the caller owns the cache (eval/generate.ts DecodeSession
   * runs each step in a tidy, keeps the new cache and disposes the old).
   */
  hidden(ids: tf.Tensor2D, cache?: LayerCache[]): tf.Tensor2D {
    const [batch, seq] = ids.shape;
    const start = cache?.[0] ? cache[0].k.shape[2] : 0;
    const c = this.config;
    let x: tf.Tensor = tf.reshape(tf.gather(this.w(EMBEDDING_NAME), tf.reshape(ids, [-1])), [
      batch * seq,
      c.hidden_size,
    ]);
    const cos = tf.slice(this.ropeCos, [start, 0], [seq, -1]);
    const sin = tf.slice(this.ropeSin, [start, 0], [seq, -1]);
    const mask = causalMask(seq, start + seq);
    for (let i = 0; i < c.num_hidden_layers; i++) {
      const p = `model.layers.${i}`;
      const attn = this.attention(
        rmsNorm(x, this.w(`${p}.input_layernorm.weight`), c),
        p,
        batch,
        seq,
        cos,
        sin,
        mask,
        cache,
        i,
      );
      x = tf.add(x, attn);
      const xn = rmsNorm(x, this.w(`${p}.post_attention_layernorm.weight`), c);
      const gate = linear(xn, this.w(`${p}.mlp.gate_proj.weight`));
      const up = linear(xn, this.w(`${p}.mlp.up_proj.weight`));
      x = tf.add(x, linear(tf.mul(tf.mul(gate, tf.sigmoid(gate)), up), this.w(`${p}.mlp.down_proj.weight`)));
    }
    return rmsNorm(x, this.w("model.norm.weight"), c) as tf.Tensor2D;
  }

  /** Logits over the vocabulary, [rows, vocab], from hidden states [rows, hidden] (tied head). */
  logits(hidden: tf.Tensor2D): tf.Tensor2D {
    return linear(hidden, this.w(EMBEDDING_NAME)) as tf.Tensor2D;
  }

  private attention(
    xn: tf.Tensor,
    prefix: string,
    batch: number,
    seq: number,
    cos: tf.Tensor,
    sin: tf.Tensor,
    mask: tf.Tensor2D,
    cache: LayerCache[] | undefined,
    layer: number,
  ): tf.Tensor {
    const c = this.config;
    const d = headDim(c);
    const heads = c.num_attention_heads;
    const kvHeads = c.num_key_value_heads;
    const groups = heads / kvHeads;
    const toHeads = (t: tf.Tensor, n: number) => tf.reshape(t, [batch, seq, n, d]) as tf.Tensor4D;
    let q = toHeads(linear(xn, this.w(`${prefix}.self_attn.q_proj.weight`)), heads);
    let k = toHeads(linear(xn, this.w(`${prefix}.self_attn.k_proj.weight`)), kvHeads);
    const v = toHeads(linear(xn, this.w(`${prefix}.self_attn.v_proj.weight`)), kvHeads);
    if (c.model_revision === "minimind3") {
      q = rmsNorm(q, this.w(`${prefix}.self_attn.q_norm.weight`), c) as tf.Tensor4D;
      k = rmsNorm(k, this.w(`${prefix}.self_attn.k_norm.weight`), c) as tf.Tensor4D;
    }
    q = this.rope(q, cos, sin);
    k = this.rope(k, cos, sin);

    // [batch, kvHeads, positions, d]; the query heads that share a key head are stacked along the
    // positions axis, so grouped-query attention is one batched matmul with no repeat of k and v.
    let kT = tf.transpose(k, [0, 2, 1, 3]) as tf.Tensor4D;
    let vT = tf.transpose(v, [0, 2, 1, 3]) as tf.Tensor4D;
    const past = cache?.[layer];
    if (cache) {
      if (past) {
        kT = tf.concat([past.k, kT], 2);
        vT = tf.concat([past.v, vT], 2);
      }
      cache[layer] = { k: kT, v: vT };
    }
    const positions = kT.shape[2];
    const qT = tf.reshape(tf.mul(tf.transpose(q, [0, 2, 1, 3]), 1 / Math.sqrt(d)), [
      batch,
      kvHeads,
      groups * seq,
      d,
    ]);
    const scores = tf.reshape(tf.matMul(qT, kT, false, true), [batch, heads, seq, positions]);
    const probs = tf.softmax(tf.add(scores, mask));
    const out = tf.matMul(tf.reshape(probs, [batch, kvHeads, groups * seq, positions]), vT);
    const merged = tf.reshape(tf.transpose(tf.reshape(out, [batch, heads, seq, d]), [0, 2, 1, 3]), [
      batch * seq,
      heads * d,
    ]);
    return linear(merged, this.w(`${prefix}.self_attn.o_proj.weight`));
  }

  /** Rotary embedding, MiniMind's rotate-half form: x·cos + rotate_half(x)·sin, per position. */
  private rope(x: tf.Tensor4D, cos: tf.Tensor, sin: tf.Tensor): tf.Tensor4D {
    const [batch, seq, heads, d] = x.shape;
    const rotated = tf.reshape(tf.matMul(tf.reshape(x, [-1, d]), this.rotateHalf), x.shape);
    const c = tf.reshape(cos, [1, seq, 1, d]);
    const s = tf.reshape(sin, [1, seq, 1, d]);
    return tf.reshape(tf.add(tf.mul(x, c), tf.mul(rotated, s)), [batch, seq, heads, d]);
  }

  dispose(): void {
    for (const weight of this.weights.values()) weight.dispose();
    this.ropeCos.dispose();
    this.ropeSin.dispose();
    this.rotateHalf.dispose();
  }
}

/** y = x Wᵀ with W in PyTorch's [out, in] layout. */
function linear(x: tf.Tensor, weight: tf.Tensor): tf.Tensor {
  return tf.matMul(x as tf.Tensor2D, weight as tf.Tensor2D, false, true);
}

function rmsNorm(x: tf.Tensor, weight: tf.Tensor, config: ModelConfig): tf.Tensor {
  const inverseRms = tf.rsqrt(tf.add(tf.mean(tf.square(x), -1, true), config.rms_norm_eps));
  return tf.mul(tf.mul(x, inverseRms), weight);
}

/**
 * Additive causal mask [queries, positions]: query i (the last `queries` positions) sees keys ≤ its
 * own. Built per forward pass (queries × positions floats, microseconds) rather than cached, so
 * the live tensor count does not grow with every new sequence length.
 */
function causalMask(queries: number, positions: number): tf.Tensor2D {
  const values = new Float32Array(queries * positions);
  const offset = positions - queries;
  for (let i = 0; i < queries; i++) {
    for (let j = i + offset + 1; j < positions; j++) values[i * positions + j] = -1e9;
  }
  return tf.tensor2d(values, [queries, positions]);
}

/** MiniMind's `precompute_freqs_cis`: cos/sin tables with the half-dimension frequencies repeated. */
export function ropeTables(
  d: number,
  positions: number,
  theta: number,
): { cos: Float32Array; sin: Float32Array } {
  const half = d / 2;
  const cos = new Float32Array(positions * d);
  const sin = new Float32Array(positions * d);
  for (let i = 0; i < half; i++) {
    const frequency = 1 / theta ** ((2 * i) / d);
    for (let t = 0; t < positions; t++) {
      const angle = Math.fround(t * Math.fround(frequency));
      cos[t * d + i] = cos[t * d + i + half] = Math.cos(angle);
      sin[t * d + i] = sin[t * d + i + half] = Math.sin(angle);
    }
  }
  return { cos, sin };
}

/** R with x·R = cat(−x[d/2:], x[:d/2]): rotate-half as a matmul, which XNNPACK runs fast. */
function rotateHalfMatrix(d: number): Float32Array {
  const half = d / 2;
  const r = new Float32Array(d * d);
  for (let i = 0; i < half; i++) {
    r[(i + half) * d + i] = -1;
    r[i * d + i + half] = 1;
  }
  return r;
}
