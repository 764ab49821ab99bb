/** Stage 3, direct preference optimisation against a frozen reference (MiniMind's train_dpo.py). */
import { runMain } from "../lib/cli/main.ts";
import { dpoEvaluation } from "./eval/preference.ts";
import { withEvaluation } from "./eval/stage-evaluation.ts";
import { runTrainer } from "./loop/run.ts";
import { dpoBeta, dpoTask } from "./stages/dpo.ts";
import { previousStageWeights } from "./stages/previous-stage.ts";

const task = dpoTask({
  stage: "dpo",
  description:
    'Preference-tune on {"chosen": [messages], "rejected": [messages]} lines (MiniMind\'s dpo.jsonl format). ' +
    "Starts from --init_from, by default the sft stage's latest checkpoint (<out_dir>/../sft), else " +
    "<out_dir>/../full_sft_<hidden>.safetensors; the initial weights are kept frozen as the reference " +
    "model in <out_dir>/reference.safetensors.",
  defaults: { learning_rate: 2e-4, eval_size: 56 },
  extra: {
    beta: {
      type: "number",
      default: 0.1,
      describe: "DPO temperature β: how far the policy may move from the reference",
    },
  },
});

runMain("train_dpo", () =>
  runTrainer(
    withEvaluation({ ...task, defaultInit: (args) => previousStageWeights(args, ["sft"]) }, (run, model) =>
      dpoEvaluation(run, model, task.objective.reference ?? model, dpoBeta(run)),
    ),
    process.argv.slice(2),
  ),
);
