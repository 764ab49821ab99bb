/**
 * Passing the trainers' lines for programs (HEARTBEAT, START, METRICS) on to whoever runs the
 * pipeline — both executors, so a daemon sees a stage alive wherever it runs.
 */
import { isForProgramsOnly, type TrainerLine } from "../../lib/stages/protocol.ts";
import type { StartOptions } from "./types.ts";

/**
 * Set to 1 (the daemon does) to have the trainers' HEARTBEAT, START and METRICS lines passed on to this
 * process's stdout with the stage label (`[sft] HEARTBEAT:120`, `[sft] START:<checkpoint>|random`),
 * so whoever runs the pipeline can tell it is alive and where each session started (the daemon's
 * stage timeline, its metric points); otherwise they are for the pipeline alone (CHECKPOINT and METADATA_FILE lines
 * are echoed anyway).
 */
export const FORWARD_HEARTBEATS_ENV = "BATON_FORWARD_HEARTBEATS";

/** What passes a stage's programs-only lines on, labelled; null when they stay with the pipeline. */
export function programLineForwarder(
  echo: StartOptions["echo"],
  label: string,
): ((line: string, message: TrainerLine) => void) | null {
  if (echo === false || process.env[FORWARD_HEARTBEATS_ENV] !== "1") return null;
  const out = echo.stdout;
  return (line, message) => {
    if (isForProgramsOnly(message)) out.write(`[${label}] ${line}\n`);
  };
}
