/**
 * Stage 4, reasoning distillation (MiniMind's train_distill_reason.py): supervised fine-tuning on
 * replies written as `<think>…</think>\n<answer>…</answer>`, with the loss on the tag tokens
 * weighted up (--special_token_weight) so the model learns the format first.
 */
import { runMain } from "../lib/cli/main.ts";
import { reasoningAccuracy } from "./eval/chat-accuracy.ts";
import { openSession } from "./loop/session.ts";
import { train } from "./loop/train.ts";
import { languageModelObjective } from "./stages/language-model.ts";

runMain("train_distill_reason", async () => {
  const session = await openSession("r1", "r1", process.argv.slice(2));
  if (session.finished) return session.report();
  return train(session, {
    objective: languageModelObjective,
    evaluate: (model) => reasoningAccuracy(session, model),
  });
});
