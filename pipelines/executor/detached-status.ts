/** How a detached command ended, as its launcher (detached-launcher.ts) leaves it beside the log. */
import { readFileSync } from "node:fs";

export interface LaunchStatus {
  exitCode: number | null;
  signal: string | null;
  /** The command could not be started (no such file…). */
  spawnError?: string;
  endedAt: string;
}

/** `<log>.exit-<launcher pid>.json`: one per launch, so attempts appending to one log never mix. */
export function statusFileOf(logFile: string, launcherPid: number): string {
  return `${logFile}.exit-${launcherPid}.json`;
}

/** The status the launcher left, or null when there is none (the launcher itself was killed). */
export function readLaunchStatus(logFile: string, launcherPid: number): LaunchStatus | null {
  try {
    const status = JSON.parse(readFileSync(statusFileOf(logFile, launcherPid), "utf8")) as LaunchStatus;
    return typeof status === "object" && status !== null && "exitCode" in status ? status : null;
  } catch {
    return null;
  }
}
