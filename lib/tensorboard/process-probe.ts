import { existsSync, readdirSync, readFileSync } from "node:fs";
import { request } from "node:http";
import { isNodeError } from "../cli/errors.ts";

/** Linux exposes /proc; elsewhere the process checks below fall back to signals alone. */
const hasProcfs = existsSync("/proc/self/stat");

/** Whether `pid` names a running process (a zombie awaiting its parent's wait() does not count). */
export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    if (!(isNodeError(error) && error.code === "EPERM")) return false;
  }
  if (!hasProcfs) return true;
  const stat = procStat(String(pid));
  return stat !== null && stat.state !== "Z";
}

/** State letter and process group from /proc/<pid>/stat, or null if the process is gone. */
function procStat(pid: string): { state: string; pgrp: number } | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return null;
  }
  // Fields after the parenthesised command name (which may itself hold spaces or parens): state ppid pgrp …
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return { state: fields[0] ?? "", pgrp: Number(fields[2]) };
}

/**
 * Whether `pid`'s command line mentions `needle` (the logdir we started it with), so a PID the
 * system recycled for an unrelated program is never mistaken for our TensorBoard — or signalled.
 * Without /proc this cannot be told and is assumed true.
 */
export function commandLineMentions(pid: number, needle: string): boolean {
  if (!hasProcfs) return true;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").includes(needle);
  } catch {
    return false;
  }
}

/**
 * Whether the process group led by `pid` still has live members. Zombies do not count: an
 * orphan's zombie lingers until init reaps it, which some container inits do only slowly.
 */
export function groupAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(-pid, 0);
  } catch (error) {
    if (!(isNodeError(error) && error.code === "EPERM")) return false;
  }
  if (!hasProcfs) return true;
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = procStat(entry);
    if (stat && stat.pgrp === pid && stat.state !== "Z") return true;
  }
  return false;
}

/** Signal a whole process group, falling back to the leader alone; a group already gone is no error. */
export function signalGroup(pid: number, signal: NodeJS.Signals): void {
  for (const target of [-pid, pid]) {
    try {
      process.kill(target, signal);
      return;
    } catch (error) {
      if (!(isNodeError(error) && error.code === "ESRCH")) throw error;
    }
  }
}

export interface HttpProbe {
  /** The server answered with some HTTP response. */
  answers: boolean;
  /** The logdir TensorBoard reported at /data/logdir, when it did. */
  logdir?: string;
}

/**
 * Ask a TensorBoard at host:port for its logdir. Any HTTP answer counts as "answers"; the
 * logdir is only reported when /data/logdir returned TensorBoard's JSON.
 */
export function probeTensorBoard(host: string, port: number, timeoutMs = 2000): Promise<HttpProbe> {
  return new Promise((resolve) => {
    const req = request(
      {
        host,
        port,
        path: "/data/logdir",
        method: "GET",
        agent: false,
        timeout: timeoutMs,
        headers: { connection: "close" },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("error", () => resolve({ answers: true }));
        res.on("end", () =>
          resolve({ answers: true, logdir: logdirFromJson(Buffer.concat(chunks).toString("utf8")) }),
        );
      },
    );
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", () => resolve({ answers: false }));
    req.end();
  });
}

function logdirFromJson(body: string): string | undefined {
  try {
    const parsed: unknown = JSON.parse(body);
    if (parsed && typeof parsed === "object" && "logdir" in parsed && typeof parsed.logdir === "string") {
      return parsed.logdir;
    }
  } catch {
    // Not TensorBoard's JSON: the server answered, which is all we can say.
  }
  return undefined;
}
