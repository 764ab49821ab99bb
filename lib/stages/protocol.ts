/**
 * The lines a trainer prints for the programs that run it (docs/trainers.md#machine-lines), each
 * on stdout, alone on its line:
 *
 *   START:<path>|random      where the session really starts: the checkpoint it resumed (after verifying
 *                            it, or the older one it fell back to) or the weights it loaded
 *   CHECKPOINT:<path>        a step checkpoint was committed
 *   METADATA_FILE:<path>     the session ended; its metadata.json is there
 *   HEARTBEAT:<step>         still working (at least every 10 s; not on a terminal)
 *
 * Orchestrators (pipeline, sweep, Slurm follower, daemon) learn about a trainer only from these
 * lines, its exit status and its files — never by parsing progress text.
 */
export const START_LINE = "START:";
export const CHECKPOINT_LINE = "CHECKPOINT:";
export const METADATA_LINE = "METADATA_FILE:";
export const HEARTBEAT_LINE = "HEARTBEAT:";

/** How often a working trainer says it is alive; orchestrators allow STALL_TIMEOUT (600 s by default) without one. */
export const HEARTBEAT_INTERVAL_MS = 5_000;

export type TrainerLine =
  | { kind: "start"; from: string | null }
  | { kind: "checkpoint"; path: string }
  | { kind: "metadata"; path: string }
  | { kind: "heartbeat"; step: number };

export function parseTrainerLine(line: string): TrainerLine | null {
  if (line.startsWith(START_LINE)) {
    const from = line.slice(START_LINE.length);
    return { kind: "start", from: from === "random" ? null : from };
  }
  if (line.startsWith(CHECKPOINT_LINE))
    return { kind: "checkpoint", path: line.slice(CHECKPOINT_LINE.length) };
  if (line.startsWith(METADATA_LINE)) return { kind: "metadata", path: line.slice(METADATA_LINE.length) };
  if (line.startsWith(HEARTBEAT_LINE)) {
    const step = Number(line.slice(HEARTBEAT_LINE.length));
    return Number.isSafeInteger(step) ? { kind: "heartbeat", step } : null;
  }
  return null;
}
