/**
 * A checkpoints folder as `ckpt ls` and the daemon's dashboard show it: every step checkpoint
 * judged by the cheap rules (or, with `hashes`, its SHA-256s checked too), which one is latest,
 * and why one is pinned — a DPO sweep has yet to train from it (the stage folder's queue).
 */
import { dirname, resolve } from "node:path";
import { type CheckpointInfo, listCheckpoints, verifyCheckpoint } from "../../lib/checkpoint/index.ts";
import { pendingCheckpointPaths, queueFileFor } from "../../lib/queue/index.ts";

export interface ListedCheckpoint extends CheckpointInfo {
  finished: boolean;
  latest: boolean;
  /** Why it is never pruned; null when it is not pinned. */
  pinned: string | null;
}

export interface CheckpointListing {
  /** The sweep queue that may pin checkpoints (it need not exist). */
  queue: string;
  /** Why the queue could not be read (then nothing shows as pinned, though some may be); null when read. */
  queueProblem: string | null;
  checkpoints: ListedCheckpoint[];
}

/** With `hashes`, every valid checkpoint's SHA-256s are checked and a mismatch makes it invalid. */
async function withHashes(checkpoints: CheckpointInfo[]): Promise<CheckpointInfo[]> {
  return Promise.all(
    checkpoints.map(async (c) => {
      if (!c.valid) return c;
      const result = await verifyCheckpoint(c.path, { hashes: true });
      return result.valid ? c : { ...c, valid: false, reason: result.problems.join("; ") };
    }),
  );
}

export async function checkpointListing(ckptDir: string, hashes = false): Promise<CheckpointListing> {
  const listed = await listCheckpoints(ckptDir);
  const checkpoints = hashes ? await withHashes(listed) : listed;
  const latest = checkpoints.filter((c) => c.valid).at(-1);
  const queue = queueFileFor(dirname(resolve(ckptDir)));
  let queueProblem: string | null = null;
  const pending = await pendingCheckpointPaths(queue).catch((error: unknown) => {
    queueProblem = `${error instanceof Error ? error.message : String(error)}; which checkpoints it pins is unknown`;
    return new Set<string>();
  });
  return {
    queue,
    queueProblem,
    checkpoints: checkpoints.map((c) => ({
      ...c,
      finished: c.state?.finished ?? false,
      latest: c === latest,
      pinned: pending.has(resolve(c.path))
        ? `pinned: pending in ${queue} (a DPO sweep has not trained from it yet)`
        : null,
    })),
  };
}
