/**
 * How generated answers are scored. Exact match compares normalised text: Unicode NFKC, trimmed,
 * lower-cased, runs of whitespace made one space, and trailing `.`, `!` or `?` removed — so
 * "Velm." matches "velm", but "Velm town" does not match "Velm".
 */

export function normaliseAnswer(text: string): string {
  return text
    .normalize("NFKC")
    .toLowerCase()
    .replace(/\s+/g, " ")
    .trim()
    .replace(/[.!?]+$/, "")
    .trim();
}

export function exactMatch(generated: string, reference: string): boolean {
  return normaliseAnswer(generated) === normaliseAnswer(reference);
}

/**
 * A well-formed reasoning reply is exactly one `<think>…</think>` block followed by one
 * `<answer>…</answer>` block, with only whitespace around and between them, and no tag inside.
 */
const REASONING_REPLY =
  /^\s*<think>((?:(?!<\/?think>|<\/?answer>)[\s\S])*)<\/think>\s*<answer>((?:(?!<\/?think>|<\/?answer>)[\s\S])*)<\/answer>\s*$/;

export interface ReasoningReply {
  wellFormed: boolean;
  /** The text inside <answer>…</answer> of a well-formed reply, else null. */
  answer: string | null;
}

export function parseReasoningReply(text: string): ReasoningReply {
  const match = REASONING_REPLY.exec(text);
  return match ? { wellFormed: true, answer: match[2] as string } : { wellFormed: false, answer: null };
}
