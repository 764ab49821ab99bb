/** Starting a board as a detached process and waiting until it serves the logdir it was given. */

import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { probeTensorBoard } from "./http-probe.ts";

const POLL_MS = 150;
const LOG_TAIL_LINES = 15;

/** Own process group, no pipes, unref'd: the board outlives us and ignores our terminal's Ctrl+C. */
export function spawnDetached(
  command: string,
  args: string[],
  logFile: string,
  env: NodeJS.ProcessEnv,
): ChildProcess {
  const logFd = openSync(logFile, "a");
  try {
    const child = spawn(command, args, {
      detached: true,
      stdio: ["ignore", logFd, logFd],
      env,
    });
    child.unref();
    return child;
  } finally {
    closeSync(logFd);
  }
}

export type StartOutcome =
  | { kind: "serving" }
  | { kind: "spawn-error"; error: NodeJS.ErrnoException }
  | { kind: "exited"; code: number | null; signal: NodeJS.Signals | null }
  | { kind: "timeout" };

export async function waitUntilServing(
  child: ChildProcess,
  probeHost: string,
  port: number,
  logdir: string,
  timeoutMs: number,
): Promise<StartOutcome> {
  let ended: StartOutcome | null = null;
  child.once("error", (error: NodeJS.ErrnoException) => {
    ended ??= { kind: "spawn-error", error };
  });
  child.once("exit", (code, signal) => {
    ended ??= { kind: "exited", code, signal };
  });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    await sleep(child.pid === undefined ? 0 : POLL_MS);
    if (ended) return ended;
    if (child.pid === undefined) continue;
    const probe = await probeTensorBoard(
      probeHost,
      port,
      Math.min(2000, Math.max(200, deadline - Date.now())),
    );
    // Something else answering on the port (it was taken after we chose it) is not our TensorBoard.
    if (probe.answers && (probe.logdir ?? logdir) === logdir && !ended) return { kind: "serving" };
    if (Date.now() >= deadline) return ended ?? { kind: "timeout" };
  }
}

/** The last lines a failed board wrote to its log after `fromOffset`. */
export async function logTail(logFile: string, fromOffset: number): Promise<string[]> {
  try {
    const text = (await readFile(logFile)).subarray(fromOffset).toString("utf8");
    return text
      .split(/\r?\n/)
      .filter((line) => line.trim() !== "")
      .slice(-LOG_TAIL_LINES);
  } catch {
    return [];
  }
}
