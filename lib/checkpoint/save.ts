import { mkdir, rename, rm } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { describeFsError, isNodeError } from "../cli/errors.ts";
import { type FileContent, fsyncDir, writeFileDurable } from "../fs/atomic.ts";
import { writeFileHashed } from "./hash.ts";
import {
  isCheckpointFileName,
  MAX_STEP,
  parseStepDirName,
  STATE_FILE,
  stagingDirName,
  stepDirName,
} from "./layout.ts";
import { type ProtectHook, pruneCheckpoints } from "./prune.ts";
import { removeStaleStaging, restoreInterruptedReplacements } from "./staging.ts";
import {
  CHECKPOINT_FORMAT_VERSION,
  type CheckpointState,
  type CheckpointStateInput,
  type FileManifestEntry,
} from "./state.ts";

export interface SaveCheckpointOptions {
  /** Optimizer updates so far; the directory becomes step_%08d and state.global_step must match. */
  step: number;
  /** The checkpoint's files by name (model.safetensors, optimizer.safetensors, rng.json, …), written in this order. */
  files: Readonly<Record<string, FileContent>>;
  /** state.json fields; format_version, created_at and the files manifest are added here. */
  state: CheckpointStateInput;
  /** Keep this many newest valid checkpoints (≥ 1, or Infinity to never prune). */
  keepLast: number;
  /** Checkpoints this says true for are never pruned (the DPO work queue's pending ones). */
  protect?: ProtectHook;
  /** The checkpoint the run resumed from (path or step), never pruned. */
  resumedFrom?: string | number | null;
  /** Prune only checkpoints of this run (state.json `run_id`). */
  runId?: string;
}

export interface SaveCheckpointResult {
  /** The committed step_N directory. */
  path: string;
  step: number;
  /** The state.json written. */
  state: CheckpointState;
  /** True when an older checkpoint of the same step was replaced. */
  replaced: boolean;
  /** Paths of the checkpoints pruned after the commit. */
  pruned: string[];
}

function checkOptions(options: SaveCheckpointOptions): void {
  const { step, state, keepLast, files } = options;
  if (!Number.isSafeInteger(step) || step < 0 || step > MAX_STEP) {
    throw new RangeError(`saveCheckpoint: step must be a whole number from 0 to ${MAX_STEP}, got ${step}`);
  }
  if (state.global_step !== step) {
    throw new RangeError(
      `saveCheckpoint: state.global_step ${state.global_step} does not match step ${step}`,
    );
  }
  if (!(keepLast === Number.POSITIVE_INFINITY || (Number.isSafeInteger(keepLast) && keepLast >= 1))) {
    throw new RangeError(`saveCheckpoint: keepLast must be a whole number ≥ 1 or Infinity, got ${keepLast}`);
  }
  for (const name of Object.keys(files)) {
    if (!isCheckpointFileName(name))
      throw new RangeError(`saveCheckpoint: bad checkpoint file name ${JSON.stringify(name)}`);
  }
}

/** The step of the resumed-from checkpoint, if it lives in this folder (a path elsewhere protects nothing here). */
function resumedStep(ckptDir: string, resumedFrom: string | number | null | undefined): number | null {
  if (typeof resumedFrom === "number") return resumedFrom;
  if (typeof resumedFrom !== "string") return null;
  const path = resolve(resumedFrom);
  return dirname(path) === resolve(ckptDir) ? parseStepDirName(path) : null;
}

/** A failed write inside a save, naming the checkpoint and the file: "cannot save …/step_00000040: writing optimizer.safetensors: no space left on device". */
export class CheckpointWriteError extends Error {
  readonly code: string | undefined;
  constructor(target: string, file: string, cause: unknown) {
    super(
      `cannot save ${target}: writing ${file}: ${describeFsError(cause)} (the unfinished checkpoint was removed)`,
    );
    this.name = "CheckpointWriteError";
    this.code = isNodeError(cause) ? cause.code : undefined;
  }
}

async function writeOrExplain<T>(target: string, file: string, write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (error) {
    throw new CheckpointWriteError(target, file, error);
  }
}

/** Saves to one folder from this process run one at a time (each one's cleanup would eat another's staging). */
const savesInFlight = new Map<string, Promise<unknown>>();

async function oneAtATime<T>(ckptDir: string, body: () => Promise<T>): Promise<T> {
  const key = resolve(ckptDir);
  const previous = savesInFlight.get(key) ?? Promise.resolve();
  const run = previous.catch(() => {}).then(body);
  const tail = run.catch(() => {});
  savesInFlight.set(key, tail);
  try {
    return await run;
  } finally {
    if (savesInFlight.get(key) === tail) savesInFlight.delete(key);
  }
}

/** Move the staged checkpoint to its final name, replacing a same-step one without a moment of loss beyond two renames. */
async function commit(
  ckptDir: string,
  staging: string,
  step: number,
): Promise<{ path: string; replaced: boolean }> {
  const path = join(ckptDir, stepDirName(step));
  try {
    await rename(staging, path);
    return { path, replaced: false };
  } catch (error) {
    if (!(isNodeError(error) && (error.code === "ENOTEMPTY" || error.code === "EEXIST"))) throw error;
  }
  // rename(2) cannot swap two full directories, so the old one steps aside under a staging name;
  // a crash between the two renames is undone by restoreInterruptedReplacements.
  const old = join(ckptDir, stagingDirName("old-", step));
  await rename(path, old);
  await rename(staging, path);
  await fsyncDir(ckptDir);
  await rm(old, { recursive: true, force: true });
  return { path, replaced: true };
}

/**
 * Save one step checkpoint crash-safely (docs/formats.md#step-checkpoints): files are written and fsynced into a
 * `.tmp-` staging directory beside the others, hashed as they are written; state.json (with
 * the manifest) goes last; the directory is fsynced, renamed to step_%08d and the parent
 * fsynced. Only then are old checkpoints pruned.
 *
 * One writing process per checkpoints folder (saves from the same process are queued):
 * staging leftovers of dead processes and of this one are removed first.
 */
export async function saveCheckpoint(
  ckptDir: string,
  options: SaveCheckpointOptions,
): Promise<SaveCheckpointResult> {
  checkOptions(options);
  return oneAtATime(ckptDir, () => saveNow(ckptDir, options));
}

async function saveNow(ckptDir: string, options: SaveCheckpointOptions): Promise<SaveCheckpointResult> {
  const { step, files, keepLast, protect } = options;
  await mkdir(ckptDir, { recursive: true });
  await restoreInterruptedReplacements(ckptDir);
  await removeStaleStaging(ckptDir);

  const staging = join(ckptDir, stagingDirName("", step));
  await mkdir(staging);
  let state: CheckpointState;
  try {
    const manifest: Record<string, FileManifestEntry> = {};
    for (const [name, content] of Object.entries(files)) {
      manifest[name] = await writeOrExplain(join(ckptDir, stepDirName(step)), name, () =>
        writeFileHashed(join(staging, name), content),
      );
    }
    // The store owns these three keys, whatever the caller's object holds.
    const { format_version: _version, created_at: _created, files: _files, ...fields } = options.state;
    state = {
      format_version: CHECKPOINT_FORMAT_VERSION,
      ...fields,
      created_at: new Date().toISOString(),
      files: manifest,
    };
    const text = `${JSON.stringify(state, null, 2)}\n`;
    await writeOrExplain(join(ckptDir, stepDirName(step)), STATE_FILE, () =>
      writeFileDurable(join(staging, STATE_FILE), text),
    );
    await fsyncDir(staging);
  } catch (error) {
    await rm(staging, { recursive: true, force: true });
    throw error;
  }

  const { path, replaced } = await commit(ckptDir, staging, step);
  await fsyncDir(ckptDir);

  const keepSteps = new Set([step]);
  const resumed = resumedStep(ckptDir, options.resumedFrom);
  if (resumed !== null) keepSteps.add(resumed);
  const pruned = await pruneCheckpoints(ckptDir, { keepLast, keepSteps, protect, runId: options.runId });
  return { path, step, state, replaced, pruned };
}
