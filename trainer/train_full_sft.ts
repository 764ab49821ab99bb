/** Stage 2, supervised fine-tuning on chat conversations, loss on assistant turns only (MiniMind's train_full_sft.py). */
import { runMain } from "../lib/cli/main.ts";
import { exactMatchAccuracy } from "./eval/chat-accuracy.ts";
import { withEvaluation } from "./eval/stage-evaluation.ts";
import { runTrainer } from "./loop/run.ts";
import { CHECKPOINT_QUEUE_FLAG, checkpointQueueHooks } from "./stages/checkpoint-queue.ts";
import { LANGUAGE_MODEL_WORKER, languageModelLoss } from "./stages/language-model.ts";

runMain("train_full_sft", () =>
  runTrainer(
    withEvaluation(
      {
        format: "sft",
        flags: {
          stage: "sft",
          description:
            'Fine-tune on {"conversations": [{"role", "content"}, …]} lines (MiniMind\'s sft_mini_512.jsonl format); ' +
            "initialise from the pretrain stage with --init_from.",
          defaults: { learning_rate: 1e-3, eval_size: 84 },
          extra: CHECKPOINT_QUEUE_FLAG,
        },
        loss: (run, batch) => languageModelLoss(run.model, batch),
        workerModule: LANGUAGE_MODEL_WORKER,
        ...checkpointQueueHooks(),
      },
      exactMatchAccuracy,
    ),
    process.argv.slice(2),
  ),
);
