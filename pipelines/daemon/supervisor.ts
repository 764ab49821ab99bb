/**
 * One running run, as the daemon sees it: started (or adopted after a restart) through the
 * detached executor, its log lines turned into events — the trainers' machine lines, which the
 * pipeline passes on with their stage label (`[sft] CHECKPOINT:…`, `[sft] HEARTBEAT:120`), become
 * checkpoint, metadata and heartbeat events; plain lines go into the stream within the line
 * budget — its heartbeat watched (STALL_TIMEOUT), and stopped with TERM → grace → KILL.
 */
import { StopController } from "../../lib/process/index.ts";
import type { RunRow } from "../../lib/registry/index.ts";
import { isForProgramsOnly, parseLabelledTrainerLine } from "../../lib/stages/protocol.ts";
import type { DetachedExecution, DetachedExecutor, DetachedHandle } from "../executor/detached.ts";
import type { StageCommand, StageEvent, StageExit, StartOptions } from "../executor/types.ts";
import { stallTimeoutMs, stopGraceMs } from "../pipeline/settings.ts";
import type { Journal } from "./journal.ts";
import { LineBudget } from "./line-budget.ts";
import type { NormalisedSubmission } from "./submission/validate.ts";

/** A line's text in an event is cut here (the log file has it whole). */
const MAX_EVENT_LINE = 8 * 1024;
const DROPPED_REPORT_MS = 1000;

export interface SupervisorSettings {
  journal: Journal;
  executor: DetachedExecutor;
  lineRatePerSec: number;
  lineBurst: number;
  /** Added to the run's STOP_GRACE_SEC before its groups are killed: the pipeline's own ladder goes first. */
  killMarginMs: number;
}

export interface RunOutcome {
  exit: StageExit;
  /** A person's stop (the API), with its reason. */
  stopReason: string | null;
  stalled: boolean;
  /** It ended with no exit status: its process group was killed whole, launcher included. */
  lost: boolean;
  /** The last line it printed that a person reads, for the failure reason. */
  lastLine: string | null;
}

export interface Manifest {
  out_dir?: string;
  tensorboard_dir?: string;
  record_file?: string;
  checkpoints: Record<string, string>;
  metadata: Record<string, string>;
  /** Each stage's folder and checkpoints folder, as the run's settings name them (absent in older runs). */
  stages?: Record<string, { out_dir: string; ckpt_dir: string }>;
  /** The SFT checkpoint queue a DPO sweep follows and the folder of its DPO runs. */
  sweep?: { queue_file: string; dpo_root: string };
}

export class RunSupervisor {
  readonly runId: number;
  readonly #settings: SupervisorSettings;
  readonly #budget: LineBudget;
  readonly #stallMs: number;
  readonly #graceMs: number;
  readonly #manifest: Manifest;
  readonly #stop = new StopController();
  #execution: DetachedExecution | null = null;
  #stallTimer: NodeJS.Timeout | null = null;
  #droppedTimer: NodeJS.Timeout | null = null;
  #stopReason: string | null = null;
  #stalled = false;
  #lastLine: string | null = null;
  #droppedTotal: number;
  #resolve!: (outcome: RunOutcome) => void;
  readonly done: Promise<RunOutcome>;

  constructor(settings: SupervisorSettings, run: RunRow, config: NormalisedSubmission) {
    this.runId = run.id;
    this.#settings = settings;
    this.#budget = new LineBudget(settings.lineRatePerSec, settings.lineBurst);
    this.#droppedTotal = run.dropped_lines;
    // As the pipeline reads them (checked when the run was submitted).
    this.#stallMs = stallTimeoutMs(config.env);
    this.#graceMs = stopGraceMs(config.env) + settings.killMarginMs;
    this.#manifest = {
      checkpoints: {},
      metadata: {},
      ...(JSON.parse(run.artifact_manifest) as Partial<Manifest>),
    };
    this.done = new Promise((resolve) => {
      this.#resolve = resolve;
    });
  }

  get stopReason(): string | null {
    return this.#stopReason;
  }

  /** Start its command; the handle to store is returned (null: it could not start). */
  start(command: StageCommand): DetachedHandle | null {
    const execution = this.#settings.executor.start(command, this.#options());
    this.#follow(execution, null);
    return execution.handle;
  }

  /** Follow a command started before the daemon restarted. `lastHeartbeat` (ISO) continues its stall clock. */
  adopt(handle: DetachedHandle, lastHeartbeat: string | null): void {
    this.#follow(this.#settings.executor.adopt(handle, this.#options()), lastHeartbeat);
  }

  /** A person's stop: TERM to its group, KILL after the run's STOP_GRACE_SEC and the margin. */
  stop(reason: string): void {
    this.#stopReason ??= reason;
    this.#execution?.stop(`stop requested: ${reason}`);
  }

  /** Stop following (the daemon is closing); the run goes on. */
  async detach(): Promise<void> {
    if (this.#stallTimer) clearTimeout(this.#stallTimer);
    if (this.#droppedTimer) clearInterval(this.#droppedTimer);
    await this.#execution?.detach();
    this.#reportDropped();
    if (this.#execution) this.#settings.journal.patch(this.runId, { log_offset: this.#execution.logOffset });
  }

  #options(): StartOptions {
    return {
      stop: this.#stop,
      graceMs: this.#graceMs,
      echo: false,
      onEvent: (event) => this.#onEvent(event),
    };
  }

  #follow(execution: DetachedExecution, lastHeartbeat: string | null): void {
    this.#execution = execution;
    const since = lastHeartbeat === null ? 0 : Math.max(0, Date.now() - Date.parse(lastHeartbeat));
    this.#armStall(Number.isFinite(since) ? since : 0);
    this.#droppedTimer = setInterval(() => this.#reportDropped(), DROPPED_REPORT_MS);
    execution.done.then((exit) => {
      if (this.#stallTimer) clearTimeout(this.#stallTimer);
      if (this.#droppedTimer) clearInterval(this.#droppedTimer);
      this.#reportDropped();
      this.#settings.journal.patch(this.runId, { log_offset: execution.logOffset });
      this.#resolve({
        exit,
        stopReason: this.#stopReason,
        stalled: this.#stalled,
        lost: exit.exitCode === null && exit.signal === null,
        lastLine: this.#lastLine,
      });
    });
  }

  #armStall(elapsedMs: number): void {
    if (this.#stallMs <= 0) return;
    if (this.#stallTimer) clearTimeout(this.#stallTimer);
    this.#stallTimer = setTimeout(() => this.#onStall(), Math.max(0, this.#stallMs - elapsedMs));
    this.#stallTimer.unref();
  }

  #onStall(): void {
    const seconds = Math.round(this.#stallMs / 1000);
    this.#stalled = true;
    this.#settings.journal.add(this.runId, "stalled", { seconds });
    this.#execution?.stop(`stalled: no heartbeat for ${seconds} s (STALL_TIMEOUT)`);
  }

  #onEvent(event: StageEvent): void {
    const { journal } = this.#settings;
    const offset = this.#execution?.logOffset;
    if (offset !== undefined) journal.patch(this.runId, { log_offset: offset });
    if (event.kind === "line") this.#onLine(event.line);
    else if (event.kind !== "started") this.#onMachineLine(null, event);
  }

  #onLine(line: string): void {
    const machine = parseLabelledTrainerLine(line);
    if (machine) {
      this.#onMachineLine(machine.label, machine.message);
      // For programs only (as on the pipeline's terminal): not a line of the stream.
      if (isForProgramsOnly(machine.message)) return;
    }
    if (!line.startsWith("[baton] ")) this.#lastLine = line;
    if (!this.#budget.admit()) return;
    this.#reportDropped();
    const text = line.length > MAX_EVENT_LINE ? line.slice(0, MAX_EVENT_LINE) : line;
    this.#settings.journal.add(this.runId, "line", {
      text,
      ...(text.length < line.length ? { truncated: line.length } : {}),
      offset: this.#execution?.logOffset,
    });
  }

  #onMachineLine(stage: string | null, event: Exclude<StageEvent, { kind: "line" | "started" }>): void {
    const { journal } = this.#settings;
    if (event.kind === "heartbeat") {
      this.#armStall(0);
      journal.patch(this.runId, { last_heartbeat: new Date().toISOString(), last_step: event.step });
      journal.add(this.runId, "heartbeat", { stage, step: event.step });
    } else if (event.kind === "start") {
      journal.add(this.runId, "start", { stage, from: event.from });
    } else if (event.kind === "metrics") {
      // A metric point: the scalars the trainer logged (and wrote to TensorBoard) at this step.
      journal.add(this.runId, "metric", { stage, step: event.step, values: event.values });
    } else if (event.kind === "submitted") {
      // A Slurm executor's job: the registry keeps its id and log path, not the log.
      journal.add(this.runId, "submitted", { stage, job: event.id, log: event.log, script: event.script });
    } else if (event.kind === "waiting") {
      journal.add(this.runId, "waiting", { stage, job: event.id, reason: event.reason });
    } else {
      const key = stage ?? "run";
      (event.kind === "checkpoint" ? this.#manifest.checkpoints : this.#manifest.metadata)[key] = event.path;
      journal.patch(this.runId, { artifact_manifest: JSON.stringify(this.#manifest) });
      journal.add(this.runId, event.kind, { stage, path: event.path });
    }
  }

  #reportDropped(): void {
    const count = this.#budget.takeDropped();
    if (count === 0) return;
    this.#droppedTotal += count;
    this.#settings.journal.patch(this.runId, { dropped_lines: this.#droppedTotal });
    this.#settings.journal.add(this.runId, "dropped", { count, total: this.#droppedTotal });
  }
}
