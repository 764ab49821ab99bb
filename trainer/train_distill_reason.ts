/**
 * Stage 4, reasoning distillation (MiniMind's train_distill_reason.py): supervised fine-tuning on
 * replies written as `<think>…</think>\n<answer>…</answer>`, with the loss on the tag tokens
 * weighted up (--special_token_weight) so the model learns the format first.
 */
import { runMain } from "../lib/cli/main.ts";
import { DEFAULT_SPECIAL_TOKEN_WEIGHT } from "./data/samples.ts";
import { reasoningAccuracy } from "./eval/chat-accuracy.ts";
import { withEvaluation } from "./eval/stage-evaluation.ts";
import { runTrainer } from "./loop/run.ts";
import { LANGUAGE_MODEL_WORKER, languageModelLoss } from "./stages/language-model.ts";
import { previousStageWeights } from "./stages/previous-stage.ts";

runMain("train_distill_reason", () =>
  runTrainer(
    withEvaluation(
      {
        format: "r1",
        flags: {
          stage: "r1",
          description:
            'Distil reasoning from {"conversations": […]} lines whose assistant turns read ' +
            "<think>…</think><answer>…</answer> (MiniMind's r1_mix_1024.jsonl format). Starts from " +
            "--init_from, by default the dpo stage's latest checkpoint (<out_dir>/../dpo), else the sft stage's.",
          defaults: { learning_rate: 1e-3, eval_size: 56 },
          extra: {
            special_token_weight: {
              type: "number",
              default: DEFAULT_SPECIAL_TOKEN_WEIGHT,
              describe: "loss weight of the <think>, </think>, <answer>, </answer> tokens",
            },
          },
        },
        defaultInit: (args) => previousStageWeights(args, ["dpo", "sft"]),
        loss: (run, batch) => languageModelLoss(run.model, batch),
        workerModule: LANGUAGE_MODEL_WORKER,
      },
      reasoningAccuracy,
    ),
    process.argv.slice(2),
  ),
);
