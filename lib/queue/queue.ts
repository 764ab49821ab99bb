/**
 * The checkpoint work queue file, `out/sft/checkpoints.jsonl` (docs/formats.md#the-checkpoint-queue-checkpointsjsonl).
 *
 * The SFT trainer adds a line per saved checkpoint; DPO sweeps mark lines completed. Every change
 * is a read-modify-write of the whole file under the file's lock, written atomically (staging
 * file, fsync, rename): a reader — with or without the lock — sees the old file or the new one,
 * never half a line, and a crash at any instant leaves one of the two. Adding a line is such a
 * rewrite too, not an append in place: an append racing a rename would be lost with the old inode.
 */
import { mkdir, readFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { describeFsError, isNodeError, UserError } from "../cli/errors.ts";
import { removeDeadStaging, writeFileAtomic } from "../fs/atomic.ts";
import { type FileLockOptions, withFileLock } from "../fs/lock.ts";
import { processAlive } from "../process/index.ts";
import { parseQueue, type QueueEntry, serializeQueue } from "./entry.ts";

export const QUEUE_FILE_NAME = "checkpoints.jsonl";

/** The queue a stage folder keeps: `out/sft` → `out/sft/checkpoints.jsonl`. */
export function queueFileFor(stageOutDir: string): string {
  return join(stageOutDir, QUEUE_FILE_NAME);
}

/** A line's checkpoint as a path: relative ones are taken relative to the queue file's folder. */
export function resolveEntryPath(queueFile: string, entry: Pick<QueueEntry, "checkpoint">): string {
  return resolve(dirname(queueFile), entry.checkpoint);
}

/** The queue's lines in file order; a missing file is an empty queue. */
export async function readQueue(file: string): Promise<QueueEntry[]> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    if (isNodeError(error) && error.code === "ENOENT") return [];
    throw new UserError(`cannot read ${file}: ${describeFsError(error)}`);
  }
  return parseQueue(text, file);
}

export interface UpdateOptions extends FileLockOptions {
  /** Runs after the rewrite, still under the lock (a sweep drops its claim on the line there). */
  afterWrite?: () => Promise<void>;
}

/**
 * Change the queue under its lock: `change` gets the current lines (its own copy) and may edit
 * them in place; the file is rewritten atomically only when its text changed. Returns what
 * `change` returned.
 */
export async function updateQueue<T>(
  file: string,
  change: (entries: QueueEntry[]) => T | Promise<T>,
  options: UpdateOptions = {},
): Promise<T> {
  await mkdir(dirname(file), { recursive: true });
  return withFileLock(
    file,
    async () => {
      const entries = await readQueue(file);
      const before = serializeQueue(entries);
      const result = await change(entries);
      const after = serializeQueue(entries);
      if (after !== before) {
        await removeDeadStaging(file, processAlive);
        await writeFileAtomic(file, after);
      }
      await options.afterWrite?.();
      return result;
    },
    options,
  );
}

export interface AddResult {
  /** Lines added by this call. */
  added: QueueEntry[];
  /** Lines that were already there for a step offered again (left exactly as they were). */
  existing: QueueEntry[];
}

/**
 * Add a pending line for each checkpoint whose step is not listed yet, keeping the file in step
 * order. A step already listed keeps its line untouched, completed or not: one line per step, so
 * a re-saved step never gets a second line (see README, "DPO sweep").
 */
export async function addCheckpoints(
  file: string,
  checkpoints: ReadonlyArray<{ checkpoint: string; step: number }>,
): Promise<AddResult> {
  return updateQueue(file, (entries) => {
    const result: AddResult = { added: [], existing: [] };
    for (const { checkpoint, step } of checkpoints) {
      const listed = entries.find((entry) => entry.step === step);
      if (listed) {
        result.existing.push(listed);
        continue;
      }
      const entry: QueueEntry = { checkpoint: resolve(checkpoint), step, completed: false };
      entries.push(entry);
      result.added.push(entry);
    }
    entries.sort((a, b) => a.step - b.step);
    return result;
  });
}

/**
 * Mark the line of `step` completed, with the sweep's fields. A line completed already keeps its
 * first result (returned with `alreadyCompleted`). A step not listed is an error.
 */
export async function completeEntry(
  file: string,
  step: number,
  fields: Omit<Partial<QueueEntry>, "checkpoint" | "step" | "completed">,
  options: UpdateOptions = {},
): Promise<{ entry: QueueEntry; alreadyCompleted: boolean }> {
  return updateQueue(
    file,
    (entries) => {
      const entry = entries.find((e) => e.step === step);
      if (!entry) throw new UserError(`${file}: step ${step} is no longer listed (was the queue replaced?)`);
      if (entry.completed) return { entry, alreadyCompleted: true };
      Object.assign(entry, fields, { completed: true });
      return { entry, alreadyCompleted: false };
    },
    options,
  );
}

/** Absolute paths of the checkpoints that lines not yet completed name. */
export async function pendingCheckpointPaths(file: string): Promise<Set<string>> {
  const entries = await readQueue(file);
  return new Set(entries.filter((e) => !e.completed).map((e) => resolveEntryPath(file, e)));
}
