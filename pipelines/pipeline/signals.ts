/**
 * Route SIGINT/SIGTERM/SIGHUP to the pipeline's StopController, treating signals that arrive
 * together as one request.
 *
 * Why: a second request kills the trainer without letting it save, and one Ctrl+C can arrive
 * twice — a launcher that forwards the terminal's SIGINT to a child which already got it from the
 * terminal (older npm run-script, some process managers), or a closing terminal's SIGHUP followed
 * by SIGTERM. (npm 11 does not forward: the script gets the terminal's one SIGINT, and npm itself
 * exits at once without waiting; see README.) No person presses Ctrl+C twice within a few hundred
 * milliseconds, so a request arriving within `coalesceMs` of the previous one is ignored.
 */
import { STOP_SIGNALS, type StopController, type StopSignal } from "../../lib/process/index.ts";

export const DEFAULT_COALESCE_MS = 300;

export interface SignalRouteOptions {
  coalesceMs?: number;
  signals?: readonly StopSignal[];
  /** Told about each signal, and whether it was taken as a stop request or ignored as a duplicate. */
  onSignal?: (signal: StopSignal, outcome: "stop" | "force" | "duplicate") => void;
  /** Clock, for tests. */
  now?: () => number;
}

/** Install the handlers; the returned function removes them (idempotent). */
export function routeStopSignals(stop: StopController, options: SignalRouteOptions = {}): () => void {
  const coalesceMs = options.coalesceMs ?? DEFAULT_COALESCE_MS;
  const now = options.now ?? (() => performance.now());
  const signals = options.signals ?? STOP_SIGNALS;
  let lastAt = Number.NEGATIVE_INFINITY;
  const handler = (signal: NodeJS.Signals): void => {
    const stopSignal = signal as StopSignal;
    const at = now();
    if (at - lastAt < coalesceMs) {
      options.onSignal?.(stopSignal, "duplicate");
      return;
    }
    lastAt = at;
    const outcome = stop.reason === null ? "stop" : "force";
    // Tell first: stop() synchronously signals the children, whose notices should follow this line.
    options.onSignal?.(stopSignal, outcome);
    stop.stop(stopSignal);
  };
  for (const signal of signals) process.on(signal, handler);
  let removed = false;
  return () => {
    if (removed) return;
    removed = true;
    for (const signal of signals) process.off(signal, handler);
  };
}
