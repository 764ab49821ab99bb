/**
 * A real daemon (pipelines/daemon.ts) as a process of its own, on a temp out root, and a client
 * talking to it over its socket — what the daemon tests and the benchmark drive.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { commandLineIncludes, descendantGroups, signalGroup } from "../../lib/process/index.ts";
import { DaemonClient } from "../../pipelines/daemon/client.ts";
import { daemonPaths } from "../../pipelines/daemon/paths.ts";
import type { RunView } from "../../pipelines/daemon/view.ts";
import { REPO } from "./trainer-process.ts";
import { startWatched, type WatchedProcess } from "./watched-process.ts";

export const DAEMON = join(REPO, "pipelines", "daemon.ts");
export const STAND_IN = join(REPO, "test", "fixtures", "daemon-stand-in.ts");

export interface TestDaemon {
  process: WatchedProcess;
  client: DaemonClient;
  socket: string;
  /** Resolves once it answers with its registry open. */
  ready(): Promise<Record<string, unknown>>;
}

export interface DaemonOptions {
  flags?: string[];
  env?: NodeJS.ProcessEnv;
  /** Run the stand-in instead of the pipeline (default true). */
  standIn?: boolean;
}

export function startDaemon(outRoot: string, options: DaemonOptions = {}): TestDaemon {
  const env: NodeJS.ProcessEnv = { FORCE_COLOR: "0", TB_AUTO: "0", CUDA_VISIBLE_DEVICES: "", ...options.env };
  if (options.standIn !== false) env.BATON_DAEMON_PIPELINE = STAND_IN;
  const child = startWatched(DAEMON, ["--out", outRoot, "--port", "0", ...(options.flags ?? [])], {
    label: "daemon",
    cwd: REPO,
    env,
  });
  const socket = daemonPaths(outRoot).socket;
  const client = new DaemonClient({ socket });
  return {
    process: child,
    client,
    socket,
    async ready() {
      const deadline = Date.now() + 30_000;
      for (;;) {
        if (child.exited()) throw new Error(`the daemon exited: ${(await child.done).stderr}`);
        try {
          const health = await client.json<Record<string, unknown>>("GET", "/api/v1/health");
          if (health.starting !== true && health.pid === child.child.pid) return health;
        } catch {
          // not yet
        }
        if (Date.now() > deadline) throw new Error("the daemon did not answer within 30 s");
        await sleep(50);
      }
    },
  };
}

/**
 * Stop a test's daemon and every run it has: its runs outlive it by design, and a stand-in's (or
 * run.ts's) command line need not name the test's folder, so killMentioning may miss them. Queued
 * runs are cancelled (none may start meanwhile), each running run's process group (its launcher,
 * `pid`) and its descendants' groups (a pipeline's trainers) are SIGKILLed, then the daemon gets
 * SIGTERM (SIGKILL if it is still there 10 s later) and is awaited. A daemon that already exited,
 * or one that does not answer, is only awaited: what it left is then killMentioning's.
 * For after hooks; undefined (a `before` that failed early) is nothing to stop.
 */
export async function stopDaemon(daemon: TestDaemon | undefined): Promise<void> {
  if (daemon === undefined) return;
  if (!daemon.process.exited()) {
    try {
      await within(5_000, stopRuns(daemon.client));
    } catch {
      // Not answering (not started yet, or stuck): nothing to list.
    }
    daemon.process.child.kill("SIGTERM");
    const exited = await Promise.race([
      daemon.process.done.then(() => true),
      sleep(10_000, false, { ref: false }),
    ]);
    if (!exited) daemon.process.child.kill("SIGKILL");
  }
  await daemon.process.done;
}

async function stopRuns(client: DaemonClient): Promise<void> {
  const list = (status: string) =>
    client
      .json<{ runs: RunView[] }>("GET", `/api/v1/runs?status=${status}&limit=1000`)
      .then((page) => page.runs);
  for (const run of await list("queued"))
    await client.call("POST", `/api/v1/runs/${run.id}/stop`, { reason: "test over" });
  for (const run of await list("running")) {
    // The launcher still leads its group (its log file is one of its arguments): never a recycled pid.
    if (run.pid === null || !commandLineIncludes(run.pid, run.log_path)) continue;
    // Descendants first: once the leader is gone, its children are reparented and out of reach.
    for (const group of descendantGroups(run.pid)) signalGroup(group, "SIGKILL");
    signalGroup(run.pid, "SIGKILL");
  }
}

function within<T>(ms: number, work: Promise<T>): Promise<T> {
  return Promise.race([
    work,
    sleep(ms, undefined, { ref: false }).then(() => {
      throw new Error(`no answer within ${ms} ms`);
    }),
  ]);
}

/** What the stand-in's `record` file says (test/fixtures/daemon-stand-in.ts). */
export interface StandInRecord {
  pid: number;
  cuda: string | null;
  forward: string | null;
}

export function readStandInRecord(path: string): StandInRecord {
  return JSON.parse(readFileSync(path, "utf8")) as StandInRecord;
}

/** Write the stand-in's script into a run's OUT_DIR (see test/fixtures/daemon-stand-in.ts). */
export async function standInScript(outDir: string, script: Record<string, unknown>): Promise<void> {
  await mkdir(outDir, { recursive: true });
  writeFileSync(join(outDir, "stand-in.json"), JSON.stringify(script));
}

export function submit(client: DaemonClient, doc: Record<string, unknown>): Promise<RunView> {
  return client.json<RunView>("POST", "/api/v1/runs", { version: 1, kind: "pipeline", ...doc });
}

/** Poll until the run's status is one of `statuses`. */
export async function waitForStatus(
  client: DaemonClient,
  id: number,
  statuses: readonly string[],
  timeoutMs = 60_000,
): Promise<RunView> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const run = await client.json<RunView>("GET", `/api/v1/runs/${id}`);
    if (statuses.includes(run.status)) return run;
    if (Date.now() > deadline)
      throw new Error(`run ${id} is still ${run.status} after ${timeoutMs} ms: ${JSON.stringify(run)}`);
    await sleep(50);
  }
}

export interface StoredEvent {
  id: number;
  run: number;
  seq: number;
  type: string;
  data: Record<string, unknown>;
}

/** Every stored event of a run, in order. */
export async function allEvents(client: DaemonClient, id: number): Promise<StoredEvent[]> {
  const events: StoredEvent[] = [];
  for (;;) {
    const after = events.at(-1)?.seq ?? 0;
    const page = await client.json<{ events: StoredEvent[] }>(
      "GET",
      `/api/v1/runs/${id}/events?after=${after}&limit=5000`,
    );
    if (page.events.length === 0) return events;
    events.push(...page.events);
  }
}
