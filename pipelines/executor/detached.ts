/**
 * The detached local executor: like local.ts, a command leading its own process group on this
 * machine, but written so it outlives whoever started it. A small launcher (detached-launcher.ts)
 * leads the group and gives the command the log file itself as stdout and stderr — no pipe to its
 * starter — and leaves the exit status beside the log. The starter follows the log from a byte
 * offset (lib/process/log-tail.ts) and turns them into line events (whoever follows it parses
 * them: the daemon's commands label theirs, `[sft] HEARTBEAT:120`); after a restart it can `adopt` a
 * command that still runs, following on from the offset it had stored, or learn how one that
 * ended meanwhile ended. Stopping is the usual ladder: TERM to the group, a grace, then KILL to
 * the group and to the groups of its descendants (a pipeline's trainers lead their own). Only a
 * group whose launcher this follower has seen alive — same pid, same start time — is ever
 * signalled: after a reboot the pid may lead somebody else's group.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { appendFileSync, closeSync, fstatSync, mkdirSync, openSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { describeFsError, isNodeError } from "../../lib/cli/errors.ts";
import {
  descendantGroups,
  groupAlive,
  processAlive,
  processStartTime,
  reapGroup,
  StopController,
  signalGroup,
} from "../../lib/process/index.ts";
import { tailLog } from "../../lib/process/log-tail.ts";
import { commandLine } from "../../lib/process/run-child.ts";
import { type LaunchStatus, readLaunchStatus, statusFileOf } from "./detached-status.ts";
import { linkStop, neverRan } from "./local.ts";
import { TSX_LOADER } from "./node-script.ts";
import type { Executor, StageCommand, StageExecution, StageExit, StartOptions } from "./types.ts";

const LAUNCHER = fileURLToPath(new URL("./detached-launcher.ts", import.meta.url));
const POLL_MS = 200;
const TAIL_MS = 100;
const STRAGGLER_GRACE_MS = 2_000;
const KILL_WAIT_MS = 5_000;

/** What identifies a detached command, to store and to adopt it by. */
export interface DetachedHandle {
  label: string;
  /** The launcher: leader of the process group (pgid = pid). */
  pid: number;
  /** Its start time (lib/process processStartTime), so a pid the system recycled is never taken for it. */
  startTime: string | null;
  logFile: string;
  /** Follow the log from this byte. */
  offset: number;
}

export interface DetachedExecution extends StageExecution {
  /** Null when it could not be started at all. */
  readonly handle: DetachedHandle | null;
  /** Bytes of the log delivered as events so far (read it inside onEvent: the offset after that line). */
  readonly logOffset: number;
  /** Stop following it, leaving it running (`done` then never settles): whoever adopts it later follows on. */
  detach(): Promise<void>;
}

export interface DetachedExecutor extends Executor {
  start(command: StageCommand, options: StartOptions): DetachedExecution;
  /** Follow a command started earlier (by this process or another): running, or ended meanwhile. */
  adopt(handle: DetachedHandle, options: StartOptions): DetachedExecution;
  /** Whether the command `handle` names still runs (its launcher, with the same start time). */
  alive(handle: Pick<DetachedHandle, "pid" | "startTime">): boolean;
}

export const detachedExecutor: DetachedExecutor = {
  name: "detached",
  start(command, options) {
    let fd: number;
    let offset: number;
    try {
      mkdirSync(dirname(command.logFile), { recursive: true });
      fd = openSync(command.logFile, "a");
      offset = fstatSync(fd).size;
      writeSync(fd, `[baton] ${new Date().toISOString()} start: ${commandLine(command)}\n`);
    } catch (error) {
      return failedToStart(command, options, `cannot open log ${command.logFile}: ${describeFsError(error)}`);
    }
    let child: ChildProcess;
    let spawnError: unknown = null;
    try {
      child = spawn(
        process.execPath,
        ["--import", TSX_LOADER, LAUNCHER, command.logFile, "--", command.file, ...command.args],
        { detached: true, stdio: ["ignore", fd, fd], env: command.env, cwd: command.cwd },
      );
      child.on("error", (error) => {
        spawnError ??= error; // a missing cwd: no pid, reported below
      });
      child.unref(); // the command outlives us; we watch it by its pid
    } catch (error) {
      return failedToStart(command, options, `cannot start ${command.file}: ${describeFsError(error)}`);
    } finally {
      closeSync(fd);
    }
    const pid = child.pid;
    if (pid === undefined) {
      // No process was made; Node emits the reason on the next tick.
      const where = command.cwd ?? process.cwd();
      const why = new Promise<void>((resolve) => setImmediate(resolve)).then(
        () =>
          `cannot start ${command.file} in ${where}: ${spawnError === null ? "no process was created" : describeFsError(spawnError)}`,
      );
      return failedToStart(command, options, why);
    }
    const handle = {
      label: command.label,
      pid,
      startTime: processStartTime(pid),
      logFile: command.logFile,
      offset,
    };
    // Our child, not reaped yet: its pid and start time are its own even if it has already exited.
    return follow(handle, options, true);
  },
  adopt(handle, options) {
    // kill(-1) is every process we may signal; 0 is our own group: never a launcher's.
    if (!Number.isSafeInteger(handle.pid) || handle.pid <= 1)
      return failedToStart(handle, options, `cannot follow pid ${handle.pid}: not a launcher's pid`);
    return follow(handle, options, false);
  },
  alive(handle) {
    return leaderAlive(handle);
  },
};

function leaderAlive(handle: Pick<DetachedHandle, "pid" | "startTime">): boolean {
  if (!processAlive(handle.pid)) return false;
  return handle.startTime === null || processStartTime(handle.pid) === handle.startTime;
}

function follow(handle: DetachedHandle, options: StartOptions, spawnedHere: boolean): DetachedExecution {
  const { pid, logFile } = handle;
  const startedAt = performance.now();
  const own = new StopController();
  const unlink = linkStop(options.stop, own);
  let stoppedWhy: string | null = null;
  let stopRequested = false;
  let escalated = false;
  let graceTimer: NodeJS.Timeout | undefined;
  let detached = false;
  /** This follower has seen the launcher alive (same pid, same start time): group `pid` is ours to signal. */
  let sawAlive = spawnedHere;
  const emit: StartOptions["onEvent"] = (event) => {
    try {
      options.onEvent(event);
    } catch {
      // A failing listener must not stop the log from being followed.
    }
  };
  const note = (message: string): void => {
    try {
      appendFileSync(logFile, `[baton] ${new Date().toISOString()} ${message}\n`);
    } catch {
      // The log is gone or the disk full: the stop goes ahead anyway.
    }
  };
  /** Whether its launcher still runs; each yes proves the group ours. Never throws: a doubt is a no. */
  const ours = (): boolean => {
    try {
      if (!leaderAlive(handle)) return false;
    } catch {
      return false;
    }
    sawAlive = true;
    return true;
  };
  /** Signal a group; one this process may not signal (EPERM: another user's processes) is not ours, and left. */
  const signal = (group: number, name: "SIGTERM" | "SIGKILL"): boolean => {
    try {
      return signalGroup(group, name);
    } catch (error) {
      note(`cannot send ${name} to process group ${group}: ${notOurs(error)}`);
      return false;
    }
  };
  const tail = tailLog(logFile, {
    offset: handle.offset,
    intervalMs: TAIL_MS,
    onLine(line) {
      emit({ kind: "line", stream: "stdout", line });
    },
  });
  queueMicrotask(() => emit({ kind: "started", id: String(pid) }));

  const kill = (why: string): void => {
    clearTimeout(graceTimer);
    if (!ours()) return;
    note(`${why}: SIGKILL to process group ${pid} and its descendants' groups`);
    // Descendants first: once the leader is gone, its children are reparented and out of reach.
    for (const group of descendantGroups(pid)) signal(group, "SIGKILL");
    escalated = signal(pid, "SIGKILL") || escalated;
  };
  const unsubscribe = own.subscribe({
    onStop(reason, why) {
      stopRequested = true;
      if (!ours()) return;
      note(
        `${why ?? reason}: asking it to save and exit (SIGTERM to process group ${pid}); killing it in ${Math.round(options.graceMs / 100) / 10} s`,
      );
      signal(pid, "SIGTERM");
      graceTimer = setTimeout(() => kill("still running after the grace period"), options.graceMs);
      graceTimer.unref();
    },
    onForce() {
      kill("second stop request");
    },
  });

  /** Make sure nothing of its group is left — when the group is provably ours; else say why not. */
  const reap = async (): Promise<void> => {
    if (!sawAlive) {
      if (processAlive(pid))
        note(`pid ${pid} is now another process (not the launcher's start time): not ours, not signalled`);
      else if (groupAlive(pid))
        note(
          `process group ${pid} still has processes, but its launcher had ended before this follower saw it: not provably ours, not signalled`,
        );
      return;
    }
    try {
      const reaped = await reapGroup(pid, {
        settleMs: 100,
        termGraceMs: escalated ? 0 : STRAGGLER_GRACE_MS,
        killWaitMs: KILL_WAIT_MS,
      });
      if (reaped.stragglersKilled) note(`processes it left behind in group ${pid} were killed`);
    } catch (error) {
      note(`cannot reap process group ${pid}: ${notOurs(error)}`);
    }
  };

  const done = new Promise<StageExit>((resolve) => {
    const check = (): void => {
      if (detached) return;
      if (ours()) {
        setTimeout(check, POLL_MS).unref();
        return;
      }
      void finish().then(resolve);
    };
    /** Never rejects: whatever goes wrong, the execution ends, with a reason. */
    const finish = async (): Promise<StageExit> => {
      clearTimeout(graceTimer);
      unsubscribe();
      unlink();
      const durationMs = (): number => Math.round(performance.now() - startedAt);
      try {
        await reap();
        await tail.stop();
        return exitOf(handle, readLaunchStatus(logFile, pid), {
          interrupted: stopRequested && stoppedWhy === null ? (options.stop.reason ?? "SIGTERM") : null,
          why: stoppedWhy,
          durationMs: durationMs(),
        });
      } catch (error) {
        const why = `[${handle.label}] could not be followed to its end: ${describeFsError(error)}`;
        note(why);
        await tail.stop().catch(() => {});
        return exitOf(handle, null, { interrupted: null, why, durationMs: durationMs() });
      }
    };
    check();
  });

  return {
    handle,
    get logOffset() {
      return tail.offset;
    },
    async detach() {
      detached = true;
      clearTimeout(graceTimer);
      unsubscribe();
      unlink();
      await tail.stop();
    },
    stop(why) {
      // A stop of this command alone (a stall, a user's stop) is reported with its reason.
      if (options.stop.reason === null) stoppedWhy ??= why;
      own.stop("SIGTERM", why);
    },
    done,
  };
}

/** Why a group could not be signalled: EPERM means its processes are another user's, so not ours. */
function notOurs(error: unknown): string {
  return isNodeError(error) && error.code === "EPERM"
    ? "its processes are not ours to signal (EPERM), left alone"
    : describeFsError(error);
}

function exitOf(
  handle: DetachedHandle,
  status: LaunchStatus | null,
  /** `why`: the message instead of how it ended (why it was stopped, or could not be followed). */
  how: { interrupted: StageExit["interrupted"]; why: string | null; durationMs: number },
): StageExit {
  const prefix = `[${handle.label}]`;
  const exitCode = status?.exitCode ?? null;
  const signal = status?.signal ?? null;
  const finished = exitCode === 0;
  const ended =
    status === null
      ? `ended without an exit status in ${statusFileOf(handle.logFile, handle.pid)} (its launcher was killed, or could not write it: see the log)`
      : status.spawnError !== undefined
        ? status.spawnError
        : signal !== null
          ? `was killed by ${signal}`
          : `exited with code ${exitCode}`;
  const message = finished ? null : (how.why ?? `${prefix} ${ended}`);
  return {
    label: handle.label,
    state: finished ? "finished" : how.interrupted !== null ? "interrupted" : "failed",
    exitCode,
    signal,
    interrupted: how.interrupted,
    message,
    report: `${message ?? `${prefix} finished`}\n${prefix} full log: ${handle.logFile}`,
    id: String(handle.pid),
    durationMs: how.durationMs,
  };
}

/** An execution that never got a process (or a pid worth following); `why` says why, in one line. */
function failedToStart(
  command: Pick<StageCommand, "label">,
  options: StartOptions,
  why: string | Promise<string>,
): DetachedExecution {
  const done = Promise.resolve(why).then((message) =>
    neverRan(command.label, `[${command.label}] ${message}`, "failed", options),
  );
  return { handle: null, logOffset: 0, stop() {}, detach: async () => {}, done };
}
