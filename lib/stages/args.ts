/**
 * The trainer command line shared by all four stages (docs/trainers.md). Flag names follow
 * MiniMind's trainers (`--batch_size`); the dashed spellings work too. Trainers read flags only —
 * the environment (OUT_DIR, MODEL_HIDDEN_SIZE, KEEP_LAST …) is the pipeline's, which turns it into
 * these flags. TensorFlow-free: the pipeline parses a stage's command line with this same function
 * to know exactly what the trainer will see.
 */
import { join } from "node:path";
import type { Options } from "yargs";
import { UserError } from "../cli/errors.ts";
import { flagGiven, numberFlag, parseSnakeCaseFlags } from "../cli/flags.ts";
import { FLOAT_DTYPE_NAMES, type FloatDtypeName } from "../safetensors/index.ts";
import {
  describePresets,
  isPresetName,
  PRESET_NAMES,
  type PresetName,
  presetDefaults,
  requirePresetTokenizer,
} from "./presets.ts";
import {
  DEFAULT_MODEL_REVISION,
  KEEP_LAST_DEFAULT,
  LEGACY_DTYPE_DEFAULT,
  LEGACY_FORMAT_DEFAULT,
  LEGACY_FORMATS,
  type LegacyFormat,
  MAX_BAD_STEPS_DEFAULT,
  MODEL_DEFAULTS,
  MODEL_REVISIONS,
  type ModelRevision,
  STAGES,
  type StageName,
} from "./table.ts";

export const BACKEND_CHOICES = ["auto", "tensorflow-gpu", "tensorflow", "wasm", "cpu"] as const;
export type BackendChoice = (typeof BACKEND_CHOICES)[number];

/** Where a trainer run without --out_dir writes, and where the sample data lives. */
export const DEFAULT_OUT_ROOT = "out";
export const DEFAULT_DATA_DIR = "data";

export interface TrainerArgs {
  data_path: string;
  out_dir: string;
  ckpt_dir: string;
  resume: string;
  /** Move the stage's checkpoints aside (never deleting them) and start this run afresh. */
  restart: boolean;
  init_from: string;
  keep_last_checkpoints: number;
  save_interval: number;
  max_steps: number;
  epochs: number;
  batch_size: number;
  accumulation_steps: number;
  learning_rate: number;
  weight_decay: number;
  grad_clip: number;
  max_bad_steps: number;
  /** `--preset`: MiniMind's shape for the flags not given explicitly ("" for none). */
  preset: PresetName | "";
  model_revision: ModelRevision;
  hidden_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  max_seq_len: number;
  vocab_size: number;
  tokenizer: string;
  seed: number;
  tensorboard_dir: string;
  eval_results: string;
  log_interval: number;
  backend: BackendChoice;
  /** Threads sharing each update ("auto" or a count ≥ 1); resolved by the trainer once the backend is known. */
  data_parallel: string;
  /** The legacy `.safetensors` file; the `.pth` goes beside it (lib/stages/paths.ts legacyWeightsFiles). */
  legacy_weights: string;
  legacy_format: LegacyFormat;
  /** The `.pth`'s dtype. */
  legacy_dtype: FloatDtypeName;
  skip_bad_lines: boolean;
  eval_path: string;
  /** Records held out for evaluation: 0 when --eval false. */
  eval_size: number;
  eval: boolean;
  /**
   * In a Slurm job: after saving on SIGUSR1 (the time-limit warning), requeue the job while it has
   * been restarted fewer than this many times (SLURM_RESTART_COUNT); 0: never (the pipeline's job scripts set it).
   */
  requeue_on_stop: number;
  /** Stage-specific flags (DPO's --beta, R1's --special_token_weight, SFT's --checkpoint_queue). */
  extra: Record<string, number | string | boolean>;
}

/** The flags that fix the model's shape and vocabulary: a checkpoint trained with others cannot be resumed. */
export const SHAPE_FLAGS = [
  "model_revision",
  "hidden_size",
  "num_hidden_layers",
  "num_attention_heads",
  "num_key_value_heads",
  "max_seq_len",
  "vocab_size",
  "tokenizer",
] as const;
/** The flags that set how long a run is: a finished stage asked to run longer continues. */
export const LENGTH_FLAGS = ["max_steps", "epochs"] as const;
/**
 * Flags that say where things go or how a session starts, never a difference between two runs
 * (`preset` only names values of the shape flags, which are compared themselves).
 */
export const SESSION_FLAGS = new Set([
  "preset",
  "legacy_format",
  "legacy_dtype",
  "data_path",
  "out_dir",
  "ckpt_dir",
  "resume",
  "restart",
  "init_from",
  "tensorboard_dir",
  "eval_results",
  "legacy_weights",
  "backend",
  "data_parallel",
  "skip_bad_lines",
  "keep_last_checkpoints",
  "log_interval",
  "save_interval",
  "eval",
  "eval_path",
  "eval_size",
  "max_bad_steps",
  "requeue_on_stop",
]);

/** `out/full_sft_512.safetensors`: the weights file run.sh users know, named by stage and width. */
export function legacyWeightsName(stage: StageName, hiddenSize: number): string {
  return `${STAGES[stage].legacyPrefix}_${hiddenSize}.safetensors`;
}

function trainerOptions(stage: StageName): Record<string, Options> {
  const spec = STAGES[stage];
  const d = spec.defaults;
  return {
    data_path: {
      type: "string",
      default: join(DEFAULT_DATA_DIR, spec.dataFile),
      describe: "training data (JSONL)",
    },
    out_dir: { type: "string", describe: `stage folder [default: ${join(DEFAULT_OUT_ROOT, stage)}]` },
    ckpt_dir: { type: "string", describe: "checkpoint folder [default: <out_dir>/checkpoints]" },
    resume: {
      type: "string",
      default: "auto",
      describe: "auto (latest valid checkpoint), none, or a step dir",
    },
    restart: {
      type: "boolean",
      default: false,
      describe: "move the stage's checkpoints aside to checkpoints.before-<time>/ and start over",
    },
    init_from: {
      type: "string",
      default: "",
      describe:
        "initial weights when there is nothing to resume: a step dir, stage dir, .safetensors or .pth file, or none for random " +
        "[default: the previous stage's latest checkpoint, else its weights file]",
    },
    keep_last_checkpoints: { type: "number", default: KEEP_LAST_DEFAULT, describe: "step checkpoints kept" },
    save_interval: { type: "number", default: d.save_interval, describe: "save every N optimizer updates" },
    max_steps: {
      type: "number",
      default: 0,
      describe: "stop after N optimizer updates in total (0: no limit)",
    },
    epochs: { type: "number", default: d.epochs },
    batch_size: { type: "number", default: d.batch_size },
    accumulation_steps: {
      type: "number",
      default: d.accumulation_steps,
      describe: "batches per optimizer update",
    },
    learning_rate: {
      type: "number",
      default: d.learning_rate,
      describe: "peak learning rate (cosine to 1/10)",
    },
    weight_decay: { type: "number", default: 0.01, describe: "AdamW decoupled weight decay" },
    grad_clip: { type: "number", default: 1.0, describe: "clip the global gradient norm to this" },
    max_bad_steps: {
      type: "number",
      default: MAX_BAD_STEPS_DEFAULT,
      describe:
        "stop after this many consecutive updates with a non-finite loss or gradient (each is skipped)",
    },
    preset: {
      type: "string",
      choices: PRESET_NAMES,
      describe: `MiniMind's model shape, for the shape flags not given (needs MiniMind's --tokenizer): ${describePresets()}`,
    },
    model_revision: {
      type: "string",
      choices: MODEL_REVISIONS,
      default: DEFAULT_MODEL_REVISION,
      describe: "MiniMind code revision: minimind2, or minimind3 (q/k RMSNorm, MLP width 64·⌈πh/64⌉)",
    },
    hidden_size: { type: "number", default: MODEL_DEFAULTS.hidden_size },
    num_hidden_layers: { type: "number", default: MODEL_DEFAULTS.num_hidden_layers },
    num_attention_heads: { type: "number", default: MODEL_DEFAULTS.num_attention_heads },
    num_key_value_heads: { type: "number", default: MODEL_DEFAULTS.num_key_value_heads },
    max_seq_len: {
      type: "number",
      default: d.max_seq_len,
      describe: "tokens per sample (longer ones are cut)",
    },
    vocab_size: { type: "number", default: 0, describe: "vocabulary size (0: the tokenizer's)" },
    tokenizer: { type: "string", default: "", describe: "Hugging Face tokenizer.json (default: byte-level)" },
    seed: { type: "number", default: 42 },
    tensorboard_dir: {
      type: "string",
      describe: `TensorBoard run folder [default: ${join(DEFAULT_OUT_ROOT, "tensorboard", stage)}, or <out_dir>/tensorboard]`,
    },
    eval_results: {
      type: "string",
      describe:
        "evaluation results, one JSON line each [default: eval_results.jsonl beside the TensorBoard run]",
    },
    log_interval: { type: "number", default: d.log_interval, describe: "log every N optimizer updates" },
    backend: { choices: BACKEND_CHOICES, default: "auto" as BackendChoice },
    data_parallel: {
      type: "string",
      default: "auto",
      describe:
        "threads sharing each update on the wasm/cpu backends (auto: one per core, at most 4, or what the resumed run used)",
    },
    legacy_weights: {
      type: "string",
      describe:
        `weights file replaced at every save [default: ${DEFAULT_OUT_ROOT}/${spec.legacyPrefix}_<hidden>.safetensors, or inside <out_dir>]; ` +
        "the .pth is written beside it, same name",
    },
    legacy_format: {
      type: "string",
      choices: LEGACY_FORMATS,
      default: LEGACY_FORMAT_DEFAULT,
      describe:
        "legacy weights written at every save: MiniMind's .pth (PyTorch), .safetensors (float32), or both",
    },
    legacy_dtype: {
      type: "string",
      choices: Object.keys(FLOAT_DTYPE_NAMES),
      default: LEGACY_DTYPE_DEFAULT,
      describe: "the legacy .pth's dtype (MiniMind saves float16)",
    },
    skip_bad_lines: {
      type: "boolean",
      default: false,
      describe: "warn about malformed data lines instead of failing",
    },
    eval_path: {
      type: "string",
      default: "",
      describe: "held-out data (default: the last --eval_size records)",
    },
    eval_size: {
      type: "number",
      default: d.eval_size,
      describe: "records held out of training for evaluation",
    },
    eval: {
      type: "boolean",
      default: true,
      describe: "hold out --eval_size records and evaluate when the stage finishes",
    },
    requeue_on_stop: {
      type: "number",
      default: 0,
      describe:
        "in a Slurm job: after saving on SIGUSR1 (time-limit warning), scontrol requeue the job while it has been restarted fewer than N times; 0: off",
    },
    from_weight: {
      type: "string",
      describe: "MiniMind spelling: initial weights by legacy prefix (e.g. pretrain)",
    },
    from_resume: {
      type: "number",
      choices: [0, 1],
      describe: "MiniMind spelling: 1 = --resume auto, 0 = none",
    },
    ...spec.extra,
  };
}

function dataParallel(value: unknown): string {
  const text = String(value);
  if (text === "auto" || (/^\d+$/.test(text) && Number(text) >= 1)) return text;
  throw new UserError(`--data_parallel ${text}: expected auto or a whole number ≥ 1`);
}

/**
 * Without --out_dir a trainer writes MiniMind's layout under out/ (the legacy weights beside the
 * stage folders, TensorBoard runs under out/tensorboard/); with one, everything goes inside it,
 * so a scratch run never touches the main run's files. Explicit paths always win.
 */
export function parseTrainerArgs(stage: StageName, argv: readonly string[]): TrainerArgs {
  const spec = STAGES[stage];
  const parsed = parseSnakeCaseFlags(
    argv,
    spec.program,
    `$0 [options]\n\n${spec.description}`,
    trainerOptions(stage),
  );
  const num = (name: string, min: number, integer = true) => numberFlag(parsed, argv, name, min, integer);

  const outDirGiven = typeof parsed.out_dir === "string" && parsed.out_dir !== "";
  const outDir = outDirGiven ? (parsed.out_dir as string) : join(DEFAULT_OUT_ROOT, stage);
  const outRoot = outDirGiven ? outDir : DEFAULT_OUT_ROOT;
  const preset = isPresetName(parsed.preset) ? parsed.preset : null;
  if (preset) requirePresetTokenizer(preset, parsed.tokenizer as string);
  const fromPreset = presetDefaults(preset, (flag) => flagGiven(argv, flag));
  const hidden = fromPreset.hidden_size ?? num("hidden_size", 8);
  let resume = parsed.resume as string;
  if (parsed.from_resume !== undefined) resume = parsed.from_resume === 1 ? "auto" : "none";
  if (resume === "") throw new UserError("--resume: expected auto, none or a step dir");
  let initFrom = parsed.init_from as string;
  if (!initFrom && parsed.from_weight && parsed.from_weight !== "none") {
    initFrom = join(
      outDirGiven ? join(outDir, "..") : DEFAULT_OUT_ROOT,
      `${parsed.from_weight as string}_${hidden}.safetensors`,
    );
  }
  const tensorboardDir =
    (parsed.tensorboard_dir as string | undefined) ||
    (outDirGiven ? join(outDir, "tensorboard") : join(DEFAULT_OUT_ROOT, "tensorboard", stage));
  const extra: Record<string, number | string | boolean> = {};
  for (const name of Object.keys(spec.extra)) {
    const option = spec.extra[name] as Options;
    extra[name] = option.type === "number" ? num(name, 0, false) : (parsed[name] as string | boolean);
  }
  const evaluate = parsed.eval as boolean;
  const learningRate = num("learning_rate", 0, false);

  return {
    data_path: parsed.data_path as string,
    out_dir: outDir,
    ckpt_dir: (parsed.ckpt_dir as string | undefined) || join(outDir, "checkpoints"),
    resume,
    restart: parsed.restart as boolean,
    init_from: initFrom,
    keep_last_checkpoints: num("keep_last_checkpoints", 1),
    save_interval: num("save_interval", 1),
    max_steps: num("max_steps", 0),
    epochs: num("epochs", 1),
    batch_size: num("batch_size", 1),
    accumulation_steps: num("accumulation_steps", 1),
    learning_rate: learningRate,
    weight_decay: num("weight_decay", 0, false),
    grad_clip: num("grad_clip", 0, false),
    max_bad_steps: num("max_bad_steps", 1),
    preset: preset ?? "",
    model_revision: fromPreset.model_revision ?? (parsed.model_revision as ModelRevision),
    hidden_size: hidden,
    num_hidden_layers: fromPreset.num_hidden_layers ?? num("num_hidden_layers", 1),
    num_attention_heads: fromPreset.num_attention_heads ?? num("num_attention_heads", 1),
    num_key_value_heads: fromPreset.num_key_value_heads ?? num("num_key_value_heads", 1),
    max_seq_len: num("max_seq_len", 8),
    vocab_size: fromPreset.vocab_size ?? num("vocab_size", 0),
    tokenizer: parsed.tokenizer as string,
    seed: num("seed", 0),
    tensorboard_dir: tensorboardDir,
    eval_results:
      (parsed.eval_results as string | undefined) || join(tensorboardDir, "..", "eval_results.jsonl"),
    log_interval: num("log_interval", 1),
    backend: parsed.backend as BackendChoice,
    data_parallel: dataParallel(parsed.data_parallel),
    legacy_weights:
      (parsed.legacy_weights as string | undefined) || join(outRoot, legacyWeightsName(stage, hidden)),
    legacy_format: parsed.legacy_format as LegacyFormat,
    legacy_dtype: parsed.legacy_dtype as FloatDtypeName,
    skip_bad_lines: parsed.skip_bad_lines as boolean,
    eval_path: parsed.eval_path as string,
    eval_size: evaluate ? num("eval_size", 0) : 0,
    eval: evaluate,
    requeue_on_stop: num("requeue_on_stop", 0),
    extra,
  };
}
