import assert from "node:assert/strict";
import { test } from "node:test";
import { describeExit, formatFailureReport } from "../lib/process/report.ts";
import type { ChildResult } from "../lib/process/run-child.ts";
import { interruptExitCode } from "../lib/process/stop.ts";

const base: ChildResult = {
  label: "sft",
  pid: 1234,
  exitCode: 1,
  signal: null,
  interrupted: null,
  escalated: false,
  stragglersKilled: false,
  stderrTail: ["Traceback", "RangeError: boom"],
  logFile: "out/sft/logs/attempt-2.log",
  durationMs: 10,
};

test("reports the exit code, the stderr tail and the log", () => {
  assert.equal(
    formatFailureReport(base),
    [
      "[sft] exited with code 1",
      "[sft] last 2 lines of stderr:",
      "  | Traceback",
      "  | RangeError: boom",
      "[sft] full log: out/sft/logs/attempt-2.log",
    ].join("\n"),
  );
});

test("a SIGKILL nobody sent points at the OOM killer", () => {
  const line = describeExit({ ...base, exitCode: null, signal: "SIGKILL" });
  assert.equal(line, "[sft] was killed by SIGKILL (out of memory? check dmesg)");
  assert.equal(describeExit({ ...base, exitCode: null, signal: "SIGSEGV" }), "[sft] was killed by SIGSEGV");
});

test("an interrupted run says so, and whether it had to be killed", () => {
  assert.equal(
    describeExit({ ...base, exitCode: 130, interrupted: "SIGINT" }),
    "[sft] stopped on SIGINT: exited with code 130",
  );
  assert.equal(
    describeExit({ ...base, exitCode: null, signal: "SIGKILL", interrupted: "SIGTERM", escalated: true }),
    "[sft] stopped on SIGTERM: was killed by SIGKILL, after it did not stop in time",
  );
  assert.equal(
    describeExit({ ...base, pid: undefined, interrupted: "SIGHUP" }),
    "[sft] was not started: stop requested (SIGHUP)",
  );
});

test("a child that never started shows the one-line reason and no tail", () => {
  const report = formatFailureReport({
    ...base,
    pid: undefined,
    exitCode: null,
    stderrTail: [],
    spawnError: "cannot start /no/such/trainer: no such file or directory",
  });
  assert.equal(
    report,
    "[sft] cannot start /no/such/trainer: no such file or directory\n[sft] full log: out/sft/logs/attempt-2.log",
  );
});

test("stragglers, survivors, silence and very long lines are reported", () => {
  const report = formatFailureReport({ ...base, stragglersKilled: true, survivors: [77], stderrTail: [] });
  assert.match(report, /processes it left running in its group were killed/);
  assert.match(report, /still alive: 77/);
  assert.match(report, /wrote nothing to stderr/);
  const long = formatFailureReport({ ...base, stderrTail: ["y".repeat(70_000)] });
  assert.ok(long.length < 1_000);
  assert.match(long, /… \(70000 chars\)/);
});

test("interrupt exit codes follow 128 + signal number", () => {
  assert.equal(interruptExitCode("SIGINT"), 130);
  assert.equal(interruptExitCode("SIGTERM"), 143);
  assert.equal(interruptExitCode("SIGHUP"), 129);
});
