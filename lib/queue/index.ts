/** The checkpoint work queue (docs/formats.md#the-checkpoint-queue-checkpointsjsonl): SFT checkpoints waiting for a DPO run each. */

export { type FileLockOptions, LOCK_STALE_MS, withFileLock } from "../fs/lock.ts";
export { EXPECTED_LINE, parseQueue, type QueueEntry, serializeQueue } from "./entry.ts";
export {
  type AddResult,
  addCheckpoints,
  completeEntry,
  pendingCheckpointPaths,
  QUEUE_FILE_NAME,
  queueFileFor,
  readQueue,
  resolveEntryPath,
  type UpdateOptions,
  updateQueue,
} from "./queue.ts";
