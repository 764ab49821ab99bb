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
import { dirname } from "node:path";
import * as tf from "@tensorflow/tfjs-core";
import { describeFsError, UserError } from "../../lib/cli/errors.ts";
import { writeFileAtomic } from "../../lib/fs/atomic.ts";
import { decodeSafetensors } from "../../lib/safetensors/index.ts";
import type { TrainerArgs } from "../../lib/stages/args.ts";
import { REFERENCE_FILE_NAME, stagePaths } from "../../lib/stages/paths.ts";
import type { Batch } from "../data/samples.ts";
import type { ModelConfig } from "../model/config.ts";
import { sequenceLogProbs } from "../model/loss.ts";
import { MiniMind } from "../model/minimind.ts";
import { readWeights } from "../model/read-weights.ts";
import { encodeWeights, weightsFromTensors } from "../model/state-dict.ts";
import { batchTensors } from "./language-model.ts";
import type { Objective, WorkerObjectiveFactory } from "./objective.ts";
import { trimBatch } from "./trim-batch.ts";

/** state.json field holding the reference file's SHA-256. */
export const REFERENCE_HASH_KEY = "reference_sha256";

function sha256(content: Uint8Array | readonly Uint8Array[]): string {
  const hash = createHash("sha256");
  for (const chunk of content instanceof Uint8Array ? [content] : content) hash.update(chunk);
  return hash.digest("hex");
}

export function dpoBeta(args: TrainerArgs): number {
  const beta = args.extra.beta;
  if (typeof beta !== "number" || !Number.isFinite(beta) || beta <= 0) {
    throw new UserError(`--beta ${String(beta)}: expected a number > 0`);
  }
  return beta;
}

export interface Reference {
  model: MiniMind;
  path: string;
  hash: string;
  /** state.json fields every checkpoint carries, so a resume finds and checks the same reference. */
  state: Record<string, string>;
}

interface ReferenceSession {
  args: TrainerArgs;
  config: ModelConfig;
  model: MiniMind;
  start: { resume: { path: string; state: Record<string, unknown> } | null };
  log(message: string): void;
}

/**
 * The frozen reference: on a fresh run the policy's initial weights, written to the stage folder
 * once; on a resume the file the checkpoint names by hash — refused if it is missing or changed.
 */
export async function dpoReference(session: ReferenceSession): Promise<Reference> {
  const path = stagePaths(session.args).referenceFile;
  const resumed = session.start.resume;
  let weights: Map<string, Float32Array>;
  let hash: string;
  if (resumed) {
    const expected = resumed.state[REFERENCE_HASH_KEY];
    const restart = "start over with --restart";
    if (typeof expected !== "string") {
      throw new UserError(
        `cannot resume ${resumed.path}: its state.json has no ${REFERENCE_HASH_KEY} (not a DPO checkpoint?); ${restart}`,
      );
    }
    let bytes: Uint8Array;
    try {
      bytes = await readFile(path);
    } catch (error) {
      throw new UserError(
        `cannot resume ${resumed.path}: the frozen reference model ${path} is unreadable (${describeFsError(error)}); ${restart}`,
      );
    }
    hash = sha256(bytes);
    if (hash !== expected) {
      throw new UserError(
        `cannot resume ${resumed.path}: reference model ${path} has SHA-256 ${hash}, the checkpoint recorded ${expected} ` +
          `(the file was replaced; restore it or ${restart})`,
      );
    }
    weights = weightsFromTensors(session.config, decodeSafetensors(bytes, path).tensors, path);
  } else {
    weights = await readWeights(session.model);
    const content = encodeWeights(session.config, weights, {
      baton: "dpo reference model (frozen initial weights)",
    });
    hash = sha256(content);
    const existing = await readFile(path).catch(() => null);
    if (!existing || sha256(existing) !== hash) {
      await mkdir(dirname(path), { recursive: true });
      await writeFileAtomic(path, content);
    }
  }
  session.log(`reference model: ${path} (sha256 ${hash.slice(0, 16)}…, frozen)`);
  return {
    model: new MiniMind(session.config, weights, { frozen: true }),
    path,
    hash,
    state: { [REFERENCE_HASH_KEY]: hash, reference_file: REFERENCE_FILE_NAME },
  };
}

/**
 * DPO's loss against `reference`. The reference's forward pass runs inside the loop's gradient
 * tape but its variables are frozen and not among the differentiated ones, so no gradient reaches
 * it; the tape frees its intermediates with the step's.
 */
export function dpoObjective(reference: MiniMind, beta: number): Objective {
  return {
    loss(model: MiniMind, batch: Batch) {
      const pairs = batch.rows / 2;
      const { ids, targets, weights } = batchTensors(trimBatch(batch));
      const policyLogProbs = sequenceLogProbs(model.logits(model.hidden(ids)), targets, weights, batch.rows);
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
    },
    // The loss is a mean over preference pairs; a data-parallel shard must keep each pair whole.
    normaliser: (batch) => batch.rows / 2,
    pairedRows: true,
    workerModule: import.meta.url,
  };
}

/** DPO in a data-parallel worker thread: the same loss, with the reference the main thread wrote. */
export const workerObjective: WorkerObjectiveFactory = async ({ args, config }) => {
  const path = stagePaths(args).referenceFile;
  const bytes = await readFile(path);
  const reference = new MiniMind(
    config,
    weightsFromTensors(config, decodeSafetensors(bytes, path).tensors, path),
    {
      frozen: true,
    },
  );
  return dpoObjective(reference, dpoBeta(args));
};
