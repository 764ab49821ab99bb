/**
 * What a stage's folders hold, read cheaply (names, state.json, sizes; no hashing), for the start
 * decision (start.ts). The trainer and the pipeline both survey the disk with these functions.
 */
import { dirname } from "node:path";
import {
  type CheckpointInfo,
  type CheckpointState,
  inspectCheckpoint,
  resolveCheckpointsDir,
  runIdOf,
  surveyCheckpoints,
} from "../checkpoint/index.ts";
import { UserError } from "../cli/errors.ts";
import { isFile } from "../fs/probe.ts";
import { legacyWeightsFiles } from "./paths.ts";
import type { StageName } from "./table.ts";

/** state.json `started_from`: exactly what a run's first session started from (docs/formats.md). */
export interface StartedFrom {
  kind: "checkpoint" | "weights" | "random";
  /** The step directory or weights file; null for random weights. */
  path: string | null;
  /** For a checkpoint: its stage, step, run and folder (what the pipeline's staleness check compares). */
  stage?: string;
  step?: number;
  run_id?: string;
  ckpt_dir?: string;
}

/** The latest valid checkpoint of a folder, as far as a start decision cares. */
export interface CheckpointSummary {
  path: string;
  step: number;
  epoch: number;
  /** Batches consumed in the current epoch. */
  stepInEpoch: number;
  finished: boolean;
  runId: string;
  /** The trainer arguments it was trained with (state.json `args`). */
  args: Record<string, unknown>;
  modelConfig: Record<string, unknown>;
  tokenizer: string | null;
  startedFrom: StartedFrom | null;
  /** Updates per epoch with the data and batch size it was trained with (null in older checkpoints). */
  updatesPerEpoch: number | null;
}

export interface FolderSurvey {
  ckptDir: string;
  latest: CheckpointSummary | null;
  /** How many step directories the folder holds, valid or not. */
  stepDirs: number;
  /** Invalid step directories newer than `latest` (all of them when none is valid): name and why. */
  invalidNewer: Array<{ name: string; reason: string }>;
}

export interface SourceSurvey {
  stage: StageName;
  folder: FolderSurvey;
  /** Its legacy weights file (`out/full_sft_512.safetensors`, else the `.pth` beside it when only that exists). */
  legacyFile: string;
  legacyExists: boolean;
}

export interface StageSurvey {
  stage: StageName;
  /** The stage's own checkpoints folder. */
  own: FolderSurvey;
  /** `--resume <path>`: the checkpoint it names (its folder's latest for a folder); null for auto/none. */
  named: FolderSurvey | null;
  /** The stages it may initialise from (STAGES[stage].startsFrom), in order of preference. */
  sources: SourceSurvey[];
  /** Where the latest checkpoint's run started from, as that folder is now (for the staleness check); null: not looked at. */
  lineage: FolderSurvey | null;
}

function numberOr(value: unknown, fallback: number | null): number | null {
  return typeof value === "number" && Number.isFinite(value) ? value : fallback;
}

function startedFromOf(value: unknown): StartedFrom | null {
  if (typeof value !== "object" || value === null) return null;
  const kind = (value as StartedFrom).kind;
  return kind === "checkpoint" || kind === "weights" || kind === "random" ? (value as StartedFrom) : null;
}

export function summarise(path: string, state: CheckpointState): CheckpointSummary {
  return {
    path,
    step: state.global_step,
    epoch: state.epoch,
    stepInEpoch: state.step_in_epoch,
    finished: state.finished,
    runId: runIdOf(state),
    args: state.args,
    modelConfig: state.model_config,
    tokenizer: typeof state.tokenizer === "string" ? state.tokenizer : null,
    startedFrom: startedFromOf(state.started_from),
    updatesPerEpoch: numberOr(state.updates_per_epoch, null),
  };
}

function summaryOf(info: CheckpointInfo | null): CheckpointSummary | null {
  return info?.valid && info.state ? summarise(info.path, info.state) : null;
}

export async function surveyFolder(ckptDir: string): Promise<FolderSurvey> {
  const found = await surveyCheckpoints(ckptDir);
  return {
    ckptDir,
    latest: summaryOf(found.latest),
    stepDirs: found.stepDirs,
    invalidNewer: found.invalidNewer.map((c) => ({ name: c.name, reason: c.reason ?? "invalid" })),
  };
}

/**
 * `--resume <path>`: the checkpoint it names stands in for the folder's latest — a step dir as it
 * is (it must be valid), a stage or checkpoints folder by its latest valid one.
 */
export async function surveyNamedCheckpoint(path: string, flag: string): Promise<FolderSurvey> {
  const resolved = await resolveCheckpointsDir(path, flag);
  if (resolved.kind === "checkpoints") {
    const folder = await surveyFolder(resolved.ckptDir);
    if (folder.latest === null)
      throw new UserError(`${flag} ${path}: no valid checkpoint in ${resolved.ckptDir}`);
    return folder;
  }
  const info = await inspectCheckpoint(resolved.stepDir);
  if (!info.valid) throw new UserError(`${flag} ${path}: not a valid checkpoint (${info.reason})`);
  return { ckptDir: dirname(resolved.stepDir), latest: summaryOf(info), stepDirs: 1, invalidNewer: [] };
}

export interface StageLocations {
  stage: StageName;
  ckptDir: string;
  /** For each stage it may start from: its checkpoints folder and legacy weights file. */
  sources: Array<{ stage: StageName; ckptDir: string; legacyFile: string }>;
}

/**
 * Survey a stage before a session: its own folder (or the checkpoint `--resume` names), the
 * stages it may initialise from, and — with `lineage` — the folder its run started from.
 */
export async function surveyStage(
  where: StageLocations,
  options: { resume?: string; lineage?: boolean } = {},
): Promise<StageSurvey> {
  const resume = options.resume ?? "auto";
  const own = await surveyFolder(where.ckptDir);
  const named =
    resume === "auto" || resume === "none" ? null : await surveyNamedCheckpoint(resume, "--resume");
  const sources: SourceSurvey[] = [];
  for (const source of where.sources) {
    // The legacy .safetensors, else its .pth twin (a stage saved with --legacy_format pth).
    const { safetensors, pth } = legacyWeightsFiles(source.legacyFile);
    const found = (await isFile(safetensors)) ? safetensors : (await isFile(pth)) ? pth : null;
    sources.push({
      stage: source.stage,
      folder: await surveyFolder(source.ckptDir),
      legacyFile: found ?? source.legacyFile,
      legacyExists: found !== null,
    });
  }
  const from = (named ?? own).latest?.startedFrom;
  const lineage =
    options.lineage && from?.kind === "checkpoint" && typeof from.ckpt_dir === "string"
      ? await surveyFolder(from.ckpt_dir)
      : null;
  return { stage: where.stage, own, named, sources, lineage };
}
