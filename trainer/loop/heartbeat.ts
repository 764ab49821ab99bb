/**
 * Liveness for whoever runs the trainer: `HEARTBEAT:<step>` on stdout every few seconds while the
 * event loop turns (lib/stages/protocol.ts). A training step is synchronous on the CPU backends, so
 * a step or a native call that never returns stops the beats — which is how an orchestrator tells a
 * stalled trainer from a slow one. The same stream carries `METRICS:<step> <json>`, the scalars of
 * each log interval, for a supervisor that keeps them (the daemon). Neither on a terminal, where a
 * person watches the progress bar.
 */
import { HEARTBEAT_INTERVAL_MS, HEARTBEAT_LINE, metricsLine } from "../../lib/stages/protocol.ts";

export interface Heartbeat {
  /** Beat now if the last one is older than the interval (call between updates). */
  beat(): void;
  /**
   * No timed beats while `waiting()` says so: the main thread idles then only because it waits for
   * data-parallel workers, and a worker stuck in a native call must look as stalled as the main thread would.
   */
  holdWhile(waiting: () => boolean): void;
  /** The scalars logged at `step`, as a METRICS line (a daemon stores them as events). */
  metrics(step: number, values: Readonly<Record<string, number>>): void;
  stop(): void;
}

export function startHeartbeat(step: () => number, stream: NodeJS.WriteStream = process.stdout): Heartbeat {
  if (stream.isTTY) return { beat() {}, holdWhile() {}, metrics() {}, stop() {} };
  let last = 0;
  let waiting = (): boolean => false;
  const beat = (): void => {
    const now = Date.now();
    if (now - last < HEARTBEAT_INTERVAL_MS) return;
    last = now;
    stream.write(`${HEARTBEAT_LINE}${step()}\n`);
  };
  beat();
  const timer = setInterval(() => {
    if (!waiting()) beat();
  }, HEARTBEAT_INTERVAL_MS / 2);
  timer.unref();
  return {
    beat,
    holdWhile(predicate) {
      waiting = predicate;
    },
    metrics(at, values) {
      stream.write(`${metricsLine(at, values)}\n`);
    },
    stop: () => clearInterval(timer),
  };
}
