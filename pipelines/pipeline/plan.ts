/**
 * What the pipeline does with one stage: the shared start decision (lib/stages/start.ts) over a
 * survey of what its folders hold — with the staleness check, which only the pipeline makes (it
 * knows the chain) — and the trainer flags that carry the decision out. The trainer is passed the
 * exact checkpoint chosen here; it verifies it and, if a file is damaged, falls back and says so.
 */
import { resolve } from "node:path";
import { decideStart, describeStart, type StartDecision } from "../../lib/stages/start.ts";
import { type StageSurvey, surveyStage } from "../../lib/stages/survey.ts";
import { STAGES, type StageName } from "../../lib/stages/table.ts";
import type { PipelineSettings } from "./settings.ts";

export interface StagePlan {
  survey: StageSurvey;
  decision: StartDecision;
  /** The trainer flags the decision adds (none when nothing runs). */
  planFlags: string[];
  /** The one line the pipeline records (and prints for a stage it does not run). */
  line: string;
}

export interface PlanOptions {
  /** --restart names this stage (and its restart was not already done by an interrupted run of the same command). */
  restart: boolean;
  /** INIT_FROM, for the first stage of this run (never pretrain): used when it has no checkpoint of its own. */
  initOverride: string | null;
  show: (path: string) => string;
}

export const restartHint = (stages: readonly StageName[]): string => `--restart ${stages.join(",")}`;

export async function planStage(
  settings: PipelineSettings,
  stage: StageName,
  options: PlanOptions,
): Promise<StagePlan> {
  const own = settings.stages[stage];
  const sources = STAGES[stage].startsFrom.map((source) => ({
    stage: source,
    ckptDir: settings.stages[source].ckptDir,
    legacyFile: settings.stages[source].legacyFile,
  }));
  const survey = await surveyStage(
    { stage, ckptDir: own.ckptDir, sources },
    { resume: own.args.resume, lineage: true },
  );
  const initFrom = own.args.init_from || (sources.length > 0 ? (options.initOverride ?? "") : "");
  const args = { ...own.args, init_from: initFrom, restart: own.args.restart || options.restart };
  const decision = decideStart(survey, { args, restartHint, initHint: "INIT_FROM" });
  return {
    survey,
    decision,
    planFlags: planFlags(decision, args.restart),
    line: describe(decision, options.show),
  };
}

function planFlags(decision: StartDecision, restart: boolean): string[] {
  const again =
    restart && (decision.kind === "init" || decision.kind === "fresh") && decision.restart
      ? ["--restart"]
      : [];
  switch (decision.kind) {
    case "resume":
      return ["--resume", resolve(decision.checkpoint.path)];
    case "init":
      return [...again, "--init_from", decision.from];
    case "fresh":
      return again;
    default:
      return [];
  }
}

function describe(decision: StartDecision, show: (path: string) => string): string {
  if (decision.kind === "refuse" || decision.kind === "blocked") return decision.message;
  const line = describeStart(decision, show);
  return decision.kind === "skip" ? `${line}; skipping` : line;
}
