/** Stopping a recorded instance, and the lock that serialises starting and stopping one. */

import { setTimeout as sleep } from "node:timers/promises";
import lockfile from "proper-lockfile";
import { isNodeError } from "../cli/errors.ts";
import { groupAlive, processAlive, signalGroup } from "../process/index.ts";

/** Progress goes out at "info"; anything the user should act on at "warn", its first line starting "warning: ". */
export type Log = (line: string, level: "info" | "warn") => void;

/** SIGTERM the group, wait, SIGKILL what is left; throws only if something survives SIGKILL. */
export async function terminate(pid: number, graceMs = 5000): Promise<void> {
  const gone = () => !processAlive(pid) && !groupAlive(pid);
  // Its whole group (it was started detached); an instance that leads none gets the signal alone.
  const signal = (name: "SIGTERM" | "SIGKILL") => signalGroup(pid, name) || signalProcess(pid, name);
  signal("SIGTERM");
  if (await waitFor(gone, graceMs)) return;
  signal("SIGKILL");
  if (!(await waitFor(gone, 3000))) throw new Error(`TensorBoard (pid ${pid}) survived SIGKILL`);
}

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() >= deadline) return false;
    await sleep(50);
  }
  return true;
}

/** Serialise start/stop on one record file, so two pipelines starting together share one TensorBoard. */
export async function withRecordLock<T>(recordFile: string, log: Log, body: () => Promise<T>): Promise<T> {
  const release = await lockfile.lock(recordFile, {
    realpath: false,
    stale: 15_000,
    retries: { retries: 120, minTimeout: 100, maxTimeout: 500 },
    onCompromised: (error) => log(`warning: lock on ${recordFile} lost: ${error.message}`, "warn"),
  });
  try {
    return await body();
  } finally {
    await release().catch((error: unknown) => {
      if (!(isNodeError(error) && error.code === "ERELEASED")) throw error;
    });
  }
}

function signalProcess(pid: number, name: NodeJS.Signals): boolean {
  try {
    process.kill(pid, name);
    return true;
  } catch {
    return false;
  }
}
