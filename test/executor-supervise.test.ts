/**
 * The STALL_TIMEOUT watchdog around any executor (pipelines/executor/attempt.ts supervise), with a
 * stand-in executor whose events come on a timer: it stops an execution that runs without a
 * heartbeat, and is disarmed while the execution waits in a scheduler's queue (queued, or
 * requeued after a preemption), when no heartbeats are due.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { StopController } from "../lib/process/index.ts";
import { supervise } from "../pipelines/executor/attempt.ts";
import type { StageEvent, StageExecution, StageExit, StartOptions } from "../pipelines/executor/types.ts";

/** Emits `script` (event, after ms) and then finishes, unless stopped first. */
function scripted(script: Array<[StageEvent, number]>) {
  const stops: string[] = [];
  const begin = (options: StartOptions): StageExecution => {
    let stopped: string | null = null;
    const done = (async (): Promise<StageExit> => {
      for (const [event, ms] of script) {
        await new Promise((resolve) => setTimeout(resolve, ms));
        if (stopped !== null) break;
        options.onEvent(event);
      }
      const finished = stopped === null;
      return {
        label: "x",
        state: finished ? "finished" : "failed",
        exitCode: finished ? 0 : null,
        signal: null,
        interrupted: null,
        message: stopped,
        report: "",
        id: "1",
        durationMs: 0,
      };
    })();
    return {
      stop(why) {
        stops.push(why);
        stopped = why;
      },
      done,
    };
  };
  return { begin, stops };
}

const base = { stop: new StopController(), graceMs: 0, echo: false as const, stallTimeoutMs: 150 };
const started: StageEvent = { kind: "started", id: "1" };
const beat: StageEvent = { kind: "heartbeat", step: 1 };

test("running without a heartbeat for STALL_TIMEOUT: stopped as stalled", async () => {
  const { begin, stops } = scripted([
    [started, 0],
    [beat, 50],
    [beat, 400],
  ]);
  const outcome = await supervise(begin, base);
  assert.equal(outcome.stalled, true);
  assert.deepEqual(stops, ["stalled: no heartbeat for 0 s (STALL_TIMEOUT)"]);
});

test("waiting in the queue (submitted, requeued) owes no heartbeat: not stalled", async () => {
  const { begin, stops } = scripted([
    [{ kind: "submitted", id: "1", log: "l", script: null }, 0],
    [{ kind: "waiting", id: "1", reason: "Dependency" }, 300],
    [started, 50],
    [beat, 100],
    [{ kind: "waiting", id: "1", reason: "BeginTime" }, 50],
    [started, 400],
    [beat, 100],
  ]);
  const outcome = await supervise(begin, base);
  assert.deepEqual(stops, []);
  assert.equal(outcome.stalled, false);
  assert.equal(outcome.exit.state, "finished");
});
