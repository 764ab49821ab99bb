/**
 * The daemon under load: `npm run bench:daemon`. Starts a real daemon (4 CPU slots) whose runs are
 * stand-ins (test/fixtures/daemon-stand-in.ts: 300 lines, heartbeats and checkpoints each, about a
 * second), submits 100 of them one after another (each submission awaited, so its latency is its
 * own; the first runs start while later ones are submitted, and the rest queue for the 4 slots),
 * and measures:
 *   submissions      p50 / p99 / max of each POST /api/v1/runs
 *   registry writes  p50 / p99 / max of every registry transaction (the daemon times them: health)
 *   WAL              the -wal file's size, sampled, and the most the daemon saw (goal: bounded)
 *   API latency      GET /api/v1/health and GET /api/v1/runs, p50 / p99, from a client polling from
 *                    the last submission until every run has ended
 * Goal: every run finished (none failed) with registry write p99 < 50 ms. Prints one JSON object
 * and writes out/bench-daemon.json. BENCH_DAEMON_RUNS=N changes the number of runs; the runs must
 * all end within BENCH_DAEMON_DEADLINE_S (default 600) or the bench fails.
 */
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { FINAL_STATUSES } from "../lib/registry/index.ts";
import { daemonPaths } from "../pipelines/daemon/paths.ts";
import { standInScript, startDaemon, stopDaemon, submit } from "../test/support/daemon-process.ts";

const REPO = join(import.meta.dirname, "..");
const RUNS = Number(process.env.BENCH_DAEMON_RUNS ?? 100);
const DEADLINE_S = Number(process.env.BENCH_DAEMON_DEADLINE_S ?? 600);

function quantiles(samples: number[]) {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
  const round = (ms: number) => Math.round(ms * 100) / 100;
  return {
    count: sorted.length,
    p50Ms: round(at(0.5)),
    p99Ms: round(at(0.99)),
    maxMs: round(sorted.at(-1) ?? 0),
  };
}

const root = mkdtempSync(join(tmpdir(), "baton-bench-daemon-"));
const outRoot = join(root, "out");
const daemon = startDaemon(outRoot, { flags: ["--cpu-slots", "4"] });
try {
  await daemon.ready();
  const started = performance.now();
  const ids: number[] = [];
  const submitTimes: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const out = join(outRoot, `run-${i}`);
    await standInScript(out, { lines: 300, intervalMs: 3, heartbeatEvery: 30, checkpointEvery: 100 });
    const t = performance.now();
    ids.push((await submit(daemon.client, { name: `bench ${i}`, env: { OUT_DIR: out } })).id);
    submitTimes.push(performance.now() - t);
  }
  const health: number[] = [];
  const list: number[] = [];
  let walMax = 0;
  const wal = `${daemonPaths(outRoot).registry}-wal`;
  const deadline = started + DEADLINE_S * 1000;
  for (;;) {
    let t = performance.now();
    const status = await daemon.client.json<{ runs: Record<string, number> }>("GET", "/api/v1/health");
    health.push(performance.now() - t);
    t = performance.now();
    await daemon.client.json("GET", "/api/v1/runs?limit=100");
    list.push(performance.now() - t);
    try {
      walMax = Math.max(walMax, statSync(wal).size);
    } catch {
      // checkpointed to nothing
    }
    // Every status a run never leaves counts as ended: a run stopped or cancelled must not keep this waiting.
    const ended = [...FINAL_STATUSES].reduce((sum, final) => sum + (status.runs[final] ?? 0), 0);
    if (ended >= RUNS) break;
    if (performance.now() > deadline) {
      throw new Error(
        `${RUNS - ended} of ${RUNS} runs still not ended after ${DEADLINE_S} s: ${JSON.stringify(status.runs)}`,
      );
    }
    await sleep(50);
  }
  const elapsedS = (performance.now() - started) / 1000;
  const final = await daemon.client.json<{
    runs: Record<string, number>;
    registry: {
      writes: { count: number; p50Ms: number; p99Ms: number; maxMs: number };
      walPeakBytes: number;
      walBytes: number;
    };
    rss_bytes: number;
  }>("GET", "/api/v1/health");
  const result = {
    runs: RUNS,
    finished: final.runs.finished ?? 0,
    failed: final.runs.failed ?? 0,
    /** Runs that ended otherwise (stopped, cancelled, interrupted): none expected. */
    endedOtherwise: RUNS - (final.runs.finished ?? 0) - (final.runs.failed ?? 0),
    elapsedS: Math.round(elapsedS * 10) / 10,
    registryWrites: final.registry.writes,
    walPeakBytes: final.registry.walPeakBytes,
    walSampledMaxBytes: walMax,
    walBytesAtEnd: final.registry.walBytes,
    registryBytes: statSync(daemonPaths(outRoot).registry).size,
    submitLatency: quantiles(submitTimes),
    healthLatency: quantiles(health),
    listLatency: quantiles(list),
    daemonRssMb: Math.round(final.rss_bytes / 1024 / 1024),
    /** The goal: every run finished (failed === 0, none ended otherwise) and registry write p99 < 50 ms. */
    goalMet:
      (final.runs.failed ?? 0) === 0 &&
      (final.runs.finished ?? 0) === RUNS &&
      final.registry.writes.p99Ms < 50,
  };
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  mkdirSync(join(REPO, "out"), { recursive: true });
  writeFileSync(join(REPO, "out", "bench-daemon.json"), `${JSON.stringify(result, null, 2)}\n`);
} finally {
  await stopDaemon(daemon); // and whatever runs it still has (a bench that failed or timed out)
  rmSync(root, { recursive: true, force: true });
}
