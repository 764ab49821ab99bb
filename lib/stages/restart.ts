/**
 * `--restart`: a stage starts over without deleting anything. Its checkpoints folder is renamed to
 * `checkpoints.before-<time>/` beside it, and the files that belong to that run (the SFT queue, the
 * DPO reference, metadata.json) move into it, so the old run stays complete and resumable by hand.
 */
import { mkdir, readdir, rename } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { parseStepDirName } from "../checkpoint/index.ts";
import { isNodeError } from "../cli/errors.ts";
import { fsyncDir } from "../fs/atomic.ts";
import { pathExists } from "../fs/probe.ts";
import { assertUnclaimed } from "../process/folder-claim.ts";
import { type RunFiles, restartDirFor } from "./paths.ts";

async function freshTarget(ckptDir: string, at: Date): Promise<string> {
  let target = restartDirFor(ckptDir, at);
  for (let n = 2; await pathExists(target); n++) target = `${restartDirFor(ckptDir, at)}-${n}`;
  return target;
}

/** Move the stage's run aside; returns where it went. */
export async function moveRunAside(paths: RunFiles, at: Date = new Date()): Promise<string> {
  // Never from under a trainer that is writing it (its own restart holds the claim itself).
  assertUnclaimed(paths.ckptDir, "the checkpoints to move aside");
  const target = await freshTarget(paths.ckptDir, at);
  await rename(paths.ckptDir, target);
  for (const file of [paths.queueFile, paths.referenceFile, paths.metadataFile]) {
    try {
      await rename(file, join(target, basename(file)));
    } catch (error) {
      if (!(isNodeError(error) && error.code === "ENOENT")) throw error;
    }
  }
  await fsyncDir(target);
  await mkdir(dirname(paths.ckptDir), { recursive: true });
  await fsyncDir(dirname(paths.ckptDir));
  if (dirname(paths.metadataFile) !== dirname(paths.ckptDir)) await fsyncDir(dirname(paths.metadataFile));
  return target;
}

/** `--resume <older step>`: move the step checkpoints newer than `step` aside; returns where, and how many. */
export async function moveNewerAside(
  ckptDir: string,
  step: number,
  at: Date = new Date(),
): Promise<{ target: string; moved: number }> {
  const newer = (await readdir(ckptDir)).filter((name) => (parseStepDirName(name) ?? -1) > step);
  const target = await freshTarget(ckptDir, at);
  await mkdir(target);
  for (const name of newer) await rename(join(ckptDir, name), join(target, name));
  await fsyncDir(target);
  await fsyncDir(ckptDir);
  return { target, moved: newer.length };
}
