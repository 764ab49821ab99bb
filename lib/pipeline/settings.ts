/**
 * Everything the pipeline takes from its flags and environment (DESIGN §5), checked once, with
 * each stage's trainer command line assembled from layers (trainer-args.ts), lowest priority first:
 *
 *   1. paths and shape     --data_path --out_dir --tensorboard_dir --hidden_size --num_hidden_layers --keep_last_checkpoints
 *   2. the plan            --resume auto / --init_from <previous stage>   (added per run, plan.ts)
 *   3. --smoke-test        a tiny, short run
 *   4. environment         SAVE_INTERVAL, LOG_INTERVAL, <STAGE>_MAX_STEPS, _EPOCHS, _BATCH_SIZE, _ACCUM_STEPS, _SEQ_LEN
 *   5. `--` rest           every trainer
 *   6. <STAGE>_ARGS        one trainer
 *
 * Training hyper-parameters not named here are the trainers' own defaults.
 */
import { dirname, join, resolve } from "node:path";
import { UserError } from "../cli/errors.ts";
import { legacyWeightsPath, STAGE_NAMES, STAGES, type StageName } from "../config/stages.ts";
import { type TensorBoardEnvSettings, tensorBoardSettingsFromEnv } from "../tensorboard/config.ts";
import type { PipelineFlags } from "./cli.ts";
import {
  type FlagLayer,
  flags,
  flagValue,
  mergeFlagLayers,
  parseFlagGroups,
  splitShellWords,
} from "./trainer-args.ts";

type Env = Readonly<Record<string, string | undefined>>;

/** Model shape when MODEL_HIDDEN_SIZE / MODEL_NUM_LAYERS are unset: the trainers' own defaults… */
export const DEFAULT_SHAPE = { hiddenSize: 128, numLayers: 4 } as const;
/** …and a smaller model for --smoke-test. */
export const SMOKE_SHAPE = { hiddenSize: 64, numLayers: 2 } as const;
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
export const DEFAULT_INFER_PROMPT = "Which town is Oskel from?";

/** Per-stage environment overrides in mini-llm's run_mlx.sh spelling: PRETRAIN_MAX_STEPS → --max_steps. */
const STAGE_ENV_FLAGS = [
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
  /** The values the trainer will use (after every layer), which the plan needs to look at. */
  outDir: string;
  ckptDir: string;
  legacyFile: string;
  /** The trainer's arguments for a given plan (`decisionArgs(decision)`). */
  trainerArgs(decision: readonly string[]): string[];
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
  hiddenSize: number;
  numLayers: number;
  stopGraceMs: number;
  tensorBoard: { auto: boolean } & TensorBoardEnvSettings;
  initOverride: string | null;
  stages: Record<StageName, StageSettings>;
  infer: InferSettings;
}

export function pipelineSettings(env: Env, cli: PipelineFlags, repo: string): PipelineSettings {
  const smoke = cli.smokeTest;
  const outDir = env.OUT_DIR || (smoke ? join("out", "smoke") : "out");
  const tfDir = env.TF_DIR || join(outDir, "tensorboard");
  const dataDir = env.DATA_DIR || join(repo, "data");
  const shape = smoke ? SMOKE_SHAPE : DEFAULT_SHAPE;
  const hiddenSize = wholeNumber(env, "MODEL_HIDDEN_SIZE", 8) ?? shape.hiddenSize;
  const numLayers = wholeNumber(env, "MODEL_NUM_LAYERS", 1) ?? shape.numLayers;
  const keepLast = wholeNumber(env, "KEEP_LAST", 1) ?? wholeNumber(env, "KEEP_LAST_CHECKPOINTS", 1) ?? 3;
  const envLayerCommon = flags([
    ["save_interval", wholeNumber(env, "SAVE_INTERVAL", 1)],
    ["log_interval", wholeNumber(env, "LOG_INTERVAL", 1)],
  ]);
  const rest = parseFlagGroups(cli.rest, "arguments after --");

  const stages = {} as Record<StageName, StageSettings>;
  for (const stage of STAGE_NAMES) {
    const spec = STAGES[stage];
    const stageOut = env[spec.env.out] || join(outDir, stage);
    const base = flags([
      ["data_path", env[spec.env.json] || join(dataDir, spec.dataFile)],
      ["out_dir", stageOut],
      ["tensorboard_dir", join(tfDir, stage)],
      ["hidden_size", hiddenSize],
      ["num_hidden_layers", numLayers],
      ["keep_last_checkpoints", keepLast],
    ]);
    const smokeLayer = smoke ? flags(SMOKE_TRAINER_FLAGS) : [];
    const envLayer = [
      ...envLayerCommon,
      ...flags(
        STAGE_ENV_FLAGS.map(([suffix, flag]) => [
          flag,
          wholeNumber(env, `${stageEnvPrefix(stage)}_${suffix}`, 0),
        ]),
      ),
    ];
    const stageArgs = parseFlagGroups(
      splitShellWords(env[spec.env.args] ?? "", spec.env.args),
      spec.env.args,
    );
    const layersWith = (decision: readonly string[]): FlagLayer[] => [
      base,
      parseFlagGroups(decision, "plan"),
      smokeLayer,
      envLayer,
      rest,
      stageArgs,
    ];
    const effective = mergeFlagLayers(layersWith([]));
    const effectiveOut = flagValue(effective, "out_dir") ?? stageOut;
    const effectiveHidden = Number(flagValue(effective, "hidden_size") ?? hiddenSize);
    stages[stage] = {
      stage,
      trainer: join(repo, spec.trainer),
      outDir: effectiveOut,
      ckptDir: flagValue(effective, "ckpt_dir") || join(effectiveOut, "checkpoints"),
      legacyFile:
        flagValue(effective, "legacy_weights") ||
        legacyWeightsPath(dirname(effectiveOut), stage, effectiveHidden),
      trainerArgs: (decision) => mergeFlagLayers(layersWith(decision)),
    };
  }

  const stopGraceSec = nonNegativeNumber(env, "STOP_GRACE_SEC") ?? DEFAULT_STOP_GRACE_SEC;
  return {
    repo,
    outDir,
    tfDir,
    recordFile: join(outDir, "pipeline.json"),
    smokeTest: smoke,
    cleanSmokeOutputs: smoke && !env.OUT_DIR && flag(env, "CLEANUP_SMOKE", true),
    hiddenSize,
    numLayers,
    stopGraceMs: Math.round(stopGraceSec * 1000),
    tensorBoard: {
      auto: flag(env, "TB_AUTO", true),
      ...tensorBoardSettingsFromEnv({ ...env, OUT_DIR: outDir, TF_DIR: tfDir }),
    },
    initOverride: env.INIT_FROM || env.MLX_INIT_FROM || null,
    stages,
    infer: inferSettings(env, cli, outDir),
  };
}

/** The environment prefix of a stage's variables: PRETRAIN, SFT, DPO, R1 (from PRETRAIN_ARGS…). */
export function stageEnvPrefix(stage: StageName): string {
  return STAGES[stage].env.args.replace(/_ARGS$/, "");
}

function inferSettings(env: Env, cli: PipelineFlags, outDir: string): InferSettings {
  const rest = cli.rest;
  const backend = flagValue(rest, "backend");
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

function wholeNumber(env: Env, name: string, min: number): number | undefined {
  const text = env[name]?.trim();
  if (text === undefined || text === "") return undefined;
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < min) {
    throw new UserError(`${name}=${env[name]}: expected a whole number ≥ ${min}`);
  }
  return value;
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
  const text = env[name]?.trim().toLowerCase();
  if (text === undefined || text === "") return fallback;
  if (["1", "true", "yes", "on"].includes(text)) return true;
  if (["0", "false", "no", "off"].includes(text)) return false;
  throw new UserError(`${name}=${env[name]}: expected 1 or 0`);
}

/** A path as the user should read it: relative to the working directory when inside it. */
export function displayPath(path: string, cwd: string = process.cwd()): string {
  const absolute = resolve(path);
  if (absolute === cwd) return ".";
  return absolute.startsWith(`${cwd}/`) ? absolute.slice(cwd.length + 1) : absolute;
}
