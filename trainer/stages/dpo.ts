/**
 * Direct preference optimisation (MiniMind's train_dpo.py): the policy learns to raise the
 * log-probability of each chosen reply relative to its rejected twin, measured against a frozen
 * reference copy of the initial weights:
 *
 *   loss = −log σ(β·((π_c − ref_c) − (π_r − ref_r)))
 *
 * with π and ref the summed log-probabilities of the assistant tokens of a reply (MiniMind averages
 * them per token; the sum is the DPO paper's form). The reference is written once to
 * `<out_dir>/reference.safetensors` and its SHA-256 goes into every state.json, so a resume uses
 * the very same reference even after the checkpoint it came from is pruned, or refuses to run.
 */
import { createHash } from "node:crypto";
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import { describeFsError, UserError } from "../../lib/cli/errors.ts";
import { writeFileAtomic } from "../../lib/fs/atomic.ts";
import { decodeSafetensors } from "../../lib/safetensors/index.ts";
import type { Batch } from "../data/samples.ts";
import { readWeights } from "../loop/checkpoint-files.ts";
import type { BatchLoss, RunContext, StageTask } from "../loop/task.ts";
import { sequenceLogProbs } from "../model/loss.ts";
import { MiniMind } from "../model/minimind.ts";
import { encodeWeights, type StateDict, weightsFromTensors } from "../model/state-dict.ts";
import { batchTensors } from "./language-model.ts";
import { trimBatch } from "./trim-batch.ts";

export const REFERENCE_FILE = "reference.safetensors";
/** state.json field holding the reference file's SHA-256. */
export const REFERENCE_HASH_KEY = "reference_sha256";

function sha256(content: Uint8Array | readonly Uint8Array[]): string {
  const hash = createHash("sha256");
  for (const chunk of content instanceof Uint8Array ? [content] : content) hash.update(chunk);
  return hash.digest("hex");
}

export function dpoBeta(run: RunContext<"dpo">): number {
  const beta = run.args.extra.beta;
  if (typeof beta !== "number" || !Number.isFinite(beta) || beta <= 0) {
    throw new UserError(`--beta ${String(beta)}: expected a number > 0`);
  }
  return beta;
}

/** The reference weights a resumed run must use: the stage folder's file, checked against the checkpoint. */
async function loadReference(
  run: RunContext<"dpo">,
  path: string,
): Promise<{ weights: StateDict; hash: string }> {
  const resumed = run.resumedFrom as NonNullable<RunContext<"dpo">["resumedFrom"]>;
  const expected = resumed.state[REFERENCE_HASH_KEY];
  if (typeof expected !== "string") {
    throw new UserError(
      `cannot resume ${resumed.path}: its state.json has no ${REFERENCE_HASH_KEY} (not a DPO checkpoint?); ` +
        "start over with --resume none",
    );
  }
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (error) {
    throw new UserError(
      `cannot resume ${resumed.path}: the frozen reference model ${path} is unreadable (${describeFsError(error)}); ` +
        "start over with --resume none",
    );
  }
  const hash = sha256(bytes);
  if (hash !== expected) {
    throw new UserError(
      `cannot resume ${resumed.path}: reference model ${path} has SHA-256 ${hash}, the checkpoint recorded ${expected} ` +
        "(the file was replaced; restore it or start over with --resume none)",
    );
  }
  return { weights: weightsFromTensors(run.config, decodeSafetensors(bytes, path).tensors, path), hash };
}

/** A fresh run: the reference is the policy's initial weights, written to the stage folder once. */
async function saveReference(
  run: RunContext<"dpo">,
  path: string,
): Promise<{ weights: StateDict; hash: string }> {
  const weights = await readWeights(run.model);
  const content = encodeWeights(run.config, weights, {
    baton: "dpo reference model (frozen initial weights)",
  });
  const hash = sha256(content);
  const existing = await readFile(path).catch(() => null);
  if (!existing || sha256(existing) !== hash) {
    await mkdir(run.args.out_dir, { recursive: true });
    await writeFileAtomic(path, content);
  }
  return { weights, hash };
}

export class DpoObjective {
  reference: MiniMind | null = null;
  referenceHash = "";

  async prepare(run: RunContext<"dpo">): Promise<void> {
    dpoBeta(run);
    const path = join(run.args.out_dir, REFERENCE_FILE);
    const { weights, hash } = run.resumedFrom
      ? await loadReference(run, path)
      : await saveReference(run, path);
    this.reference = new MiniMind(run.config, weights, { frozen: true });
    this.referenceHash = hash;
    run.log(`reference model: ${path} (sha256 ${hash.slice(0, 16)}…, frozen)`);
  }

  /**
   * The reference's forward pass runs inside the loop's gradient tape but its variables are
   * frozen and not among the differentiated ones, so no gradient reaches it; the tape frees its
   * intermediates with the step's.
   */
  loss(run: RunContext<"dpo">, batch: Batch): BatchLoss {
    const reference = this.reference;
    if (!reference) throw new Error("DPO: prepare() was not called");
    const beta = dpoBeta(run);
    const pairs = batch.rows / 2;
    const { ids, targets, weights } = batchTensors(trimBatch(batch));
    const policyLogProbs = sequenceLogProbs(
      run.model.logits(run.model.hidden(ids)),
      targets,
      weights,
      batch.rows,
    );
    const referenceLogProbs = sequenceLogProbs(
      reference.logits(reference.hidden(ids)),
      targets,
      weights,
      batch.rows,
    );
    // β·(π − ref) per row: the implicit rewards; rows 0..B-1 are the chosen replies, B..2B-1 the rejected.
    const rewards = tf.mul(tf.sub(policyLogProbs, referenceLogProbs), beta);
    const chosen = tf.slice(rewards, [0], [pairs]);
    const rejected = tf.slice(rewards, [pairs], [pairs]);
    const margin = tf.sub(chosen, rejected);
    return {
      // −log σ(m) = softplus(−m); tf.logSigmoid's custom gradient fails inside tf.variableGrads (tfjs 4.22).
      loss: tf.mean(tf.softplus(tf.neg(margin))) as tf.Scalar,
      metrics: {
        chosen_reward: tf.mean(chosen) as tf.Scalar,
        rejected_reward: tf.mean(rejected) as tf.Scalar,
        reward_margin: tf.mean(margin) as tf.Scalar,
        reward_accuracy: tf.mean(tf.cast(tf.greater(margin, 0), "float32")) as tf.Scalar,
      },
    };
  }

  dispose(): void {
    this.reference?.dispose();
    this.reference = null;
  }
}

/** The loss is a mean over preference pairs; a data-parallel shard must keep each pair whole. */
const pairs = (batch: Batch) => batch.rows / 2;

/** DPO in a data-parallel worker thread: the same loss, with the reference the main thread wrote. */
const workerObjective = new DpoObjective();
export const workerTask = {
  loss: (run, batch) => workerObjective.loss(run, batch),
  async prepareWorker(run) {
    const path = join(run.args.out_dir, REFERENCE_FILE);
    const bytes = await readFile(path);
    const weights = weightsFromTensors(run.config, decodeSafetensors(bytes, path).tensors, path);
    workerObjective.reference = new MiniMind(run.config, weights, { frozen: true });
  },
} as Pick<StageTask<"dpo">, "loss" | "prepareWorker"> as StageTask<"dpo">;

/** The DPO StageTask pieces (flags and evaluation are added by train_dpo.ts). */
export function dpoTask(flags: StageTask<"dpo">["flags"]): StageTask<"dpo"> & { objective: DpoObjective } {
  const objective = new DpoObjective();
  return {
    objective,
    format: "dpo",
    flags,
    prepare: (run) => objective.prepare(run),
    loss: (run, batch) => objective.loss(run, batch),
    normaliser: pairs,
    pairedRows: true,
    workerModule: import.meta.url,
    stateExtras: () => ({ [REFERENCE_HASH_KEY]: objective.referenceHash, reference_file: REFERENCE_FILE }),
    dispose: () => objective.dispose(),
  };
}
