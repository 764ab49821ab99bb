/**
 * The detached local executor: like local.ts, a command leading its own process group on this
 * machine, but written so it outlives whoever started it. A small launcher (detached-launcher.ts)
 * leads the group and gives the command the log file itself as stdout and stderr — no pipe to its
 * starter — and leaves the exit status beside the log. The starter follows the log from a byte
 * offset (lib/process/log-tail.ts) and turns lines into events; after a restart it can `adopt` a
 * command that still runs, following on from the offset it had stored, or learn how one that
 * ended meanwhile ended. Stopping is the usual ladder: TERM to the group, a grace, then KILL to
 * the group and to the groups of its descendants (a pipeline's trainers lead their own).
 */
import { spawn } from "node:child_process";
import { appendFileSync, closeSync, fstatSync, mkdirSync, openSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import {
  descendantGroups,
  processAlive,
  processStartTime,
  reapGroup,
  StopController,
  signalGroup,
} from "../../lib/process/index.ts";
import { tailLog } from "../../lib/process/log-tail.ts";
import { parseTrainerLine } from "../../lib/stages/protocol.ts";
import { type LaunchStatus, readLaunchStatus } from "./detached-status.ts";
import { linkStop } from "./local.ts";
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
      return failedToStart(command, `cannot open log ${command.logFile}: ${(error as Error).message}`);
    }
    let pid: number | undefined;
    try {
      const child = spawn(
        process.execPath,
        ["--import", TSX_LOADER, LAUNCHER, command.logFile, "--", command.file, ...command.args],
        { detached: true, stdio: ["ignore", fd, fd], env: command.env, cwd: command.cwd },
      );
      child.on("error", () => {}); // a missing cwd: no pid, reported below
      child.unref(); // the command outlives us; we watch it by its pid
      pid = child.pid;
    } catch (error) {
      return failedToStart(command, `cannot start ${command.file}: ${(error as Error).message}`);
    } finally {
      closeSync(fd);
    }
    if (pid === undefined) {
      return failedToStart(command, `cannot start ${command.file} in ${command.cwd ?? process.cwd()}`);
    }
    const handle = {
      label: command.label,
      pid,
      startTime: processStartTime(pid),
      logFile: command.logFile,
      offset,
    };
    return follow(handle, options);
  },
  adopt(handle, options) {
    return follow(handle, options);
  },
  alive(handle) {
    return leaderAlive(handle);
  },
};

function leaderAlive(handle: Pick<DetachedHandle, "pid" | "startTime">): boolean {
  if (!processAlive(handle.pid)) return false;
  return handle.startTime === null || processStartTime(handle.pid) === handle.startTime;
}

function follow(handle: DetachedHandle, options: StartOptions): DetachedExecution {
  const { pid, logFile } = handle;
  const startedAt = performance.now();
  const own = new StopController();
  const unlink = linkStop(options.stop, own);
  let offset = handle.offset;
  let stoppedWhy: string | null = null;
  let stopRequested = false;
  let escalated = false;
  let graceTimer: NodeJS.Timeout | undefined;
  let detached = false;
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
  const tail = tailLog(logFile, {
    offset,
    intervalMs: TAIL_MS,
    onLine(line, at) {
      offset = at;
      emit(parseTrainerLine(line) ?? { kind: "line", stream: "stdout", line });
    },
  });
  queueMicrotask(() => emit({ kind: "started", id: String(pid) }));

  const kill = (why: string): void => {
    clearTimeout(graceTimer);
    if (!leaderAlive(handle)) return;
    note(`${why}: SIGKILL to process group ${pid} and its descendants' groups`);
    // Descendants first: once the leader is gone, its children are reparented and out of reach.
    for (const group of descendantGroups(pid)) signalGroup(group, "SIGKILL");
    escalated = signalGroup(pid, "SIGKILL") || escalated;
  };
  const unsubscribe = own.subscribe({
    onStop(reason, why) {
      stopRequested = true;
      if (!leaderAlive(handle)) return;
      note(
        `${why ?? reason}: asking it to save and exit (SIGTERM to process group ${pid}); killing it in ${Math.round(options.graceMs / 100) / 10} s`,
      );
      signalGroup(pid, "SIGTERM");
      graceTimer = setTimeout(() => kill("still running after the grace period"), options.graceMs);
      graceTimer.unref();
    },
    onForce() {
      kill("second stop request");
    },
  });

  const done = new Promise<StageExit>((resolve) => {
    const check = (): void => {
      if (detached) return;
      if (leaderAlive(handle)) {
        setTimeout(check, POLL_MS).unref();
        return;
      }
      void finish().then(resolve);
    };
    const finish = async (): Promise<StageExit> => {
      clearTimeout(graceTimer);
      unsubscribe();
      unlink();
      const reaped = await reapGroup(pid, {
        settleMs: 100,
        termGraceMs: escalated ? 0 : STRAGGLER_GRACE_MS,
        killWaitMs: KILL_WAIT_MS,
      });
      if (reaped.stragglersKilled) note(`processes it left behind in group ${pid} were killed`);
      await tail.stop();
      return exitOf(handle, readLaunchStatus(logFile, pid), {
        interrupted: stopRequested && stoppedWhy === null ? (options.stop.reason ?? "SIGTERM") : null,
        stoppedWhy,
        durationMs: Math.round(performance.now() - startedAt),
      });
    };
    check();
  });

  return {
    handle,
    get logOffset() {
      return offset;
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

function exitOf(
  handle: DetachedHandle,
  status: LaunchStatus | null,
  how: { interrupted: StageExit["interrupted"]; stoppedWhy: string | null; durationMs: number },
): StageExit {
  const prefix = `[${handle.label}]`;
  const exitCode = status?.exitCode ?? null;
  const signal = status?.signal ?? null;
  const finished = exitCode === 0;
  const ended =
    status === null
      ? "ended without an exit status (its launcher was killed)"
      : status.spawnError !== undefined
        ? status.spawnError
        : signal !== null
          ? `was killed by ${signal}`
          : `exited with code ${exitCode}`;
  const message = finished ? null : (how.stoppedWhy ?? `${prefix} ${ended}`);
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

function failedToStart(command: StageCommand, message: string): DetachedExecution {
  const exit: StageExit = {
    label: command.label,
    state: "failed",
    exitCode: null,
    signal: null,
    interrupted: null,
    message: `[${command.label}] ${message}`,
    report: `[${command.label}] ${message}`,
    id: null,
    durationMs: 0,
  };
  return { handle: null, logOffset: 0, stop() {}, detach: async () => {}, done: Promise.resolve(exit) };
}

function commandLine(command: StageCommand): string {
  return [command.file, ...command.args]
    .map((arg) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : JSON.stringify(arg)))
    .join(" ");
}
