/**
 * The daemon (docs/daemon.md): binds its socket first (that makes it the one), then its HTTP port,
 * opens the registry, reconciles it with the machine, and serves. Closing it leaves the runs
 * running: the next daemon adopts them. A start that fails at any step closes everything it had
 * opened (servers, socket file, registry, followed runs) before the error goes up.
 */
import { mkdirSync, readdirSync, readFileSync } from "node:fs";
import { rm, unlink } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { fileError, UserError } from "../../lib/cli/errors.ts";
import { writeFileAtomic } from "../../lib/fs/atomic.ts";
import { processStartTime } from "../../lib/process/index.ts";
import { RunRegistry } from "../../lib/registry/index.ts";
import { urlFor } from "../../lib/tensorboard/address.ts";
import { type Route, send } from "../board/http.ts";
import type { BoardHandler } from "../board/server.ts";
import { detachedExecutor } from "../executor/detached.ts";
import { API, apiRoutes } from "./api.ts";
import { createDashboard } from "./dashboard.ts";
import type { DaemonFlags } from "./flags.ts";
import { EventHub } from "./hub.ts";
import { Journal } from "./journal.ts";
import { bindSocket, bindTcp } from "./listen.ts";
import { daemonPaths } from "./paths.ts";
import { createRouter } from "./router.ts";
import { defaultScripts, RunManager } from "./runs.ts";
import { SlotPool } from "./slots.ts";
import { EventStreams } from "./streams.ts";

/** The daemon's settings: its flags (outRoot and logdir absolute), and what only a caller sets. */
export interface DaemonOptions extends Omit<DaemonFlags, "help" | "detach" | "token"> {
  token?: string;
  checkpointIntervalMs: number;
  repo: string;
  /** Where the runs run (relative paths resolve here). */
  cwd: string;
  env: Readonly<Record<string, string | undefined>>;
  log(line: string): void;
}

export interface RunningDaemon {
  pid: number;
  socket: string;
  url: string;
  port: number;
  close(): Promise<void>;
}

export const VERSION = (
  JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }
).version;

export async function startDaemon(options: DaemonOptions): Promise<RunningDaemon> {
  const paths = daemonPaths(options.outRoot);
  mkdirSync(paths.runsDir, { recursive: true, mode: 0o700 });
  const startedAt = new Date();
  const started = performance.now();
  // Until the registry is open, the daemon answers only who it is (a second daemon asks).
  let routes: readonly Route[] = [
    {
      path: `${API}/health`,
      handle: (_req, res) =>
        send(res, 200, "application/json", JSON.stringify({ pid: process.pid, starting: true })),
    },
  ];
  const socketServer = createServer(createRouter(() => routes, { tcp: null, log: options.log }));
  const tcpServer = createServer(
    createRouter(() => routes, { tcp: { bindHost: options.host, token: options.token }, log: options.log }),
  );
  for (const server of [socketServer, tcpServer]) server.keepAliveTimeout = 5000;

  // What is open so far: shut() closes it, after a failed start as on close().
  const opened: {
    registry?: RunRegistry;
    journal?: Journal;
    streams?: EventStreams;
    runs?: RunManager;
    dashboard?: BoardHandler;
    lockFile?: boolean;
  } = {};
  const shut = async (): Promise<void> => {
    // Every step runs whatever the ones before did; the first error is thrown once all have run.
    const errors: unknown[] = [];
    const step = async (action: () => unknown): Promise<void> => {
      try {
        await action();
      } catch (error) {
        errors.push(error);
      }
    };
    // Only a socket this daemon bound is its own to remove (a refused bind leaves the other daemon's).
    const ownSocket = socketServer.listening;
    await step(() => opened.streams?.close());
    await step(() => opened.dashboard?.close());
    await step(() => opened.runs?.close());
    await step(() => Promise.all([closeServer(socketServer), closeServer(tcpServer)]));
    await step(() => opened.journal?.close());
    await step(() => opened.registry?.close());
    if (ownSocket) await step(() => unlink(paths.socket).catch(() => {}));
    if (opened.lockFile) await step(() => rm(paths.lockFile, { force: true }));
    for (const error of errors.slice(1)) options.log(`closing: ${(error as Error).message}`);
    if (errors.length > 0) throw errors[0];
  };

  try {
    await bindSocket(socketServer, paths.socket, paths.lockFile);
    await bindTcp(tcpServer, options.host, options.port);
    const registry = RunRegistry.open(paths.registry);
    opened.registry = registry;
    inRegistry(registry, "reserve run ids", () => registry.reserveIdsBelow(highestRunDir(paths.runsDir) + 1));
    registry.startCheckpoints(options.checkpointIntervalMs);
    const port = (tcpServer.address() as AddressInfo).port;
    const url = urlFor(options.host, port);

    const hub = new EventHub();
    const journal = new Journal(registry, hub, { log: options.log });
    opened.journal = journal;
    const slots = SlotPool.fromSettings(options.gpus, options.env, options.cpuSlots);
    const streams = new EventStreams({
      registry,
      hub,
      maxBufferedBytes: options.streamBufferBytes,
      replayStallMs: 60_000,
    });
    opened.streams = streams;
    const runs = new RunManager({
      registry,
      journal,
      slots,
      paths,
      executor: detachedExecutor,
      submission: {
        outRoot: options.outRoot,
        allowPaths: options.allowPaths,
        cwd: options.cwd,
        repo: options.repo,
        slots,
      },
      supervisor: {
        lineRatePerSec: options.lineRatePerSec,
        lineBurst: options.lineBurst,
        killMarginMs: options.killMarginMs,
      },
      autoResume: options.autoResume,
      env: options.env,
      scripts: defaultScripts(options.repo, options.env),
      log: options.log,
    });
    opened.runs = runs;
    const health = () => {
      const counts = registry.countByStatus();
      return {
        version: VERSION,
        pid: process.pid,
        started_at: startedAt.toISOString(),
        uptime_s: Math.round((performance.now() - started) / 1000),
        out_root: options.outRoot,
        socket: paths.socket,
        url,
        slots: { kind: slots.kind, total: slots.ids.length, free: slots.free, slots: slots.view() },
        queue_length: counts.queued ?? 0,
        running: counts.running ?? 0,
        runs: counts,
        registry: { path: registry.path, ...registry.stats() },
        journal_error: journal.lastError,
        streams: { ...streams.stats, subscribers: hub.subscribers },
        rss_bytes: process.memoryUsage.rss(),
      };
    };
    // Reconciled before the API opens: a run submitted meanwhile must not be taken for one to adopt.
    inRegistry(registry, "reconcile the runs", () => runs.reconcile());
    try {
      await writeFileAtomic(
        paths.lockFile,
        `${JSON.stringify({ pid: process.pid, start_time: processStartTime(process.pid), started_at: startedAt.toISOString(), socket: paths.socket, url, version: VERSION }, null, 2)}\n`,
      );
    } catch (error) {
      throw fileError("write", paths.lockFile, error);
    }
    opened.lockFile = true;
    // The dashboard: the board's page and routes with the API's first (dashboard.ts).
    const dashboard = createDashboard({
      logdir: options.logdir,
      host: options.host,
      token: options.token,
      apiRoutes: apiRoutes({ registry, runs, slots, streams, health }),
      log: options.log,
    });
    opened.dashboard = dashboard;
    routes = dashboard.routes;
    inRegistry(registry, "dispatch the queued runs", () => runs.pump());
    options.log(
      `daemon ${process.pid}: ${paths.socket} and ${url}; ${slots.ids.length} ${slots.kind} slot(s): ${slots.ids.join(", ")}`,
    );

    let closing: Promise<void> | null = null;
    return {
      pid: process.pid,
      socket: paths.socket,
      url,
      port,
      close() {
        closing ??= shut();
        return closing;
      },
    };
  } catch (error) {
    // Nothing may outlive a failed start: servers, socket file, registry, timers, followed runs (which go on).
    await shut().catch((closeError: unknown) =>
      options.log(`closing after the failed start: ${(closeError as Error).message}`),
    );
    throw error;
  }
}

/** A registry step of the start, its error naming the registry (a UserError names it already). */
function inRegistry<T>(registry: RunRegistry, what: string, body: () => T): T {
  try {
    return body();
  } catch (error) {
    if (error instanceof UserError) throw error;
    throw new Error(`cannot ${what} of the run registry ${registry.path}: ${(error as Error).message}`);
  }
}

async function closeServer(server: Server): Promise<void> {
  if (!server.listening) return;
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

/** The highest run folder under runs/, so ids are never reused even with a new registry file. */
function highestRunDir(runsDir: string): number {
  let highest = 0;
  for (const name of readdirSync(runsDir)) if (/^\d+$/.test(name)) highest = Math.max(highest, Number(name));
  return highest;
}
