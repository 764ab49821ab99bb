/**
 * The SFT trainer's side of the checkpoint work queue (docs/formats.md#the-checkpoint-queue), on with
 * `--checkpoint_queue` (the pipeline's --dpo-sweep): every saved checkpoint gets a pending line in
 * `<out_dir>/checkpoints.jsonl`, and keep-last pruning spares every checkpoint a pending line
 * names, so a DPO sweep always finds the checkpoints it has yet to train from.
 *
 * A save that a crash cut off between committing the checkpoint and adding its line is made good
 * when the next session starts: every valid checkpoint in the folder that is not listed is added
 * then (before that session's first save could prune it). The same rule lists the surviving
 * checkpoints of a run from before the queue existed; ones pruned earlier are gone and never listed.
 */
import { resolve } from "node:path";
import { listCheckpoints, type ProtectHook } from "../../lib/checkpoint/index.ts";
import { addCheckpoints, pendingCheckpointPaths } from "../../lib/queue/index.ts";
import type { TrainerArgs } from "../../lib/stages/args.ts";
import { stagePaths } from "../../lib/stages/paths.ts";

export interface CheckpointQueue {
  /** After a checkpoint is committed: list it. */
  add(path: string, step: number): Promise<void>;
  /** Pending lines pin their checkpoints against pruning. */
  pinned: ProtectHook;
}

export async function openCheckpointQueue(session: {
  args: TrainerArgs;
  log(message: string): void;
  warn(message: string): void;
}): Promise<CheckpointQueue> {
  const queueFile = stagePaths(session.args).queueFile;
  const saved = (await listCheckpoints(session.args.ckpt_dir)).filter((c) => c.valid);
  const { added } = await addCheckpoints(
    queueFile,
    saved.map((c) => ({ checkpoint: c.path, step: c.step })),
  );
  if (added.length > 0) {
    session.log(
      `checkpoint queue ${queueFile}: listed ${added.length} saved checkpoint(s) it was missing ` +
        `(steps ${added.map((e) => e.step).join(", ")})`,
    );
  }
  return {
    async add(path, step) {
      const { existing } = await addCheckpoints(queueFile, [{ checkpoint: path, step }]);
      if (existing[0]?.completed) {
        session.warn(
          `step ${step} was saved again, but its line in ${queueFile} is already completed: ` +
            "the DPO run listed there started from the earlier save of this step",
        );
      }
    },
    pinned: async (info) => (await pendingCheckpointPaths(queueFile)).has(resolve(info.path)),
  };
}
