/**
 * SIGINT/SIGTERM during training: the first asks the loop to finish the update in flight, save and
 * exit 130/143; a second one exits at once (docs/trainers.md). The loop polls `requested` between batches.
 *
 * SIGUSR1 is Slurm's time-limit warning (`--signal=B:USR1@N`): the same save, then — in a Slurm job
 * run with `--requeue_on_stop N` — `scontrol requeue` of the job itself, so it resumes from that
 * checkpoint once Slurm starts it again; after N restarts it no longer does and says so (the stage
 * is reported failed instead of looping). Not SIGTERM: Slurm sends that when it cancels, preempts or
 * requeues a job itself, and it decides then whether the job runs again.
 *
 * A signal within DUPLICATE_MS of the first is the same request arriving twice (Slurm signals every
 * process of a job, and a sweep task also forwards the stop to its trainer): not a second request.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { EXIT } from "../../lib/cli/errors.ts";

export type StopReason = "SIGINT" | "SIGTERM" | "SIGUSR1";

const SIGNALS: readonly StopReason[] = ["SIGINT", "SIGTERM", "SIGUSR1"];
const DUPLICATE_MS = 300;
const REQUEUE_TIMEOUT_MS = 60_000;

export interface StopSignalOptions {
  /** --requeue_on_stop: requeue the Slurm job after a SIGUSR1 save, up to this many restarts; 0: never. */
  requeueLimit?: number;
  log?(message: string): void;
  /** The job's environment (SLURM_JOB_ID, SLURM_RESTART_COUNT); default this process's. */
  env?: Readonly<Record<string, string | undefined>>;
}

export class StopSignal {
  requested: StopReason | null = null;
  readonly #options: StopSignalOptions;
  #at = 0;
  /** The job asked Slurm to requeue it: the SIGTERM Slurm then sends is expected, not a second request. */
  #requeued = false;

  constructor(options: StopSignalOptions = {}) {
    this.#options = options;
  }

  private readonly onSignal = (signal: NodeJS.Signals) => {
    if (this.#requeued) return;
    if (this.requested) {
      if (performance.now() - this.#at < DUPLICATE_MS) return;
      process.stderr.write(`\n${signal} again: exiting now without saving\n`);
      process.exit(exitCodeFor(signal as StopReason));
    }
    this.requested = signal as StopReason;
    this.#at = performance.now();
    const what =
      signal === "SIGUSR1" ? `${signal} received (Slurm's time-limit warning)` : `${signal} received`;
    process.stderr.write(`\n${what}: finishing the current step, then saving a checkpoint\n`);
  };

  install(): this {
    for (const signal of SIGNALS) process.on(signal, this.onSignal);
    const env = this.#options.env ?? process.env;
    const limit = this.#options.requeueLimit ?? 0;
    if (env.SLURM_JOB_ID !== undefined) {
      this.#options.log?.(
        `Slurm job ${env.SLURM_JOB_ID}, restart ${env.SLURM_RESTART_COUNT ?? 0} (SLURM_RESTART_COUNT)` +
          (limit > 0 ? `; on SIGUSR1 it saves and requeues itself, at most ${limit} restarts` : ""),
      );
    }
    return this;
  }

  dispose(): void {
    for (const signal of SIGNALS) process.off(signal, this.onSignal);
    // After a requeue Slurm's SIGTERM may still come while the process exits: it must not kill it mid-close.
    if (this.#requeued) for (const signal of SIGNALS) process.on(signal, () => {});
  }

  exitCode(): number {
    return this.requested ? exitCodeFor(this.requested) : EXIT.ok;
  }

  /**
   * Called once the stop's checkpoint is saved: on SIGUSR1 in a Slurm job with a requeue limit,
   * requeue the job (or say why not). Returns the exit code.
   */
  async afterSave(): Promise<number> {
    const env = this.#options.env ?? process.env;
    const limit = this.#options.requeueLimit ?? 0;
    const jobId = env.SLURM_JOB_ID;
    if (this.requested !== "SIGUSR1" || limit <= 0 || jobId === undefined) return this.exitCode();
    const log = this.#options.log ?? (() => {});
    const restarts = Number(env.SLURM_RESTART_COUNT ?? "0") || 0;
    if (restarts >= limit) {
      log(
        `not requeueing Slurm job ${jobId}: it has been restarted ${restarts} times (--requeue_on_stop ${limit}, SLURM_MAX_REQUEUES); ` +
          "ending so the stage is reported failed — run the pipeline again to resume from the checkpoint",
      );
      return this.exitCode();
    }
    this.#requeued = true;
    try {
      await promisify(execFile)("scontrol", ["requeue", jobId], { timeout: REQUEUE_TIMEOUT_MS });
    } catch (error) {
      this.#requeued = false;
      const detail = error instanceof Error ? error.message.split("\n")[0] : String(error);
      log(`cannot requeue Slurm job ${jobId} (${detail}); the checkpoint is saved, run again to resume`);
      return this.exitCode();
    }
    log(
      `requeued Slurm job ${jobId} (restart ${restarts + 1} of at most ${limit}): it resumes from this checkpoint`,
    );
    return this.exitCode();
  }
}

function exitCodeFor(signal: StopReason): number {
  if (signal === "SIGUSR1") return 128 + 10;
  return signal === "SIGINT" ? EXIT.interrupted : EXIT.terminated;
}

/** Let pending signal handlers run; the training step itself is synchronous on wasm and cpu. */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
