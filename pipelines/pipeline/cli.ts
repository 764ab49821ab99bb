/**
 * The pipeline's own flags (docs/pipeline.md, plus the inference flags of mini-llm's run_mlx.sh).
 * Everything after `--` goes to every trainer untouched.
 */
import { UserError } from "../../lib/cli/errors.ts";
import { parseStrictArgs } from "../../lib/cli/flags.ts";
import { parseWholeNumber } from "../../lib/cli/values.ts";
import { STAGE_NAMES, type StageName } from "../../lib/stages/table.ts";
import type { StepName } from "./run-record.ts";

export interface PipelineFlags {
  help: boolean;
  smokeTest: boolean;
  /** Stages and infer to run, in pipeline order. */
  steps: StepName[];
  /** Use this checkpoint (step dir, stage dir or weights file) for the inference sample. */
  inferCheckpoint: string | null;
  /** The arguments after `--`, for every trainer. */
  rest: string[];
  /** --dpo-sweep: the dpo step is one DPO run per SFT checkpoint of the queue (docs/formats.md#the-checkpoint-queue-checkpointsjsonl); null: off. */
  dpoSweep: { watch: boolean; maxParallel: number } | null;
  /** --dpo-sweep-report: print the sweep's results and write them as CSV; nothing is trained. */
  dpoSweepReport: boolean;
  /** --restart a,b: move these stages' checkpoints aside and train them afresh. */
  restart: StageName[];
  /** --executor local|slurm (else EXECUTOR); checked in settings.ts. */
  executor?: string;
  /** --status: where the run's stages (and jobs) stand; --cancel: cancel the run's jobs. Nothing is trained. */
  status?: boolean;
  cancel?: boolean;
}

/** MiniMind's names for the stages (its weight prefixes and script names) are accepted too. */
const STEP_ALIASES: Record<string, StepName> = {
  pretrain: "pretrain",
  sft: "sft",
  full_sft: "sft",
  dpo: "dpo",
  rlhf: "dpo",
  r1: "r1",
  reason: "r1",
  distill_reason: "r1",
  infer: "infer",
};

const ALL_STEPS: readonly StepName[] = [...STAGE_NAMES, "infer"];

export function parsePipelineFlags(argv: readonly string[]): PipelineFlags {
  const split = argv.indexOf("--");
  const own = split === -1 ? argv : argv.slice(0, split);
  const rest = split === -1 ? [] : argv.slice(split + 1);
  const { values, positionals } = parseStrictArgs(own, PIPELINE_OPTIONS, {
    allowPositionals: true,
    hint: TRAINER_FLAGS_HINT,
  });
  if (positionals.length > 0) {
    throw new UserError(`unexpected argument ${JSON.stringify(positionals[0])} (${TRAINER_FLAGS_HINT})`);
  }

  let steps: StepName[] =
    values.stages === undefined ? [...ALL_STEPS] : parseStageList(values.stages, "--stages");
  const skipped = new Set<StepName>();
  for (const stage of STAGE_NAMES) if (values[`skip-${stage}`]) skipped.add(stage);
  if (values["skip-infer"]) skipped.add("infer");
  if (values["infer-only"] || values["infer-demo"] || values["infer-checkpoint"] !== undefined) {
    if (values.stages !== undefined) throw new UserError("--infer-only and --stages cannot be combined");
    steps = ["infer"];
  }
  steps = steps.filter((step) => !skipped.has(step));
  if (values["infer-checkpoint"] === "") throw new UserError("--infer-checkpoint: expected a path");
  const sweep = sweepFlags(values, steps);
  if (values.status && values.cancel) throw new UserError("--status and --cancel cannot be combined");

  return {
    help: values.help === true,
    smokeTest: values["smoke-test"] === true,
    steps: sweep.steps,
    inferCheckpoint: values["infer-checkpoint"] ?? null,
    rest,
    dpoSweep: sweep.dpoSweep,
    dpoSweepReport: sweep.report,
    restart:
      values.restart === undefined ? [] : restartStages(values.restart, sweep.steps, sweep.dpoSweep !== null),
    ...(values.executor === undefined ? {} : { executor: values.executor }),
    status: values.status === true,
    cancel: values.cancel === true,
  };
}

/** --restart names training stages this run trains; the DPO sweep restarts line by line, not as a stage. */
function restartStages(text: string, steps: readonly StepName[], sweeping: boolean): StageName[] {
  const stages = parseStageList(text, "--restart").filter(isTrainingStage);
  if (stages.length === 0)
    throw new UserError(`--restart: expected training stages (${STAGE_NAMES.join(", ")})`);
  for (const stage of stages) {
    if (!steps.includes(stage)) {
      throw new UserError(
        `--restart ${stage}: this run does not train ${stage} (see --stages and --skip-${stage})`,
      );
    }
  }
  if (sweeping && stages.includes("dpo")) {
    throw new UserError(
      "--restart dpo cannot be combined with --dpo-sweep: the sweep trains one DPO run per SFT checkpoint",
    );
  }
  return stages;
}

/**
 * --dpo-sweep replaces the dpo stage by the sweep and leaves out r1 and infer (they start from one
 * DPO result, and a sweep makes many); --dpo-sweep-report trains nothing.
 */
function sweepFlags(values: PipelineValues, steps: StepName[]) {
  const sweeping = values["dpo-sweep"] === true;
  const report = values["dpo-sweep-report"] === true;
  if (!sweeping && (values.watch || values["max-parallel"] !== undefined)) {
    throw new UserError(`${values.watch ? "--watch" : "--max-parallel"} applies to --dpo-sweep only`);
  }
  if (report) {
    if (sweeping || values.stages !== undefined) {
      throw new UserError(
        "--dpo-sweep-report trains nothing: it cannot be combined with --dpo-sweep or --stages",
      );
    }
    return { steps: [] as StepName[], dpoSweep: null, report };
  }
  if (!sweeping) return { steps, dpoSweep: null, report };
  if (values.stages !== undefined) {
    const after = steps.find((step) => step === "r1" || step === "infer");
    if (after)
      throw new UserError(`--dpo-sweep ends the pipeline after the sweep: drop ${after} from --stages`);
  }
  if (!steps.includes("dpo")) throw new UserError("--dpo-sweep needs the dpo stage (drop --skip-dpo)");
  return {
    steps: steps.filter((step) => step !== "r1" && step !== "infer"),
    dpoSweep: { watch: values.watch === true, maxParallel: parseMaxParallel(values["max-parallel"]) },
    report,
  };
}

const PIPELINE_OPTIONS = {
  help: { type: "boolean", short: "h" },
  "smoke-test": { type: "boolean" },
  "skip-pretrain": { type: "boolean" },
  "skip-sft": { type: "boolean" },
  "skip-dpo": { type: "boolean" },
  "skip-r1": { type: "boolean" },
  "skip-infer": { type: "boolean" },
  stages: { type: "string" },
  "infer-only": { type: "boolean" },
  "infer-demo": { type: "boolean" },
  "infer-checkpoint": { type: "string" },
  "dpo-sweep": { type: "boolean" },
  "dpo-sweep-report": { type: "boolean" },
  watch: { type: "boolean" },
  "max-parallel": { type: "string" },
  restart: { type: "string" },
  executor: { type: "string" },
  status: { type: "boolean" },
  cancel: { type: "boolean" },
} as const;
const TRAINER_FLAGS_HINT = "trainer flags go after --; see --help";

type PipelineValues = ReturnType<typeof parseStrictArgs<typeof PIPELINE_OPTIONS, true>>["values"];

function parseStageList(text: string, flag: string): StepName[] {
  const wanted = new Set<StepName>();
  for (const raw of text.split(",")) {
    const name = raw.trim().toLowerCase().replaceAll("-", "_");
    if (name === "") continue;
    const step = STEP_ALIASES[name];
    if (step === undefined) {
      throw new UserError(
        `${flag}: unknown stage ${JSON.stringify(raw.trim())} (expected a comma-separated list of ${ALL_STEPS.join(", ")})`,
      );
    }
    wanted.add(step);
  }
  if (wanted.size === 0) throw new UserError(`${flag}: expected at least one of ${ALL_STEPS.join(", ")}`);
  return ALL_STEPS.filter((step) => wanted.has(step));
}

export function isTrainingStage(step: StepName): step is StageName {
  return step !== "infer";
}

/** `--max-parallel N`: how many DPO children run at once (default 1). */
export function parseMaxParallel(text: string | undefined, flag = "--max-parallel"): number {
  return text === undefined ? 1 : parseWholeNumber(text, `${flag} ${JSON.stringify(text)}`, 1);
}
