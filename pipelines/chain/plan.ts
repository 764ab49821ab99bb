/**
 * A chain's plan, made before anything is submitted: the pipeline's own per-stage plan
 * (pipelines/pipeline/plan.ts) over the disk as it is now, read as a prediction for stages that run
 * after others of the same chain. Each job runs its trainer with `--resume auto` and decides where
 * it starts itself, at run time, with the shared rule (lib/stages/start.ts) — so a requeued job
 * resumes from its newest checkpoint, not from the one planned here.
 *
 * What can be seen up front still stops the chain before a job is submitted: another model shape,
 * an invalid checkpoint folder, a stale stage — including one that will be stale because an earlier
 * stage of this chain trains again — and a stage with nothing to start from and no earlier stage in
 * the chain to provide it.
 */
import { dirname, join, resolve } from "node:path";
import { UserError } from "../../lib/cli/errors.ts";
import { legacyWeightsName } from "../../lib/stages/args.ts";
import { describeStart } from "../../lib/stages/start.ts";
import { STAGES, type StageName } from "../../lib/stages/table.ts";
import { planStage, restartHint, type StagePlan } from "../pipeline/plan.ts";
import type { RestartPlan } from "../pipeline/restarts.ts";
import type { PipelineSettings } from "../pipeline/settings.ts";

export interface ChainStage {
  stage: StageName;
  plan: StagePlan;
  /** Submitted as a job (else: finished, skipped). */
  submit: boolean;
  /** --restart: move its run aside before submitting (the job itself never restarts: it may be requeued). */
  restart: boolean;
  /** The trainer flags the job adds to the stage's own (never a checkpoint path: the trainer decides). */
  jobFlags: string[];
  /** The one line said before submitting. */
  line: string;
}

export interface ChainPlanOptions {
  restarts: RestartPlan;
  initOverride: string | null;
  /** SLURM_MAX_REQUEUES: the jobs requeue themselves after a time-limit save this many times at most. */
  maxRequeues: number;
  show: (path: string) => string;
}

export async function planChain(
  settings: PipelineSettings,
  stages: readonly StageName[],
  options: ChainPlanOptions,
): Promise<ChainStage[]> {
  const chain: ChainStage[] = [];
  const trains = new Set<StageName>();
  for (const stage of stages) {
    const own = settings.stages[stage];
    if (own.args.resume !== "auto") {
      throw new UserError(
        `${stage}: --resume ${own.args.resume} cannot be used with EXECUTOR=slurm: a requeued job would start from it again; ` +
          "its jobs always resume their stage's latest valid checkpoint (--resume auto)",
      );
    }
    const restart = options.restarts.now.has(stage);
    const initOverride = stage === stages[0] ? options.initOverride : null;
    const plan = await planStage(settings, stage, { restart, initOverride, show: options.show });
    const { decision } = plan;
    // The stage of this chain its job will start from, when one trains before it.
    const fromChain = STAGES[stage].startsFrom.find((source) => trains.has(source)) ?? null;
    const trainedFrom =
      decision.kind === "skip" || decision.kind === "resume" ? decision.checkpoint.startedFrom : null;
    if (
      trainedFrom?.kind === "checkpoint" &&
      trainedFrom.stage &&
      trains.has(trainedFrom.stage as StageName)
    ) {
      const source = trainedFrom.stage as StageName;
      throw new UserError(
        `${stage} would be stale: it was trained from ${source} step ${trainedFrom.step}, and this chain trains ${source} again first; ` +
          `retrain it too with ${restartHint(stagesFrom(stage, stages))}, or leave it out of this run (--stages)`,
      );
    }
    if (decision.kind === "refuse" || (decision.kind === "blocked" && fromChain === null)) {
      throw new UserError(`${stage}: ${plan.line}`);
    }
    if (decision.kind === "skip") {
      chain.push({ stage, plan, submit: false, restart: false, jobFlags: [], line: plan.line });
      continue;
    }
    // The user's --init_from is in the stage's own flags already; INIT_FROM comes in as the plan's.
    const override = own.args.init_from === "" ? initOverride : null;
    const explicitInit = own.args.init_from !== "" || override !== null;
    const prediction =
      decision.kind === "resume"
        ? describeStart(decision, options.show)
        : fromChain !== null && !explicitInit
          ? `initialising from ${fromChain}'s latest checkpoint once its job has finished`
          : decision.kind === "blocked"
            ? `starting from ${fromChain}'s latest checkpoint once its job has finished`
            : describeStart(decision, options.show);
    const jobFlags = [
      "--resume",
      "auto",
      "--requeue_on_stop",
      String(options.maxRequeues),
      ...(explicitInit
        ? override === null
          ? []
          : ["--init_from", override]
        : initFlags(settings, stage, fromChain)),
    ];
    trains.add(stage);
    chain.push({
      stage,
      plan,
      submit: true,
      restart: restart && plan.survey.own.stepDirs > 0,
      jobFlags,
      line: `${prediction} (the job decides at run time)`,
    });
  }
  return chain;
}

/**
 * `--init_from` for a job only where the trainer would not find the weights itself: stage folders
 * the pipeline placed elsewhere (PRETRAIN_OUT…) than beside each other, where the trainer looks;
 * then the source's folder, whose latest valid checkpoint the trainer takes when it starts.
 */
function initFlags(settings: PipelineSettings, stage: StageName, fromChain: StageName | null): string[] {
  const own = settings.stages[stage];
  const root = dirname(resolve(own.outDir));
  const sources = STAGES[stage].startsFrom;
  const findsThem = sources.every(
    (source) =>
      resolve(settings.stages[source].ckptDir) === join(root, source, "checkpoints") &&
      resolve(settings.stages[source].legacyFile) ===
        join(root, legacyWeightsName(source, own.args.hidden_size)),
  );
  if (findsThem || sources.length === 0) return [];
  const source = fromChain ?? sources[0];
  return source === undefined ? [] : ["--init_from", settings.stages[source].outDir];
}

function stagesFrom(stage: StageName, stages: readonly StageName[]): StageName[] {
  return stages.slice(stages.indexOf(stage));
}
