/**
 * Every file of a stage folder, named once (docs/formats.md): `out/<stage>/` holds `checkpoints/`,
 * `logs/attempt-N.log`, `metadata.json`, and per stage `checkpoints.jsonl` (sft) or
 * `reference.safetensors` (dpo). The trainer's arguments say where the folder and its checkpoints are.
 */
import { join } from "node:path";
import { runMetadataPath } from "../metadata/run-metadata.ts";
import { queueFileFor } from "../queue/index.ts";
import type { TrainerArgs } from "./args.ts";

export const REFERENCE_FILE_NAME = "reference.safetensors";
export const LOGS_DIR_NAME = "logs";

export interface StagePaths {
  outDir: string;
  ckptDir: string;
  logsDir: string;
  metadataFile: string;
  /** SFT's checkpoint work queue for a DPO sweep. */
  queueFile: string;
  /** DPO's frozen reference model. */
  referenceFile: string;
  /** The legacy weights beside the stage folder (`out/full_sft_512.safetensors`, docs/formats.md). */
  legacyWeights: string;
  /** Its PyTorch twin (`out/full_sft_512.pth`), what MiniMind's scripts load. */
  legacyPth: string;
  tensorboardDir: string;
  evalResults: string;
}

/** The files that belong to one run of a stage folder: what --restart moves aside with its checkpoints. */
export type RunFiles = Pick<StagePaths, "ckptDir" | "metadataFile" | "queueFile" | "referenceFile">;

export function runFiles(outDir: string, ckptDir: string): RunFiles {
  return {
    ckptDir,
    metadataFile: runMetadataPath(outDir),
    queueFile: queueFileFor(outDir),
    referenceFile: join(outDir, REFERENCE_FILE_NAME),
  };
}

export function stagePaths(
  args: Pick<TrainerArgs, "out_dir" | "ckpt_dir" | "legacy_weights" | "tensorboard_dir" | "eval_results">,
): StagePaths {
  return {
    ...runFiles(args.out_dir, args.ckpt_dir),
    outDir: args.out_dir,
    logsDir: join(args.out_dir, LOGS_DIR_NAME),
    legacyWeights: legacyWeightsFiles(args.legacy_weights).safetensors,
    legacyPth: legacyWeightsFiles(args.legacy_weights).pth,
    tensorboardDir: args.tensorboard_dir,
    evalResults: args.eval_results,
  };
}

/** `checkpoints.before-20261201T214600Z`: where a restart moves a checkpoints folder (beside it). */
export function restartDirFor(ckptDir: string, at: Date = new Date()): string {
  const stamp = at
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d+Z$/, "Z");
  return `${ckptDir.replace(/[/\\]+$/, "")}.before-${stamp}`;
}

/**
 * The two legacy weights files `--legacy_weights` names: the path with `.safetensors` and with
 * `.pth` for its extension (either may be given); a path with neither keeps its name for the
 * safetensors and gets `.pth` appended for the other.
 */
export function legacyWeightsFiles(legacyWeights: string): { safetensors: string; pth: string } {
  const match = /^(.*)\.(safetensors|pth)$/i.exec(legacyWeights);
  if (!match) return { safetensors: legacyWeights, pth: `${legacyWeights}.pth` };
  const stem = match[1] as string;
  return { safetensors: `${stem}.safetensors`, pth: `${stem}.pth` };
}
