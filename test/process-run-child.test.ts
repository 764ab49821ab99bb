import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { groupAlive, processAlive } from "../lib/process/group.ts";
import { formatFailureReport } from "../lib/process/report.ts";
import { type ChildSpec, runChild } from "../lib/process/run-child.ts";
import { StopController } from "../lib/process/stop.ts";
import {
  collector,
  fixture,
  grandchildPids,
  killAfter,
  lineWatcher,
  NODE,
  tempDir,
} from "./fixtures/child-kit.ts";

/** A spec that echoes into memory and is stopped only through `stop`. */
function spec(dir: string, script: string, args: string[], extra: Partial<ChildSpec> = {}) {
  const out = collector();
  const err = collector();
  const full: ChildSpec = {
    label: "t",
    file: NODE,
    args: [fixture(script), ...args],
    env: { BATON_FIXTURE: "yes" },
    logFile: join(dir, "logs", "attempt-1.log"),
    echo: { stdout: out.stream, stderr: err.stream },
    stop: new StopController(),
    ...extra,
  };
  return { spec: full, stdout: out.text, stderr: err.text };
}

test("a child that succeeds: lines echoed with the prefix, logged, and handed to the callback", async (t) => {
  const dir = await tempDir(t);
  const watch = lineWatcher();
  const run = spec(dir, "child-lines.mjs", ["0", "3"], { onStdoutLine: watch.onLine });
  const result = await runChild(run.spec);

  assert.equal(result.exitCode, 0);
  assert.equal(result.signal, null);
  assert.equal(result.interrupted, null);
  assert.equal(result.stragglersKilled, false);
  assert.equal(result.spawnError, undefined);
  assert.equal(typeof result.pid, "number");
  assert.ok(watch.lines.includes("CHECKPOINT:/tmp/ckpt/step_00000007"));
  assert.ok(watch.lines.includes("METADATA_FILE:/tmp/meta.json"));
  assert.ok(watch.lines.includes("windows line"), "CRLF is stripped");
  assert.ok(watch.lines.includes("utf8: héllo ✓ 😀"));
  assert.equal(watch.lines.at(-1), "no newline at the end");
  assert.deepEqual(
    watch.lines.find((line) => line.startsWith("ENV:")),
    `ENV:${JSON.stringify({ BATON_FIXTURE: "yes" })}`,
    "the child sees exactly the environment given, nothing inherited",
  );
  assert.match(run.stdout(), /^\[t\] hello from the child\n\[t\] CHECKPOINT:\/tmp\/ckpt\/step_00000007\n/);
  assert.equal(run.stderr(), "[t] err 1\n[t] err 2\n[t] err 3\n");

  const log = await readFile(run.spec.logFile, "utf8");
  assert.match(log, /^\[baton\] \S+ start: \S+node \S+child-lines\.mjs 0 3\n/);
  assert.match(log, /\nhello from the child\nCHECKPOINT:\/tmp\/ckpt\/step_00000007\n/);
  assert.match(log, /\n\[stderr\] err 1\n\[stderr\] err 2\n\[stderr\] err 3\n/);
  assert.match(log, /\nno newline at the end\n\[baton\] \S+ exit: code 0\n$/);
});

test("a failing child: exit code and the last 20 stderr lines reported; the log is appended to", async (t) => {
  const dir = await tempDir(t);
  const first = await runChild(spec(dir, "child-lines.mjs", ["3", "25"]).spec);
  const second = await runChild(spec(dir, "child-lines.mjs", ["3", "25"]).spec);

  assert.equal(second.exitCode, 3);
  assert.deepEqual(
    second.stderrTail,
    Array.from({ length: 20 }, (_, i) => `err ${i + 6}`),
  );
  const report = formatFailureReport(second);
  assert.match(report, /^\[t\] exited with code 3\n\[t\] last 20 lines of stderr:\n {2}\| err 6\n/);
  assert.match(report, /\| err 25\n\[t\] full log: .*attempt-1\.log$/);
  const log = await readFile(first.logFile, "utf8");
  assert.equal(log.match(/start: /g)?.length, 2, "both attempts are in the log");
});

test("a child killed by a signal nobody sent is reported as a possible OOM kill", async (t) => {
  const dir = await tempDir(t);
  const result = await runChild(spec(dir, "child-lines.mjs", ["SIGKILL"]).spec);
  assert.equal(result.exitCode, null);
  assert.equal(result.signal, "SIGKILL");
  assert.equal(result.interrupted, null);
  assert.equal(result.escalated, false);
  assert.match(formatFailureReport(result), /^\[t\] was killed by SIGKILL \(out of memory\? check dmesg\)\n/);
});

test("a child that ignores SIGTERM is killed after the grace, with its whole group", async (t) => {
  const dir = await tempDir(t);
  const watch = lineWatcher();
  const run = spec(dir, "child-ignore-term.mjs", [], { graceMs: 800, onStdoutLine: watch.onLine });
  const running = runChild(run.spec);
  await watch.seen("READY");
  const stoppedAt = performance.now();
  run.spec.stop?.stop("SIGTERM");
  const result = await running;
  const stopMs = performance.now() - stoppedAt;

  assert.equal(result.interrupted, "SIGTERM");
  assert.equal(result.signal, "SIGKILL");
  assert.equal(result.escalated, true);
  assert.ok(stopMs >= 780 && stopMs < 2_000, `stopped in ${stopMs} ms, expected about the 800 ms grace`);
  assert.ok(watch.lines.includes("ignoring SIGTERM"), "it was asked first");
  assert.equal(groupAlive(result.pid as number), false);
  assert.match(run.stderr(), /SIGTERM: asking it to save and exit/);
  assert.match(run.stderr(), /still running after 0\.8 s: SIGKILL to process group/);
});

test("a child that traps SIGTERM saves and exits 143 without being killed", async (t) => {
  const dir = await tempDir(t);
  const saved = join(dir, "saved.txt");
  const watch = lineWatcher();
  const run = spec(dir, "child-trap-term.mjs", [saved, "200"], {
    graceMs: 10_000,
    onStdoutLine: watch.onLine,
  });
  const running = runChild(run.spec);
  await watch.seen("READY");
  run.spec.stop?.stop("SIGINT");
  const result = await running;

  assert.equal(result.exitCode, 143, "the group gets SIGTERM whatever the parent received");
  assert.equal(result.signal, null);
  assert.equal(result.interrupted, "SIGINT");
  assert.equal(result.escalated, false);
  assert.ok(result.durationMs < 5_000);
  assert.equal(await readFile(saved, "utf8"), "saved on SIGTERM\n");
  assert.ok(watch.lines.includes(`CHECKPOINT:${saved}`));
});

test("grandchildren that ignore SIGTERM are all gone after a stop", async (t) => {
  const dir = await tempDir(t);
  const watch = lineWatcher();
  const run = spec(dir, "child-grandchildren.mjs", ["3", "exit-on-term"], {
    graceMs: 10_000,
    stragglerGraceMs: 300,
    onStdoutLine: watch.onLine,
  });
  const running = runChild(run.spec);
  await watch.seen("READY");
  const pids = grandchildPids(watch.lines);
  killAfter(t, pids);
  assert.equal(pids.length, 3);
  assert.ok(pids.every(processAlive));
  run.spec.stop?.stop("SIGTERM");
  const result = await running;

  assert.equal(result.exitCode, 143);
  assert.equal(result.stragglersKilled, true, "the workers outlived the leader");
  assert.deepEqual(
    pids.filter((pid) => processAlive(pid)),
    [],
  );
  assert.equal(groupAlive(result.pid as number), false);
  assert.ok(result.durationMs < 5_000);
});

test("a leader that exits 0 leaving a worker holding its pipes: the straggler is killed and reported", async (t) => {
  const dir = await tempDir(t);
  const watch = lineWatcher();
  const run = spec(dir, "child-grandchildren.mjs", ["1", "leave"], {
    stragglerGraceMs: 300,
    onStdoutLine: watch.onLine,
  });
  const result = await runChild(run.spec);

  const [pid] = grandchildPids(watch.lines);
  killAfter(t, grandchildPids(watch.lines));
  assert.equal(result.exitCode, 0);
  assert.equal(result.stragglersKilled, true);
  assert.equal(result.survivors, undefined);
  assert.equal(processAlive(pid as number), false);
  assert.ok(result.durationMs < 4_000, `took ${result.durationMs} ms`);
  assert.match(formatFailureReport(result), /left running in its group were killed/);
});

test("a second stop request skips the rest of the grace", async (t) => {
  const dir = await tempDir(t);
  const watch = lineWatcher();
  const run = spec(dir, "child-grandchildren.mjs", ["2", "ignore-term"], {
    graceMs: 20_000,
    onStdoutLine: watch.onLine,
  });
  const running = runChild(run.spec);
  await watch.seen("READY");
  killAfter(t, grandchildPids(watch.lines));
  const stoppedAt = performance.now();
  run.spec.stop?.stop("SIGINT");
  setTimeout(() => run.spec.stop?.stop("SIGINT"), 300);
  const result = await running;
  const stopMs = performance.now() - stoppedAt;

  assert.ok(
    stopMs >= 280 && stopMs < 2_500,
    `stopped in ${stopMs} ms, expected just after the second request`,
  );
  assert.equal(result.signal, "SIGKILL");
  assert.equal(result.escalated, true);
  assert.equal(result.stragglersKilled, false, "SIGKILL reached the workers with the leader");
  assert.deepEqual(grandchildPids(watch.lines).filter(processAlive), []);
  assert.match(run.stderr(), /second stop request: SIGKILL/);
});

test("one controller stops every child; a child started after the stop is not started", async (t) => {
  const dir = await tempDir(t);
  const stop = new StopController();
  const watches = [lineWatcher(), lineWatcher()];
  const runs = watches.map((watch, i) =>
    runChild(
      spec(join(dir, String(i)), "child-ignore-term.mjs", [], {
        stop,
        graceMs: 500,
        onStdoutLine: watch.onLine,
      }).spec,
    ),
  );
  await Promise.all(watches.map((watch) => watch.seen("READY")));
  stop.stop("SIGHUP");
  const results = await Promise.all(runs);
  for (const result of results) {
    assert.equal(result.interrupted, "SIGHUP");
    assert.equal(result.signal, "SIGKILL");
    assert.equal(groupAlive(result.pid as number), false);
  }
  const late = await runChild(spec(dir, "child-lines.mjs", ["0"], { stop }).spec);
  assert.equal(late.pid, undefined);
  assert.equal(late.interrupted, "SIGHUP");
});

test("a child that cannot start comes back with a one-line spawnError", async (t) => {
  const dir = await tempDir(t);
  const missing = await runChild({
    ...spec(dir, "child-lines.mjs", []).spec,
    file: join(dir, "no-such-trainer"),
  });
  assert.equal(missing.pid, undefined);
  assert.equal(missing.exitCode, null);
  assert.equal(missing.spawnError, `cannot start ${join(dir, "no-such-trainer")}: no such file or directory`);

  const script = join(dir, "not-executable.sh");
  await writeFile(script, "#!/bin/sh\necho hi\n");
  await chmod(script, 0o644);
  const denied = await runChild({ ...spec(dir, "child-lines.mjs", []).spec, file: script });
  assert.match(
    denied.spawnError ?? "",
    /^cannot start \S+not-executable\.sh: permission denied \(is it executable\?\)$/,
  );

  await mkdir(join(dir, "blocker"));
  await writeFile(join(dir, "blocker", "logs"), "a file where the log directory should be");
  const noLog = await runChild({
    ...spec(dir, "child-lines.mjs", []).spec,
    logFile: join(dir, "blocker", "logs", "a.log"),
  });
  assert.match(noLog.spawnError ?? "", /^cannot open log \S+a\.log: /);
  assert.equal(noLog.spawnError?.includes("\n"), false);
});

test("without a controller, runChild handles signals during the run only", async (t) => {
  const dir = await tempDir(t);
  const events = ["SIGINT", "SIGTERM", "SIGHUP", "exit"] as const;
  const count = () => events.map((event) => process.listenerCount(event));
  const before = count();
  let during: number[] = [];
  const { spec: own } = spec(dir, "child-lines.mjs", ["0"], {
    stop: undefined,
    onStdoutLine: (line) => {
      if (line.startsWith("hello")) during = count();
    },
  });
  const result = await runChild(own);
  assert.equal(result.exitCode, 0);
  assert.deepEqual(
    during,
    before.map((n) => n + 1),
    "one handler per signal, one exit safety net",
  );
  assert.deepEqual(count(), before);
});

test("a throwing line callback is reported once and does not stop the draining", async (t) => {
  const dir = await tempDir(t);
  const run = spec(dir, "child-lines.mjs", ["0"], {
    onStdoutLine: () => {
      throw new Error("bad handler");
    },
  });
  const result = await runChild(run.spec);
  assert.equal(result.exitCode, 0);
  assert.equal(run.stderr().match(/line handler failed: bad handler/g)?.length, 1);
  assert.match(run.stdout(), /no newline at the end/);
  assert.ok(existsSync(run.spec.logFile));
});
