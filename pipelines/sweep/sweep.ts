/**
 * The DPO sweep (docs/formats.md#the-checkpoint-queue-checkpointsjsonl): one DPO child per pending line of the SFT checkpoint queue, in file
 * order, each training from that line's checkpoint into `<dpo>/from_step_N/` and then marking the
 * line completed. Up to `maxParallel` children run at once, each on a GPU of its own when GPUs
 * are listed. Lines are claimed exclusively (claims.ts), so sweeps sharing a queue split the work.
 *
 * Without watch mode the sweep ends when every line is completed (waiting for lines another sweep
 * is training). In watch mode it also waits for new lines, and ends once the SFT run's
 * metadata.json says `finished` and every line is completed — or, in the pipeline, once `sftDone` is
 * aborted (its SFT stage is over, however it ended) and nothing is pending. Both end on a stop
 * request: every child is asked to save and exit; their lines stay pending and resume next time.
 */
import { join, resolve } from "node:path";
import type { Writable } from "node:stream";
import {
  inspectCheckpoint,
  latestValidCheckpoint,
  parseStepDirName,
  runIdOf,
} from "../../lib/checkpoint/index.ts";
import { EXIT } from "../../lib/cli/errors.ts";
import { pathExists } from "../../lib/fs/probe.ts";
import { readRunMetadata } from "../../lib/metadata/run-metadata.ts";
import {
  childEnv,
  failureExitCode,
  interruptExitCode,
  StopController,
  type StopSignal,
} from "../../lib/process/index.ts";
import { type QueueEntry, readQueue, resolveEntryPath } from "../../lib/queue/index.ts";
import { runFiles } from "../../lib/stages/paths.ts";
import { moveRunAside } from "../../lib/stages/restart.ts";
import { surveyFolder } from "../../lib/stages/survey.ts";
import { runAttempt } from "../executor/attempt.ts";
import { linkStop } from "../executor/local.ts";
import type { Executor, StageExit } from "../executor/types.ts";
import { displayPath } from "../pipeline/settings.ts";
import { type BusyLine, claimNextLine, type LineClaim, runDirName } from "./claims.ts";
import { GpuSlots, sweepCapacity } from "./gpu-slots.ts";
import { watchFiles } from "./watch.ts";

export interface SweepPlan {
  queueFile: string;
  /** The SFT run's metadata.json (watch mode ends once it says finished). */
  sftMetadataFile: string;
  /** `out/dpo`: runs go to `<dpoRoot>/from_step_N`, claims to `<dpoRoot>/.sweep`. */
  dpoRoot: string;
  /** The DPO child for a line: executable and arguments. */
  command(entry: QueueEntry, checkpoint: string, runDir: string): { file: string; args: string[] };
  /** The children's environment before the GPU assignment. */
  env: Readonly<Record<string, string | undefined>>;
  /** Where the DPO children run (the local process groups, or a cluster). */
  executor: Executor;
  /** Only these lines, by step (a Slurm array task's own); the others are left to whoever sweeps them. */
  lines?: ReadonlySet<number>;
}

export interface SweepOptions {
  watch: boolean;
  maxParallel: number;
  /** Devices to hand out one per child (visibleDevices()), or null for no assignment. */
  devices: readonly string[] | null;
  /** The shared stop decision: one Ctrl+C stops every child. */
  stop: StopController;
  graceMs: number;
  /** A child without a heartbeat for this long is stopped as stalled; 0: never. */
  stallTimeoutMs: number;
  echo: { stdout: Writable; stderr: Writable } | false;
  say(line: string): void;
  warn(line: string): void;
  /**
   * Aborted when the SFT stage running beside a watching sweep is over (pipeline --watch); when
   * given, it alone says the SFT run is over (not its metadata.json, which may be an earlier run's).
   */
  sftDone?: AbortSignal;
  /** How often to look again while another sweep holds pending lines. */
  busyPollMs?: number;
  /** Watch mode: how often to re-read the files even without a change event. */
  idlePollMs?: number;
}

export interface SweepOutcome {
  exitCode: number;
  /** Steps this sweep trained and completed, in completion order. */
  trained: number[];
  /** Steps completed without training because their checkpoint was gone. */
  skipped: number[];
  /** The first child that failed. */
  failed: StageExit | null;
  interrupted: StopSignal | null;
}

const TAG = "[sweep]";

export async function runSweep(plan: SweepPlan, options: SweepOptions): Promise<SweepOutcome> {
  return new Sweep(plan, options).run();
}

class Sweep {
  readonly #plan: SweepPlan;
  readonly #options: SweepOptions;
  readonly #claimsDir: string;
  readonly #slots: GpuSlots;
  readonly #local = new StopController();
  readonly #running = new Map<number, Promise<void>>();
  readonly #wake = new Wakeup();
  readonly #noticed = new Set<string>();
  /** An error that ends the sweep (a queue line turned malformed, a failed write): thrown by run(). */
  #fatal: { error: unknown } | null = null;
  readonly #outcome: SweepOutcome = {
    exitCode: EXIT.ok,
    trained: [],
    skipped: [],
    failed: null,
    interrupted: null,
  };

  constructor(plan: SweepPlan, options: SweepOptions) {
    this.#plan = plan;
    this.#options = options;
    this.#claimsDir = join(plan.dpoRoot, ".sweep");
    this.#slots = new GpuSlots(options.devices);
  }

  async run(): Promise<SweepOutcome> {
    const { stop, sftDone } = this.#options;
    const ring = (): void => this.#wake.ring();
    const unlink = linkStop(stop, this.#local);
    stop.signal.addEventListener("abort", ring);
    sftDone?.addEventListener("abort", ring);
    const watcher = this.#options.watch
      ? await watchFiles([this.#plan.queueFile, this.#plan.sftMetadataFile], ring)
      : null;
    try {
      await this.#loop();
    } catch (error) {
      this.#fatal ??= { error };
    } finally {
      // Children save and exit; their lines stay pending.
      if (this.#fatal !== null) this.#local.stop("SIGTERM");
      await Promise.all(this.#running.values());
      await watcher?.close();
      stop.signal.removeEventListener("abort", ring);
      sftDone?.removeEventListener("abort", ring);
      unlink();
    }
    if (this.#fatal !== null) throw this.#fatal.error;
    const outcome = this.#outcome;
    outcome.interrupted = stop.reason;
    if (stop.reason !== null) outcome.exitCode = interruptExitCode(stop.reason);
    else if (outcome.failed !== null) outcome.exitCode = failureExitCode(outcome.failed.exitCode);
    return outcome;
  }

  async #loop(): Promise<void> {
    const { stop, watch } = this.#options;
    const capacity = sweepCapacity(this.#options.maxParallel, this.#slots.devices);
    let announcedWatch = false;
    while (stop.reason === null && this.#fatal === null) {
      let busyElsewhere = false;
      while (this.#outcome.failed === null && this.#running.size < capacity && stop.reason === null) {
        const { claim, busy } = await claimNextLine(
          this.#plan.queueFile,
          this.#claimsDir,
          new Set(this.#running.keys()),
          this.#plan.lines,
        );
        for (const line of busy) this.#noticeBusy(line);
        busyElsewhere = busy.length > 0;
        if (claim === null) break;
        this.#start(claim);
      }
      if (this.#running.size === 0) {
        if (this.#outcome.failed !== null) return;
        // The pipeline says when its SFT stage is over; alone, the SFT run's metadata.json does — read
        // before the queue, since the SFT trainer lists its last checkpoint before it writes `finished`.
        const sftDone = this.#options.sftDone;
        const sftOver = !watch || (sftDone ? sftDone.aborted : await this.#sftFinished());
        const lines = this.#plan.lines;
        const pending = (await readQueue(this.#plan.queueFile)).filter(
          (e) => !e.completed && (lines?.has(e.step) ?? true),
        ).length;
        if (pending === 0 && sftOver) return;
        if (pending === 0 && !announcedWatch) {
          announcedWatch = true;
          this.#options.say(
            `${TAG} watching ${displayPath(this.#plan.queueFile)} for new checkpoints; ends once the SFT run has finished ` +
              "and every line is completed (Ctrl+C stops)",
          );
        }
      }
      await this.#wake.wait(
        busyElsewhere ? (this.#options.busyPollMs ?? 1_000) : (this.#options.idlePollMs ?? 15_000),
      );
    }
  }

  #start(claim: LineClaim): void {
    const step = claim.entry.step;
    const device = this.#slots.take();
    const task = this.#runLine(claim, device)
      .catch(async (error: unknown) => {
        this.#fatal ??= { error };
        this.#local.stop("SIGTERM");
        await claim.release().catch(() => {});
      })
      .finally(() => {
        this.#slots.give(device);
        this.#running.delete(step);
        this.#wake.ring();
      });
    this.#running.set(step, task);
  }

  async #runLine(claim: LineClaim, device: string | null): Promise<void> {
    const { say, warn } = this.#options;
    const step = claim.entry.step;
    const runDir = join(this.#plan.dpoRoot, runDirName(step));
    const checkpoint = resolveEntryPath(this.#plan.queueFile, claim.entry);
    if (
      !(await pathExists(checkpoint)) &&
      (await latestValidCheckpoint(join(runDir, "checkpoints"))) === null
    ) {
      const reason = `${checkpoint} no longer exists (deleted or pruned before it was swept) and ${runDir} has no DPO checkpoint to resume`;
      await claim.complete({ skipped: reason, completed_at: new Date().toISOString() });
      warn(`${TAG} step ${step}: skipped: ${reason}`);
      this.#outcome.skipped.push(step);
      return;
    }

    await this.#setAsideForeignRun(step, runDir, checkpoint);
    const own = new StopController();
    const unlink = linkStop(this.#local, own);
    claim.onLost((error) => {
      warn(
        `${TAG} step ${step}: another sweep took this line over (${error.message}); stopping its DPO child`,
      );
      own.stop("SIGTERM");
    });
    const { file, args } = this.#plan.command(claim.entry, checkpoint, runDir);
    const label = `dpo:${runDirName(step)}`;
    say(
      `${TAG} step ${step}: DPO from ${displayPath(checkpoint)} into ${displayPath(runDir)}${device === null ? "" : ` on GPU ${device}`}`,
    );
    const child = await runAttempt({
      executor: this.#plan.executor,
      command: {
        label,
        trainerTag: "dpo",
        file,
        args,
        env: childEnv(this.#plan.env, device === null ? {} : { gpus: [device] }),
      },
      logsDir: join(runDir, "logs"),
      stop: own,
      graceMs: this.#options.graceMs,
      stallTimeoutMs: this.#options.stallTimeoutMs,
      echo: this.#options.echo,
      onEvent: (event) => {
        if (event.kind !== "started") return;
        say(
          `${TAG} step ${step}: started ${this.#plan.executor.name === "local" ? "pid" : "job"} ${event.id}`,
        );
        const pid = Number(event.id);
        if (Number.isInteger(pid)) claim.recordChild(pid).catch(() => {}); // only a hint for a sweep that outlives us
      },
    }).finally(unlink);
    const state = child.exit.state;

    if (state === "finished") {
      const metadata = await this.#readMetadata(step, child.metadataFile);
      const { alreadyCompleted } = await claim.complete({
        dpo_dir: runDir,
        dpo_checkpoint: metadata?.last_checkpoint ?? child.lastCheckpoint,
        metrics: metadata?.evaluation ?? null,
        completed_at: new Date().toISOString(),
      });
      if (alreadyCompleted) warn(`${TAG} step ${step}: was completed meanwhile; its first result is kept`);
      else say(`${TAG} step ${step}: completed${describeMetrics(metadata?.evaluation ?? null)}`);
      this.#outcome.trained.push(step);
      return;
    }
    await claim.release();
    if (claim.lost !== null || state === "interrupted") return;
    this.#outcome.failed ??= child.exit;
    warn(child.exit.report);
    warn(`${TAG} step ${step} failed; no further lines are started (run the same command again to retry it)`);
  }

  /**
   * A line's run folder holding a DPO run that started from another SFT checkpoint (an SFT run
   * restarted since, its step saved again) must not be resumed for this line: the run goes aside,
   * whole, and the line starts afresh — two runs never share a folder.
   */
  async #setAsideForeignRun(step: number, runDir: string, checkpoint: string): Promise<void> {
    const ckptDir = join(runDir, "checkpoints");
    const latest = (await surveyFolder(ckptDir)).latest;
    const from = latest?.startedFrom;
    if (!latest || from?.kind !== "checkpoint" || !from.path) return;
    // The line's checkpoint as it is now (gone: nothing to compare, the run resumes as it is).
    const sourceRun = await runIdAt(checkpoint);
    if (resolve(from.path) === resolve(checkpoint) && (sourceRun === null || sourceRun === from.run_id))
      return;
    const moved = await moveRunAside(runFiles(runDir, ckptDir));
    this.#options.warn(
      `${TAG} step ${step}: ${runDir} holds a DPO run trained from another SFT checkpoint (${from.path}, run ${from.run_id}); ` +
        `moved it to ${moved} (nothing was deleted) and starting this line afresh`,
    );
  }

  async #readMetadata(step: number, path: string | null) {
    if (path === null) {
      this.#options.warn(
        `${TAG} step ${step}: the DPO child printed no METADATA_FILE line; no evaluation recorded`,
      );
      return null;
    }
    try {
      return await readRunMetadata(path);
    } catch (error) {
      this.#options.warn(`${TAG} step ${step}: ${(error as Error).message}; no evaluation recorded`);
      return null;
    }
  }

  async #sftFinished(): Promise<boolean> {
    const metadata = await readRunMetadata(this.#plan.sftMetadataFile).catch(() => null);
    return metadata?.state === "finished";
  }

  #noticeBusy(line: BusyLine): void {
    const holder = line.holder === null ? "another sweep" : `pid ${line.holder.pid} on ${line.holder.host}`;
    const key = `${line.step}:${line.why}:${holder}`;
    if (this.#noticed.has(key)) return;
    this.#noticed.add(key);
    this.#options.say(
      line.why === "orphan"
        ? `${TAG} step ${line.step}: the DPO child (pid ${line.holder?.child_pid}) of a sweep that died is still running; waiting for it to exit`
        : `${TAG} step ${line.step}: being trained by ${holder}; leaving it to that sweep`,
    );
  }
}

/** Resolves at ring() or after a timeout; a ring while nobody waits is kept for the next wait. */
class Wakeup {
  #rung = false;
  #resolve: (() => void) | null = null;

  ring(): void {
    this.#rung = true;
    this.#resolve?.();
  }

  async wait(ms: number): Promise<void> {
    if (!this.#rung) {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.#resolve = resolve;
        timer = setTimeout(resolve, ms);
      });
      clearTimeout(timer);
      this.#resolve = null;
    }
    this.#rung = false;
  }
}

function describeMetrics(metrics: Record<string, number> | null): string {
  if (metrics === null) return " (no evaluation)";
  const accuracy = metrics.preference_accuracy;
  if (accuracy === undefined) return "";
  const before = metrics.baseline_preference_accuracy;
  return ` — preference accuracy ${accuracy.toFixed(4)}${before === undefined ? "" : ` (${before.toFixed(4)} before DPO)`}`;
}

/** The run id recorded in the step checkpoint at `path`, or null when it is not a valid one. */
async function runIdAt(path: string): Promise<string | null> {
  if (parseStepDirName(path) === null) return null;
  const info = await inspectCheckpoint(path).catch(() => null);
  return info?.valid && info.state ? runIdOf(info.state) : null;
}
