import { constants } from "node:os";

/** The signals that stop a run (docs/pipeline.md). */
export type StopSignal = "SIGINT" | "SIGTERM" | "SIGHUP";
export const STOP_SIGNALS: readonly StopSignal[] = ["SIGINT", "SIGTERM", "SIGHUP"];

/** What a running child does when asked to stop. */
export interface StopListener {
  /** First request: ask the child to save and exit (SIGTERM to its group, then a grace period); `why` says why in words. */
  onStop(reason: StopSignal, why?: string): void;
  /** Second request: do not wait any longer (SIGKILL the group now). */
  onForce(): void;
}

/**
 * One stop decision shared by every child of a run: the first request stops them all gracefully,
 * a second one kills them all at once, later ones change nothing. State changes before listeners
 * run, so a request arriving while listeners run (a signal during a stop) cannot re-enter.
 */
export class StopController {
  #reason: StopSignal | null = null;
  #why: string | undefined;
  #forced = false;
  readonly #abort = new AbortController();
  readonly #listeners = new Set<StopListener>();
  #detach: (() => void) | null = null;

  /** The first stop request's signal (a programmatic stop names one too), or null while running. */
  get reason(): StopSignal | null {
    return this.#reason;
  }

  /** A second request came: children are being killed without grace. */
  get forced(): boolean {
    return this.#forced;
  }

  /** Aborted at the first stop request (its reason is the StopSignal): for loops deciding not to start more work. */
  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  /**
   * Request a stop, as if `reason` had been received: graceful the first time, forced the second.
   * `why` replaces the signal's name in what the children's logs say ("stalled: no heartbeat for 600 s").
   */
  stop(reason: StopSignal = "SIGTERM", why?: string): void {
    if (this.#reason === null) {
      this.#reason = reason;
      this.#why = why;
      this.#abort.abort(reason);
      for (const listener of [...this.#listeners]) listener.onStop(reason, why);
    } else {
      this.force();
    }
  }

  /** Kill every child now, skipping (the rest of) the grace period. */
  force(reason: StopSignal = "SIGTERM"): void {
    if (this.#forced) return;
    if (this.#reason === null) {
      this.#reason = reason;
      this.#abort.abort(reason);
    }
    this.#forced = true;
    for (const listener of [...this.#listeners]) listener.onForce();
  }

  /** Subscribe a running child. A request already made is replayed at once. Returns the unsubscribe. */
  subscribe(listener: StopListener): () => void {
    this.#listeners.add(listener);
    if (this.#reason !== null) listener.onStop(this.#reason, this.#why);
    if (this.#forced) listener.onForce();
    return () => {
      this.#listeners.delete(listener);
    };
  }

  /**
   * Route process signals to this controller until `dispose()`. While installed, the parent no
   * longer dies from these signals: it stops its children and reports `reason`.
   */
  handleProcessSignals(signals: readonly StopSignal[] = STOP_SIGNALS): this {
    this.dispose();
    const handler = (signal: NodeJS.Signals): void => this.stop(signal as StopSignal);
    for (const signal of signals) process.on(signal, handler);
    this.#detach = () => {
      for (const signal of signals) process.off(signal, handler);
    };
    return this;
  }

  /** Remove the process signal handlers, giving the signals back their default behaviour (idempotent). */
  dispose(): void {
    this.#detach?.();
    this.#detach = null;
  }
}

/**
 * A controller fed by SIGINT, SIGTERM and SIGHUP, for as long as children run; call `dispose()`
 * afterwards. Share it between concurrent children: one signal stops them all.
 */
export function installStopHandlers(signals: readonly StopSignal[] = STOP_SIGNALS): StopController {
  return new StopController().handleProcessSignals(signals);
}

/** The conventional exit status after an interruption: 128 + signal number (130, 143, 129). */
export function interruptExitCode(signal: StopSignal): number {
  return 128 + constants.signals[signal];
}
