/**
 * Who holds a claim, precisely enough to tell that it died: pid and host, plus the process's start
 * time where /proc has it, so a recycled pid is not mistaken for the holder.
 */
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { processAlive } from "../process/index.ts";

export interface ProcessIdentity {
  pid: number;
  host: string;
  /** Clock ticks since boot when the process started (/proc/<pid>/stat field 22); null elsewhere. */
  process_started: string | null;
}

export function ownIdentity(): ProcessIdentity {
  return { pid: process.pid, host: hostname(), process_started: processStartTime(process.pid) };
}

/** True or false when this host can tell; null for a process on another host. */
export function identityAlive(identity: ProcessIdentity): boolean | null {
  if (identity.host !== hostname()) return null;
  if (!processAlive(identity.pid)) return false;
  const started = processStartTime(identity.pid);
  return identity.process_started === null || started === null || started === identity.process_started;
}

function processStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    // Fields after the command name, which may itself hold spaces and parentheses; starttime is field 22.
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? null;
  } catch {
    return null;
  }
}
