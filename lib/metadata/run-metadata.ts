/**
 * `<out_dir>/metadata.json`: how a trainer's run stands, written by the trainer when a session
 * starts (`running`) and when it ends (`finished`, `interrupted` or `failed`), and announced on
 * stdout as `METADATA_FILE:<path>` at the end (docs/formats.md#metadatajson). Orchestrators read results from it rather than
 * from the trainer's log lines: the DPO sweep takes each child's evaluation from here, and its
 * watch mode knows the SFT run is over when the SFT stage's file says `finished`.
 */
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { describeFsError, isNodeError, UserError } from "../cli/errors.ts";
import { writeFileAtomic } from "../fs/atomic.ts";

export const RUN_METADATA_FILE = "metadata.json";
export const RUN_METADATA_FORMAT_VERSION = 1;

export type RunMetadataState = "running" | "finished" | "interrupted" | "failed";

export interface RunMetadata {
  format_version: number;
  stage: string;
  state: RunMetadataState;
  /** Optimizer updates done (at the start of a session: where it starts from). */
  global_step: number;
  tokens_seen: number;
  /** The newest checkpoint of the run, or null before the first save. */
  last_checkpoint: string | null;
  /** The checkpoint this session resumed, or the weights it was initialised from, or null (random). */
  started_from: string | null;
  out_dir: string;
  ckpt_dir: string;
  /** The final evaluation's metrics; null until the run finished (or when it did not evaluate). */
  evaluation: Record<string, number> | null;
  /** The trainer's pid. */
  pid: number;
  updated_at: string;
}

export function runMetadataPath(outDir: string): string {
  return join(outDir, RUN_METADATA_FILE);
}

/** Write the file atomically; returns its path. */
export async function writeRunMetadata(
  outDir: string,
  fields: Omit<RunMetadata, "format_version" | "pid" | "updated_at">,
): Promise<string> {
  const path = runMetadataPath(outDir);
  const metadata: RunMetadata = {
    format_version: RUN_METADATA_FORMAT_VERSION,
    ...fields,
    pid: process.pid,
    updated_at: new Date().toISOString(),
  };
  await mkdir(outDir, { recursive: true });
  await writeFileAtomic(path, `${JSON.stringify(metadata, null, 2)}\n`);
  return path;
}

/** The metadata at `path`, or null when there is none; a file that is not metadata is a UserError. */
export async function readRunMetadata(path: string): Promise<RunMetadata | null> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    if (isNodeError(error) && error.code === "ENOENT") return null;
    throw new UserError(`cannot read ${path}: ${describeFsError(error)}`);
  }
  let parsed: Partial<RunMetadata>;
  try {
    parsed = JSON.parse(text) as Partial<RunMetadata>;
  } catch (error) {
    throw new UserError(`${path}: not valid JSON (${(error as Error).message})`);
  }
  if (typeof parsed !== "object" || parsed === null || typeof parsed.state !== "string") {
    throw new UserError(`${path}: not a trainer's run metadata (no "state")`);
  }
  return parsed as RunMetadata;
}
