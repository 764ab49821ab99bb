/**
 * What the pipeline does with one stage (DESIGN §5), decided from what is on disk:
 * finished → skip; a valid checkpoint → resume it; else start from the previous stage's latest
 * valid checkpoint, else its legacy weights file; pretrain starts fresh; otherwise stop and say
 * which stage to run first. Pure: the survey (survey.ts) reads the disk, this only decides.
 */
import type { StageName } from "../config/stages.ts";

/** The latest valid checkpoint of a stage folder, as far as the plan cares. */
export interface CheckpointSummary {
  path: string;
  step: number;
  epoch: number;
  /** Batches consumed in the current epoch. */
  stepInEpoch: number;
  finished: boolean;
}

export interface StageSurvey {
  stage: StageName;
  /** Its own latest valid checkpoint. */
  latest: CheckpointSummary | null;
  /** Where its checkpoints live (named in messages). */
  ckptDir: string;
  /** Weights given explicitly (INIT_FROM), used instead of the previous stage's when there is nothing to resume. */
  initOverride: string | null;
  /** The stage it starts from (null: random init) and what that stage left behind. */
  previous: {
    stage: StageName;
    latest: CheckpointSummary | null;
    ckptDir: string;
    /** Its legacy weights file (`out/full_sft_512.safetensors`). */
    legacyFile: string;
    legacyExists: boolean;
  } | null;
}

export type StageDecision =
  | { kind: "skip"; checkpoint: CheckpointSummary }
  | { kind: "resume"; checkpoint: CheckpointSummary }
  | {
      kind: "init";
      from: string;
      source: "checkpoint" | "legacy" | "override";
      /** The checkpoint it starts from, when it is one. */
      checkpoint?: CheckpointSummary;
    }
  | { kind: "fresh" }
  | { kind: "blocked"; runFirst: StageName; message: string };

export function planStage(survey: StageSurvey): StageDecision {
  const own = survey.latest;
  if (own?.finished) return { kind: "skip", checkpoint: own };
  if (own) return { kind: "resume", checkpoint: own };
  if (survey.initOverride) return { kind: "init", from: survey.initOverride, source: "override" };
  const previous = survey.previous;
  if (previous === null) return { kind: "fresh" };
  if (previous.latest) {
    return { kind: "init", from: previous.latest.path, source: "checkpoint", checkpoint: previous.latest };
  }
  if (previous.legacyExists) return { kind: "init", from: previous.legacyFile, source: "legacy" };
  return {
    kind: "blocked",
    runFirst: previous.stage,
    message:
      `nothing to start from: run the ${previous.stage} stage first ` +
      `(no valid checkpoint in ${previous.ckptDir}, no ${previous.legacyFile}; or set INIT_FROM)`,
  };
}

/** The trainer flags a decision adds (none for skip and blocked: nothing runs). */
export function decisionArgs(decision: StageDecision): string[] {
  switch (decision.kind) {
    case "resume":
    case "fresh":
      // `auto`, not the path: the trainer also checks SHA-256s and falls back to an older checkpoint.
      return ["--resume", "auto"];
    case "init":
      return ["--resume", "auto", "--init_from", decision.from];
    default:
      return [];
  }
}

/**
 * The one line the pipeline logs for a decision, after `[stage] `. `show` turns a path into
 * what the user should read (relative to the working directory).
 */
export function describeDecision(
  survey: StageSurvey,
  decision: StageDecision,
  show: (path: string) => string = (path) => path,
): string {
  switch (decision.kind) {
    case "skip":
      return `already finished at step ${decision.checkpoint.step} (${show(decision.checkpoint.path)}); skipping`;
    case "resume": {
      const c = decision.checkpoint;
      return `resuming from ${show(c.path)} (epoch ${c.epoch}, batch ${c.stepInEpoch})`;
    }
    case "fresh":
      return "starting from random weights";
    case "init": {
      const from = show(decision.from);
      if (decision.source === "override") return `initialising from ${from} (INIT_FROM)`;
      const previous = survey.previous?.stage ?? "previous stage";
      if (decision.source === "legacy") {
        return `initialising from ${from} (${previous} has no valid checkpoint; using its weights file)`;
      }
      const c = decision.checkpoint;
      const unfinished = c && !c.finished ? `, not finished: ${previous} stopped at step ${c.step}` : "";
      return `initialising from ${from} (${previous}'s latest checkpoint${unfinished})`;
    }
    case "blocked":
      return decision.message;
  }
}
