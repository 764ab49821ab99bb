/**
 * The environment a submission may set: exactly the variables `npm run pipeline` and
 * `npm run dpo-sweep` read (docs/pipeline.md), so a misspelt one is refused instead of silently
 * doing nothing — and which of them, and which flags, name paths (checked against the out root).
 * A new pipeline variable must be added here to be submittable (test/daemon-submission.test.ts
 * fails until it is).
 */
import { STAGE_NAMES, STAGES } from "../../../lib/stages/table.ts";
import { STAGE_ENV_FLAGS } from "../../pipeline/settings.ts";

const PATH_VARIABLES_COMMON = [
  "OUT_DIR",
  "DATA_DIR",
  "TF_DIR",
  "INIT_FROM",
  "MLX_INIT_FROM",
  "TENSORBOARD_BINARY",
];

/** Variables holding a path (resolved, and checked to stay inside the out root). */
export const PATH_VARIABLES: ReadonlySet<string> = new Set([
  ...PATH_VARIABLES_COMMON,
  ...STAGE_NAMES.flatMap((stage) => [STAGES[stage].env.json, STAGES[stage].env.out]),
]);

/** Variables holding trainer flags, shell-quoted (their path flags are checked too). */
export const FLAG_VARIABLES: ReadonlySet<string> = new Set([
  ...STAGE_NAMES.map((stage) => STAGES[stage].env.args),
  "INFER_ARGS",
]);

export const SUBMISSION_VARIABLES: readonly string[] = [
  ...PATH_VARIABLES_COMMON,
  ...STAGE_NAMES.flatMap((stage) => {
    const { env } = STAGES[stage];
    return [env.json, env.out, env.args, ...STAGE_ENV_FLAGS.map(([suffix]) => `${env.prefix}_${suffix}`)];
  }),
  "MODEL_PRESET",
  "MODEL_HIDDEN_SIZE",
  "MODEL_NUM_LAYERS",
  "SAVE_INTERVAL",
  "KEEP_LAST",
  "KEEP_LAST_CHECKPOINTS",
  "LOG_INTERVAL",
  "STOP_GRACE_SEC",
  "STALL_TIMEOUT",
  "TB_AUTO",
  "TB_BOARD",
  "TB_PORT",
  "TB_HOST",
  "INFER_PROMPT",
  "INFER_MAX_NEW_TOKENS",
  "INFER_TEMPERATURE",
  "INFER_TOP_P",
  "INFER_ARGS",
  "CLEANUP_SMOKE",
  "BATON_DEBUG",
  // lib/slurm/settings.ts: where the stages' jobs go when the pipeline runs them on Slurm.
  "EXECUTOR",
  "SLURM_PARTITION",
  "SLURM_ACCOUNT",
  "SLURM_TIME",
  "SLURM_GRES",
  "SBATCH_ARGS",
  "SLURM_SIGNAL_SEC",
  "SLURM_MAX_REQUEUES",
];

/** Trainer flags (underscore spelling) whose value is a path, and values of theirs that are not. */
export const PATH_FLAGS: ReadonlyMap<string, ReadonlySet<string>> = new Map([
  ["data_path", new Set()],
  ["out_dir", new Set()],
  ["ckpt_dir", new Set()],
  ["resume", new Set(["auto", "none", ""])],
  ["init_from", new Set(["none", ""])],
  ["tensorboard_dir", new Set()],
  ["eval_results", new Set()],
  ["legacy_weights", new Set()],
  ["eval_path", new Set([""])],
  ["tokenizer", new Set([""])],
  ["checkpoint", new Set()],
  // The pipeline's and the sweep's own.
  ["infer_checkpoint", new Set()],
  ["queue", new Set()],
]);
