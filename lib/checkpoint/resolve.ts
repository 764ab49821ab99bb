import { readdir, stat } from "node:fs/promises";
import { basename, join } from "node:path";
import { describeFsError, UserError } from "../cli/errors.ts";
import { isDirectory } from "../fs/probe.ts";
import { parseStepDirName, STAGING_PREFIX } from "./layout.ts";

export type ResolvedCheckpointPath =
  | { kind: "checkpoints"; ckptDir: string }
  | { kind: "step"; stepDir: string; step: number };

/**
 * Make sense of a folder a user names: a stage folder (`out/sft`, holding `checkpoints/`),
 * a checkpoints folder (holding step_NNNNNNNN dirs, or named `checkpoints`), or one step dir.
 * Anything else is a UserError saying what was expected (after `flag`, the flag that named it, if given).
 */
export async function resolveCheckpointsDir(dir: string, flag?: string): Promise<ResolvedCheckpointPath> {
  try {
    return await resolve(dir);
  } catch (error) {
    if (flag !== undefined && error instanceof UserError) throw new UserError(`${flag} ${error.message}`);
    throw error;
  }
}

async function resolve(dir: string): Promise<ResolvedCheckpointPath> {
  try {
    if (!(await stat(dir)).isDirectory()) throw new UserError(`${dir}: not a directory`);
  } catch (error) {
    if (error instanceof UserError) throw error;
    throw new UserError(`${dir}: ${describeFsError(error)}`);
  }
  const trimmed = dir.replace(/(.)[/\\]+$/, "$1");
  const step = parseStepDirName(trimmed);
  if (step !== null) return { kind: "step", stepDir: trimmed, step };
  const inner = join(trimmed, "checkpoints");
  if (await isDirectory(inner)) return { kind: "checkpoints", ckptDir: inner };
  const names = await readdir(trimmed);
  if (
    basename(trimmed) === "checkpoints" ||
    names.some((name) => parseStepDirName(name) !== null || name.startsWith(STAGING_PREFIX))
  ) {
    return { kind: "checkpoints", ckptDir: trimmed };
  }
  throw new UserError(
    `${dir}: not a stage folder (no checkpoints/ inside) nor a checkpoints folder (no step_NNNNNNNN inside)`,
  );
}
