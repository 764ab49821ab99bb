import { constants } from "node:fs";
import { access, appendFile, mkdir, stat } from "node:fs/promises";
import { delimiter, dirname, join, resolve } from "node:path";
import getPort from "get-port";
import { describeFsError } from "../cli/errors.ts";
import { commandLineIncludes, groupAlive, processAlive } from "../process/index.ts";
import { probeHostFor, urlFor } from "./address.ts";
import { logTail, spawnDetached, waitUntilServing } from "./board-process.ts";
import { probeTensorBoard } from "./http-probe.ts";
import { type Log, terminate, withRecordLock } from "./instance-control.ts";
import {
  type BoardKind,
  boardOf,
  readInstanceRecord,
  removeInstanceRecord,
  type TensorBoardRecord,
  writeInstanceRecord,
} from "./instance-record.ts";

export type { Log } from "./instance-control.ts";
export type { BoardKind } from "./instance-record.ts";

export const DEFAULT_TB_PORT = 6006;
export const DEFAULT_TB_HOST = "127.0.0.1";
export const DEFAULT_TB_BINARY = "tensorboard";
export const DEFAULT_STARTUP_TIMEOUT_MS = 30_000;

/** TB_BOARD: the real TensorBoard, Baton's built-in board, or (auto) TensorBoard when it is installed, else the built-in one. */
export type BoardChoice = "auto" | BoardKind;

/**
 * How to start Baton's built-in board: a command that takes TensorBoard's `--logdir`, `--port`
 * and `--host` flags and answers /data/logdir. The application passes it in (lib/ knows no entry scripts).
 */
export interface BuiltinBoardCommand {
  command: string;
  /** Arguments before the TensorBoard-style flags (e.g. node's `--import tsx` and the script). */
  args: string[];
  /** What the record's `binary` says (the entry script). */
  describe: string;
}

export interface TensorBoardOptions {
  /** Directory TensorBoard watches (TF_DIR); made absolute and created if missing. */
  logdir: string;
  /** Where the running instance is recorded (out/tensorboard.json). */
  recordFile: string;
  /** TensorBoard's stdout and stderr are appended here (out/tensorboard.log). */
  logFile: string;
  /** Preferred port, used if free (TB_PORT, default 6006); 0 takes any free port. */
  port?: number;
  /** Address to bind (TB_HOST, default 127.0.0.1); 0.0.0.0 serves the network. */
  host?: string;
  /** Executable (TENSORBOARD_BINARY, default `tensorboard` on PATH). */
  binary?: string;
  /** Which board to serve (TB_BOARD, default auto). */
  board?: BoardChoice;
  /** The built-in board; without it, auto means TensorBoard only. */
  builtin?: BuiltinBoardCommand | null;
  /** How long to wait for a new instance to answer HTTP (default 30 s). */
  startupTimeoutMs?: number;
  /** Where progress lines and warnings go (default: nowhere). */
  log?: Log;
  /** Environment for TensorBoard (default: this process's). */
  env?: NodeJS.ProcessEnv;
  /** Said after a warning that no board runs: what the caller does then (the pipeline: "going on without it"). */
  whenMissing?: string;
}

export type TensorBoardStatus = "started" | "reused" | "missing" | "failed";

export interface TensorBoardResult {
  status: TensorBoardStatus;
  logdir: string;
  url?: string;
  pid?: number;
  port?: number;
  /** Which board serves it, when one does. */
  board?: BoardKind;
  /** One line saying what happened (also logged). */
  message: string;
  /** TensorBoard's last output lines, when it failed to start. */
  logTail?: string[];
}

type Settings = Required<Omit<TensorBoardOptions, "env" | "builtin">> & {
  env: NodeJS.ProcessEnv;
  builtin: BuiltinBoardCommand | null;
};

/** One board to start: what to run and how to name it in messages. */
interface Launch {
  kind: BoardKind;
  command: string;
  args: string[];
  describe: string;
}

/** "TensorBoard" or "built-in board", for messages. */
export function boardLabel(kind: BoardKind): string {
  return kind === "builtin" ? "built-in board" : "TensorBoard";
}

/**
 * Make sure a board serves `logdir`: reuse the recorded instance if it is alive, answers, watches
 * the same logdir and is the board asked for, else start one in the background that outlives the
 * caller — TensorBoard, or the built-in board when TB_BOARD=builtin or TensorBoard is not installed.
 * Never throws for a missing or broken board: the result says what happened, so a training
 * pipeline can go on without it.
 */
export async function ensureTensorBoard(options: TensorBoardOptions): Promise<TensorBoardResult> {
  const settings = settle(options);
  try {
    await mkdir(settings.logdir, { recursive: true });
    await mkdir(dirname(settings.logFile), { recursive: true });
    await mkdir(dirname(settings.recordFile), { recursive: true });
    return await withRecordLock(settings.recordFile, settings.log, async () => {
      return (await reuseRecorded(settings)) ?? (await startNew(settings));
    });
  } catch (error) {
    return failed(settings, `could not start TensorBoard: ${describeFsError(error)}`);
  }
}

function settle(options: TensorBoardOptions): Settings {
  const port = options.port ?? DEFAULT_TB_PORT;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new RangeError(`TensorBoard port must be 0…65535, got ${port}`);
  }
  return {
    logdir: resolve(options.logdir),
    recordFile: resolve(options.recordFile),
    logFile: resolve(options.logFile),
    port,
    host: options.host || DEFAULT_TB_HOST,
    binary: options.binary || DEFAULT_TB_BINARY,
    board: options.board ?? "auto",
    builtin: options.builtin ?? null,
    startupTimeoutMs: options.startupTimeoutMs ?? DEFAULT_STARTUP_TIMEOUT_MS,
    log: options.log ?? (() => {}),
    env: options.env ?? process.env,
    whenMissing: options.whenMissing ? ` — ${options.whenMissing}` : "",
  };
}

/** The recorded instance if it can serve this logdir; otherwise retire it (stop it if it is ours). */
async function reuseRecorded(settings: Settings): Promise<TensorBoardResult | null> {
  const { log } = settings;
  const { record, problem } = await readInstanceRecord(settings.recordFile);
  if (problem) log(`warning: ignoring unusable TensorBoard record ${problem}`, "warn");
  if (!record) return null;

  const kind = boardOf(record);
  const label = boardLabel(kind);
  const state = await inspectRecord(record);
  const sameLogdir =
    record.logdir === settings.logdir && (state.servedLogdir ?? record.logdir) === record.logdir;
  // A different TB_HOST changes who can reach it (e.g. 0.0.0.0 to serve the network): not reusable.
  const sameHost = record.host === settings.host;
  const sameBoard = settings.board === "auto" || settings.board === kind;
  if (state.running && state.answers && sameLogdir && sameHost && sameBoard) {
    const message = `${capitalised(label)} already running (pid ${record.pid}) at ${record.url}`;
    log(message, "info");
    return {
      status: "reused",
      logdir: record.logdir,
      url: record.url,
      pid: record.pid,
      port: record.port,
      board: kind,
      message,
    };
  }
  if (state.running) {
    const why = !state.answers
      ? `it does not answer at ${record.url}`
      : !sameLogdir
        ? `it serves ${state.servedLogdir ?? record.logdir}, not ${settings.logdir}`
        : !sameHost
          ? `it is bound to ${record.host}, not ${settings.host}`
          : `TB_BOARD=${settings.board} asks for the ${boardLabel(settings.board === "builtin" ? "builtin" : "tensorboard")}`;
    log(`stopping the previous ${label} (pid ${record.pid}): ${why}`, "info");
    await terminate(record.pid);
  } else {
    log(`previous ${label} (pid ${record.pid}) is no longer running`, "info");
  }
  await removeInstanceRecord(settings.recordFile);
  return null;
}

/** TensorBoard unless TB_BOARD=builtin; when auto and TensorBoard is not installed, the built-in board. */
async function startNew(settings: Settings): Promise<TensorBoardResult> {
  const tensorBoard: Launch = {
    kind: "tensorboard",
    command: settings.binary,
    args: [],
    describe: settings.binary,
  };
  const builtin: Launch | null = settings.builtin && { kind: "builtin", ...settings.builtin };
  if (settings.board === "builtin") {
    if (!builtin)
      return failed(settings, "TB_BOARD=builtin, but this command has no built-in board to start");
    return startBuiltin(settings, builtin);
  }
  const result = await start(settings, tensorBoard);
  if (result !== "not-installed") return result;
  if (settings.board !== "auto" || !builtin) return missing(settings);
  settings.log(
    `TensorBoard is not installed (${whereMissing(settings)}); starting Baton's built-in board instead`,
    "info",
  );
  return startBuiltin(settings, builtin);
}

async function startBuiltin(settings: Settings, builtin: Launch): Promise<TensorBoardResult> {
  const result = await start(settings, builtin);
  // Only a missing TensorBoard executable is "not installed"; the built-in board's command is node itself.
  return result === "not-installed" ? failed(settings, `could not run ${builtin.command}`) : result;
}

/** Start one board and wait until it answers; "not-installed" when TensorBoard's executable does not exist. */
async function start(settings: Settings, launch: Launch): Promise<TensorBoardResult | "not-installed"> {
  const { log, logdir, host } = settings;
  const label = boardLabel(launch.kind);
  const port = settings.port === 0 ? await getPort() : await getPort({ port: settings.port });
  if (settings.port !== 0 && port !== settings.port)
    log(`port ${settings.port} is in use; using ${port}`, "info");

  const args = [...launch.args, "--logdir", logdir, "--port", String(port), "--host", host];
  // Nothing is launched when TensorBoard is not installed, so nothing goes into its log.
  if (launch.kind === "tensorboard" && !(await executableExists(launch.command, settings.env)))
    return "not-installed";
  await appendFile(
    settings.logFile,
    `\n[${new Date().toISOString()}] baton: ${launch.command} ${args.join(" ")}\n`,
  );
  const logOffset = (await stat(settings.logFile)).size;
  const child = spawnDetached(launch.command, args, settings.logFile, settings.env);

  const outcome = await waitUntilServing(child, probeHostFor(host), port, logdir, settings.startupTimeoutMs);
  if (outcome.kind === "spawn-error") {
    if (outcome.error.code === "ENOENT" && launch.kind === "tensorboard") return "not-installed";
    return failed(settings, `could not run ${launch.command}: ${describeFsError(outcome.error)}`);
  }
  if (outcome.kind !== "serving") {
    // A hung board, or helpers left by one that died, must not linger.
    const pid = child.pid;
    if (pid !== undefined && (processAlive(pid) || groupAlive(pid))) await terminate(pid);
    const what =
      outcome.kind === "exited"
        ? `exited (${outcome.code !== null ? `code ${outcome.code}` : `signal ${outcome.signal}`}) before serving`
        : `did not answer on port ${port} within ${Math.round(settings.startupTimeoutMs / 1000)} s`;
    return failed(settings, `${capitalised(label)} ${what}`, await logTail(settings.logFile, logOffset));
  }

  const pid = child.pid as number;
  const record: TensorBoardRecord = {
    pid,
    port,
    host,
    logdir,
    url: urlFor(host, port),
    started_at: new Date().toISOString(),
    binary: launch.describe,
    log_file: settings.logFile,
    board: launch.kind,
  };
  await writeInstanceRecord(settings.recordFile, record);
  const message = `${capitalised(label)} started (pid ${pid}) at ${record.url} (logdir ${logdir}, log ${settings.logFile})`;
  log(message, "info");
  return { status: "started", logdir, url: record.url, pid, port, board: launch.kind, message };
}

function capitalised(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function whereMissing(settings: Settings): string {
  return settings.binary.includes("/")
    ? `${settings.binary} does not exist`
    : `\`${settings.binary}\` is not on PATH`;
}

function missing(settings: Settings): TensorBoardResult {
  const builtinHint = settings.builtin
    ? ", set TENSORBOARD_BINARY, or use TB_BOARD=builtin"
    : " or set TENSORBOARD_BINARY";
  const message = `TensorBoard not found (${whereMissing(settings)}); install it with \`pip install tensorboard\`${builtinHint}${settings.whenMissing}`;
  settings.log(`warning: ${message}`, "warn");
  return { status: "missing", logdir: settings.logdir, message };
}

function failed(settings: Settings, message: string, tail?: string[]): TensorBoardResult {
  settings.log(`warning: ${message}${settings.whenMissing}`, "warn");
  if (tail && tail.length > 0) {
    settings.log(`last lines of ${settings.logFile}:`, "warn");
    for (const line of tail) settings.log(`  ${line}`, "warn");
  }
  return { status: "failed", logdir: settings.logdir, message, ...(tail ? { logTail: tail } : {}) };
}

export interface InstanceState {
  /** The recorded PID is alive and is still the TensorBoard we started (not a recycled PID). */
  running: boolean;
  /** Its port answers HTTP. */
  answers: boolean;
  /** The logdir it reports at /data/logdir, when it does. */
  servedLogdir?: string;
}

async function inspectRecord(record: TensorBoardRecord): Promise<InstanceState> {
  const running = processAlive(record.pid) && commandLineIncludes(record.pid, record.logdir);
  if (!running) return { running, answers: false };
  const probe = await probeTensorBoard(probeHostFor(record.host), record.port);
  return {
    running,
    answers: probe.answers,
    ...(probe.logdir !== undefined ? { servedLogdir: probe.logdir } : {}),
  };
}

export interface TensorBoardInspection extends InstanceState {
  record: TensorBoardRecord | null;
  /** Why the record file could not be used, if it exists but is broken. */
  problem?: string;
}

/** What the record file says and whether that instance is alive and answering (for --status). */
export async function inspectTensorBoard(recordFile: string): Promise<TensorBoardInspection> {
  const { record, problem } = await readInstanceRecord(resolve(recordFile));
  const base = problem ? { problem } : {};
  if (!record) return { record, running: false, answers: false, ...base };
  return { record, ...(await inspectRecord(record)), ...base };
}

export interface StopOptions {
  log?: Log;
  /** How long TensorBoard gets to exit after SIGTERM before SIGKILL (default 5 s). */
  graceMs?: number;
}

export interface StopResult {
  status: "stopped" | "not-running";
  pid?: number;
  message: string;
}

/** Stop the recorded instance (TERM its process group, KILL after the grace period) and drop the record. */
export async function stopTensorBoard(recordFile: string, options: StopOptions = {}): Promise<StopResult> {
  const log = options.log ?? (() => {});
  const file = resolve(recordFile);
  await mkdir(dirname(file), { recursive: true });
  return withRecordLock(file, log, async () => {
    const { record, problem } = await readInstanceRecord(file);
    if (problem) log(`warning: ignoring unusable TensorBoard record ${problem}`, "warn");
    if (!record) {
      await removeInstanceRecord(file);
      const message = `no TensorBoard recorded in ${file}`;
      log(message, "info");
      return { status: "not-running", message };
    }
    const { pid } = record;
    const label = boardLabel(boardOf(record));
    const running = processAlive(pid) && commandLineIncludes(pid, record.logdir);
    if (running) await terminate(pid, options.graceMs);
    await removeInstanceRecord(file);
    const message = running
      ? `stopped ${label} (pid ${pid})`
      : `${capitalised(label)} (pid ${pid}) was not running`;
    log(message, "info");
    return { status: running ? "stopped" : "not-running", pid, message };
  });
}

/** Whether `command` names an executable file: a path as given, or a name found on PATH. */
async function executableExists(command: string, env: NodeJS.ProcessEnv): Promise<boolean> {
  const candidates = command.includes("/")
    ? [command]
    : (env.PATH ?? "")
        .split(delimiter)
        .filter(Boolean)
        .map((dir) => join(dir, command));
  for (const candidate of candidates) {
    if (
      await access(candidate, constants.X_OK).then(
        () => true,
        () => false,
      )
    )
      return true;
  }
  return false;
}
