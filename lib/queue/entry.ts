/**
 * The lines of the checkpoint work queue (docs/formats.md#the-checkpoint-queue-checkpointsjsonl): one JSON object per line,
 *
 *   {"checkpoint": "<path>", "step": N, "completed": false}
 *
 * in step order, one line per step. A line without `"completed": true` is pending. A sweep adds
 * its own fields when it completes a line (`dpo_dir`, `dpo_checkpoint`, `metrics`, `completed_at`,
 * or `skipped` with the reason); fields this code does not know are kept as they are.
 */
import { UserError } from "../cli/errors.ts";

export interface QueueEntry {
  /** An SFT step checkpoint directory (absolute when Baton wrote it; see resolveEntryPath). */
  checkpoint: string;
  step: number;
  completed: boolean;
  /** Why the line was completed without training: its checkpoint was gone. */
  skipped?: string;
  /** The DPO run's folder, `out/dpo/from_step_N`. */
  dpo_dir?: string;
  /** The DPO run's final checkpoint. */
  dpo_checkpoint?: string | null;
  /** The DPO run's evaluation (preference_accuracy, …), or null when it did not evaluate. */
  metrics?: Record<string, number> | null;
  completed_at?: string;
  [field: string]: unknown;
}

export const EXPECTED_LINE = '{"checkpoint": "<path>", "step": N, "completed": false}';

/** Parse a queue file's text; a bad line is a UserError naming `file:line` and what was expected. */
export function parseQueue(text: string, file: string): QueueEntry[] {
  const entries: QueueEntry[] = [];
  const lineOfStep = new Map<number, number>();
  const lines = text.split("\n");
  for (const [index, raw] of lines.entries()) {
    const lineNumber = index + 1;
    if (raw.trim() === "") continue;
    const entry = parseLine(raw, `${file}:${lineNumber}`);
    const earlier = lineOfStep.get(entry.step);
    if (earlier !== undefined) {
      throw new UserError(`${file}:${lineNumber}: step ${entry.step} is already listed on line ${earlier}`);
    }
    lineOfStep.set(entry.step, lineNumber);
    entries.push(entry);
  }
  return entries;
}

function parseLine(raw: string, where: string): QueueEntry {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (error) {
    throw new UserError(`${where}: not valid JSON (${(error as Error).message}); expected ${EXPECTED_LINE}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new UserError(`${where}: expected a JSON object ${EXPECTED_LINE}, got ${clip(raw)}`);
  }
  const fields = value as Record<string, unknown>;
  const { checkpoint, step, completed } = fields;
  if (typeof checkpoint !== "string" || checkpoint === "") {
    throw new UserError(`${where}: "checkpoint" must be a non-empty path, got ${describe(checkpoint)}`);
  }
  if (typeof step !== "number" || !Number.isSafeInteger(step) || step < 0) {
    throw new UserError(`${where}: "step" must be a whole number ≥ 0, got ${describe(step)}`);
  }
  if (completed !== undefined && typeof completed !== "boolean") {
    throw new UserError(`${where}: "completed" must be true or false, got ${describe(completed)}`);
  }
  return { ...fields, checkpoint, step, completed: completed === true };
}

/** The file's text: one line per entry, the three contract fields first. */
export function serializeQueue(entries: readonly QueueEntry[]): string {
  return entries
    .map(
      ({ checkpoint, step, completed, ...rest }) =>
        `${JSON.stringify({ checkpoint, step, completed, ...rest })}\n`,
    )
    .join("");
}

function describe(value: unknown): string {
  return value === undefined ? "nothing" : clip(JSON.stringify(value));
}

function clip(text: string): string {
  return text.length > 80 ? `${text.slice(0, 80)}…` : text;
}
