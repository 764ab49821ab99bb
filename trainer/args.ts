/**
 * The trainer command line shared by all four stages (DESIGN §4). Flag names follow MiniMind's
 * trainers (`--batch_size`); the dashed spellings (`--batch-size`) are accepted too.
 * Defaults are sized for the embedded sample data on a CPU; MiniMind's own values are larger.
 */
import { dirname, join } from "node:path";
import yargs, { type Options } from "yargs";
import { UserError } from "../lib/cli/errors.ts";
import { legacyWeightsPath, STAGES, type StageName } from "../lib/config/stages.ts";
import { BACKEND_CHOICES, type BackendChoice } from "./backend/load.ts";

export interface TrainerArgs {
  data_path: string;
  out_dir: string;
  ckpt_dir: string;
  resume: string;
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
  hidden_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  max_seq_len: number;
  vocab_size: number;
  tokenizer: string;
  seed: number;
  tensorboard_dir: string;
  log_interval: number;
  backend: BackendChoice;
  /** Threads sharing each update ("auto" or a count ≥ 1); resolved by the loop once the backend is known. */
  data_parallel: string;
  legacy_weights: string;
  skip_bad_lines: boolean;
  eval_path: string;
  eval_size: number;
  eval: boolean;
  /** Stage-specific flags (DPO's --beta, R1's --special_token_weight …). */
  extra: Record<string, number | string | boolean>;
}

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

/** What the stages share; each names its learning rate and eval split and overrides the rest. */
const COMMON_DEFAULTS: Omit<StageDefaults, "learning_rate" | "eval_size"> = {
  epochs: 2,
  batch_size: 8,
  accumulation_steps: 1,
  max_seq_len: 128,
  save_interval: 50,
  log_interval: 10,
};

export interface StageFlags {
  stage: StageName;
  description: string;
  defaults: Pick<StageDefaults, "learning_rate" | "eval_size"> & Partial<StageDefaults>;
  /** Extra options with their defaults, e.g. `{ beta: { type: "number", default: 0.1, describe } }`. */
  extra?: Record<string, Options>;
}

function envNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value)) throw new UserError(`environment variable ${name}=${raw}: expected a number`);
  return value;
}

function dataParallel(value: unknown): string {
  const text = String(value);
  if (text === "auto" || (/^\d+$/.test(text) && Number(text) >= 1)) return text;
  throw new UserError(`--data_parallel ${text}: expected auto or a whole number ≥ 1`);
}

/**
 * Parse MiniMind-style snake_case flags (`--batch_size`, and the dashed `--batch-size`) strictly:
 * an unknown flag or a bad choice is a one-line UserError pointing at --help; a repeated flag
 * takes its last value.
 */
export function parseSnakeCaseFlags(
  argv: string[],
  scriptName: string,
  usage: string,
  options: Record<string, Options>,
): Record<string, unknown> {
  // yargs camel-cases dashed flags; make `--batch-size` land on `batch_size` explicitly.
  const withAliases: Record<string, Options> = {};
  for (const [name, option] of Object.entries(options)) {
    withAliases[name] = name.includes("_") ? { ...option, alias: name.replaceAll("_", "-") } : option;
  }
  return yargs(argv)
    .scriptName(scriptName)
    .usage(usage)
    .options(withAliases)
    .parserConfiguration({ "camel-case-expansion": false, "duplicate-arguments-array": false })
    .strict()
    .help()
    .version(false)
    .wrap(Math.min(110, process.stdout.columns || 110))
    .fail((message, error) => {
      throw new UserError(`${error ? error.message : message} (see --help)`);
    })
    .parseSync() as Record<string, unknown>;
}

export function parseTrainerArgs(argv: string[], flags: StageFlags): TrainerArgs {
  const spec = STAGES[flags.stage];
  const d: StageDefaults = { ...COMMON_DEFAULTS, ...flags.defaults };
  const dataDir = process.env.DATA_DIR || "data";
  const outRoot = process.env.OUT_DIR || "out";
  const tfDir = process.env.TF_DIR || join(outRoot, "tensorboard");
  const options: Record<string, Options> = {
    data_path: { type: "string", default: join(dataDir, spec.dataFile), describe: "training data (JSONL)" },
    out_dir: { type: "string", default: join(outRoot, flags.stage), describe: "stage folder" },
    ckpt_dir: { type: "string", describe: "checkpoint folder [default: <out_dir>/checkpoints]" },
    resume: {
      type: "string",
      default: "auto",
      describe: "auto (latest valid checkpoint), none, or a step dir",
    },
    init_from: {
      type: "string",
      default: "",
      describe: "initial weights: a step dir, stage dir or .safetensors file",
    },
    keep_last_checkpoints: {
      type: "number",
      default: envNumber("KEEP_LAST", 3),
      describe: "step checkpoints kept",
    },
    save_interval: {
      type: "number",
      default: envNumber("SAVE_INTERVAL", d.save_interval),
      describe: "save every N optimizer updates",
    },
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
    hidden_size: { type: "number", default: envNumber("MODEL_HIDDEN_SIZE", 128) },
    num_hidden_layers: { type: "number", default: envNumber("MODEL_NUM_LAYERS", 4) },
    num_attention_heads: { type: "number", default: 4 },
    num_key_value_heads: { type: "number", default: 2 },
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
      default: join(tfDir, flags.stage),
      describe: "TensorBoard run folder",
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
      describe: `weights file replaced at every save [default: <out_dir>/../${spec.legacyPrefix}_<hidden>.safetensors]`,
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
    eval: { type: "boolean", default: true, describe: "evaluate when the stage finishes" },
    from_weight: {
      type: "string",
      describe: "MiniMind spelling: initial weights by legacy prefix (e.g. pretrain)",
    },
    from_resume: {
      type: "number",
      choices: [0, 1],
      describe: "MiniMind spelling: 1 = --resume auto, 0 = none",
    },
    ...flags.extra,
  };
  const parsed = parseSnakeCaseFlags(
    argv,
    `train_${flags.stage}`,
    `$0 [options]\n\n${flags.description}`,
    options,
  );

  const num = (name: string, min: number, integer = true): number => {
    const value = parsed[name] as number;
    if (
      typeof value !== "number" ||
      Number.isNaN(value) ||
      value < min ||
      (integer && !Number.isInteger(value))
    ) {
      throw new UserError(
        `--${name} ${String(parsed[name])}: expected ${integer ? "a whole number" : "a number"} ≥ ${min}`,
      );
    }
    return value;
  };

  const outDir = parsed.out_dir as string;
  const hidden = num("hidden_size", 8);
  let resume = parsed.resume as string;
  if (parsed.from_resume !== undefined) resume = parsed.from_resume === 1 ? "auto" : "none";
  let initFrom = parsed.init_from as string;
  if (!initFrom && parsed.from_weight && parsed.from_weight !== "none") {
    const prefix = parsed.from_weight as string;
    initFrom = join(dirname(outDir), `${prefix}_${hidden}.safetensors`);
  }
  const extra: Record<string, number | string | boolean> = {};
  for (const name of Object.keys(flags.extra ?? {})) extra[name] = parsed[name] as number | string | boolean;

  return {
    data_path: parsed.data_path as string,
    out_dir: outDir,
    ckpt_dir: (parsed.ckpt_dir as string | undefined) || join(outDir, "checkpoints"),
    resume,
    init_from: initFrom,
    keep_last_checkpoints: num("keep_last_checkpoints", 1),
    save_interval: num("save_interval", 1),
    max_steps: num("max_steps", 0),
    epochs: num("epochs", 1),
    batch_size: num("batch_size", 1),
    accumulation_steps: num("accumulation_steps", 1),
    learning_rate: num("learning_rate", 0, false),
    weight_decay: num("weight_decay", 0, false),
    grad_clip: num("grad_clip", 0, false),
    hidden_size: hidden,
    num_hidden_layers: num("num_hidden_layers", 1),
    num_attention_heads: num("num_attention_heads", 1),
    num_key_value_heads: num("num_key_value_heads", 1),
    max_seq_len: num("max_seq_len", 8),
    vocab_size: num("vocab_size", 0),
    tokenizer: parsed.tokenizer as string,
    seed: num("seed", 0),
    tensorboard_dir: parsed.tensorboard_dir as string,
    log_interval: num("log_interval", 1),
    backend: parsed.backend as BackendChoice,
    data_parallel: dataParallel(parsed.data_parallel),
    legacy_weights:
      (parsed.legacy_weights as string | undefined) ||
      legacyWeightsPath(dirname(outDir), flags.stage, hidden),
    skip_bad_lines: parsed.skip_bad_lines as boolean,
    eval_path: parsed.eval_path as string,
    eval_size: num("eval_size", 0),
    eval: parsed.eval as boolean,
    extra,
  };
}
