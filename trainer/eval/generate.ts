/**
 * Autoregressive generation with a key/value cache: the prompt is run once, then each new token
 * costs one position. Prompts of equal length share a batch (the model has no padding mask, so
 * unequal prompts cannot share one), which is what makes evaluation over many questions fast.
 */
import * as tf from "@tensorflow/tfjs-core";
import type { LayerCache, MiniMind } from "../model/minimind.ts";
import { chooseToken, type SamplingOptions } from "./sampling.ts";

/** One decoding session: the cache of the rows being generated, owned and disposed here. */
export class DecodeSession {
  readonly model: MiniMind;
  /** Positions already in the cache. */
  length = 0;
  #cache: LayerCache[] = [];

  constructor(model: MiniMind) {
    this.model = model;
  }

  /**
   * Feed `ids` [rows, seq] (the prompt, then one token at a time); returns the logits of each
   * row's last position, [rows, vocab]. The previous cache tensors are disposed.
   */
  step(ids: tf.Tensor2D): tf.Tensor2D {
    const [rows, seq] = ids.shape;
    if (this.length + seq > this.model.config.max_position_embeddings) {
      throw new RangeError(
        `context full: ${this.length + seq} positions, the model has ${this.model.config.max_position_embeddings}`,
      );
    }
    const previous = this.#cache;
    const { logits, cache } = tf.tidy(() => {
      const next = [...previous];
      const hidden = this.model.hidden(ids, next);
      return {
        logits: this.model.logits(lastPosition(hidden, rows, seq)),
        cache: next.flatMap((layer) => [layer.k, layer.v]),
      };
    });
    tf.dispose(previous.flatMap((layer) => [layer.k, layer.v]));
    this.#cache = [];
    for (let i = 0; i < cache.length; i += 2)
      this.#cache.push({ k: cache[i] as tf.Tensor4D, v: cache[i + 1] as tf.Tensor4D });
    this.length += seq;
    return logits;
  }

  dispose(): void {
    tf.dispose(this.#cache.flatMap((layer) => [layer.k, layer.v]));
    this.#cache = [];
    this.length = 0;
  }
}

/** Last-position logits of `ids` [rows, seq] by a full forward pass, no cache (the reference path). */
export function lastLogitsNoCache(model: MiniMind, ids: tf.Tensor2D): tf.Tensor2D {
  const [rows, seq] = ids.shape;
  return tf.tidy(() => model.logits(lastPosition(model.hidden(ids), rows, seq)));
}

/** The hidden states [rows·seq, hidden] of each row's last position: [rows, hidden]. */
function lastPosition(hidden: tf.Tensor2D, rows: number, seq: number): tf.Tensor2D {
  if (seq === 1) return hidden;
  const last = tf.slice(tf.reshape(hidden, [rows, seq, -1]), [0, seq - 1, 0], [rows, 1, -1]);
  return tf.reshape(last, [rows, -1]);
}

export interface GenerateOptions {
  /** New tokens per prompt at most (fewer if the context fills up). */
  maxNewTokens: number;
  /** A row stops after producing one of these; the stop token is not part of its output. */
  stopIds: readonly number[];
  /** Default greedy. */
  sampling?: SamplingOptions;
  /** Rows per forward pass. Default 64. */
  batchSize?: number;
  /** Each token as it is chosen (prompt index, token id), stop tokens included. */
  onToken?: (prompt: number, id: number) => void;
}

/** The new tokens of each prompt, in prompt order. Prompts are grouped by length into batches. */
export async function generate(
  model: MiniMind,
  prompts: readonly (readonly number[])[],
  options: GenerateOptions,
): Promise<number[][]> {
  const context = model.config.max_position_embeddings;
  const byLength = new Map<number, number[]>();
  prompts.forEach((prompt, i) => {
    if (prompt.length === 0) throw new RangeError("generate: empty prompt");
    if (prompt.length >= context) {
      throw new RangeError(`prompt ${i} has ${prompt.length} tokens; the model's context is ${context}`);
    }
    const group = byLength.get(prompt.length) ?? [];
    group.push(i);
    byLength.set(prompt.length, group);
  });
  const outputs: number[][] = prompts.map(() => []);
  const batchSize = options.batchSize ?? 64;
  for (const [length, members] of [...byLength].sort((a, b) => a[0] - b[0])) {
    for (let at = 0; at < members.length; at += batchSize) {
      const rows = members.slice(at, at + batchSize);
      const ids = rows.flatMap((i) => prompts[i] as number[]);
      await generateGroup(model, rows, tf.tensor2d(ids, [rows.length, length], "int32"), outputs, options);
    }
  }
  return outputs;
}

async function generateGroup(
  model: MiniMind,
  rows: number[],
  prompt: tf.Tensor2D,
  outputs: number[][],
  options: GenerateOptions,
): Promise<void> {
  const session = new DecodeSession(model);
  const done = rows.map(() => false);
  const sampling = options.sampling ?? { temperature: 0, topP: 1 };
  const vocab = model.config.vocab_size;
  const budget = Math.min(options.maxNewTokens, model.config.max_position_embeddings - prompt.shape[1]);
  let input: tf.Tensor2D | null = prompt;
  try {
    for (let produced = 0; produced < budget && input; produced++) {
      const logits = session.step(input);
      input.dispose();
      input = null;
      const values = await logits.data();
      logits.dispose();
      const next = rows.map((row, r) => {
        if (done[r]) return 0;
        const id = chooseToken(values.subarray(r * vocab, (r + 1) * vocab), sampling);
        options.onToken?.(row, id);
        if (options.stopIds.includes(id)) done[r] = true;
        else (outputs[row] as number[]).push(id);
        return id;
      });
      if (!done.every(Boolean) && produced + 1 < budget) input = tf.tensor2d(next, [rows.length, 1], "int32");
    }
  } finally {
    input?.dispose();
    session.dispose();
  }
}
