/**
 * Records → fixed-length model inputs, MiniMind style.
 *
 * A record becomes a token sequence of at most T+1 tokens (T = maxSeqLen); `input` is its first T
 * tokens and `target` the same shifted left by one, both padded with `<|endoftext|>` to exactly T.
 * MiniMind cuts sequences to T tokens and trains on T-1 positions; Baton keeps one more token so
 * the model sees exactly its context length. `weight[t]` is the loss weight of predicting
 * `target[t]`: 0 on padding and on tokens the stage does not learn.
 *
 * - pretrain: `<|im_start|>` + text + `<|im_end|>`, every real target weighted 1.
 * - sft: the chat template; weight 1 on assistant tokens (see AssistantMasker).
 * - r1: as sft, and `specialTokenWeight` (MiniMind: 10) on targets whose id is one of the ids of
 *   `<think>`, `</think>`, `<answer>`, `</answer>` (MiniMind's train_distill_reason.py uses
 *   `torch.isin` over those ids). MiniMind raises them even outside the loss mask; Baton only
 *   inside it, so a prompt that quotes a tag is still never learned.
 * - dpo: two sft samples, chosen and rejected.
 *
 * Loss normalisation as in MiniMind: sum(loss × weight) / lossTokens, where lossTokens counts the
 * weighted positions (each once, whatever its weight).
 */
import type { ChatTemplateOptions } from "./chat-template.ts";
import { AssistantMasker, encodeChat } from "./chat-template.ts";
import type { JsonlDataset } from "./dataset.ts";
import type { ChatRecord, DataFormat, DpoRecord, PretrainRecord, RecordOf } from "./records.ts";
import type { Tokenizer } from "./tokenizer.ts";
import { REASONING_TAGS } from "./tokenizer.ts";

export interface Sample {
  input: Int32Array;
  target: Int32Array;
  weight: Float32Array;
  /** Real (non-pad) tokens in `input`. */
  tokens: number;
}

export interface Batch {
  /** Rows in the batch: B, or 2B for DPO (rows 0..B-1 chosen, B..2B-1 rejected, as MiniMind concatenates). */
  rows: number;
  seqLen: number;
  /** rows × seqLen, row-major. */
  input: Int32Array;
  target: Int32Array;
  weight: Float32Array;
  /** Real (non-pad) input tokens in the batch, for tokens/s. */
  tokens: number;
  /** Positions with weight > 0: the loss denominator. */
  lossTokens: number;
}

export interface SampleOptions {
  maxSeqLen: number;
  /** R1 only: loss weight of the reasoning-tag tokens. Default 10 (MiniMind). */
  specialTokenWeight?: number;
  chat?: ChatTemplateOptions;
}

export const DEFAULT_SPECIAL_TOKEN_WEIGHT = 10;

/** Longest text prefix worth tokenizing for a pretrain sample (tokens rarely span 64 characters). */
const CHARS_PER_TOKEN_BOUND = 64;

/** Lay out ids[0..T] as input/target/weight of length T; `mask[k]` says whether ids[k] is learned. */
function window(ids: ArrayLike<number>, mask: Uint8Array | null, seqLen: number, padId: number): Sample {
  const n = Math.min(ids.length, seqLen + 1);
  const input = new Int32Array(seqLen).fill(padId);
  const target = new Int32Array(seqLen).fill(padId);
  const weight = new Float32Array(seqLen);
  for (let t = 0; t < Math.min(n, seqLen); t++) input[t] = ids[t];
  for (let t = 0; t + 1 < n; t++) {
    target[t] = ids[t + 1];
    weight[t] = mask ? mask[t + 1] : 1;
  }
  return { input, target, weight, tokens: Math.min(n, seqLen) };
}

/** Turns records of one format into samples and batches. */
export class SampleEncoder<F extends DataFormat> {
  readonly format: F;
  readonly tokenizer: Tokenizer;
  readonly seqLen: number;
  /** Samples per record: 2 for DPO (chosen, rejected), else 1. */
  readonly samplesPerRecord: number;
  readonly specialTokenWeight: number;
  readonly #chat: ChatTemplateOptions;
  readonly #masker: AssistantMasker;
  readonly #tagIds: ReadonlySet<number>;

  constructor(format: F, tokenizer: Tokenizer, options: SampleOptions) {
    if (!Number.isInteger(options.maxSeqLen) || options.maxSeqLen < 2) {
      throw new RangeError(`maxSeqLen must be an integer ≥ 2, got ${options.maxSeqLen}`);
    }
    this.format = format;
    this.tokenizer = tokenizer;
    this.seqLen = options.maxSeqLen;
    this.samplesPerRecord = format === "dpo" ? 2 : 1;
    this.specialTokenWeight = options.specialTokenWeight ?? DEFAULT_SPECIAL_TOKEN_WEIGHT;
    this.#chat = options.chat ?? {};
    this.#masker = new AssistantMasker(tokenizer);
    this.#tagIds = new Set(REASONING_TAGS.flatMap((tag) => tokenizer.encode(tag)));
  }

  /** The ids that get `specialTokenWeight` in R1 samples. */
  get reasoningTagIds(): number[] {
    return [...this.#tagIds].sort((a, b) => a - b);
  }

  /** One record's samples: [sample], or [chosen, rejected] for DPO. */
  encode(record: RecordOf<F>): Sample[] {
    switch (this.format) {
      case "pretrain":
        return [this.#pretrain((record as PretrainRecord).text)];
      case "sft":
        return [this.#chat1((record as ChatRecord).conversations, false)];
      case "r1":
        return [this.#chat1((record as ChatRecord).conversations, true)];
      case "dpo": {
        const { chosen, rejected } = record as DpoRecord;
        return [this.#chat1(chosen, false), this.#chat1(rejected, false)];
      }
      default:
        throw new Error(`unknown data format ${String(this.format)}`);
    }
  }

  /** Records → one batch; sample k of record b goes to row k·B + b. */
  batch(records: readonly RecordOf<F>[]): Batch {
    const B = records.length;
    const T = this.seqLen;
    const rows = B * this.samplesPerRecord;
    const out: Batch = {
      rows,
      seqLen: T,
      input: new Int32Array(rows * T),
      target: new Int32Array(rows * T),
      weight: new Float32Array(rows * T),
      tokens: 0,
      lossTokens: 0,
    };
    records.forEach((record, b) => {
      this.encode(record).forEach((sample, k) => {
        const at = (k * B + b) * T;
        out.input.set(sample.input, at);
        out.target.set(sample.target, at);
        out.weight.set(sample.weight, at);
        out.tokens += sample.tokens;
        for (const w of sample.weight) if (w > 0) out.lossTokens++;
      });
    });
    return out;
  }

  #pretrain(text: string): Sample {
    const tok = this.tokenizer;
    const bound = (this.seqLen + 1) * CHARS_PER_TOKEN_BOUND;
    const body = tok.encode(text.length > bound ? text.slice(0, bound) : text).slice(0, this.seqLen - 1);
    return window([tok.bosId, ...body, tok.eosId], null, this.seqLen, tok.padId);
  }

  #chat1(messages: ChatRecord["conversations"], reasoning: boolean): Sample {
    const { ids, mask } = encodeChat(messages, this.tokenizer, this.#chat, this.#masker);
    const sample = window(ids, mask, this.seqLen, this.tokenizer.padId);
    if (reasoning) {
      const { target, weight } = sample;
      for (let t = 0; t < weight.length; t++) {
        if (weight[t] > 0 && this.#tagIds.has(target[t])) weight[t] = this.specialTokenWeight;
      }
    }
    return sample;
  }
}

/** Read the records at `indices` from `dataset` and batch them. */
export function readBatch<F extends DataFormat>(
  dataset: JsonlDataset<F>,
  indices: ArrayLike<number>,
  encoder: SampleEncoder<F>,
): Batch {
  const records: RecordOf<F>[] = [];
  for (let i = 0; i < indices.length; i++) records.push(dataset.readRecord(indices[i]));
  return encoder.batch(records);
}
