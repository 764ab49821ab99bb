import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { appendFile, mkdir, readFile, stat } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import getPort from "get-port";
import lockfile from "proper-lockfile";
import { describeFsError, isNodeError } from "../cli/errors.ts";
import { probeHostFor, urlFor } from "./address.ts";
import {
  readInstanceRecord,
  removeInstanceRecord,
  type TensorBoardRecord,
  writeInstanceRecord,
} from "./instance-record.ts";
import { commandLineMentions, groupAlive, pidAlive, probeTensorBoard, signalGroup } from "./process-probe.ts";

export const DEFAULT_TB_PORT = 6006;
export const DEFAULT_TB_HOST = "127.0.0.1";
export const DEFAULT_TB_BINARY = "tensorboard";
export const DEFAULT_STARTUP_TIMEOUT_MS = 30_000;
const POLL_MS = 150;
const LOG_TAIL_LINES = 15;

/** Progress goes out at "info"; anything the user should act on at "warn", its first line starting "warning: ". */
export type Log = (line: string, level: "info" | "warn") => void;

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
  /** How long to wait for a new instance to answer HTTP (default 30 s). */
  startupTimeoutMs?: number;
  /** Where progress lines and warnings go (default: nowhere). */
  log?: Log;
  /** Environment for TensorBoard (default: this process's). */
  env?: NodeJS.ProcessEnv;
}

export type TensorBoardStatus = "started" | "reused" | "missing" | "failed";

export interface TensorBoardResult {
  status: TensorBoardStatus;
  logdir: string;
  url?: string;
  pid?: number;
  port?: number;
  /** One line saying what happened (also logged). */
  message: string;
  /** TensorBoard's last output lines, when it failed to start. */
  logTail?: string[];
}

type Settings = Required<Omit<TensorBoardOptions, "env">> & { env: NodeJS.ProcessEnv };

/**
 * Make sure a TensorBoard serves `logdir`: reuse the recorded instance if it is alive, answers
 * and watches the same logdir, else start one in the background that outlives the caller.
 * Never throws for a missing or broken TensorBoard: the result says what happened, so a
 * training pipeline can go on without it.
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
    startupTimeoutMs: options.startupTimeoutMs ?? DEFAULT_STARTUP_TIMEOUT_MS,
    log: options.log ?? (() => {}),
    env: options.env ?? process.env,
  };
}

/** The recorded instance if it can serve this logdir; otherwise retire it (stop it if it is ours). */
async function reuseRecorded(settings: Settings): Promise<TensorBoardResult | null> {
  const { log } = settings;
  const { record, problem } = await readInstanceRecord(settings.recordFile);
  if (problem) log(`warning: ignoring unusable TensorBoard record ${problem}`, "warn");
  if (!record) return null;

  const state = await inspectRecord(record);
  const sameLogdir =
    record.logdir === settings.logdir && (state.servedLogdir ?? record.logdir) === record.logdir;
  // A different TB_HOST changes who can reach it (e.g. 0.0.0.0 to serve the network): not reusable.
  const sameHost = record.host === settings.host;
  if (state.running && state.answers && sameLogdir && sameHost) {
    const message = `TensorBoard already running (pid ${record.pid}) at ${record.url}`;
    log(message, "info");
    return {
      status: "reused",
      logdir: record.logdir,
      url: record.url,
      pid: record.pid,
      port: record.port,
      message,
    };
  }
  if (state.running) {
    const why = !state.answers
      ? `it does not answer at ${record.url}`
      : !sameLogdir
        ? `it serves ${state.servedLogdir ?? record.logdir}, not ${settings.logdir}`
        : `it is bound to ${record.host}, not ${settings.host}`;
    log(`stopping the previous TensorBoard (pid ${record.pid}): ${why}`, "info");
    await terminate(record.pid);
  } else {
    log(`previous TensorBoard (pid ${record.pid}) is no longer running`, "info");
  }
  await removeInstanceRecord(settings.recordFile);
  return null;
}

async function startNew(settings: Settings): Promise<TensorBoardResult> {
  const { log, logdir, host } = settings;
  const port = settings.port === 0 ? await getPort() : await getPort({ port: settings.port });
  if (settings.port !== 0 && port !== settings.port)
    log(`port ${settings.port} is in use; using ${port}`, "info");

  const args = ["--logdir", logdir, "--port", String(port), "--host", host];
  await appendFile(
    settings.logFile,
    `\n[${new Date().toISOString()}] baton: ${settings.binary} ${args.join(" ")}\n`,
  );
  const logOffset = (await stat(settings.logFile)).size;
  const child = spawnDetached(settings, args);

  const outcome = await waitUntilServing(child, probeHostFor(host), port, logdir, settings.startupTimeoutMs);
  if (outcome.kind === "spawn-error") {
    if (outcome.error.code === "ENOENT") return missing(settings);
    return failed(settings, `could not run ${settings.binary}: ${describeFsError(outcome.error)}`);
  }
  if (outcome.kind !== "serving") {
    // A hung TensorBoard, or helpers left by one that died, must not linger.
    const pid = child.pid;
    if (pid !== undefined && (pidAlive(pid) || groupAlive(pid))) await terminate(pid);
    const what =
      outcome.kind === "exited"
        ? `exited (${outcome.code !== null ? `code ${outcome.code}` : `signal ${outcome.signal}`}) before serving`
        : `did not answer on port ${port} within ${Math.round(settings.startupTimeoutMs / 1000)} s`;
    return failed(settings, `TensorBoard ${what}`, await logTail(settings.logFile, logOffset));
  }

  const pid = child.pid as number;
  const record: TensorBoardRecord = {
    pid,
    port,
    host,
    logdir,
    url: urlFor(host, port),
    started_at: new Date().toISOString(),
    binary: settings.binary,
    log_file: settings.logFile,
  };
  await writeInstanceRecord(settings.recordFile, record);
  const message = `TensorBoard started (pid ${pid}) at ${record.url} (logdir ${logdir}, log ${settings.logFile})`;
  log(message, "info");
  return { status: "started", logdir, url: record.url, pid, port, message };
}

/** Own process group, no pipes, unref'd: TensorBoard outlives us and ignores our terminal's Ctrl+C. */
function spawnDetached(settings: Settings, args: string[]): ChildProcess {
  const logFd = openSync(settings.logFile, "a");
  try {
    const child = spawn(settings.binary, args, {
      detached: true,
      stdio: ["ignore", logFd, logFd],
      env: settings.env,
    });
    child.unref();
    return child;
  } finally {
    closeSync(logFd);
  }
}

type StartOutcome =
  | { kind: "serving" }
  | { kind: "spawn-error"; error: NodeJS.ErrnoException }
  | { kind: "exited"; code: number | null; signal: NodeJS.Signals | null }
  | { kind: "timeout" };

async function waitUntilServing(
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

function missing(settings: Settings): TensorBoardResult {
  const where = settings.binary.includes("/")
    ? `${settings.binary} does not exist`
    : `\`${settings.binary}\` is not on PATH`;
  const message = `TensorBoard not found (${where}); install it with \`pip install tensorboard\` or set TENSORBOARD_BINARY — going on without it`;
  settings.log(`warning: ${message}`, "warn");
  return { status: "missing", logdir: settings.logdir, message };
}

function failed(settings: Settings, message: string, tail?: string[]): TensorBoardResult {
  settings.log(`warning: ${message} — going on without it`, "warn");
  if (tail && tail.length > 0) {
    settings.log(`last lines of ${settings.logFile}:`, "warn");
    for (const line of tail) settings.log(`  ${line}`, "warn");
  }
  return { status: "failed", logdir: settings.logdir, message, ...(tail ? { logTail: tail } : {}) };
}

async function logTail(logFile: string, fromOffset: number): Promise<string[]> {
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

export interface InstanceState {
  /** The recorded PID is alive and is still the TensorBoard we started (not a recycled PID). */
  running: boolean;
  /** Its port answers HTTP. */
  answers: boolean;
  /** The logdir it reports at /data/logdir, when it does. */
  servedLogdir?: string;
}

async function inspectRecord(record: TensorBoardRecord): Promise<InstanceState> {
  const running = pidAlive(record.pid) && commandLineMentions(record.pid, record.logdir);
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
    const running = pidAlive(pid) && commandLineMentions(pid, record.logdir);
    if (running) await terminate(pid, options.graceMs);
    await removeInstanceRecord(file);
    const message = running ? `stopped TensorBoard (pid ${pid})` : `TensorBoard (pid ${pid}) was not running`;
    log(message, "info");
    return { status: running ? "stopped" : "not-running", pid, message };
  });
}

/** SIGTERM the group, wait, SIGKILL what is left; throws only if something survives SIGKILL. */
async function terminate(pid: number, graceMs = 5000): Promise<void> {
  const gone = () => !pidAlive(pid) && !groupAlive(pid);
  signalGroup(pid, "SIGTERM");
  if (await waitFor(gone, graceMs)) return;
  signalGroup(pid, "SIGKILL");
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
async function withRecordLock<T>(recordFile: string, log: Log, body: () => Promise<T>): Promise<T> {
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
