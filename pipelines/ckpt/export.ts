/**
 * `npm run ckpt -- export <step dir | stage dir> --format pth|safetensors`: a checkpoint's weights
 * as one file for other tools — MiniMind's `.pth` (what its eval_llm.py loads) or a `.safetensors`.
 *
 * Every SHA-256 of the checkpoint is checked first (a stage or checkpoints folder: its latest
 * checkpoint that verifies, each newer one passed over named in a warning); the model shape is its
 * state.json's. The default file is MiniMind's name beside the stage folder, `<prefix>_<hidden>.<ext>`
 * (`out/sft` → `out/full_sft_512.pth`), where eval_llm.py's `--save_dir out` looks. It is written
 * atomically, and an existing file is replaced only with --force: by default that name is also the
 * trainer's own legacy file, which may hold another step's weights. TensorFlow-free.
 */
import { mkdir, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { loadNamedCheckpoint } from "../../lib/checkpoint/index.ts";
import { describeFsError, fileError, isNodeError, UserError } from "../../lib/cli/errors.ts";
import { writeFileAtomic } from "../../lib/fs/atomic.ts";
import { decodeSafetensors, FLOAT_DTYPE_NAMES, type FloatDtypeName } from "../../lib/safetensors/index.ts";
import { isStageName, STAGES } from "../../lib/stages/table.ts";
import { savedModelConfig } from "../../trainer/model/config.ts";
import { encodeWeightsPth } from "../../trainer/model/pth.ts";
import { encodeWeights, MODEL_FILE, weightsFromTensors } from "../../trainer/model/state-dict.ts";

export const EXPORT_FORMATS = ["pth", "safetensors"] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

/** MiniMind's weights are half precision; a safetensors export keeps Baton's float32 unless asked. */
export const DEFAULT_EXPORT_DTYPE: Record<ExportFormat, FloatDtypeName> = {
  pth: "float16",
  safetensors: "float32",
};

export interface ExportRequest {
  format: ExportFormat;
  dtype?: FloatDtypeName;
  out?: string;
  force: boolean;
  warn(message: string): void;
}

export interface ExportResult {
  file: string;
  dtype: FloatDtypeName;
  bytes: number;
  /** The step directory exported. */
  checkpoint: string;
  stage: string;
  step: number;
}

async function refuseExisting(file: string, force: boolean): Promise<void> {
  let isDir: boolean;
  try {
    isDir = (await stat(file)).isDirectory();
  } catch (error) {
    if (isNodeError(error) && error.code === "ENOENT") return;
    throw new UserError(`--out ${file}: ${describeFsError(error)}`);
  }
  if (isDir) throw new UserError(`--out ${file}: is a directory, expected a file name`);
  if (!force) {
    throw new UserError(
      `${file} already exists (the trainer's legacy weights or an earlier export); pass --force to replace it, or --out FILE`,
    );
  }
}

export async function exportCheckpoint(path: string, request: ExportRequest): Promise<ExportResult> {
  const checkpoint = await loadNamedCheckpoint(path, "export", {
    keepContents: true,
    // Exporting only reads: it never repairs a folder a trainer may own.
    repair: false,
    onWarning: request.warn,
  });
  const { state } = checkpoint;
  const modelFile = join(checkpoint.path, MODEL_FILE);
  const bytes = checkpoint.contents?.get(MODEL_FILE);
  if (!bytes) throw new UserError(`${checkpoint.path}: checkpoint has no ${MODEL_FILE}`);
  const config = savedModelConfig(state.model_config, checkpoint.path);
  const weights = weightsFromTensors(config, decodeSafetensors(bytes, modelFile).tensors, modelFile);

  let file = request.out;
  if (!file) {
    if (!isStageName(state.stage)) {
      throw new UserError(
        `${checkpoint.path}: state.json names no stage Baton knows (${JSON.stringify(state.stage)}); pass --out FILE`,
      );
    }
    // step_N → checkpoints → the stage folder; the file goes beside that, as the trainer's legacy file.
    const stageFolder = dirname(dirname(checkpoint.path));
    file = join(
      dirname(stageFolder),
      `${STAGES[state.stage].legacyPrefix}_${config.hidden_size}.${request.format}`,
    );
  }
  await refuseExisting(file, request.force);

  const dtype = request.dtype ?? DEFAULT_EXPORT_DTYPE[request.format];
  const content =
    request.format === "pth"
      ? encodeWeightsPth(config, weights, FLOAT_DTYPE_NAMES[dtype])
      : encodeWeights(config, weights, {}, FLOAT_DTYPE_NAMES[dtype]);
  try {
    await mkdir(dirname(file), { recursive: true });
    await writeFileAtomic(file, content);
  } catch (error) {
    throw fileError("write", file, error);
  }
  const written =
    content instanceof Uint8Array ? content.byteLength : content.reduce((n, c) => n + c.byteLength, 0);
  return {
    file,
    dtype,
    bytes: written,
    checkpoint: checkpoint.path,
    stage: String(state.stage),
    step: state.global_step,
  };
}
