import { randomBytes } from "node:crypto";
import { basename } from "node:path";

/** The highest step an 8-digit `step_%08d` name can hold. */
export const MAX_STEP = 99_999_999;
export const STATE_FILE = "state.json";
/** Everything in checkpoints/ starting with this is a staging leftover: never chosen, removed at the next save. */
export const STAGING_PREFIX = ".tmp-";

const STEP_NAME = /^step_(\d{8})$/;

export function stepDirName(step: number): string {
  return `step_${String(step).padStart(8, "0")}`;
}

/** The step number of a `step_NNNNNNNN` name (a path's last segment), or null for any other name. */
export function parseStepDirName(nameOrPath: string): number | null {
  const match = STEP_NAME.exec(basename(nameOrPath));
  return match ? Number(match[1]) : null;
}

/**
 * Staging names carry their writer's PID so another live process's staging dir is left alone:
 * `.tmp-<role>step_NNNNNNNN-<pid>-<random>`; role "" is a save in progress, "old-" a checkpoint
 * being replaced, "prune-" one being deleted.
 */
export type StagingRole = "" | "old-" | "prune-";

export function stagingDirName(role: StagingRole, step: number): string {
  return `${STAGING_PREFIX}${role}${stepDirName(step)}-${process.pid}-${randomBytes(4).toString("hex")}`;
}

const STAGING_NAME = /^\.tmp-(old-|prune-|)(step_\d{8})-(\d+)-[0-9a-f]+$/;

export interface StagingName {
  role: StagingRole;
  stepDir: string;
  pid: number;
}

export function parseStagingName(name: string): StagingName | null {
  const match = STAGING_NAME.exec(name);
  if (!match) return null;
  return { role: match[1] as StagingRole, stepDir: match[2] as string, pid: Number(match[3]) };
}

/** A plain file name inside a checkpoint dir: no path separators, not hidden, not state.json. */
export function isCheckpointFileName(name: string): boolean {
  return name.length > 0 && !/[/\\\0]/.test(name) && !name.startsWith(".") && name !== STATE_FILE;
}
