/**
 * Who holds a claim, precisely enough to tell that it died: pid and host, plus the process's start
 * time where /proc has it, so a recycled pid is not mistaken for the holder.
 */
import { hostname } from "node:os";
import { processAlive, processStartTime } from "../../lib/process/index.ts";

export interface ProcessIdentity {
  pid: number;
  host: string;
  /** Clock ticks since boot when the process started (processStartTime); null without /proc. */
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
