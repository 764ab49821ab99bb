/**
 * A real daemon (pipelines/daemon.ts) as a process of its own, on a temp out root, and a client
 * talking to it over its socket — what the daemon tests and the benchmark drive.
 */
import { writeFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
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
  outRoot: string;
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
    outRoot,
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
