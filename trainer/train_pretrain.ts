/** Stage 1, pretraining: next-token prediction on raw text (MiniMind's train_pretrain.py). */
import { runMain } from "../lib/cli/main.ts";
import { heldOutPerplexity } from "./eval/perplexity.ts";
import { openSession } from "./loop/session.ts";
import { train } from "./loop/train.ts";
import { languageModelObjective } from "./stages/language-model.ts";

runMain("train_pretrain", async () => {
  const session = await openSession("pretrain", "pretrain", process.argv.slice(2));
  if (session.finished) return session.report();
  return train(session, {
    objective: languageModelObjective,
    evaluate: (model) => heldOutPerplexity(session, model),
  });
});
