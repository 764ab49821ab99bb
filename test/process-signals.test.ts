// Real signals to a stand-in pipeline (test/fixtures/child-harness.ts) running children under one
// shared stop controller: its exit code, and that no process of any child's group survives.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";
import { groupAlive, processAlive } from "../lib/process/group.ts";
import { childSpec, grandchildPids, killAfter, startHarness, tempDir } from "./fixtures/child-kit.ts";

const TIMEOUT = { timeout: 20_000 };

test("SIGINT: the child saves, the pipeline exits 130, handlers are removed", TIMEOUT, async (t) => {
  const dir = await tempDir(t);
  const saved = `${dir}/saved.txt`;
  const harness = startHarness(dir, [childSpec(dir, "sft", "child-trap-term.mjs", [saved, "100"])]);
  await harness.ready(["sft"]);
  harness.process.kill("SIGINT");
  const { code, report } = await harness.exit;

  assert.equal(code, 130);
  const [result] = report.results;
  assert.equal(result?.interrupted, "SIGINT");
  assert.equal(result?.exitCode, 143);
  assert.equal(result?.escalated, false);
  assert.equal(await readFile(saved, "utf8"), "saved on SIGTERM\n");
  assert.equal(groupAlive(result?.pid as number), false);
  assert.deepEqual(report.listeners.after, report.listeners.before, "no listener left behind");
  assert.match(harness.stdout(), /\[sft\] CHECKPOINT:/);
});

test(
  "SIGTERM stops every child of a sweep; the pipeline exits 143 and no group survives",
  TIMEOUT,
  async (t) => {
    const dir = await tempDir(t);
    const harness = startHarness(dir, [
      childSpec(dir, "dpo-a", "child-grandchildren.mjs", ["2", "exit-on-term"]),
      childSpec(dir, "dpo-b", "child-ignore-term.mjs", [], 700),
    ]);
    await harness.ready(["dpo-a", "dpo-b"]);
    const workers = grandchildPids(
      harness
        .stdout()
        .split("\n")
        .map((line) => line.replace(/^\[dpo-a\] /, "")),
    );
    killAfter(t, workers);
    assert.equal(workers.length, 2);
    harness.process.kill("SIGTERM");
    const { code, report } = await harness.exit;

    assert.equal(code, 143);
    const [a, b] = report.results;
    assert.equal(a?.interrupted, "SIGTERM");
    assert.equal(a?.exitCode, 143);
    assert.equal(a?.stragglersKilled, true);
    assert.equal(b?.interrupted, "SIGTERM");
    assert.equal(b?.signal, "SIGKILL");
    assert.equal(b?.escalated, true);
    for (const result of report.results) assert.equal(groupAlive(result.pid as number), false);
    assert.deepEqual(workers.filter(processAlive), []);
  },
);

test("a second SIGINT kills at once instead of waiting out the grace", TIMEOUT, async (t) => {
  const dir = await tempDir(t);
  const harness = startHarness(dir, [childSpec(dir, "r1", "child-ignore-term.mjs", [], 30_000)]);
  await harness.ready(["r1"]);
  const stoppedAt = performance.now();
  harness.process.kill("SIGINT");
  await new Promise((resolve) => setTimeout(resolve, 300));
  harness.process.kill("SIGINT");
  const { code, report } = await harness.exit;
  const stopMs = performance.now() - stoppedAt;

  assert.equal(code, 130);
  assert.ok(stopMs < 3_000, `took ${stopMs} ms with a 30 s grace`);
  const [result] = report.results;
  assert.equal(result?.signal, "SIGKILL");
  assert.equal(result?.escalated, true);
  assert.equal(groupAlive(result?.pid as number), false);
});

test("SIGHUP (terminal closed) stops the run with exit 129", TIMEOUT, async (t) => {
  const dir = await tempDir(t);
  const harness = startHarness(dir, [
    childSpec(dir, "pretrain", "child-trap-term.mjs", [`${dir}/s.txt`, "50"]),
  ]);
  await harness.ready(["pretrain"]);
  harness.process.kill("SIGHUP");
  const { code, report } = await harness.exit;
  assert.equal(code, 129);
  assert.equal(report.results[0]?.interrupted, "SIGHUP");
});
