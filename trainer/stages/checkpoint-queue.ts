/**
 * The SFT trainer's side of the checkpoint work queue (DESIGN §6): every saved checkpoint gets a
 * pending line in `<out_dir>/checkpoints.jsonl`, and keep-last pruning spares every checkpoint a
 * pending line names, so a DPO sweep always finds the checkpoints it has yet to train from.
 *
 * A save that a crash cut off between committing the checkpoint and adding its line is made good
 * when the next session starts: every valid checkpoint in the folder that is not listed is added
 * then (before that session's first save could prune it). The same rule lists the surviving
 * checkpoints of a run from before the queue existed; ones pruned earlier are gone and never listed.
 */
import { resolve } from "node:path";
import type { Options } from "yargs";
import { listCheckpoints, type ProtectHook } from "../../lib/checkpoint/index.ts";
import { addCheckpoints, pendingCheckpointPaths, queueFileFor } from "../../lib/queue/index.ts";
import type { DataFormat } from "../data/records.ts";
import type { RunContext, StageTask } from "../loop/task.ts";

/** The trainer flag that turns the queue off (`--checkpoint_queue false`). */
export const CHECKPOINT_QUEUE_FLAG: Record<string, Options> = {
  checkpoint_queue: {
    type: "boolean",
    default: true,
    describe:
      "list each saved checkpoint in <out_dir>/checkpoints.jsonl for a DPO sweep; checkpoints listed and not yet " +
      "swept are never pruned (false: no queue, plain keep-last pruning)",
  },
};

export type CheckpointQueueHooks<F extends DataFormat> = Required<
  Pick<StageTask<F>, "prepare" | "protect" | "onCheckpoint">
>;

export function checkpointQueueHooks<F extends DataFormat>(): CheckpointQueueHooks<F> {
  /** Set by prepare(), which runs before the first save; null when the queue is off. */
  let queueFile: string | null = null;

  const protect: ProtectHook = async (info) =>
    queueFile !== null && (await pendingCheckpointPaths(queueFile)).has(resolve(info.path));

  return {
    async prepare(run: RunContext<F>) {
      if (run.args.extra.checkpoint_queue === false) return;
      queueFile = queueFileFor(run.args.out_dir);
      const saved = (await listCheckpoints(run.args.ckpt_dir)).filter((c) => c.valid);
      const { added } = await addCheckpoints(
        queueFile,
        saved.map((c) => ({ checkpoint: c.path, step: c.step })),
      );
      if (added.length > 0) {
        run.log(
          `checkpoint queue ${queueFile}: listed ${added.length} saved checkpoint(s) it was missing ` +
            `(steps ${added.map((e) => e.step).join(", ")})`,
        );
      }
    },
    protect,
    async onCheckpoint(run: RunContext<F>, path: string, step: number) {
      if (queueFile === null) return;
      const { existing } = await addCheckpoints(queueFile, [{ checkpoint: path, step }]);
      const listed = existing[0];
      if (listed?.completed) {
        run.warn(
          `step ${step} was saved again, but its line in ${queueFile} is already completed: ` +
            "the DPO run listed there started from the earlier save of this step",
        );
      }
    },
  };
}
