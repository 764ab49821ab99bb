/**
 * SIGINT/SIGTERM during training: the first asks the loop to finish the update in flight, save and
 * exit 130/143; a second one exits at once (docs/trainers.md). The loop polls `requested` between batches.
 */
import { EXIT } from "../../lib/cli/errors.ts";

export type StopReason = "SIGINT" | "SIGTERM";

export class StopSignal {
  requested: StopReason | null = null;
  private readonly onSignal = (signal: NodeJS.Signals) => {
    if (this.requested) {
      process.stderr.write(`\n${signal} again: exiting now without saving\n`);
      process.exit(exitCodeFor(signal as StopReason));
    }
    this.requested = signal as StopReason;
    process.stderr.write(`\n${signal} received: finishing the current step, then saving a checkpoint\n`);
  };

  install(): this {
    process.on("SIGINT", this.onSignal);
    process.on("SIGTERM", this.onSignal);
    return this;
  }

  dispose(): void {
    process.off("SIGINT", this.onSignal);
    process.off("SIGTERM", this.onSignal);
  }

  exitCode(): number {
    return this.requested ? exitCodeFor(this.requested) : EXIT.ok;
  }
}

function exitCodeFor(signal: StopReason): number {
  return signal === "SIGINT" ? EXIT.interrupted : EXIT.terminated;
}

/** Let pending signal handlers run; the training step itself is synchronous on wasm and cpu. */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
