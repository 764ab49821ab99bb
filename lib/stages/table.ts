/**
 * The four training stages, in pipeline order, and everything that differs between them
 * (docs/stages.md): entry script, default data file, legacy weights name, what a stage starts from
 * when it has nothing of its own, its environment variables, its default hyper-parameters and its
 * own flags. Every default a trainer or the pipeline uses is written here once.
 */
import type { Options } from "yargs";

export const STAGE_NAMES = ["pretrain", "sft", "dpo", "r1"] as const;
export type StageName = (typeof STAGE_NAMES)[number];

/** Hyper-parameters whose defaults differ by stage. */
export interface StageDefaults {
  epochs: number;
  batch_size: number;
  learning_rate: number;
  accumulation_steps: number;
  max_seq_len: number;
  save_interval: number;
  log_interval: number;
  eval_size: number;
}

export interface StageSpec {
  name: StageName;
  /** Entry script, relative to the repository root. */
  trainer: string;
  /** The program name in messages and --help (`train_full_sft`, as MiniMind names its script). */
  program: string;
  /** MiniMind's file name for the stage's data, looked up in DATA_DIR. */
  dataFile: string;
  /** Prefix of the legacy weights file `out/<prefix>_<hidden>.safetensors`. */
  legacyPrefix: string;
  /**
   * What a stage with no checkpoint of its own initialises from, in order of preference: the first
   * of these stages that has a valid checkpoint (else its legacy weights file). Empty: random weights.
   */
  startsFrom: readonly StageName[];
  /** Environment variables: the stage folder, its data file, extra trainer args, and the prefix of PRETRAIN_MAX_STEPS… */
  env: { out: string; json: string; args: string; prefix: string };
  description: string;
  defaults: StageDefaults;
  /** Flags only this stage has, with their defaults. */
  extra: Record<string, Options>;
}

/** Model shape and checkpoint defaults, shared by trainers and pipeline; sized for the sample data on a CPU. */
export const MODEL_DEFAULTS = {
  hidden_size: 128,
  num_hidden_layers: 4,
  num_attention_heads: 4,
  num_key_value_heads: 2,
} as const;
/**
 * The MiniMind code revision a model follows (trainer/model/config.ts builds either):
 * MiniMind2 (2025; what checkpoints without a `model_revision` hold) or MiniMind-3 (2026: q/k
 * RMSNorm, another MLP width and norm eps).
 */
export const MODEL_REVISIONS = ["minimind2", "minimind3"] as const;
export type ModelRevision = (typeof MODEL_REVISIONS)[number];
export const DEFAULT_MODEL_REVISION: ModelRevision = "minimind2";

/** The legacy weights files written at every save (`--legacy_format`), and their `.pth` dtype (`--legacy_dtype`). */
export const LEGACY_FORMATS = ["both", "pth", "safetensors"] as const;
export type LegacyFormat = (typeof LEGACY_FORMATS)[number];
export const LEGACY_FORMAT_DEFAULT: LegacyFormat = "both";
/** MiniMind's trainers save `{k: v.half()}`: half precision, unless asked otherwise. */
export const LEGACY_DTYPE_DEFAULT = "float16";

/** --smoke-test's model: small enough for a whole pipeline in well under a minute. */
export const SMOKE_MODEL = { hidden_size: 64, num_hidden_layers: 2 } as const;
export const KEEP_LAST_DEFAULT = 3;
/** Consecutive updates with a non-finite loss or gradient before a trainer gives up (--max_bad_steps). */
export const MAX_BAD_STEPS_DEFAULT = 5;

const COMMON_DEFAULTS: Omit<StageDefaults, "learning_rate" | "eval_size"> = {
  epochs: 2,
  batch_size: 8,
  accumulation_steps: 1,
  max_seq_len: 128,
  save_interval: 50,
  log_interval: 10,
};

/** R1's default weight of the `<think>`/`<answer>` tag tokens (MiniMind: 10). */
export const DEFAULT_SPECIAL_TOKEN_WEIGHT = 10;

export const STAGES: Record<StageName, StageSpec> = {
  pretrain: {
    name: "pretrain",
    trainer: "trainer/train_pretrain.ts",
    program: "train_pretrain",
    dataFile: "pretrain_hq.jsonl",
    legacyPrefix: "pretrain",
    startsFrom: [],
    env: { out: "PRETRAIN_OUT", json: "PRETRAIN_JSON", args: "PRETRAIN_ARGS", prefix: "PRETRAIN" },
    description: 'Pretrain a MiniMind model on {"text": …} lines (MiniMind\'s pretrain_hq.jsonl format).',
    defaults: { ...COMMON_DEFAULTS, epochs: 1, learning_rate: 2e-3, save_interval: 100, eval_size: 300 },
    extra: {},
  },
  sft: {
    name: "sft",
    trainer: "trainer/train_full_sft.ts",
    program: "train_full_sft",
    dataFile: "sft_mini_512.jsonl",
    legacyPrefix: "full_sft",
    startsFrom: ["pretrain"],
    env: { out: "SFT_OUT", json: "SFT_JSON", args: "SFT_ARGS", prefix: "SFT" },
    description:
      'Fine-tune on {"conversations": [{"role", "content"}, …]} lines (MiniMind\'s sft_mini_512.jsonl format), ' +
      "the loss on assistant turns only. Starts from the pretrain stage's latest checkpoint " +
      "(<out_dir>/../pretrain), else <out_dir>/../pretrain_<hidden>.safetensors, or --init_from.",
    defaults: { ...COMMON_DEFAULTS, learning_rate: 1e-3, eval_size: 84 },
    extra: {
      checkpoint_queue: {
        type: "boolean",
        default: false,
        describe:
          "list each saved checkpoint in <out_dir>/checkpoints.jsonl for a DPO sweep; listed checkpoints not yet " +
          "swept are never pruned (the pipeline turns it on with --dpo-sweep)",
      },
    },
  },
  dpo: {
    name: "dpo",
    trainer: "trainer/train_dpo.ts",
    program: "train_dpo",
    dataFile: "dpo.jsonl",
    legacyPrefix: "rlhf",
    startsFrom: ["sft"],
    env: { out: "DPO_OUT", json: "DPO_JSON", args: "DPO_ARGS", prefix: "DPO" },
    description:
      'Preference-tune on {"chosen": [messages], "rejected": [messages]} lines (MiniMind\'s dpo.jsonl format). ' +
      "Starts from the sft stage's latest checkpoint (<out_dir>/../sft), else " +
      "<out_dir>/../full_sft_<hidden>.safetensors, or --init_from; the initial weights are kept frozen as the " +
      "reference model in <out_dir>/reference.safetensors.",
    defaults: { ...COMMON_DEFAULTS, learning_rate: 2e-4, eval_size: 56 },
    extra: {
      beta: {
        type: "number",
        default: 0.1,
        describe: "DPO temperature β: how far the policy may move from the reference",
      },
    },
  },
  r1: {
    name: "r1",
    trainer: "trainer/train_distill_reason.ts",
    program: "train_distill_reason",
    dataFile: "r1_mix_1024.jsonl",
    legacyPrefix: "reason",
    startsFrom: ["dpo", "sft"],
    env: { out: "R1_OUT", json: "R1_JSON", args: "R1_ARGS", prefix: "R1" },
    description:
      'Distil reasoning from {"conversations": […]} lines whose assistant turns read ' +
      "<think>…</think><answer>…</answer> (MiniMind's r1_mix_1024.jsonl format). Starts from the dpo " +
      "stage's latest checkpoint (<out_dir>/../dpo), else the sft stage's, or --init_from.",
    defaults: { ...COMMON_DEFAULTS, learning_rate: 1e-3, eval_size: 56 },
    extra: {
      special_token_weight: {
        type: "number",
        default: DEFAULT_SPECIAL_TOKEN_WEIGHT,
        describe: "loss weight of the <think>, </think>, <answer>, </answer> tokens",
      },
    },
  },
};

export function isStageName(value: string): value is StageName {
  return (STAGE_NAMES as readonly string[]).includes(value);
}

/** The stages after `stage`, in pipeline order. */
export function laterStages(stage: StageName): StageName[] {
  return STAGE_NAMES.slice(STAGE_NAMES.indexOf(stage) + 1);
}
