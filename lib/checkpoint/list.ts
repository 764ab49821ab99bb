import type { Dirent } from "node:fs";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { describeFsError, isNodeError, UserError } from "../cli/errors.ts";
import { type CheckpointInfo, inspectCheckpoint, verifyCheckpoint } from "./inspect.ts";
import { parseStepDirName } from "./layout.ts";
import { resolveCheckpointsDir } from "./resolve.ts";
import { restoreInterruptedReplacements } from "./staging.ts";
import type { CheckpointState } from "./state.ts";

/** Names of the step_NNNNNNNN directories, highest step first. Staging and foreign entries are skipped. */
async function stepDirNames(ckptDir: string): Promise<string[]> {
  let entries: Dirent[];
  try {
    entries = await readdir(ckptDir, { withFileTypes: true });
  } catch (error) {
    if (isNodeError(error) && error.code === "ENOENT") return [];
    throw new UserError(`${ckptDir}: cannot list checkpoints: ${describeFsError(error)}`);
  }
  // Fixed-width names sort like their step numbers.
  return entries
    .filter((e) => e.isDirectory() && parseStepDirName(e.name) !== null)
    .map((e) => e.name)
    .sort()
    .reverse();
}

async function mapLimited<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/**
 * Every step directory in `ckptDir`, lowest step first, each judged by the cheap rules.
 * A missing folder is an empty list; staging (`.tmp-*`) and foreign entries are ignored.
 */
export async function listCheckpoints(ckptDir: string): Promise<CheckpointInfo[]> {
  const names = (await stepDirNames(ckptDir)).reverse();
  return mapLimited(names, 16, (name) => inspectCheckpoint(join(ckptDir, name)));
}

/**
 * The valid checkpoint with the highest step (never chosen by time), or null. Only checks
 * directories from the top down until one is valid, so it stays fast among thousands.
 */
export async function latestValidCheckpoint(ckptDir: string): Promise<CheckpointInfo | null> {
  for (const name of await stepDirNames(ckptDir)) {
    const info = await inspectCheckpoint(join(ckptDir, name));
    if (info.valid) return info;
  }
  return null;
}

/** What a checkpoints folder holds, as far as choosing where to start cares (cheap rules, no hashing). */
export interface CheckpointsSurvey {
  /** How many step_NNNNNNNN directories there are, valid or not. */
  stepDirs: number;
  /** The highest-step valid one, or null. */
  latest: CheckpointInfo | null;
  /** Invalid step directories newer than `latest` (all of them when none is valid), newest first. */
  invalidNewer: CheckpointInfo[];
}

/** Scan from the top down until a valid checkpoint; fast among thousands, and says why newer ones were skipped. */
export async function surveyCheckpoints(ckptDir: string): Promise<CheckpointsSurvey> {
  const names = await stepDirNames(ckptDir);
  const invalidNewer: CheckpointInfo[] = [];
  for (const name of names) {
    const info = await inspectCheckpoint(join(ckptDir, name));
    if (info.valid) return { stepDirs: names.length, latest: info, invalidNewer };
    invalidNewer.push(info);
  }
  return { stepDirs: names.length, latest: null, invalidNewer };
}

export interface LoadedCheckpoint {
  path: string;
  step: number;
  state: CheckpointState;
  /** With `keepContents`: each listed file's bytes, exactly the bytes whose hashes were checked. */
  contents?: Map<string, Uint8Array>;
}

export interface LoadOptions {
  /** Told about every newer checkpoint skipped and why (invalid, or a file failing its SHA-256). */
  onWarning?: (message: string) => void;
  /** Return the verified files' bytes, so a trainer parses what was checked without reading twice. */
  keepContents?: boolean;
  /**
   * Restore a checkpoint a crash left moved aside mid-replacement (default true). false for a
   * reader that must never write, such as inference.
   */
  repair?: boolean;
}

/**
 * The checkpoint to resume from: the highest-step valid one whose files all match their
 * SHA-256, falling back to older ones (with a warning for each skipped) — or null.
 *
 * Meant for the process that owns `ckptDir` (the trainer): it first restores a checkpoint that a
 * crash left moved aside in the middle of a same-step replacement.
 */
export async function loadLatestCheckpoint(
  ckptDir: string,
  options: LoadOptions = {},
): Promise<LoadedCheckpoint | null> {
  const warn = options.onWarning ?? (() => {});
  if (options.repair ?? true) await restoreInterruptedReplacements(ckptDir);
  for (const name of await stepDirNames(ckptDir)) {
    const path = join(ckptDir, name);
    const info = await inspectCheckpoint(path);
    if (!info.valid) {
      warn(`checkpoint ${path} is invalid (${info.reason}); trying an older one`);
      continue;
    }
    const verified = await verifyCheckpoint(path, { keepContents: options.keepContents });
    if (!verified.valid || !verified.state) {
      warn(
        `checkpoint ${path} failed verification: ${verified.problems.join("; ")}; falling back to an older one`,
      );
      continue;
    }
    return {
      path,
      step: info.step,
      state: verified.state,
      ...(verified.contents ? { contents: verified.contents } : {}),
    };
  }
  return null;
}

/**
 * The checkpoint a user names with `flag` (`--resume`, `--init_from`, `--checkpoint`): a step dir,
 * verified as it is, or a stage or checkpoints folder, its latest verified checkpoint (falling back
 * as loadLatestCheckpoint does). Anything else is a UserError naming the flag.
 */
export async function loadNamedCheckpoint(
  path: string,
  flag: string,
  options: LoadOptions = {},
): Promise<LoadedCheckpoint> {
  const resolved = await resolveCheckpointsDir(path, flag);
  if (resolved.kind === "checkpoints") {
    const latest = await loadLatestCheckpoint(resolved.ckptDir, options);
    if (!latest) throw new UserError(`${flag} ${path}: no valid checkpoint in ${resolved.ckptDir}`);
    return latest;
  }
  const verified = await verifyCheckpoint(resolved.stepDir, { keepContents: options.keepContents });
  if (!verified.valid || !verified.state) {
    throw new UserError(`${flag} ${path}: not a valid checkpoint (${verified.problems.join("; ")})`);
  }
  return {
    path: resolved.stepDir,
    step: resolved.step,
    state: verified.state,
    ...(verified.contents ? { contents: verified.contents } : {}),
  };
}
