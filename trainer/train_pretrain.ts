/** Stage 1, pretraining: next-token prediction on raw text (MiniMind's train_pretrain.py). */
import { runMain } from "../lib/cli/main.ts";
import { heldOutPerplexity } from "./eval/perplexity.ts";
import { withEvaluation } from "./eval/stage-evaluation.ts";
import { runTrainer } from "./loop/run.ts";
import { LANGUAGE_MODEL_WORKER, languageModelLoss } from "./stages/language-model.ts";

runMain("train_pretrain", () =>
  runTrainer(
    withEvaluation(
      {
        format: "pretrain",
        flags: {
          stage: "pretrain",
          description:
            'Pretrain a MiniMind model on {"text": …} lines (MiniMind\'s pretrain_hq.jsonl format).',
          defaults: { epochs: 1, learning_rate: 2e-3, save_interval: 100, eval_size: 300 },
        },
        loss: (run, batch) => languageModelLoss(run.model, batch),
        workerModule: LANGUAGE_MODEL_WORKER,
      },
      heldOutPerplexity,
    ),
    process.argv.slice(2),
  ),
);
