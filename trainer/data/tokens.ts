/**
 * What every tokenizer provides, and MiniMind's special tokens: shared by the byte tokenizer
 * (tokenizer.ts) and the Hugging Face one (hf-tokenizer.ts).
 */

/** What the data, training and inference code needs from a tokenizer. */
export interface Tokenizer {
  /** Stable description ("byte-v1", "hf-<sha256 prefix>"); a resume with another id is refused. */
  readonly id: string;
  readonly vocabSize: number;
  /** `<|endoftext|>`: fills unused positions. */
  readonly padId: number;
  /** `<|im_start|>`: opens a chat turn and a pretrain sample. */
  readonly bosId: number;
  /** `<|im_end|>`: closes a chat turn and a pretrain sample. */
  readonly eosId: number;
  /** Special-token strings inside `text` become their single ids (as Hugging Face does). */
  encode(text: string): number[];
  decode(ids: ArrayLike<number>): string;
  /** A decoder for generation: feed ids one at a time, get the text that has become complete. */
  streamDecoder(): StreamDecoder;
  /** The id of a token written as a string (special tokens included), if it is one token. */
  tokenToId(token: string): number | undefined;
}

export interface StreamDecoder {
  /** Text completed by this id; "" while a multi-byte character is still incomplete. */
  push(id: number): string;
  /** Whatever is still pending (an incomplete character becomes U+FFFD). */
  flush(): string;
}

/** MiniMind's special tokens; the byte tokenizer gives them ids 0..6 in this order. */
export const SPECIAL_TOKENS = [
  "<|endoftext|>",
  "<|im_start|>",
  "<|im_end|>",
  "<think>",
  "</think>",
  "<answer>",
  "</answer>",
] as const;
export type SpecialToken = (typeof SPECIAL_TOKENS)[number];

export const PAD_TOKEN = "<|endoftext|>";
export const BOS_TOKEN = "<|im_start|>";
export const EOS_TOKEN = "<|im_end|>";
/** The reasoning tags whose loss the R1 stage weights up (MiniMind's train_distill_reason.py). */
export const REASONING_TAGS = ["<think>", "</think>", "<answer>", "</answer>"] as const;
