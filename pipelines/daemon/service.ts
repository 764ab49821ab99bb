/**
 * The daemon (docs/daemon.md): binds its socket first (that makes it the one), then its HTTP port,
 * opens the registry, reconciles it with the machine, and serves. Closing it leaves the runs
 * running: the next daemon adopts them.
 */
import { mkdirSync, readdirSync, readFileSync } from "node:fs";
import { rm, unlink } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { writeFileAtomic } from "../../lib/fs/atomic.ts";
import { processStartTime } from "../../lib/process/index.ts";
import { RunRegistry } from "../../lib/registry/index.ts";
import { urlFor } from "../../lib/tensorboard/address.ts";
import { type Route, send } from "../board/http.ts";
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
  await bindSocket(socketServer, paths.socket, paths.lockFile);
  let registry: RunRegistry | null = null;
  try {
    await bindTcp(tcpServer, options.host, options.port);
    registry = RunRegistry.open(paths.registry);
  } catch (error) {
    await closeServer(socketServer);
    await closeServer(tcpServer);
    await unlink(paths.socket).catch(() => {});
    throw error;
  }
  registry.reserveIdsBelow(highestRunDir(paths.runsDir) + 1);
  registry.startCheckpoints(options.checkpointIntervalMs);
  const port = (tcpServer.address() as AddressInfo).port;
  const url = urlFor(options.host, port);

  const hub = new EventHub();
  const journal = new Journal(registry, hub);
  const slots = SlotPool.fromSettings(options.gpus, options.env, options.cpuSlots);
  const streams = new EventStreams({
    registry,
    hub,
    maxBufferedBytes: options.streamBufferBytes,
    replayStallMs: 60_000,
  });
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
  const open = registry;
  const health = () => {
    const counts = open.countByStatus();
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
      registry: { path: open.path, ...open.stats() },
      journal_error: journal.lastError,
      streams: { ...streams.stats, subscribers: hub.subscribers },
      rss_bytes: process.memoryUsage.rss(),
    };
  };
  // Reconciled before the API opens: a run submitted meanwhile must not be taken for one to adopt.
  runs.reconcile();
  await writeFileAtomic(
    paths.lockFile,
    `${JSON.stringify({ pid: process.pid, start_time: processStartTime(process.pid), started_at: startedAt.toISOString(), socket: paths.socket, url, version: VERSION }, null, 2)}\n`,
  );
  // The dashboard: the board's page and routes with the API's first (dashboard.ts).
  const dashboard = createDashboard({
    logdir: options.logdir,
    host: options.host,
    token: options.token,
    apiRoutes: apiRoutes({ registry, runs, slots, streams, health }),
    log: options.log,
  });
  routes = dashboard.routes;
  runs.pump();
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
      closing ??= (async () => {
        streams.close();
        await dashboard.close();
        await runs.close();
        await Promise.all([closeServer(socketServer), closeServer(tcpServer)]);
        try {
          journal.close();
        } finally {
          open.close();
        }
        await unlink(paths.socket).catch(() => {});
        await rm(paths.lockFile, { force: true });
      })();
      return closing;
    },
  };
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
