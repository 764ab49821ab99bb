/** Read what a stage (and the stage before it) left on disk, for planStage(). */
import { latestValidCheckpoint } from "../checkpoint/index.ts";
import type { StageName } from "../config/stages.ts";
import { isFile } from "../fs/probe.ts";
import type { CheckpointSummary, StageSurvey } from "./plan.ts";

/** Where one stage keeps its outputs, as the trainer will be told. */
export interface StageLocation {
  stage: StageName;
  ckptDir: string;
  legacyFile: string;
}

/** The latest valid checkpoint in `ckptDir` (cheap checks: names, state.json, sizes), or null. */
export async function latestCheckpointSummary(ckptDir: string): Promise<CheckpointSummary | null> {
  const info = await latestValidCheckpoint(ckptDir);
  if (info === null || info.state === null) return null;
  return {
    path: info.path,
    step: info.step,
    epoch: info.state.epoch,
    stepInEpoch: info.state.step_in_epoch,
    finished: info.state.finished,
  };
}

export async function surveyStage(
  own: StageLocation,
  previous: StageLocation | null,
  initOverride: string | null,
): Promise<StageSurvey> {
  return {
    stage: own.stage,
    latest: await latestCheckpointSummary(own.ckptDir),
    ckptDir: own.ckptDir,
    initOverride,
    previous:
      previous === null
        ? null
        : {
            stage: previous.stage,
            latest: await latestCheckpointSummary(previous.ckptDir),
            ckptDir: previous.ckptDir,
            legacyFile: previous.legacyFile,
            legacyExists: await isFile(previous.legacyFile),
          },
  };
}
