import assert from "node:assert/strict";
import { test } from "node:test";
import { installStopHandlers, StopController, type StopSignal } from "../lib/process/stop.ts";

function recorder() {
  const events: string[] = [];
  return {
    events,
    listener: { onStop: (r: StopSignal) => events.push(`stop:${r}`), onForce: () => events.push("force") },
  };
}

test("first request stops, second forces, later ones change nothing", () => {
  const stop = new StopController();
  const { events, listener } = recorder();
  stop.subscribe(listener);
  assert.equal(stop.signal.aborted, false);
  stop.stop("SIGINT");
  assert.equal(stop.reason, "SIGINT");
  assert.equal(stop.signal.aborted, true);
  assert.equal(stop.signal.reason, "SIGINT");
  stop.stop("SIGTERM");
  stop.stop("SIGHUP");
  assert.deepEqual(events, ["stop:SIGINT", "force"]);
  assert.equal(stop.reason, "SIGINT", "the first signal is the one reported");
  assert.equal(stop.forced, true);
});

test("a listener that requests again while being notified does not re-enter", () => {
  const stop = new StopController();
  const events: string[] = [];
  stop.subscribe({
    onStop: () => {
      events.push("stop");
      stop.stop("SIGTERM"); // becomes the force, not a second stop
    },
    onForce: () => events.push("force"),
  });
  stop.stop("SIGINT");
  assert.deepEqual(events, ["stop", "force"]);
});

test("a late subscriber hears the request already made; an unsubscribed one hears nothing", () => {
  const stop = new StopController();
  const gone = recorder();
  stop.subscribe(gone.listener)();
  stop.force("SIGHUP");
  const late = recorder();
  stop.subscribe(late.listener);
  assert.deepEqual(late.events, ["stop:SIGHUP", "force"]);
  assert.deepEqual(gone.events, []);
});

test("installStopHandlers routes signals and dispose removes every handler", () => {
  const signals = ["SIGINT", "SIGTERM", "SIGHUP"] as const;
  const before = signals.map((s) => process.listenerCount(s));
  const stop = installStopHandlers();
  assert.deepEqual(
    signals.map((s) => process.listenerCount(s)),
    before.map((n) => n + 1),
  );
  process.emit("SIGHUP", "SIGHUP"); // the handler only; no real signal is delivered
  assert.equal(stop.reason, "SIGHUP");
  stop.dispose();
  stop.dispose();
  assert.deepEqual(
    signals.map((s) => process.listenerCount(s)),
    before,
  );
});
