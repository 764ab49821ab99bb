/**
 * MiniMind's ChatML template and its assistant loss mask.
 *
 * Every message renders as `<|im_start|>{role}\n{content}<|im_end|>\n`; the generation prompt is
 * `<|im_start|>assistant\n`. MiniMind's template (model/tokenizer_config.json, 2025) also inserts
 * `<|im_start|>system\nYou are a helpful assistant<|im_end|>\n` when the first message is not a
 * system message. Baton does that only when asked (`defaultSystemPrompt`): those 37 byte tokens
 * would not fit the 128-token samples of the embedded data set. Use MINIMIND_DEFAULT_SYSTEM_PROMPT
 * with MiniMind's own data and tokenizer, and the same choice at training and inference.
 */
import type { Tokenizer } from "./tokenizer.ts";
import { BOS_TOKEN, EOS_TOKEN } from "./tokenizer.ts";

export type ChatRole = "system" | "user" | "assistant";
export interface ChatMessage {
  role: ChatRole;
  content: string;
}

export const MINIMIND_DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant";

export interface ChatTemplateOptions {
  /** Prepended as a system message when the conversation has none first; null: nothing. */
  defaultSystemPrompt?: string | null;
}

function withDefaultSystem(
  messages: readonly ChatMessage[],
  options: ChatTemplateOptions,
): readonly ChatMessage[] {
  const system = options.defaultSystemPrompt;
  if (system == null || messages[0]?.role === "system") return messages;
  return [{ role: "system", content: system }, ...messages];
}

/** The conversation as template text (what MiniMind's apply_chat_template(tokenize=False) returns). */
export function renderChat(messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): string {
  let text = "";
  for (const { role, content } of withDefaultSystem(messages, options)) {
    text += `${BOS_TOKEN}${role}\n${content}${EOS_TOKEN}\n`;
  }
  return text;
}

/** The conversation followed by the generation prompt, for inference. */
export function renderPrompt(messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): string {
  return `${renderChat(messages, options)}${BOS_TOKEN}assistant\n`;
}

function startsAt(ids: ArrayLike<number>, at: number, pattern: readonly number[]): boolean {
  if (at + pattern.length > ids.length) return false;
  for (let k = 0; k < pattern.length; k++) if (ids[at + k] !== pattern[k]) return false;
  return true;
}

/**
 * MiniMind's `generate_labels` / `generate_loss_mask` (dataset/lm_dataset.py): after every
 * `<|im_start|>assistant\n`, mark each token up to and including the next `<|im_end|>\n` — the
 * assistant's content, its `<|im_end|>` and the newline after it. The header is not marked. A
 * turn cut off by truncation is marked to the end. Both patterns are token-id sequences found by
 * search, exactly as MiniMind does, so the mask is right for any tokenizer's merges.
 */
export class AssistantMasker {
  readonly #open: readonly number[];
  readonly #close: readonly number[];

  constructor(tokenizer: Tokenizer) {
    this.#open = tokenizer.encode(`${BOS_TOKEN}assistant\n`);
    this.#close = tokenizer.encode(`${EOS_TOKEN}\n`);
  }

  mask(ids: ArrayLike<number>): Uint8Array {
    const mask = new Uint8Array(ids.length);
    let i = 0;
    while (i < ids.length) {
      if (!startsAt(ids, i, this.#open)) {
        i++;
        continue;
      }
      const start = i + this.#open.length;
      let end = start;
      while (end < ids.length && !startsAt(ids, end, this.#close)) end++;
      const stop = Math.min(end + this.#close.length, ids.length);
      mask.fill(1, start, stop);
      i = stop;
    }
    return mask;
  }
}

export interface EncodedChat {
  ids: number[];
  /** 1 on tokens the model learns to produce (assistant content, `<|im_end|>`, `\n`). */
  mask: Uint8Array;
}

/** Render and tokenize a conversation as one string (as MiniMind does), then mask it. */
export function encodeChat(
  messages: readonly ChatMessage[],
  tokenizer: Tokenizer,
  options: ChatTemplateOptions = {},
  masker: AssistantMasker = new AssistantMasker(tokenizer),
): EncodedChat {
  const ids = tokenizer.encode(renderChat(messages, options));
  return { ids, mask: masker.mask(ids) };
}
