import { rename, rm } from "node:fs/promises";
import { join } from "node:path";
import type { CheckpointInfo } from "./inspect.ts";
import { stagingDirName } from "./layout.ts";
import { listCheckpoints } from "./list.ts";
import { runIdOf } from "./state.ts";

/** Decides whether a checkpoint must survive pruning (e.g. one a pending DPO job still names). */
export type ProtectHook = (info: CheckpointInfo) => boolean | Promise<boolean>;

export interface PruneOptions {
  /** How many of the newest valid checkpoints to keep (≥ 1, or Infinity). */
  keepLast: number;
  /** Steps that always survive: the one just saved, the one the run resumed from. */
  keepSteps?: ReadonlySet<number>;
  protect?: ProtectHook;
  /** Only checkpoints of this run (state.json `run_id`) are ever deleted; others in the folder are left alone. */
  runId?: string;
}

/**
 * Delete valid checkpoints beyond the newest `keepLast`, except kept steps, protected ones and —
 * with `runId` — those of another run. Invalid step directories and foreign entries are never
 * touched (an invalid one is shown by `ckpt ls` for a human to look at). Each victim is first renamed to a staging name, so a
 * crash halfway through a delete leaves a staging leftover, never a half-deleted step_N.
 * Returns the paths deleted.
 */
export async function pruneCheckpoints(ckptDir: string, options: PruneOptions): Promise<string[]> {
  const valid = (await listCheckpoints(ckptDir)).filter((c) => c.valid).reverse();
  const pruned: string[] = [];
  for (const [rank, info] of valid.entries()) {
    // rank 0 is the newest valid one, which survives whatever keepLast says.
    if (rank < Math.max(1, options.keepLast) || options.keepSteps?.has(info.step)) continue;
    if (options.runId !== undefined && (info.state === null || runIdOf(info.state) !== options.runId))
      continue;
    if (options.protect && (await options.protect(info))) continue;
    const doomed = join(ckptDir, stagingDirName("prune-", info.step));
    await rename(info.path, doomed);
    await rm(doomed, { recursive: true, force: true });
    pruned.push(info.path);
  }
  return pruned;
}
