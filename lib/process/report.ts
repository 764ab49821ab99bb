import type { ChildResult } from "./run-child.ts";

/** A stderr line longer than this is cut in the report (the log has it whole). */
const REPORT_LINE_MAX = 500;

/** One line saying how the child ended: "[sft] exited with code 1", "[sft] was killed by SIGKILL (…)". */
export function describeExit(result: ChildResult): string {
  const prefix = `[${result.label}]`;
  if (result.spawnError !== undefined) return `${prefix} ${result.spawnError}`;
  if (result.pid === undefined && result.interrupted !== null) {
    return `${prefix} was not started: stop requested (${result.interrupted})`;
  }
  const how =
    result.signal !== null ? `was killed by ${result.signal}` : `exited with code ${result.exitCode}`;
  if (result.interrupted !== null) {
    const forced = result.escalated ? ", after it did not stop in time" : "";
    return `${prefix} stopped on ${result.interrupted}: ${how}${forced}`;
  }
  if (result.signal === "SIGKILL") return `${prefix} was killed by SIGKILL (out of memory? check dmesg)`;
  return `${prefix} ${how}`;
}

/**
 * The failure report the pipeline prints when a stage fails: how it ended, what happened to
 * its process group, the last stderr lines and where the full log is.
 */
export function formatFailureReport(result: ChildResult): string {
  const prefix = `[${result.label}]`;
  const lines = [describeExit(result)];
  if (result.stragglersKilled) lines.push(`${prefix} processes it left running in its group were killed`);
  if (result.survivors !== undefined) {
    lines.push(`${prefix} warning: processes of its group are still alive: ${result.survivors.join(", ")}`);
  }
  if (result.spawnError === undefined && result.pid !== undefined) {
    if (result.stderrTail.length === 0) {
      lines.push(`${prefix} (it wrote nothing to stderr)`);
    } else {
      lines.push(`${prefix} last ${result.stderrTail.length} lines of stderr:`);
      for (const line of result.stderrTail) lines.push(`  | ${clip(line)}`);
    }
  }
  if (result.logError !== undefined) lines.push(`${prefix} ${result.logError}`);
  lines.push(`${prefix} full log: ${result.logFile}`);
  return lines.join("\n");
}

function clip(line: string): string {
  return line.length > REPORT_LINE_MAX ? `${line.slice(0, REPORT_LINE_MAX)}… (${line.length} chars)` : line;
}

/** A failed child's own exit status when it is an ordinary one (1 error, 2 bad input), else 1. */
export function failureExitCode(code: number | null): number {
  return code !== null && code > 0 && code < 126 ? code : 1;
}
