/**
 * Generation-based evaluation of chat stages: each held-out conversation minus its last assistant
 * turn becomes a prompt, the model answers greedily, and the answer is scored against that turn.
 * SFT: exact match. R1: format adherence and answer accuracy (see answers.ts).
 */
import { renderPrompt } from "../data/chat-template.ts";
import type { TrainingData } from "../data/training-data.ts";
import type { MiniMind } from "../model/minimind.ts";
import { exactMatch, parseReasoningReply } from "./answers.ts";
import { generate } from "./generate.ts";

/** Room for the reply beyond the longest reference answer (in tokens). */
const SLACK_TOKENS = 8;

interface Question {
  prompt: number[];
  reference: string;
}

function heldOutQuestions(run: TrainingData<"sft" | "r1">, maxPositions: number): Question[] {
  const questions: Question[] = [];
  for (const index of run.evalIndices) {
    const { conversations } = run.evalDataset.readRecord(index);
    let last = conversations.length - 1;
    while (last >= 0 && conversations[last]?.role !== "assistant") last--;
    const prompt = run.tokenizer.encode(renderPrompt(conversations.slice(0, last)));
    if (last < 0 || prompt.length >= maxPositions - 1) continue;
    questions.push({ prompt, reference: conversations[last]?.content ?? "" });
  }
  return questions;
}

/** Greedy replies to every held-out question, as text up to (not including) `<|im_end|>`. */
async function replies(
  run: TrainingData<"sft" | "r1">,
  model: MiniMind,
  questions: Question[],
): Promise<string[]> {
  const longest = Math.max(0, ...questions.map((q) => run.tokenizer.encode(q.reference).length));
  const ids = await generate(
    model,
    questions.map((q) => q.prompt),
    { maxNewTokens: longest + SLACK_TOKENS, stopIds: [run.tokenizer.eosId] },
  );
  return ids.map((reply) => run.tokenizer.decode(reply));
}

/** SFT: share of held-out questions whose greedy reply equals the reference answer, normalised. */
export async function exactMatchAccuracy(
  run: TrainingData<"sft">,
  model: MiniMind,
): Promise<Record<string, number>> {
  const questions = heldOutQuestions(run, model.config.max_position_embeddings);
  const texts = await replies(run, model, questions);
  const correct = texts.filter((text, i) => exactMatch(text, questions[i]?.reference ?? "")).length;
  return { exact_match: correct / Math.max(questions.length, 1) };
}

/**
 * R1: share of replies that are one well-formed think block then one answer block, and share
 * whose answer text equals the reference's (normalised; a malformed reply counts as wrong).
 */
export async function reasoningAccuracy(
  run: TrainingData<"r1">,
  model: MiniMind,
): Promise<Record<string, number>> {
  const questions = heldOutQuestions(run, model.config.max_position_embeddings);
  const texts = await replies(run, model, questions);
  let wellFormed = 0;
  let correct = 0;
  texts.forEach((text, i) => {
    const reply = parseReasoningReply(text);
    const reference = questions[i]?.reference ?? "";
    const expected = parseReasoningReply(reference).answer ?? reference;
    if (reply.wellFormed) wellFormed++;
    if (reply.answer !== null && exactMatch(reply.answer, expected)) correct++;
  });
  const n = Math.max(questions.length, 1);
  return { format_adherence: wellFormed / n, answer_accuracy: correct / n };
}
