// A child printing 100 MiB must neither stall nor grow the parent's memory with its output. The
// parent side runs in its own process (test/fixtures/child-harness.ts, echo to /dev/null) so its
// RSS can be measured alone.
import assert from "node:assert/strict";
import { stat } from "node:fs/promises";
import { test } from "node:test";
import { childSpec, startHarness, tempDir } from "./fixtures/child-kit.ts";

const MIB = 1024 * 1024;
/**
 * Peak RSS growth allowed. What is live stays at a few MiB (one 64 KiB line, stream buffers); the
 * rest is young-generation garbage V8 collects lazily, which levels off near 40 MiB however much
 * the child prints (measured: +14 MiB at 20 MiB of output, +35 at 100, +39 at 400). Buffering the
 * output would need more than 100 MiB.
 */
const MAX_RSS_GROWTH = 64 * MIB;

for (const mode of ["nonl", "lines"] as const) {
  test(`100 MiB ${mode === "nonl" ? "without a newline" : "of short lines"}: drained, logged, memory bounded`, {
    timeout: 60_000,
  }, async (t) => {
    const dir = await tempDir(t);
    const spec = childSpec(dir, "flood", "child-flood.mjs", [mode, "100"]);
    const startedAt = performance.now();
    const harness = startHarness(dir, [spec], false);
    const { code, report } = await harness.exit;
    const seconds = (performance.now() - startedAt) / 1000;

    const growth = Math.max(report.rss.peakSampled, report.rss.maxRss) - report.rss.baseline;
    t.diagnostic(`${mode}: ${seconds.toFixed(1)} s, parent RSS +${(growth / MIB).toFixed(1)} MiB`);
    assert.ok(growth < MAX_RSS_GROWTH, `parent RSS grew by ${(growth / MIB).toFixed(1)} MiB`);
    assert.equal(code, 0);
    const [result] = report.results;
    assert.equal(result?.exitCode, 0);
    assert.equal(report.lastLines[0], "DONE", "every line arrived, in order");
    // nonl: 64 KiB pieces, then "DONE"; lines: a newline every 80 bytes of each MiB, then "" and "DONE".
    const expectedLines = mode === "nonl" ? (100 * MIB) / (64 * 1024) + 1 : 100 * Math.floor(MIB / 80) + 2;
    assert.equal(report.lines[0], expectedLines);
    const logBytes = (await stat(spec.logFile)).size;
    assert.ok(logBytes >= 100 * MIB && logBytes < 101 * MIB, `log holds ${logBytes} bytes`);
    assert.ok(seconds < 30, `took ${seconds} s`);
  });
}
