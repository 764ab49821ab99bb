/**
 * The lines a trainer prints for the programs that run it (docs/trainers.md#machine-lines), each
 * on stdout, alone on its line:
 *
 *   START:<path>|random      where the session really starts: the checkpoint it resumed (after verifying
 *                            it, or the older one it fell back to) or the weights it loaded
 *   CHECKPOINT:<path>        a step checkpoint was committed
 *   METADATA_FILE:<path>     the session ended; its metadata.json is there
 *   HEARTBEAT:<step>         still working (at least every 10 s; not on a terminal)
 *   METRICS:<step> <json>    the scalars logged at this step, {"loss": …, "lr": …} (each log interval;
 *                            not on a terminal)
 *
 * Orchestrators (pipeline, sweep, Slurm follower, daemon) learn about a trainer only from these
 * lines, its exit status and its files — never by parsing progress text.
 */
export const START_LINE = "START:";
export const CHECKPOINT_LINE = "CHECKPOINT:";
export const METADATA_LINE = "METADATA_FILE:";
export const HEARTBEAT_LINE = "HEARTBEAT:";
export const METRICS_LINE = "METRICS:";

/** How often a working trainer says it is alive; orchestrators allow STALL_TIMEOUT (600 s by default) without one. */
export const HEARTBEAT_INTERVAL_MS = 5_000;

export type TrainerLine =
  | { kind: "start"; from: string | null }
  | { kind: "checkpoint"; path: string }
  | { kind: "metadata"; path: string }
  | { kind: "heartbeat"; step: number }
  | { kind: "metrics"; step: number; values: Record<string, number> };

/** The METRICS line for `values` at `step` (non-finite values are left out: JSON has no NaN). */
export function metricsLine(step: number, values: Readonly<Record<string, number>>): string {
  const finite = Object.fromEntries(Object.entries(values).filter(([, v]) => Number.isFinite(v)));
  return `${METRICS_LINE}${step} ${JSON.stringify(finite)}`;
}

function parseMetrics(text: string): TrainerLine | null {
  const space = text.indexOf(" ");
  const step = Number(text.slice(0, space));
  if (space < 0 || !Number.isSafeInteger(step)) return null;
  try {
    const parsed: unknown = JSON.parse(text.slice(space + 1));
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return null;
    const values: Record<string, number> = {};
    for (const [name, value] of Object.entries(parsed)) if (typeof value === "number") values[name] = value;
    return { kind: "metrics", step, values };
  } catch {
    return null;
  }
}

/**
 * Lines for programs only, which the pipeline does not echo: a person sees the progress line, not
 * the heartbeat or the metrics behind it. (CHECKPOINT: and METADATA_FILE: lines are shown.)
 */
export function isForProgramsOnly(line: TrainerLine): boolean {
  return line.kind === "heartbeat" || line.kind === "start" || line.kind === "metrics";
}

export function parseTrainerLine(line: string): TrainerLine | null {
  if (line.startsWith(START_LINE)) {
    const from = line.slice(START_LINE.length);
    return { kind: "start", from: from === "random" ? null : from };
  }
  if (line.startsWith(CHECKPOINT_LINE))
    return { kind: "checkpoint", path: line.slice(CHECKPOINT_LINE.length) };
  if (line.startsWith(METADATA_LINE)) return { kind: "metadata", path: line.slice(METADATA_LINE.length) };
  if (line.startsWith(METRICS_LINE)) return parseMetrics(line.slice(METRICS_LINE.length));
  if (line.startsWith(HEARTBEAT_LINE)) {
    const step = Number(line.slice(HEARTBEAT_LINE.length));
    return Number.isSafeInteger(step) ? { kind: "heartbeat", step } : null;
  }
  return null;
}

const LABELLED = /^\[([^\]\s]+)\] (.*)$/s;

/**
 * A trainer's line as a pipeline passes it on (`[sft] HEARTBEAT:120`, BATON_FORWARD_HEARTBEATS):
 * the stage label and the line, or null for any other line.
 */
export function parseLabelledTrainerLine(line: string): { label: string; message: TrainerLine } | null {
  const labelled = LABELLED.exec(line);
  if (!labelled) return null;
  const message = parseTrainerLine(labelled[2] as string);
  return message === null ? null : { label: labelled[1] as string, message };
}
