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
import {
  allEvents,
  standInScript,
  startDaemon,
  stopDaemon,
  submit,
  waitForStatus,
} from "./support/daemon-process.ts";
import { pipelineTestRoot } from "./support/pipeline-process.ts";

const root = pipelineTestRoot("daemon-flood");

/** --stream-buffer for the stuck-reader test: 4 MiB. */
const BOUND = 4 * 1024 * 1024;
/**
 * The most the stuck-reader test's daemon may grow (peak RSS) while 105 MB stream to a reader that
 * never reads. Not far under the streamed size: measured, the daemon grows 100–117 MB with the
 * stuck reader cut off as it should be and about as much without it (35 MB with no subscriber at
 * all) — the garbage of the reading subscriber's frames, collected lazily. A stuck reader buffered
 * without bound adds its whole stream: 190 MB measured with it alone, more beside a reader.
 */
const GROWTH_CAP_MB = 160;

function rssKb(pid: number): number {
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]);
}

describe("floods and stuck readers", { timeout: 180_000 }, () => {
  test("a child flooding 10 MB/s finishes; the daemon stays responsive and a run beside it is not slowed", async (t) => {
    const outRoot = join(root, "flood");
    const daemon = startDaemon(outRoot, { flags: ["--cpu-slots", "2"] });
    t.after(() => stopDaemon(daemon));
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
      await sleep(10); // several hundred samples: a p99 that is not just the slowest one
    }
    const [floodRun, calmRun] = await ended;
    await following;
    assert.equal(floodRun?.status, "finished");
    assert.equal(calmRun?.status, "finished");
    latencies.sort((a, b) => a - b);
    assert.ok(latencies.length >= 100, `${latencies.length} samples of the health answer's latency`);
    const p99 = latencies[Math.floor(latencies.length * 0.99)] as number;
    const max = latencies.at(-1) as number;
    t.diagnostic(
      `health latency: p99 ${Math.round(p99)} ms, max ${Math.round(max)} ms of ${latencies.length}`,
    );
    assert.ok(
      p99 < 500,
      `health answered within ${Math.round(p99)} ms (p99 of ${latencies.length}; max ${Math.round(max)} ms)`,
    );
    const calmSeconds =
      (Date.parse(calmRun?.finished_at as string) - Date.parse(calmRun?.started_at as string)) / 1000;
    assert.ok(calmSeconds < 3 * 1.5 + 2, `the calm run took ${calmSeconds} s (3 s of lines)`);

    const logLines = readFileSync(floodRun?.log_path as string, "utf8")
      .split("\n")
      .filter((line) => line !== "");
    const flooded = logLines.filter((line) => /^x+$/.test(line)).length;
    // The count the stand-in printed (fixed by its script: 300 blocks of 10 MB/s ÷ 100), not a clock's.
    const printed = Number(/^\[stand-in\] flooded (\d+) lines$/m.exec(logLines.join("\n"))?.[1]);
    assert.ok(printed >= 250_000, `the stand-in flooded ${printed} lines`);
    assert.equal(flooded, printed, "the log has every line");
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
  });

  test("a subscriber that never reads is cut off; the daemon's memory stays bounded, other subscribers get everything", async (t) => {
    const outRoot = join(root, "stuck");
    // Every line into the stream (no budget), and a small buffer bound: the stuck reader must be cut, not buffered.
    const daemon = startDaemon(outRoot, {
      flags: ["--line-rate", "10000000", "--line-burst", "10000000", "--stream-buffer", String(BOUND)],
    });
    t.after(() => stopDaemon(daemon));
    const health = await daemon.ready();
    const pid = Number(health.pid);
    const out = join(outRoot, "run");
    await standInScript(out, { floodMbPerSec: 25, floodSeconds: 4, lineBytes: 1000 });
    const run = await submit(daemon.client, { env: { OUT_DIR: out } });
    const stuck = connect(daemon.socket);
    stuck.write(`GET /api/v1/runs/${run.id}/events/stream HTTP/1.1\r\nHost: localhost\r\n\r\n`);
    stuck.pause(); // and never read
    stuck.on("error", () => {});
    t.after(() => stuck.destroy());
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
    t.diagnostic(`daemon memory grew ${growthMb.toFixed(1)} MB; ${reconnects - 1} reader reconnects`);
    assert.ok(
      growthMb < GROWTH_CAP_MB,
      `memory grew ${growthMb.toFixed(0)} MB (cap ${GROWTH_CAP_MB} MB) while ${streamedMb.toFixed(0)} MB went to a reader that never read`,
    );
    // The stuck socket is still open on this side; the daemon must have closed its end. Once the
    // reader's last stream (which it ended itself) is closed there too, no stream is left open.
    type Streams = { open: number; cutOff: number; peakBufferedBytes: number };
    const streams = async () =>
      (await daemon.client.json<{ streams: Streams }>("GET", "/api/v1/health")).streams;
    let now = await streams();
    for (const deadline = Date.now() + 5_000; now.open > 0 && Date.now() < deadline; now = await streams())
      await sleep(50);
    assert.equal(now.open, 0, "the stuck subscriber's stream was closed by the daemon");
    // Every stream the reader lost before its last was a cut-off; whatever else was cut, was the stuck one.
    const readerCutOffs = reconnects - 1;
    assert.equal(now.cutOff - readerCutOffs, 1, `the stuck subscriber was cut off (${now.cutOff} cut-offs)`);
    assert.ok(
      now.peakBufferedBytes <= BOUND + 16 * 1024,
      `no subscriber ever had more than the bound waiting (${now.peakBufferedBytes} bytes)`,
    );
  });
});
