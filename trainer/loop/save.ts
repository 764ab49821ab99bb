/**
 * Saving one step checkpoint from the loop: encode the files, make sure they fit on the disk
 * (a save that cannot fit is refused before a byte is written, so every existing checkpoint stays
 * intact), commit them through the crash-safe store, replace the legacy weights files, and announce
 * `CHECKPOINT:<path>`.
 */
import { dirname, resolve } from "node:path";
import { formatBytes } from "../../lib/checkpoint/describe.ts";
import {
  CheckpointWriteError,
  type ProtectHook,
  saveCheckpoint,
  writeLegacyWeights,
} from "../../lib/checkpoint/index.ts";
import { EXIT, fileError, isNodeError, UserError } from "../../lib/cli/errors.ts";
import { freeBytes } from "../../lib/fs/space.ts";
import { FLOAT_DTYPE_NAMES } from "../../lib/safetensors/index.ts";
import type { TrainerArgs } from "../../lib/stages/args.ts";
import { legacyWeightsFiles } from "../../lib/stages/paths.ts";
import { CHECKPOINT_LINE } from "../../lib/stages/protocol.ts";
import type { DataFormat } from "../data/records.ts";
import type { ModelConfig } from "../model/config.ts";
import { encodeWeightsPth } from "../model/pth.ts";
import { MODEL_FILE, type StateDict } from "../model/state-dict.ts";
import { checkpointFiles } from "./checkpoint-files.ts";
import { dataStream, type Session } from "./session.ts";

/** Headroom for state.json, directory entries and file-system rounding. */
const SLACK_BYTES = 1 << 20;

export interface SaveOptions {
  finished: boolean;
  /** Data-parallel threads of this session (recorded: a resume with `auto` uses the same count). */
  threads: number;
  /** The latest loss, lr, … */
  metrics: Record<string, number>;
  /** Extra state.json fields (DPO's reference hash, the evaluation baseline). */
  extraState: Record<string, unknown>;
  protect?: ProtectHook;
}

function byteLength(content: string | Uint8Array | readonly Uint8Array[]): number {
  if (typeof content === "string") return Buffer.byteLength(content);
  if (content instanceof Uint8Array) return content.byteLength;
  return content.reduce((sum, chunk) => sum + chunk.byteLength, 0);
}

/** Say how to recover, in one line, when the disk is full; anything else passes through. */
function explainDiskFull(error: unknown, latest: string | null): never {
  const code =
    error instanceof CheckpointWriteError ? error.code : isNodeError(error) ? error.code : undefined;
  if (code === "ENOSPC" || code === "EDQUOT") {
    throw new UserError(
      `${(error as Error).message}; every existing checkpoint is intact — free some space and run again to resume` +
        (latest ? ` from ${latest}` : ""),
      EXIT.failure,
    );
  }
  throw error;
}

export async function saveStep<F extends DataFormat>(
  session: Session<F>,
  options: SaveOptions,
  lastSaved: string | null,
): Promise<string> {
  const { args, config, model, optimizer, position, start, stage } = session;
  const { files, weights } = await checkpointFiles(config, model, optimizer, {
    init: start.initRng,
    data: dataStream(args.seed, position.epoch),
  });
  const legacy = legacyFiles(args, config, weights, files[MODEL_FILE] as Uint8Array[]);
  const checkpointBytes = Object.values(files).reduce((sum, content) => sum + byteLength(content), 0);
  const legacyBytes = legacy.reduce((sum, file) => sum + byteLength(file.content), 0);
  await checkSpace(args.ckpt_dir, checkpointBytes, position.globalStep, lastSaved);
  // Both legacy files share one folder (one name, two extensions).
  const legacyDir = dirname(resolve(legacyWeightsFiles(args.legacy_weights).safetensors));
  await checkSpace(legacyDir, legacyBytes, position.globalStep, lastSaved);

  let path: string | null = null;
  try {
    const result = await saveCheckpoint(args.ckpt_dir, {
      step: position.globalStep,
      files,
      state: {
        stage,
        run_id: start.runId,
        started_from: start.startedFrom,
        epoch: position.epoch,
        step_in_epoch: position.stepInEpoch,
        global_step: position.globalStep,
        tokens_seen: position.tokensSeen,
        updates_per_epoch: Math.ceil(session.sampler.batchesPerEpoch / args.accumulation_steps),
        finished: options.finished,
        args: { ...args },
        model_config: { ...config },
        metrics: options.metrics,
        tokenizer: session.tokenizer.id,
        data_parallel: options.threads,
        ...options.extraState,
      },
      keepLast: args.keep_last_checkpoints,
      resumedFrom: start.resume?.path ?? null,
      protect: options.protect,
      runId: start.runId,
    });
    path = result.path;
    for (const file of legacy) {
      await writeLegacyWeights(file.path, file.content).catch((error: unknown) => {
        throw fileError("write", file.path, error);
      });
    }
  } catch (error) {
    // A legacy file failing after the commit: this step's checkpoint is the one to resume from.
    explainDiskFull(error, path ?? lastSaved);
  }
  process.stdout.write(`${CHECKPOINT_LINE}${path}\n`);
  return path;
}

interface LegacyFile {
  path: string;
  content: Uint8Array | Uint8Array[];
}

/**
 * The legacy weights this save replaces (--legacy_format): the float32 `.safetensors` (the very
 * bytes of the checkpoint's model.safetensors) and MiniMind's `.pth` in --legacy_dtype.
 */
function legacyFiles(
  args: TrainerArgs,
  config: ModelConfig,
  weights: StateDict,
  modelSafetensors: Uint8Array[],
): LegacyFile[] {
  const paths = legacyWeightsFiles(args.legacy_weights);
  const files: LegacyFile[] = [];
  if (args.legacy_format !== "pth") files.push({ path: paths.safetensors, content: modelSafetensors });
  if (args.legacy_format !== "safetensors") {
    const dtype = FLOAT_DTYPE_NAMES[args.legacy_dtype];
    files.push({ path: paths.pth, content: encodeWeightsPth(config, weights, dtype) });
  }
  return files;
}

/** Refuse a save that cannot fit, before writing anything. */
async function checkSpace(dir: string, bytes: number, step: number, lastSaved: string | null): Promise<void> {
  const free = await freeBytes(dir);
  const needed = bytes + SLACK_BYTES;
  if (free >= needed) return;
  throw new UserError(
    `not enough disk space to save step ${step} in ${dir}: it needs ${formatBytes(needed)}, ${formatBytes(free)} free; ` +
      `nothing was written and every existing checkpoint is intact — free some space and run again to resume` +
      (lastSaved ? ` from ${lastSaved}` : ""),
    EXIT.failure,
  );
}

/** At the start of a session: warn when the disk cannot hold keep_last + 1 checkpoints (pruning runs after a save). */
export async function warnIfDiskTight<F extends DataFormat>(
  session: Session<F>,
  checkpointBytes: number,
): Promise<void> {
  const { args } = session;
  const free = await freeBytes(args.ckpt_dir);
  const wanted = (args.keep_last_checkpoints + 1) * checkpointBytes + SLACK_BYTES;
  if (free < wanted) {
    session.warn(
      `${args.ckpt_dir} has ${formatBytes(free)} free, less than --keep_last_checkpoints ${args.keep_last_checkpoints} + 1 ` +
        `checkpoints of about ${formatBytes(checkpointBytes)} (a save must fit before older ones are pruned)`,
    );
  }
}
