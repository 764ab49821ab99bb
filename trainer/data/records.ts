/**
 * MiniMind's JSONL record formats and their validation. A validator returns a problem in words
 * (or null); the caller prefixes `file:line: `.
 */
import type { ChatMessage, ChatRole } from "./chat-template.ts";

export const DATA_FORMATS = ["pretrain", "sft", "dpo", "r1"] as const;
export type DataFormat = (typeof DATA_FORMATS)[number];

export interface PretrainRecord {
  text: string;
}
export interface ChatRecord {
  conversations: ChatMessage[];
}
export interface DpoRecord {
  chosen: ChatMessage[];
  rejected: ChatMessage[];
}
export interface RecordByFormat {
  pretrain: PretrainRecord;
  sft: ChatRecord;
  r1: ChatRecord;
  dpo: DpoRecord;
}
export type RecordOf<F extends DataFormat> = RecordByFormat[F];

/** One line's verdict. `note` is a soft finding (R1 without tags): counted and reported, not fatal. */
export type Verdict<R> = { ok: true; record: R; note?: string } | { ok: false; problem: string };

/** What each format looks like, for error messages. */
export const FORMAT_SHAPES: Record<DataFormat, string> = {
  pretrain: '{"text": string}',
  sft: '{"conversations": [{"role": "system"|"user"|"assistant", "content": string}, …]}',
  r1: '{"conversations": [{"role": …, "content": "<think>…</think><answer>…</answer>"}, …]}',
  dpo: '{"chosen": [messages], "rejected": [messages]}',
};

const ROLES: readonly ChatRole[] = ["system", "user", "assistant"];

function typeName(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  const type = typeof value;
  return type === "object" ? "an object" : `a ${type}`;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Check a message list; `field` names it in messages ("conversations", "chosen", …). */
function checkMessages(value: unknown, field: string): string | null {
  if (value === undefined) return `missing field "${field}"`;
  if (!Array.isArray(value)) return `"${field}" is ${typeName(value)}, expected an array of messages`;
  if (value.length === 0) return `"${field}" is empty, expected at least one message`;
  let assistantTurns = 0;
  for (let i = 0; i < value.length; i++) {
    const message: unknown = value[i];
    const at = `${field}[${i}]`;
    if (!isObject(message)) return `${at} is ${typeName(message)}, expected {"role": …, "content": string}`;
    if (message.role === undefined) return `${at} has no "role"`;
    if (typeof message.role !== "string" || !ROLES.includes(message.role as ChatRole)) {
      return `${at}.role is ${JSON.stringify(message.role)}, expected "system", "user" or "assistant"`;
    }
    if (message.content === undefined) return `${at} has no "content"`;
    if (typeof message.content !== "string")
      return `${at}.content is ${typeName(message.content)}, expected a string`;
    if (message.role === "assistant") assistantTurns++;
  }
  return assistantTurns === 0 ? `"${field}" has no assistant turn (nothing to learn from)` : null;
}

/** Copy only the fields Baton uses, so extra keys in big files cost no memory downstream. */
function messagesOf(value: unknown[]): ChatMessage[] {
  return value.map((m) => {
    const { role, content } = m as ChatMessage;
    return { role, content };
  });
}

const THINK_ANSWER = /<think>[\s\S]*?<\/think>[\s\S]*?<answer>[\s\S]*?<\/answer>/;

/** True when every assistant turn holds `<think>…</think>` followed by `<answer>…</answer>`. */
export function hasReasoningTags(messages: readonly ChatMessage[]): boolean {
  return messages.every((m) => m.role !== "assistant" || THINK_ANSWER.test(m.content));
}

/** Validate an already-parsed JSON value as a record of `format`. */
export function validateRecord<F extends DataFormat>(format: F, value: unknown): Verdict<RecordOf<F>> {
  type R = RecordOf<F>;
  if (!isObject(value))
    return { ok: false, problem: `expected ${FORMAT_SHAPES[format]}, got ${typeName(value)}` };
  switch (format) {
    case "pretrain": {
      if (value.text === undefined)
        return { ok: false, problem: `missing field "text", expected ${FORMAT_SHAPES.pretrain}` };
      if (typeof value.text !== "string") {
        return { ok: false, problem: `"text" is ${typeName(value.text)}, expected a string` };
      }
      return { ok: true, record: { text: value.text } as R };
    }
    case "sft":
    case "r1": {
      const problem = checkMessages(value.conversations, "conversations");
      if (problem) return { ok: false, problem };
      const conversations = messagesOf(value.conversations as unknown[]);
      const note =
        format === "r1" && !hasReasoningTags(conversations)
          ? "an assistant turn lacks <think>…</think><answer>…</answer>"
          : undefined;
      return { ok: true, record: { conversations } as R, note };
    }
    case "dpo": {
      const problem = checkMessages(value.chosen, "chosen") ?? checkMessages(value.rejected, "rejected");
      if (problem) return { ok: false, problem };
      const record = {
        chosen: messagesOf(value.chosen as unknown[]),
        rejected: messagesOf(value.rejected as unknown[]),
      };
      return { ok: true, record: record as R };
    }
    default:
      throw new Error(`unknown data format ${String(format)}`);
  }
}

/** Parse one line's text and validate it. */
export function parseRecord<F extends DataFormat>(format: F, line: string): Verdict<RecordOf<F>> {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (error) {
    return { ok: false, problem: `invalid JSON (${(error as Error).message})` };
  }
  return validateRecord(format, value);
}

export function isDataFormat(value: string): value is DataFormat {
  return (DATA_FORMATS as readonly string[]).includes(value);
}
