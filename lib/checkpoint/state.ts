import { isCheckpointFileName } from "./layout.ts";

/** The run a checkpoint belongs to, for those written before runs had ids (they count as one run). */
export const UNRECORDED_RUN_ID = "unrecorded";

/** state.json `run_id`: every session of one run shares it; pruning never crosses runs. */
export function runIdOf(state: Record<string, unknown>): string {
  return typeof state.run_id === "string" && state.run_id !== "" ? state.run_id : UNRECORDED_RUN_ID;
}

/** Written into every state.json; readers accept this version and older. */
export const CHECKPOINT_FORMAT_VERSION = 1;

export interface FileManifestEntry {
  bytes: number;
  /** Lower-case hex SHA-256 of the file's bytes. */
  sha256: string;
}

/** The fields a trainer fills in (docs/formats.md#step-checkpoints); the store adds format_version, created_at and files. */
export interface CheckpointStateFields {
  stage: string;
  epoch: number;
  /** Batches consumed in the current epoch. */
  step_in_epoch: number;
  /** Optimizer updates; equals the N of step_N. */
  global_step: number;
  tokens_seen: number;
  /** True only on the save made when the stage completed. */
  finished: boolean;
  /** The full resolved trainer arguments. */
  args: Record<string, unknown>;
  model_config: Record<string, unknown>;
  /** Latest loss, lr, … (NaN becomes null in JSON). */
  metrics: Record<string, number | null>;
}

/** What a caller passes to saveCheckpoint: the fields above plus any extra keys (e.g. a reference-model hash). */
export type CheckpointStateInput = CheckpointStateFields & { [extra: string]: unknown };

/** A parsed state.json. */
export type CheckpointState = CheckpointStateFields & {
  format_version: number;
  /** ISO 8601 time of the save. */
  created_at: string;
  /** Every other file of the checkpoint, by name. */
  files: Record<string, FileManifestEntry>;
  [extra: string]: unknown;
};

const FIELD_TYPES: ReadonlyArray<[keyof CheckpointState, "number" | "string" | "boolean" | "object"]> = [
  ["format_version", "number"],
  ["stage", "string"],
  ["epoch", "number"],
  ["step_in_epoch", "number"],
  ["global_step", "number"],
  ["tokens_seen", "number"],
  ["finished", "boolean"],
  ["args", "object"],
  ["model_config", "object"],
  ["metrics", "object"],
  ["created_at", "string"],
  ["files", "object"],
];

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function manifestProblem(files: Record<string, unknown>): string | null {
  for (const [name, entry] of Object.entries(files)) {
    if (!isCheckpointFileName(name))
      return `files lists ${JSON.stringify(name)}, which is not a plain file name`;
    if (!isPlainObject(entry)) return `files.${name} must be {"bytes": n, "sha256": hex}`;
    if (typeof entry.bytes !== "number" || !Number.isSafeInteger(entry.bytes) || entry.bytes < 0) {
      return `files.${name}.bytes must be a whole number`;
    }
    if (typeof entry.sha256 !== "string" || !/^[0-9a-f]{64}$/.test(entry.sha256)) {
      return `files.${name}.sha256 must be 64 lower-case hex digits`;
    }
  }
  return null;
}

/** Parse state.json text; the result says what is wrong in words ("missing field global_step"). */
export function parseCheckpointState(text: string): { state: CheckpointState } | { problem: string } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { problem: "not valid JSON" };
  }
  if (!isPlainObject(parsed)) return { problem: "not a JSON object" };
  for (const [field, type] of FIELD_TYPES) {
    const value = parsed[field];
    if (value === undefined) return { problem: `missing field ${field}` };
    const ok = type === "object" ? isPlainObject(value) : typeof value === type;
    if (!ok) return { problem: `field ${field} must be ${type === "object" ? "an object" : `a ${type}`}` };
  }
  const version = parsed.format_version as number;
  if (!Number.isInteger(version) || version < 1) return { problem: `format_version ${version} is not valid` };
  if (version > CHECKPOINT_FORMAT_VERSION) {
    return {
      problem: `format_version ${version} is newer than this Baton reads (${CHECKPOINT_FORMAT_VERSION})`,
    };
  }
  const step = parsed.global_step as number;
  if (!Number.isSafeInteger(step) || step < 0)
    return { problem: `global_step ${step} is not a whole number` };
  const problem = manifestProblem(parsed.files as Record<string, unknown>);
  if (problem) return { problem };
  return { state: parsed as CheckpointState };
}
