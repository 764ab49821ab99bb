import type { Writable } from "node:stream";
import { execa } from "execa";
import { describeFsError } from "../cli/errors.ts";
import { groupAlive, killGroupOnExit, reapGroup, signalGroup } from "./group.ts";
import { DEFAULT_MAX_LINE_LENGTH } from "./lines.ts";
import { AppendLog } from "./log-file.ts";
import { drainLines, Echo } from "./output.ts";
import { installStopHandlers, type StopController, type StopSignal } from "./stop.ts";

export interface ChildSpec {
  /** Names the child in echoed lines (`[sft] …`) and reports. */
  label: string;
  /** Executable to run (no shell). */
  file: string;
  args?: readonly string[];
  /** The child's whole environment (nothing is inherited implicitly); see childEnv(). */
  env: Readonly<Record<string, string>>;
  cwd?: string;
  /**
   * Append-only log of everything the child prints, stdout lines as printed, stderr lines after
   * `[stderr] `, runChild's own notes (start, stop, exit) after `[baton] `. Its directory is created.
   */
  logFile: string;
  /** How long a stopped child gets to save and exit after SIGTERM before its group is SIGKILLed. Default 30 s. */
  graceMs?: number;
  /**
   * Shared stop decision (installStopHandlers()). Without one, runChild installs SIGINT/SIGTERM/SIGHUP
   * handlers for the duration of this run only.
   */
  stop?: StopController;
  /** Called once the child has started, with its pid (also its process group id). */
  onSpawn?: (pid: number) => void;
  /** Called for every stdout line, in order (e.g. to catch `CHECKPOINT:<path>`). */
  onStdoutLine?: (line: string) => void;
  /** Stdout lines meant for programs only: still given to onStdoutLine, but neither echoed nor logged. */
  hideStdoutLine?: (line: string) => boolean;
  onStderrLine?: (line: string) => void;
  /** Where to echo the child's lines; default the parent's stdout/stderr; false: log file only. */
  echo?: { stdout: Writable; stderr: Writable } | false;
  /** Longer lines are delivered in pieces of this many characters. Default 64 Ki. */
  maxLineLength?: number;
  /** After the child exits, how long leftover processes of its group get after SIGTERM. Default 2 s. */
  stragglerGraceMs?: number;
}

export interface ChildResult {
  label: string;
  /** Also the process group id. Undefined when the child never started. */
  pid: number | undefined;
  /** The child's exit code; null when a signal ended it (see `signal`) or it never ran. */
  exitCode: number | null;
  /** The signal that ended the child, e.g. "SIGKILL". */
  signal: NodeJS.Signals | null;
  /** The stop request that interrupted the run (exit 130 / 143 / 129: interruptExitCode()). */
  interrupted: StopSignal | null;
  /** The group had to be SIGKILLed during a stop (grace expired or a second signal). */
  escalated: boolean;
  /** Processes of its group outlived the child and had to be signalled. */
  stragglersKilled: boolean;
  /** Pids of its group still alive at the end (e.g. stuck in uninterruptible I/O); absent when none. */
  survivors?: number[];
  /** The last 20 stderr lines, oldest first. */
  stderrTail: string[];
  logFile: string;
  /** The log could not be (fully) written, e.g. disk full. */
  logError?: string;
  durationMs: number;
  /** One line saying why the child could not be started (no such file, not executable, log not writable). */
  spawnError?: string;
}

const DEFAULT_GRACE_MS = 30_000;
const DEFAULT_STRAGGLER_GRACE_MS = 2_000;
const KILL_WAIT_MS = 5_000;
/** After the group is gone, how long its pipes may stay open (held by a process that left the group). */
const PIPE_CLOSE_WAIT_MS = 2_000;
const TAIL_LINES = 20;

/**
 * Run one training stage as a child process leading its own process group, drain and log its
 * output, stop it on request, and make sure no process of its group survives it. Never rejects
 * for anything the child does; a child that cannot start comes back with `spawnError`.
 */
export async function runChild(spec: ChildSpec): Promise<ChildResult> {
  const startedAt = performance.now();
  const ownStop = spec.stop === undefined ? installStopHandlers() : null;
  try {
    return await supervise(spec, spec.stop ?? (ownStop as StopController), startedAt);
  } finally {
    ownStop?.dispose();
  }
}

async function supervise(spec: ChildSpec, stop: StopController, startedAt: number): Promise<ChildResult> {
  const graceMs = spec.graceMs ?? DEFAULT_GRACE_MS;
  const prefix = `[${spec.label}] `;
  const echo = spec.echo === false ? null : (spec.echo ?? { stdout: process.stdout, stderr: process.stderr });
  const outcome: ChildResult = {
    label: spec.label,
    pid: undefined,
    exitCode: null,
    signal: null,
    interrupted: null,
    escalated: false,
    stragglersKilled: false,
    stderrTail: [],
    logFile: spec.logFile,
    durationMs: 0,
  };
  const finish = (): ChildResult => ({ ...outcome, durationMs: Math.round(performance.now() - startedAt) });

  let log: AppendLog;
  try {
    log = await AppendLog.open(spec.logFile);
  } catch (error) {
    outcome.spawnError = error instanceof Error ? error.message : String(error);
    return finish();
  }
  const notice = (message: string): void => {
    echo?.stderr.write(`${prefix}${message}\n`);
    void log.write(`[baton] ${message}\n`);
  };

  if (stop.reason !== null) {
    outcome.interrupted = stop.reason;
    notice(`not started: stop requested (${stop.reason})`);
    await log.close();
    return finish();
  }

  void log.write(`[baton] ${new Date().toISOString()} start: ${commandLine(spec)}\n`);
  const subprocess = spawnDetached(spec);
  const pgid = subprocess?.pid;
  if (subprocess === null || pgid === undefined) {
    outcome.spawnError = await spawnFailure(spec, subprocess);
    notice(outcome.spawnError);
    await log.close();
    return finish();
  }
  outcome.pid = pgid;
  const untrack = killGroupOnExit(pgid);
  spec.onSpawn?.(pgid);
  const leaderExit = new Promise<[number | null, NodeJS.Signals | null]>((resolve) => {
    subprocess.once("exit", (code, signal) => resolve([code, signal]));
  });

  // Start reading at once: execa resumes (and discards) unread streams on the next tick.
  const route = { log, warn: notice };
  const drained = Promise.all([
    drainLines(
      subprocess.stdout,
      {
        ...route,
        echo: echo && new Echo(echo.stdout, prefix),
        logPrefix: "",
        onLine: spec.onStdoutLine,
        hide: spec.hideStdoutLine,
      },
      spec.maxLineLength ?? DEFAULT_MAX_LINE_LENGTH,
    ),
    drainLines(
      subprocess.stderr,
      {
        ...route,
        echo: echo && new Echo(echo.stderr, prefix),
        logPrefix: "[stderr] ",
        onLine: spec.onStderrLine,
        tail: outcome.stderrTail,
        tailSize: TAIL_LINES,
      },
      spec.maxLineLength ?? DEFAULT_MAX_LINE_LENGTH,
    ),
  ]);

  let leaderRunning = true;
  let graceTimer: NodeJS.Timeout | undefined;
  const killGroup = (why: string): void => {
    clearTimeout(graceTimer);
    if (!groupAlive(pgid)) return;
    notice(`${why}: SIGKILL to process group ${pgid}`);
    outcome.escalated = signalGroup(pgid, "SIGKILL") || outcome.escalated;
  };
  const unsubscribe = stop.subscribe({
    onStop(reason, why) {
      outcome.interrupted = reason;
      if (!leaderRunning) return; // the exit path reaps what is left
      notice(
        `${why ?? reason}: asking it to save and exit (SIGTERM to process group ${pgid}); ` +
          `killing it in ${seconds(graceMs)}, or at once on a second signal`,
      );
      signalGroup(pgid, "SIGTERM");
      graceTimer = setTimeout(() => killGroup(`still running after ${seconds(graceMs)}`), graceMs);
    },
    onForce() {
      killGroup("second stop request");
    },
  });

  [outcome.exitCode, outcome.signal] = await leaderExit;
  leaderRunning = false;
  clearTimeout(graceTimer);

  const killedAll = outcome.escalated || stop.forced;
  const reaped = await reapGroup(pgid, {
    settleMs: killedAll ? 1_000 : 100,
    termGraceMs: killedAll ? 0 : (spec.stragglerGraceMs ?? DEFAULT_STRAGGLER_GRACE_MS),
    killWaitMs: KILL_WAIT_MS,
  });
  outcome.stragglersKilled = reaped.stragglersKilled;
  if (reaped.stragglersKilled) notice(`processes it left behind in group ${pgid} were killed`);
  if (reaped.survivors.length > 0) {
    outcome.survivors = reaped.survivors;
    notice(`warning: processes of group ${pgid} survive SIGKILL: ${reaped.survivors.join(", ")}`);
  } else {
    untrack();
  }
  unsubscribe();

  if (!(await settlesWithin(drained, PIPE_CLOSE_WAIT_MS))) {
    notice("its output pipes are held open by a process outside its group; closing them");
    subprocess.stdout.destroy();
    subprocess.stderr.destroy();
    await drained;
  }
  const ending = outcome.signal === null ? `code ${outcome.exitCode}` : `signal ${outcome.signal}`;
  void log.write(`[baton] ${new Date().toISOString()} exit: ${ending}\n`);
  await log.close();
  if (log.error !== null) outcome.logError = log.error;
  return finish();
}

type Subprocess = NonNullable<ReturnType<typeof spawnDetached>>;

function spawnDetached(spec: ChildSpec) {
  try {
    const subprocess = execa(spec.file, [...(spec.args ?? [])], {
      cwd: spec.cwd,
      env: { ...spec.env },
      extendEnv: false,
      // Its own process group: a terminal's Ctrl+C reaches only the parent, which decides; and
      // one kill(-pgid) reaches the child's own children. execa's `cleanup` does not apply.
      detached: true,
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
      buffer: false,
      reject: false,
    });
    subprocess.catch(() => {}); // the outcome comes from the 'exit' event; never an unhandled rejection
    return subprocess;
  } catch {
    return null; // invalid options (e.g. a NUL byte in an argument); spawnFailure explains
  }
}

async function spawnFailure(spec: ChildSpec, subprocess: Subprocess | null): Promise<string> {
  if (subprocess === null) return `cannot start ${spec.file}: invalid command or options`;
  const result = await subprocess;
  const code = "code" in result && typeof result.code === "string" ? result.code : undefined;
  if (code === undefined) return `cannot start ${spec.file}: ${result.shortMessage}`;
  const reason = describeFsError(Object.assign(new Error(result.originalMessage), { code }));
  if (code === "ENOENT" && spec.cwd !== undefined)
    return `cannot start ${spec.file} in ${spec.cwd}: ${reason}`;
  if (code === "EACCES") return `cannot start ${spec.file}: ${reason} (is it executable?)`;
  return `cannot start ${spec.file}: ${reason}`;
}

async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([promise.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The command as one line for a log (`start: …`): arguments that need it JSON-quoted. */
export function commandLine(spec: Pick<ChildSpec, "file" | "args">): string {
  return [spec.file, ...(spec.args ?? [])]
    .map((arg) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : JSON.stringify(arg)))
    .join(" ");
}

function seconds(ms: number): string {
  return `${Math.round(ms / 100) / 10} s`;
}
