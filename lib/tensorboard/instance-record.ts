import { readFile, rm } from "node:fs/promises";
import { describeFsError, isNodeError } from "../cli/errors.ts";
import { writeFileAtomic } from "../fs/atomic.ts";

/** Which board an instance is: the real TensorBoard or Baton's built-in one. */
export type BoardKind = "tensorboard" | "builtin";

/** `out/tensorboard.json`: the board instance Baton started, so later runs can reuse or stop it. */
export interface TensorBoardRecord {
  pid: number;
  port: number;
  host: string;
  /** Absolute path TensorBoard was given as --logdir. */
  logdir: string;
  url: string;
  /** ISO 8601 time the instance answered its first request. */
  started_at: string;
  binary: string;
  log_file: string;
  /** Absent in records written before the built-in board existed: those are TensorBoard. */
  board?: BoardKind;
}

export function boardOf(record: TensorBoardRecord): BoardKind {
  return record.board ?? "tensorboard";
}

export interface RecordRead {
  record: TensorBoardRecord | null;
  /** Why an existing file was not usable (it is then treated as absent). */
  problem?: string;
}

export async function readInstanceRecord(file: string): Promise<RecordRead> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    if (isNodeError(error) && error.code === "ENOENT") return { record: null };
    return { record: null, problem: `${file}: ${describeFsError(error)}` };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { record: null, problem: `${file}: not valid JSON` };
  }
  const missing = missingFields(parsed);
  if (missing.length > 0) return { record: null, problem: `${file}: missing or bad ${missing.join(", ")}` };
  return { record: parsed as TensorBoardRecord };
}

export async function writeInstanceRecord(file: string, record: TensorBoardRecord): Promise<void> {
  await writeFileAtomic(file, `${JSON.stringify(record, null, 2)}\n`);
}

export async function removeInstanceRecord(file: string): Promise<void> {
  await rm(file, { force: true });
}

const NUMBER_FIELDS = ["pid", "port"] as const;
const STRING_FIELDS = ["host", "logdir", "url", "started_at", "binary", "log_file"] as const;

function missingFields(value: unknown): string[] {
  if (!value || typeof value !== "object") return ["everything (expected a JSON object)"];
  const record = value as Record<string, unknown>;
  return [
    ...NUMBER_FIELDS.filter((key) => !Number.isInteger(record[key])),
    ...STRING_FIELDS.filter((key) => typeof record[key] !== "string"),
    ...(record.board === undefined || record.board === "tensorboard" || record.board === "builtin"
      ? []
      : ["board"]),
  ];
}
