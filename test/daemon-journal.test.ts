/**
 * The daemon's journal and run manager while the registry refuses writes (disk full, SQLITE_BUSY):
 * a registry whose transactions run their body — rows really inserted — and then fail, so SQLite
 * rolls them back. Nothing may escape as an uncaught exception or unhandled rejection (either takes
 * the daemon down), nothing may commit half, and once writes work again what is committed is
 * complete and in order.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, beforeEach, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { type EventRow, RunRegistry, type RunRow } from "../lib/registry/index.ts";
import { EventHub } from "../pipelines/daemon/hub.ts";
import { Journal } from "../pipelines/daemon/journal.ts";
import { daemonPaths } from "../pipelines/daemon/paths.ts";
import { RunManager } from "../pipelines/daemon/runs.ts";
import { SlotPool } from "../pipelines/daemon/slots.ts";
import type { SubmissionContext } from "../pipelines/daemon/submission/validate.ts";
import type { DetachedExecution, DetachedExecutor } from "../pipelines/executor/detached.ts";
import type { StageCommand, StageExit } from "../pipelines/executor/types.ts";

const root = mkdtempSync(join(tmpdir(), "daemon-journal-"));
after(() => rmSync(root, { recursive: true, force: true }));

/** A real registry whose writes (and, when told, reads of the queue) fail like a full disk. */
function failingRegistry(path: string) {
  const real = RunRegistry.open(path);
  const state = { failWrites: false, failReads: false, failedWrites: 0 };
  const full = (): Error => Object.assign(new Error("database or disk is full"), { code: "SQLITE_FULL" });
  const registry = new Proxy(real, {
    get(target, property) {
      if (property === "write")
        return <T>(body: () => T): T =>
          target.write(() => {
            const result = body(); // the rows go in…
            if (state.failWrites) {
              state.failedWrites++;
              throw full(); // …and are rolled back
            }
            return result;
          });
      if (property === "runsWithStatus" && state.failReads)
        return () => {
          throw full();
        };
      const value = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { registry, real, state };
}

function insertRun(registry: RunRegistry, name: string): RunRow {
  const config = { version: 1, kind: "pipeline", name, slots: 1, args: [], env: {} };
  return registry.write(() =>
    registry.insertRun({
      status: "queued",
      kind: "pipeline",
      name,
      config: JSON.stringify(config),
      config_digest: "digest",
      slots_requested: 1,
      submitted_at: new Date().toISOString(),
      log_path: (id) => join(root, `${name}-${id}.log`),
    }),
  );
}

function eventsOf(
  registry: RunRegistry,
  runId: number,
): Array<EventRow & { parsed: Record<string, unknown> }> {
  return registry
    .eventsAfter(runId, 0, 100_000)
    .map((event) => ({ ...event, parsed: JSON.parse(event.data) as Record<string, unknown> }));
}

function assertContiguous(events: readonly EventRow[]): void {
  assert.deepEqual(
    events.map((event) => event.seq),
    events.map((_, i) => i + 1),
    "seq runs 1, 2, … without gaps or repeats",
  );
}

/** Uncaught exceptions and unhandled rejections while a test runs (each would end the daemon). */
let escaped: unknown[] = [];
const onEscape = (error: unknown): void => void escaped.push(error);
beforeEach(() => {
  escaped = [];
  process.on("uncaughtException", onEscape);
  process.on("unhandledRejection", onEscape);
});
afterEach(() => {
  process.off("uncaughtException", onEscape);
  process.off("unhandledRejection", onEscape);
});
function assertNothingEscaped(): void {
  assert.deepEqual(
    escaped.map((error) => String(error)),
    [],
    "no uncaught exception or unhandled rejection",
  );
}

describe("Journal while the registry cannot be written", () => {
  test("add() and patch() never throw, retries are quiet, lines past the cap become one dropped marker, a failed change() leaves nothing behind", async () => {
    const { registry, real, state } = failingRegistry(join(root, "journal.db"));
    const logged: string[] = [];
    const journal = new Journal(registry, new EventHub(), {
      flushMs: 5,
      maxPending: 5,
      retryMs: 20,
      log: (line) => logged.push(line),
    });
    const run = insertRun(real, "journal");
    journal.add(run.id, "state", { status: "running" });
    journal.flush();

    state.failWrites = true;
    const expected: Array<{ type: string; data: Record<string, unknown> }> = [];
    let offset = 0;
    const line = (i: number): void => {
      offset += 10;
      journal.patch(run.id, { log_offset: offset });
      journal.add(run.id, "line", { text: `line ${i}`, offset });
    };
    // maxPending reached while writes fail: add() used to flush and rethrow here.
    assert.doesNotThrow(() => {
      for (let i = 0; i < 40; i++) {
        line(i);
        expected.push({ type: "line", data: { text: `line ${i}`, offset: (i + 1) * 10 } });
      }
    });
    // A state change the registry refuses: it throws, and none of it may stay queued.
    assert.throws(
      () => journal.change(run.id, { status: "stopped" }, "state", { status: "stopped" }),
      /database or disk is full/,
    );
    // Past the cap (10 × maxPending = 50 queued): lines are counted, machine lines kept in their place.
    for (let i = 40; i < 100; i++) {
      line(i);
      if (i === 70) journal.add(run.id, "checkpoint", { stage: "sft", path: "/ckpt/70" });
    }
    await sleep(150); // several retry rounds, from the timer
    assertNothingEscaped();
    assert.ok(state.failedWrites >= 3, `the timer retried (${state.failedWrites} failed writes)`);
    assert.equal(eventsOf(real, run.id).length, 1, "nothing of the failed writes committed");
    assert.match(journal.lastError ?? "", /database or disk is full/);
    assert.equal(
      logged.filter((entry) => /cannot be written/.test(entry)).length,
      1,
      `the outage is logged once: ${logged.join(" | ")}`,
    );

    state.failWrites = false;
    await sleep(100);
    assertNothingEscaped();
    assert.equal(journal.pending, 0);
    assert.equal(journal.lastError, null);
    const events = eventsOf(real, run.id);
    assertContiguous(events);
    assert.ok(!events.some((event) => event.parsed.status === "stopped"), "the refused change never commits");
    assert.equal(real.getRun(run.id)?.status, "queued", "nor does its patch");
    // 1 (before) + 40 lines + 10 more up to the cap, then: marker (50…70), checkpoint, marker (71…99).
    assert.deepEqual(
      events.slice(1, 41).map(({ type, parsed }) => ({ type, data: parsed })),
      expected,
    );
    const tail = events.slice(41);
    const kinds = tail.map((event) => event.type);
    assert.deepEqual(kinds, [...Array(10).fill("line"), "dropped", "checkpoint", "dropped"]);
    const lineCount = events.filter((event) => event.type === "line").length;
    const droppedCount = tail
      .filter((event) => event.type === "dropped")
      .reduce((sum, event) => sum + Number(event.parsed.count), 0);
    assert.equal(lineCount + droppedCount, 100, "every line is in the stream or counted in a marker");
    assert.equal(tail[10]?.parsed.count, 21, "lines 50…70, before the checkpoint");
    assert.equal(real.getRun(run.id)?.log_offset, 1000, "the stored offset is where the lines end");
    assert.equal(
      logged.filter((entry) => /written again after \d+ s; 50 log line\(s\) were left out/.test(entry))
        .length,
      1,
      `the end of the outage is logged once, with what was left out: ${logged.join(" | ")}`,
    );
    journal.close();
    real.close();
  });

  test("close() while writes fail names the registry and what is lost", () => {
    const path = join(root, "close.db");
    const { registry, real, state } = failingRegistry(path);
    const journal = new Journal(registry, new EventHub());
    const run = insertRun(real, "close");
    state.failWrites = true;
    journal.add(run.id, "line", { text: "a" });
    journal.add(run.id, "line", { text: "b" });
    assert.throws(
      () => journal.close(),
      (error: Error) =>
        error.message ===
        `the run registry ${path} could not be written at close, 2 event(s) lost: database or disk is full`,
    );
    real.close();
  });
});

interface FakeRun {
  command: StageCommand;
  finish(exit: Partial<StageExit>): void;
}

/** An executor that starts nothing: each run ends when the test says. */
function fakeExecutor(onStart: () => void): { executor: DetachedExecutor; started: FakeRun[] } {
  const started: FakeRun[] = [];
  const executor: DetachedExecutor = {
    name: "fake",
    start(command): DetachedExecution {
      onStart();
      let resolve!: (exit: StageExit) => void;
      const done = new Promise<StageExit>((settle) => {
        resolve = settle;
      });
      started.push({
        command,
        finish: (exit) =>
          resolve({
            label: command.label,
            state: "finished",
            exitCode: 0,
            signal: null,
            interrupted: null,
            message: null,
            report: "",
            id: null,
            durationMs: 1,
            ...exit,
          }),
      });
      return {
        handle: {
          label: command.label,
          pid: 40_000 + started.length,
          startTime: null,
          logFile: command.logFile,
          offset: 0,
        },
        logOffset: 0,
        done,
        stop: () => {},
        detach: async () => {},
      };
    },
    adopt() {
      throw new Error("nothing to adopt in this test");
    },
    alive: () => false,
  };
  return { executor, started };
}

function runManager(name: string) {
  const { registry, real, state } = failingRegistry(join(root, `${name}.db`));
  const logged: string[] = [];
  const journal = new Journal(registry, new EventHub(), { log: (line) => logged.push(line) });
  const slots = new SlotPool("cpu", ["cpu0"]);
  const hooks = { onStart: () => {} };
  const { executor, started } = fakeExecutor(() => hooks.onStart());
  const runs = new RunManager({
    registry,
    journal,
    slots,
    paths: daemonPaths(join(root, name)),
    executor,
    submission: { cwd: root } as SubmissionContext,
    supervisor: { lineRatePerSec: 1000, lineBurst: 1000, killMarginMs: 0 },
    autoResume: false,
    env: {},
    scripts: { pipeline: join(root, "pipeline.ts"), sweep: join(root, "sweep.ts") },
    log: (line) => logged.push(line),
  });
  const queue = (runName: string): RunRow => {
    const run = insertRun(real, runName);
    journal.change(run.id, {}, "state", { status: "queued" });
    return run;
  };
  const close = async (): Promise<void> => {
    await runs.close();
    journal.close();
    real.close();
  };
  return { runs, journal, real, state, slots, started, logged, queue, close, hooks };
}

describe("RunManager while the registry cannot be written", () => {
  test("a refused dispatch gives its slots back and leaves the run queued; a refused end is recorded later; both go on once writes work", async () => {
    const { runs, real, state, slots, started, logged, queue, close } = runManager("dispatch");
    const first = queue("first");
    const second = queue("second");
    runs.pump();
    assert.equal(started.length, 1);
    assert.equal(real.getRun(first.id)?.status, "running");

    state.failWrites = true;
    started[0]?.finish({});
    await sleep(50);
    assertNothingEscaped();
    // first's end was refused; second's dispatch too: its slot is free again and nothing started.
    assert.equal(real.getRun(first.id)?.status, "running", "first's end is not recorded yet");
    assert.equal(slots.free, 1, "the refused dispatch gave its slot back");
    assert.equal(started.length, 1, "second was not started");
    assert.equal(real.getRun(second.id)?.status, "queued");
    assert.ok(logged.some((line) => new RegExp(`run ${first.id}: recording its end failed`).test(line)));

    await sleep(1200); // a retry while writes still fail
    assert.equal(real.getRun(second.id)?.status, "queued", "no half-written dispatch commits meanwhile");
    assert.equal(real.getRun(second.id)?.pid, null);

    state.failWrites = false;
    await sleep(1500);
    assertNothingEscaped();
    assert.equal(real.getRun(first.id)?.status, "finished");
    const running = real.getRun(second.id);
    assert.equal(running?.status, "running");
    assert.equal(started.length, 2, "second started once");
    assert.equal(running?.pid, 40_002, "with its pid stored");
    assert.equal(running?.attempts, 1);
    assert.equal(slots.free, 0);
    const firstEvents = eventsOf(real, first.id);
    assertContiguous(firstEvents);
    assert.deepEqual(
      firstEvents.map((event) => `${event.type}:${event.parsed.status ?? ""}`),
      ["state:queued", "state:running", "started:", "state:finished"],
    );
    const secondEvents = eventsOf(real, second.id);
    assertContiguous(secondEvents);
    assert.deepEqual(
      secondEvents.map((event) => `${event.type}:${event.parsed.status ?? ""}`),
      ["state:queued", "state:running", "started:"],
    );
    started[1]?.finish({});
    await sleep(20);
    assert.equal(real.getRun(second.id)?.status, "finished");
    assertNothingEscaped();
    await close();
  });

  test("a pump that throws after a run ends is logged and tried again, not an unhandled rejection", async () => {
    const { runs, real, state, started, logged, queue, close } = runManager("pump");
    const first = queue("first");
    const second = queue("second");
    runs.pump();
    state.failReads = true;
    started[0]?.finish({});
    await sleep(50);
    assertNothingEscaped();
    assert.equal(real.getRun(first.id)?.status, "finished");
    assert.ok(logged.some((line) => /dispatching queued runs failed: database or disk is full/.test(line)));
    state.failReads = false;
    await sleep(1200);
    assert.equal(real.getRun(second.id)?.status, "running");
    assert.equal(started.length, 2);
    started[1]?.finish({});
    await sleep(20);
    assertNothingEscaped();
    await close();
  });

  test("a dispatch refused with nothing else going on is tried again by itself", async () => {
    const { runs, real, state, slots, started, queue, close } = runManager("retry");
    const run = queue("only");
    state.failWrites = true;
    assert.doesNotThrow(() => runs.pump());
    assert.equal(slots.free, 1);
    assert.equal(started.length, 0);
    state.failWrites = false;
    await sleep(1300);
    assert.equal(real.getRun(run.id)?.status, "running");
    assert.equal(started.length, 1);
    started[0]?.finish({});
    await sleep(20);
    assertNothingEscaped();
    await close();
  });

  test("a run started while its pid cannot be recorded keeps the pid queued until it is written", async () => {
    const { runs, real, state, started, queue, close, hooks } = runManager("pid");
    const run = queue("only");
    // The registry breaks between the `running` write and the pid's.
    hooks.onStart = () => {
      state.failWrites = true;
    };
    assert.doesNotThrow(() => runs.pump());
    assert.equal(started.length, 1);
    assert.equal(real.getRun(run.id)?.pid, null);
    state.failWrites = false;
    await sleep(1300); // the journal's retry
    assert.equal(real.getRun(run.id)?.pid, 40_001);
    const events = eventsOf(real, run.id);
    assertContiguous(events);
    assert.deepEqual(
      events.map((event) => `${event.type}:${event.parsed.status ?? event.parsed.pid}`),
      ["state:queued", "state:running", "started:40001"],
    );
    started[0]?.finish({});
    await sleep(20);
    assert.equal(real.getRun(run.id)?.status, "finished");
    assertNothingEscaped();
    await close();
  });
});
