/**
 * Everything the pipeline takes from its flags and environment (docs/pipeline.md), read once here,
 * with each stage's trainer command line assembled from layers (lib/cli/flag-layers.ts), lowest priority first:
 *
 *   1. paths and shape     --data_path --out_dir --tensorboard_dir --eval_results --legacy_weights
 *                          --preset --hidden_size --num_hidden_layers --keep_last_checkpoints
 *   2. the plan            --resume <checkpoint> / --init_from <checkpoint> / --restart   (per run, plan.ts)
 *   3. --smoke-test        a tiny, short run
 *   4. environment         SAVE_INTERVAL, LOG_INTERVAL, <STAGE>_MAX_STEPS, _EPOCHS, _BATCH_SIZE, _ACCUM_STEPS, _SEQ_LEN
 *   5. `--` rest           every trainer
 *   6. <STAGE>_ARGS        one trainer
 *
 * Training hyper-parameters not named here are the trainers' own defaults. The result is parsed
 * with the trainers' own parser (lib/stages/args.ts), so the pipeline knows exactly what each
 * trainer will run with — and a bad flag is reported before anything starts.
 */
import { dirname, join, resolve } from "node:path";
import { UserError } from "../../lib/cli/errors.ts";
import {
  type FlagLayer,
  flags,
  flagValue,
  mergeFlagLayers,
  parseFlagGroups,
} from "../../lib/cli/flag-layers.ts";
import { splitShellWords } from "../../lib/cli/shell-words.ts";
import { parseOnOff, parseWholeNumber } from "../../lib/cli/values.ts";
import { type SlurmEnvSettings, slurmSettingsFromEnv } from "../../lib/slurm/index.ts";
import { legacyWeightsName, parseTrainerArgs, type TrainerArgs } from "../../lib/stages/args.ts";
import { isPresetName, PRESET_NAMES, type PresetName } from "../../lib/stages/presets.ts";
import {
  KEEP_LAST_DEFAULT,
  MODEL_DEFAULTS,
  SMOKE_MODEL,
  STAGE_NAMES,
  STAGES,
  type StageName,
} from "../../lib/stages/table.ts";
import { type TensorBoardEnvSettings, tensorBoardSettingsFromEnv } from "../../lib/tensorboard/config.ts";
import type { PipelineFlags } from "./cli.ts";

type Env = Readonly<Record<string, string | undefined>>;

/** --smoke-test: a handful of updates per stage, two saves each, a small evaluation. */
export const SMOKE_TRAINER_FLAGS = [
  ["max_steps", 10],
  ["save_interval", 5],
  ["log_interval", 2],
  ["batch_size", 4],
  ["eval_size", 16],
] as const;
/**
 * Long enough for a trainer to finish the update in flight and write a checkpoint even for a model
 * far larger than the sample one on a slow machine; a trainer that saves sooner ends the wait sooner,
 * and a second Ctrl+C skips it.
 */
export const DEFAULT_STOP_GRACE_SEC = 120;
/** A trainer heartbeats every few seconds; this long without one means it is stuck, not slow. */
export const DEFAULT_STALL_TIMEOUT_SEC = 600;
export const DEFAULT_INFER_PROMPT = "Which town is Oskel from?";

/** Per-stage environment overrides in mini-llm's run_mlx.sh spelling: PRETRAIN_MAX_STEPS → --max_steps. */
export const STAGE_ENV_FLAGS = [
  ["MAX_STEPS", "max_steps"],
  ["EPOCHS", "epochs"],
  ["BATCH_SIZE", "batch_size"],
  ["ACCUM_STEPS", "accumulation_steps"],
  ["SEQ_LEN", "max_seq_len"],
] as const;

export interface StageSettings {
  stage: StageName;
  /** Absolute path of the entry script. */
  trainer: string;
  /** What the trainer will run with (every layer applied, parsed by the trainers' parser), before the plan. */
  args: TrainerArgs;
  outDir: string;
  ckptDir: string;
  legacyFile: string;
  /** The trainer's arguments with the plan's flags (plan.ts). */
  trainerArgs(plan: readonly string[]): string[];
}

export interface InferSettings {
  prompt: string;
  /** Flags for trainer/infer.ts besides --checkpoint and --prompt. */
  args: string[];
  /** --infer-checkpoint: use this instead of the latest checkpoint of the last stage. */
  checkpoint: string | null;
  logsDir: string;
}

export interface PipelineSettings {
  repo: string;
  outDir: string;
  tfDir: string;
  recordFile: string;
  smokeTest: boolean;
  /** --smoke-test starts over in its own OUT_DIR each time (CLEANUP_SMOKE=0 keeps and resumes it). */
  cleanSmokeOutputs: boolean;
  /** The model's width and depth, as the trainers resolve them (pretrain's flags). */
  hiddenSize: number;
  numLayers: number;
  stopGraceMs: number;
  /** STALL_TIMEOUT: a trainer without a heartbeat this long is stopped as stalled; 0: never. */
  stallTimeoutMs: number;
  tensorBoard: { auto: boolean } & TensorBoardEnvSettings;
  initOverride: string | null;
  stages: Record<StageName, StageSettings>;
  infer: InferSettings;
  /** EXECUTOR or --executor: where the stages run (docs/pipeline.md#running-on-slurm). */
  executor: ExecutorName;
  /** SLURM_PARTITION, SLURM_TIME… and SBATCH_ARGS: read and checked with EXECUTOR=slurm only. */
  slurm: SlurmEnvSettings | null;
}

export const EXECUTOR_NAMES = ["local", "slurm"] as const;
export type ExecutorName = (typeof EXECUTOR_NAMES)[number];

export function pipelineSettings(env: Env, cli: PipelineFlags, repo: string): PipelineSettings {
  const smoke = cli.smokeTest;
  const outDir = env.OUT_DIR || (smoke ? join("out", "smoke") : "out");
  const tfDir = env.TF_DIR || join(outDir, "tensorboard");
  const dataDir = env.DATA_DIR || join(repo, "data");
  const preset = modelPreset(env);
  // A preset's shape replaces the defaults (--smoke-test's too); MODEL_HIDDEN_SIZE and MODEL_NUM_LAYERS still win.
  const shape: { hidden_size?: number; num_hidden_layers?: number } = preset
    ? {}
    : smoke
      ? SMOKE_MODEL
      : MODEL_DEFAULTS;
  const hiddenSize = wholeNumber(env, "MODEL_HIDDEN_SIZE", 8) ?? shape.hidden_size;
  const numLayers = wholeNumber(env, "MODEL_NUM_LAYERS", 1) ?? shape.num_hidden_layers;
  const keepLast =
    wholeNumber(env, "KEEP_LAST", 1) ?? wholeNumber(env, "KEEP_LAST_CHECKPOINTS", 1) ?? KEEP_LAST_DEFAULT;
  const envLayerCommon = flags([
    ["save_interval", wholeNumber(env, "SAVE_INTERVAL", 1)],
    ["log_interval", wholeNumber(env, "LOG_INTERVAL", 1)],
  ]);
  const rest = parseFlagGroups(cli.rest, "arguments after --");
  const initOverride = env.INIT_FROM || env.MLX_INIT_FROM || null;

  const stages = {} as Record<StageName, StageSettings>;
  for (const stage of STAGE_NAMES) {
    const spec = STAGES[stage];
    const base = flags([
      ["data_path", env[spec.env.json] || join(dataDir, spec.dataFile)],
      ["out_dir", env[spec.env.out] || join(outDir, stage)],
      ["tensorboard_dir", join(tfDir, stage)],
      ["eval_results", join(tfDir, "eval_results.jsonl")],
      ["preset", preset ?? undefined],
      ["hidden_size", hiddenSize],
      ["num_hidden_layers", numLayers],
      ["keep_last_checkpoints", keepLast],
      // The DPO sweep needs the queue; otherwise SFT keeps only the last KEEP_LAST checkpoints.
      ...(stage === "sft" && cli.dpoSweep ? ([["checkpoint_queue", "true"]] as const) : []),
    ]);
    const smokeLayer = smoke ? flags(SMOKE_TRAINER_FLAGS) : [];
    const envLayer = [
      ...envLayerCommon,
      ...flags(
        STAGE_ENV_FLAGS.map(([suffix, flag]) => [flag, wholeNumber(env, `${spec.env.prefix}_${suffix}`, 0)]),
      ),
    ];
    const stageArgs = parseFlagGroups(
      splitShellWords(env[spec.env.args] ?? "", spec.env.args),
      spec.env.args,
    );
    const merged = (lowest: FlagLayer, plan: readonly string[]) =>
      mergeFlagLayers([lowest, base, parseFlagGroups(plan, "plan"), smokeLayer, envLayer, rest, stageArgs]);
    const parse = (argv: readonly string[]) => {
      try {
        return parseTrainerArgs(stage, argv);
      } catch (error) {
        if (!(error instanceof UserError)) throw error;
        throw new UserError(
          `${stage} trainer flags (-- …, ${spec.env.args}, ${spec.env.prefix}_*): ${error.message}`,
        );
      }
    };
    // The legacy weights file sits beside the stage folder, wherever the layers put that folder.
    const first = parse(merged([], []));
    const legacy = flags([
      ["legacy_weights", join(dirname(first.out_dir), legacyWeightsName(stage, first.hidden_size))],
    ]);
    const args = parse(merged(legacy, []));
    stages[stage] = {
      stage,
      trainer: join(repo, spec.trainer),
      args,
      outDir: args.out_dir,
      ckptDir: args.ckpt_dir,
      legacyFile: args.legacy_weights,
      trainerArgs: (plan) => merged(legacy, plan),
    };
  }

  return {
    repo,
    outDir,
    tfDir,
    recordFile: join(outDir, "pipeline.json"),
    smokeTest: smoke,
    cleanSmokeOutputs: smoke && !env.OUT_DIR && flag(env, "CLEANUP_SMOKE", true),
    hiddenSize: stages.pretrain.args.hidden_size,
    numLayers: stages.pretrain.args.num_hidden_layers,
    stopGraceMs: stopGraceMs(env),
    stallTimeoutMs: stallTimeoutMs(env),
    tensorBoard: {
      auto: flag(env, "TB_AUTO", true),
      ...tensorBoardSettingsFromEnv({ ...env, OUT_DIR: outDir, TF_DIR: tfDir }),
    },
    initOverride,
    stages,
    infer: inferSettings(env, cli, outDir),
    ...executorSettings(env, cli),
  };
}

function executorSettings(env: Env, cli: PipelineFlags): Pick<PipelineSettings, "executor" | "slurm"> {
  const given = cli.executor ?? env.EXECUTOR?.trim() ?? "";
  const source = cli.executor === undefined ? "EXECUTOR" : "--executor";
  const executor = given === "" ? "local" : given.toLowerCase();
  if (!(EXECUTOR_NAMES as readonly string[]).includes(executor)) {
    throw new UserError(`${source} ${JSON.stringify(given)}: expected ${EXECUTOR_NAMES.join(" or ")}`);
  }
  return {
    executor: executor as ExecutorName,
    slurm: executor === "slurm" ? slurmSettingsFromEnv(env) : null,
  };
}

function inferSettings(env: Env, cli: PipelineFlags, outDir: string): InferSettings {
  const backend = flagValue(cli.rest, "backend");
  const extra = parseFlagGroups(splitShellWords(env.INFER_ARGS ?? "", "INFER_ARGS"), "INFER_ARGS");
  const args = mergeFlagLayers([
    flags([
      ["max_new_tokens", wholeNumber(env, "INFER_MAX_NEW_TOKENS", 1) ?? 64],
      ["temperature", nonNegativeNumber(env, "INFER_TEMPERATURE") ?? 0],
      ["top_p", nonNegativeNumber(env, "INFER_TOP_P")],
      // Same backend as the trainers when `-- --backend x` chose one; the other trainer flags do not apply.
      ["backend", backend],
    ]),
    extra,
  ]);
  return {
    prompt: env.INFER_PROMPT || DEFAULT_INFER_PROMPT,
    args,
    checkpoint: cli.inferCheckpoint,
    logsDir: join(outDir, "infer", "logs"),
  };
}

function modelPreset(env: Env): PresetName | null {
  const text = env.MODEL_PRESET?.trim();
  if (text === undefined || text === "") return null;
  if (!isPresetName(text))
    throw new UserError(`MODEL_PRESET=${env.MODEL_PRESET}: expected one of ${PRESET_NAMES.join(", ")}`);
  return text;
}

function wholeNumber(env: Env, name: string, min: number): number | undefined {
  const text = env[name]?.trim();
  return text === undefined || text === "" ? undefined : parseWholeNumber(text, `${name}=${env[name]}`, min);
}

/** STOP_GRACE_SEC in ms: how long a stopped trainer may take to save before its group is killed. */
export function stopGraceMs(env: Env): number {
  return Math.round((nonNegativeNumber(env, "STOP_GRACE_SEC") ?? DEFAULT_STOP_GRACE_SEC) * 1000);
}

/** STALL_TIMEOUT in ms: a trainer without a heartbeat this long is stopped as stalled; 0: never. */
export function stallTimeoutMs(env: Env): number {
  return Math.round((nonNegativeNumber(env, "STALL_TIMEOUT") ?? DEFAULT_STALL_TIMEOUT_SEC) * 1000);
}

function nonNegativeNumber(env: Env, name: string): number | undefined {
  const text = env[name]?.trim();
  if (text === undefined || text === "") return undefined;
  const value = Number(text);
  if (!Number.isFinite(value) || value < 0)
    throw new UserError(`${name}=${env[name]}: expected a number ≥ 0`);
  return value;
}

function flag(env: Env, name: string, fallback: boolean): boolean {
  const text = env[name]?.trim();
  return text === undefined || text === "" ? fallback : parseOnOff(text, `${name}=${env[name]}`, "1 or 0");
}

/** A path as the user should read it: relative to the working directory when inside it. */
export function displayPath(path: string, cwd: string = process.cwd()): string {
  const absolute = resolve(path);
  if (absolute === cwd) return ".";
  return absolute.startsWith(`${cwd}/`) ? absolute.slice(cwd.length + 1) : absolute;
}
