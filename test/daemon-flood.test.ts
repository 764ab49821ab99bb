/**
 * Streams that never block: a child flooding 10 MB/s finishes, the daemon answers promptly all
 * along, the stream gets the lines within its budget plus a count of the rest (the log file has
 * every line), and a run beside it is not slowed; a subscriber that never reads is cut off, and the
 * daemon's memory stays bounded while others keep receiving everything.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { allEvents, standInScript, startDaemon, submit, waitForStatus } from "./support/daemon-process.ts";
import { pipelineTestRoot } from "./support/pipeline-process.ts";

const root = pipelineTestRoot("daemon-flood");

/** --stream-buffer for the stuck-reader test: 4 MiB. */
const BOUND = 4 * 1024 * 1024;

function rssKb(pid: number): number {
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]);
}

describe("floods and stuck readers", { timeout: 180_000 }, () => {
  test("a child flooding 10 MB/s finishes; the daemon stays responsive and a run beside it is not slowed", async () => {
    const outRoot = join(root, "flood");
    const daemon = startDaemon(outRoot, { flags: ["--cpu-slots", "2"] });
    await daemon.ready();
    await standInScript(join(outRoot, "flood"), { floodMbPerSec: 10, floodSeconds: 3, lineBytes: 100 });
    await standInScript(join(outRoot, "calm"), { lines: 100, intervalMs: 30, heartbeatEvery: 10 });
    const flood = await submit(daemon.client, { env: { OUT_DIR: join(outRoot, "flood") } });
    const calm = await submit(daemon.client, { env: { OUT_DIR: join(outRoot, "calm") } });
    const seen: number[] = [];
    const following = daemon.client.stream(`/api/v1/runs/${flood.id}/events/stream`, (id, message) => {
      seen.push(id);
      const { type, data } = message as { type: string; data: { status?: string } };
      return !(type === "state" && data.status === "finished");
    });
    const latencies: number[] = [];
    let done = false;
    const ended = Promise.all(
      [flood.id, calm.id].map((id) => waitForStatus(daemon.client, id, ["finished", "failed"])),
    ).finally(() => {
      done = true;
    });
    while (!done) {
      const started = performance.now();
      await daemon.client.json("GET", "/api/v1/health");
      latencies.push(performance.now() - started);
      await sleep(100);
    }
    const [floodRun, calmRun] = await ended;
    await following;
    assert.equal(floodRun?.status, "finished");
    assert.equal(calmRun?.status, "finished");
    latencies.sort((a, b) => a - b);
    const p99 = latencies[Math.floor(latencies.length * 0.99)] as number;
    assert.ok(p99 < 500, `health answered within ${Math.round(p99)} ms (p99 of ${latencies.length})`);
    const calmSeconds =
      (Date.parse(calmRun?.finished_at as string) - Date.parse(calmRun?.started_at as string)) / 1000;
    assert.ok(calmSeconds < 3 * 1.5 + 2, `the calm run took ${calmSeconds} s (3 s of lines)`);

    const logLines = readFileSync(floodRun?.log_path as string, "utf8")
      .split("\n")
      .filter((line) => line !== "");
    const flooded = logLines.filter((line) => /^x+$/.test(line)).length;
    assert.ok(flooded >= 250_000, `the log has every line (${flooded})`);
    const events = await allEvents(daemon.client, flood.id);
    const lines = events.filter((event) => event.type === "line").length;
    const dropped = events
      .filter((event) => event.type === "dropped")
      .reduce((sum, event) => sum + Number(event.data.count), 0);
    assert.ok(dropped > 0, "the flood was rate-limited");
    assert.ok(lines < 10_000, `only the budget went into the stream (${lines} lines)`);
    assert.equal(lines + dropped, logLines.length, "every log line is in the stream or counted as dropped");
    assert.equal(floodRun?.dropped_lines, dropped);
    assert.deepEqual(
      seen,
      Array.from({ length: seen.length }, (_, i) => i + 1),
      "the follower saw every event",
    );
    assert.equal(seen.length, events.length);
    daemon.process.child.kill("SIGTERM");
    await daemon.process.done;
  });

  test("a subscriber that never reads is cut off; the daemon's memory stays bounded, other subscribers get everything", async () => {
    const outRoot = join(root, "stuck");
    // Every line into the stream (no budget), and a small buffer bound: the stuck reader must be cut, not buffered.
    const daemon = startDaemon(outRoot, {
      flags: ["--line-rate", "10000000", "--line-burst", "10000000", "--stream-buffer", String(BOUND)],
    });
    const health = await daemon.ready();
    const pid = Number(health.pid);
    const out = join(outRoot, "run");
    await standInScript(out, { floodMbPerSec: 25, floodSeconds: 4, lineBytes: 1000 });
    const run = await submit(daemon.client, { env: { OUT_DIR: out } });
    const stuck = connect(daemon.socket);
    stuck.write(`GET /api/v1/runs/${run.id}/events/stream HTTP/1.1\r\nHost: localhost\r\n\r\n`);
    stuck.pause(); // and never read
    let stuckClosed = false;
    stuck.on("close", () => {
      stuckClosed = true;
    });
    stuck.on("error", () => {});
    // A reader that keeps up gets everything; one that falls behind the bound is cut off too, and
    // reconnects with its Last-Event-ID, as EventSource does.
    const ids: number[] = [];
    let reconnects = 0;
    const reader = (async () => {
      for (let end = false; !end; reconnects++) {
        await daemon.client.stream(
          `/api/v1/runs/${run.id}/events/stream`,
          (id, message) => {
            ids.push(id);
            const { type, data } = message as { type: string; data: { status?: string } };
            end = type === "state" && data.status === "finished";
            return !end;
          },
          ids.at(-1) ?? 0,
        );
      }
    })();
    const baseline = rssKb(pid);
    let peak = baseline;
    let ended = false;
    const finished = waitForStatus(daemon.client, run.id, ["finished", "failed"], 120_000).finally(() => {
      ended = true;
    });
    while (!ended) {
      peak = Math.max(peak, rssKb(pid));
      await sleep(100);
    }
    assert.equal((await finished).status, "finished");
    await reader;
    const events = await allEvents(daemon.client, run.id);
    const streamedMb = events.reduce((sum, event) => sum + String(event.data.text ?? "").length, 0) / 1e6;
    assert.ok(streamedMb > 80, `the stream carried ${streamedMb.toFixed(0)} MB`);
    assert.deepEqual(
      ids,
      Array.from({ length: events.length }, (_, i) => i + 1),
      `a reading subscriber got every event once (${reconnects - 1} reconnects)`,
    );
    const growthMb = (peak - baseline) / 1024;
    assert.ok(
      growthMb < streamedMb * 2,
      `memory grew ${growthMb.toFixed(0)} MB while ${streamedMb.toFixed(0)} MB went to a reader that never read`,
    );
    const after = await daemon.client.json<{ streams: { cutOff: number; peakBufferedBytes: number } }>(
      "GET",
      "/api/v1/health",
    );
    assert.ok(after.streams.cutOff >= 1, "the stuck subscriber was cut off");
    assert.ok(
      after.streams.peakBufferedBytes <= BOUND + 16 * 1024,
      `no subscriber ever had more than the bound waiting (${after.streams.peakBufferedBytes} bytes)`,
    );
    stuck.destroy();
    void stuckClosed;
    daemon.process.child.kill("SIGTERM");
    await daemon.process.done;
  });
});
