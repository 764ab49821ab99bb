/** Stage 2, supervised fine-tuning on chat conversations, loss on assistant turns only (MiniMind's train_full_sft.py). */
import { runMain } from "../lib/cli/main.ts";
import { exactMatchAccuracy } from "./eval/chat-accuracy.ts";
import { openSession } from "./loop/session.ts";
import { train } from "./loop/train.ts";
import { openCheckpointQueue } from "./stages/checkpoint-queue.ts";
import { languageModelObjective } from "./stages/language-model.ts";

runMain("train_full_sft", async () => {
  const session = await openSession("sft", "sft", process.argv.slice(2));
  if (session.finished) return session.report();
  // With --checkpoint_queue every checkpoint is listed for a DPO sweep and kept until it is swept.
  const queue = session.args.extra.checkpoint_queue === true ? await openCheckpointQueue(session) : null;
  return train(session, {
    objective: languageModelObjective,
    evaluate: (model) => exactMatchAccuracy(session, model),
    onCheckpoint: queue?.add,
    protect: queue?.pinned,
  });
});
