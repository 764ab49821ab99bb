import { readdirSync, readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { isNodeError } from "../cli/errors.ts";

/*
 * Process groups: a child spawned detached leads its own group (pgid = its pid), and every
 * process it starts stays in that group unless it calls setsid/setpgid itself. Signalling
 * `-pgid` reaches all of them, which is how a stop reaches data workers and other grandchildren.
 *
 * `kill(-pgid, 0)` also "finds" zombies: a grandchild orphaned when its parent died is reparented
 * to PID 1, and where PID 1 does not reap (some container inits), it stays a zombie for good.
 * A zombie is dead (it holds no memory, no GPU, no files), so on Linux /proc decides.
 */

export type GroupSignal = "SIGTERM" | "SIGKILL" | "SIGINT" | "SIGHUP";

const POLL_MS = 25;
const hasProc = process.platform === "linux";

/** Send `signal` to every process of the group. False when the group no longer exists. */
export function signalGroup(pgid: number, signal: GroupSignal): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch (error) {
    if (isNodeError(error) && error.code === "ESRCH") return false;
    throw error;
  }
}

/** The pids of the group's living (non-zombie) members; on systems without /proc, [pgid] while kill finds any. */
export function livingGroupMembers(pgid: number): number[] {
  if (!kernelKnowsGroup(pgid)) return [];
  if (!hasProc) return [pgid];
  const members: number[] = [];
  for (const entry of readdirSync("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    const stat = readStat(pid);
    if (stat !== null && stat.pgrp === pgid && stat.living) members.push(pid);
  }
  return members;
}

export function groupAlive(pgid: number): boolean {
  return livingGroupMembers(pgid).length > 0;
}

/** Whether one process is alive (a zombie counts as dead). */
export function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (error) {
    if (isNodeError(error) && error.code === "ESRCH") return false;
    if (isNodeError(error) && error.code === "EPERM") return true;
    throw error;
  }
  if (!hasProc) return true;
  return readStat(pid)?.living ?? false;
}

/** Poll until the group has no living member; true if it went within `timeoutMs`. */
export async function waitGroupGone(pgid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (groupAlive(pgid)) {
    if (Date.now() >= deadline) return false;
    await sleep(POLL_MS);
  }
  return true;
}

export interface ReapOptions {
  /** After SIGTERM, how long stragglers get to exit before SIGKILL. */
  termGraceMs: number;
  /** After SIGKILL, how long to wait for the kernel (a process stuck in uninterruptible I/O survives it). */
  killWaitMs: number;
  /** A short wait first, so members already on their way out are not counted as stragglers. */
  settleMs?: number;
}

export interface ReapOutcome {
  /** Members were still alive after the leader exited and had to be signalled. */
  stragglersKilled: boolean;
  /** Pids still alive after everything (empty when the group is gone). */
  survivors: number[];
}

/** Make sure no process of the group remains: SIGTERM, wait, SIGKILL, wait (all bounded). */
export async function reapGroup(pgid: number, options: ReapOptions): Promise<ReapOutcome> {
  if (await waitGroupGone(pgid, options.settleMs ?? 100)) return { stragglersKilled: false, survivors: [] };
  if (options.termGraceMs > 0 && signalGroup(pgid, "SIGTERM")) {
    if (await waitGroupGone(pgid, options.termGraceMs)) return { stragglersKilled: true, survivors: [] };
  }
  signalGroup(pgid, "SIGKILL");
  await waitGroupGone(pgid, options.killWaitMs);
  return { stragglersKilled: true, survivors: livingGroupMembers(pgid) };
}

/*
 * Safety net: if the parent exits while groups are running (an uncaught exception, process.exit),
 * SIGKILL them so no trainer is orphaned. A TERM would let it save, but nobody would be left to
 * make sure it then goes away; the last checkpoint bounds what is lost. One shared 'exit'
 * listener serves any number of groups.
 */
const liveGroups = new Set<number>();

function killLiveGroups(): void {
  for (const pgid of liveGroups) signalGroup(pgid, "SIGKILL");
}

/** Register a group for the exit safety net; call the returned function once it is reaped. */
export function killGroupOnExit(pgid: number): () => void {
  if (liveGroups.size === 0) process.on("exit", killLiveGroups);
  liveGroups.add(pgid);
  return () => {
    liveGroups.delete(pgid);
    if (liveGroups.size === 0) process.off("exit", killLiveGroups);
  };
}

function kernelKnowsGroup(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (error) {
    if (isNodeError(error) && error.code === "ESRCH") return false;
    // EPERM: members exist but belong to another user (a setuid helper); they count as alive.
    if (isNodeError(error) && error.code === "EPERM") return true;
    throw error;
  }
}

interface ProcStat {
  ppid: number;
  pgrp: number;
  living: boolean;
  /** Clock ticks since boot when the process started (field 22): tells a recycled pid apart. */
  startTime: string;
}

/** Fields of /proc/<pid>/stat after the command name (which may itself contain spaces and parens). */
function readStat(pid: number): ProcStat | null {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "latin1");
  } catch {
    return null; // exited between readdir and read
  }
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const state = fields[0];
  return {
    ppid: Number(fields[1]),
    pgrp: Number(fields[2]),
    living: state !== "Z" && state !== "X",
    startTime: fields[19] ?? "",
  };
}

/**
 * Whether `pid`'s command line has `needle` as one of its arguments, so a PID the system recycled for an
 * unrelated program is never mistaken for ours — or signalled. Without /proc this cannot be told: true.
 */
export function commandLineIncludes(pid: number, needle: string): boolean {
  if (!hasProc) return true;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").includes(needle);
  } catch {
    return false;
  }
}

/**
 * The process groups of `pid`'s living descendants (children, their children…) other than `pid`'s
 * own, found through /proc's parent links; [] without /proc. A child that leads a group of its own
 * (a pipeline's trainer) is out of reach of a signal to its parent's group: a forced stop of the
 * parent must signal these too, before the parent dies and its children are reparented.
 */
export function descendantGroups(pid: number): number[] {
  if (!hasProc) return [];
  const children = new Map<number, Array<{ pid: number; pgrp: number }>>();
  let own = pid;
  for (const entry of readdirSync("/proc")) {
    const child = Number(entry);
    if (!Number.isInteger(child)) continue;
    const stat = readStat(child);
    if (stat === null || !stat.living) continue;
    if (child === pid) own = stat.pgrp;
    const siblings = children.get(stat.ppid) ?? [];
    siblings.push({ pid: child, pgrp: stat.pgrp });
    children.set(stat.ppid, siblings);
  }
  const groups = new Set<number>();
  const queue = [pid];
  for (let parent = queue.shift(); parent !== undefined; parent = queue.shift()) {
    for (const child of children.get(parent) ?? []) {
      queue.push(child.pid);
      if (child.pgrp !== own) groups.add(child.pgrp);
    }
  }
  return [...groups];
}

/** When the process started, in clock ticks since boot; null without /proc or once it is gone. */
export function processStartTime(pid: number): string | null {
  return (hasProc && readStat(pid)?.startTime) || null;
}
