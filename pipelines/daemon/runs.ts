/**
 * The runs the daemon owns: submitted into the registry, dispatched in submission order as slots
 * free, supervised, ended with the status their exit says, and — when the daemon starts —
 * reconciled with the machine: a run still running is adopted, one whose process group is gone is
 * `interrupted` and, with --auto-resume, queued again (the same command resumes from its checkpoints).
 */
import { join } from "node:path";
import { childEnv } from "../../lib/process/index.ts";
import { FINAL_STATUSES, type RunRegistry, type RunRow, type RunStatus } from "../../lib/registry/index.ts";
import { stagePaths } from "../../lib/stages/paths.ts";
import { HttpError } from "../board/http.ts";
import type { DetachedExecutor } from "../executor/detached.ts";
import { FORWARD_HEARTBEATS_ENV } from "../executor/forward.ts";
import { nodeScript } from "../executor/node-script.ts";
import { parseSweepFlags } from "../sweep/flags.ts";
import type { Journal } from "./journal.ts";
import type { DaemonPaths } from "./paths.ts";
import type { SlotPool } from "./slots.ts";
import {
  type AcceptedSubmission,
  acceptSubmission,
  type NormalisedSubmission,
  type SubmissionContext,
} from "./submission/validate.ts";
import { SUBMISSION_VARIABLES } from "./submission/variables.ts";
import { type Manifest, type RunOutcome, RunSupervisor, type SupervisorSettings } from "./supervisor.ts";

/** How soon a dispatch or a run's end that the registry refused is tried again. */
const RETRY_MS = 1000;

/** Test and benchmark hook: a script run instead of pipelines/run.ts (or dpo_sweep.ts), same flags and environment. */
export const STAND_IN_ENV = { pipeline: "BATON_DAEMON_PIPELINE", sweep: "BATON_DAEMON_SWEEP" } as const;

export interface RunManagerSettings {
  registry: RunRegistry;
  journal: Journal;
  slots: SlotPool;
  paths: DaemonPaths;
  executor: DetachedExecutor;
  submission: SubmissionContext;
  supervisor: Omit<SupervisorSettings, "journal" | "executor">;
  autoResume: boolean;
  /** The daemon's environment: the children's, less the pipeline's variables (a run's come from its submission). */
  env: Readonly<Record<string, string | undefined>>;
  scripts: { pipeline: string; sweep: string };
  log(line: string): void;
}

export class RunManager {
  readonly #s: RunManagerSettings;
  readonly #running = new Map<number, RunSupervisor>();
  #closed = false;
  /** Set while a pump waits to be tried again (a dispatch the registry refused). */
  #pumpTimer: NodeJS.Timeout | null = null;
  #pumpFailed = false;
  /** Ends of runs waiting to be recorded again. */
  readonly #endRetries = new Set<NodeJS.Timeout>();

  constructor(settings: RunManagerSettings) {
    this.#s = settings;
  }

  get running(): number {
    return this.#running.size;
  }

  /** Check and queue a submission; throws UserError (a 400) naming what is wrong. */
  submit(body: unknown): RunRow {
    const accepted = acceptSubmission(body, this.#s.submission);
    const run = this.#insert(accepted);
    this.pump();
    return this.#s.registry.getRun(run.id) as RunRow;
  }

  /** Submit a run's stored config again, as a new run (checked like any submission). */
  resubmit(id: number): RunRow {
    const run = this.#s.registry.getRun(id);
    if (run === undefined) throw new HttpError(404, `no run ${id}`);
    if (!isFinal(run.status)) throw new HttpError(409, `run ${id} is ${run.status}: stop it first`);
    return this.submit(JSON.parse(run.config));
  }

  /** Stop a run: a queued one is cancelled, a running one gets TERM → grace → KILL. */
  stop(id: number, reason: string): RunRow {
    const run = this.#s.registry.getRun(id);
    if (run === undefined) throw new HttpError(404, `no run ${id}`);
    if (run.status === "queued") {
      this.#s.journal.change(
        id,
        {
          status: "cancelled",
          stop_reason: reason,
          finished_at: now(),
          failure_reason: `cancelled: ${reason}`,
        },
        "state",
        {
          status: "cancelled",
          reason,
        },
      );
    } else if (run.status === "running") {
      const supervisor = this.#running.get(id);
      if (supervisor?.stopReason === null) {
        this.#s.journal.change(id, { stop_reason: reason }, "stop", { reason });
        supervisor.stop(reason);
      }
    } else {
      throw new HttpError(409, `run ${id} is ${run.status}: nothing to stop`);
    }
    return this.#s.registry.getRun(id) as RunRow;
  }

  /**
   * Start every queued run whose slots are free, oldest first; the first that does not fit waits,
   * and so do those after it. One whose start the registry refuses waits too (slots given back,
   * still queued), and so do those after it: the pump is tried again in RETRY_MS.
   */
  pump(): void {
    if (this.#closed) return;
    for (const run of this.#s.registry.runsWithStatus("queued")) {
      const devices = this.#s.slots.take(run.id, run.slots_requested);
      if (devices === null) return;
      if (!this.#dispatch(run, devices)) {
        this.#pumpLater();
        return;
      }
    }
  }

  /** On start: adopt what still runs, end what ended meanwhile, mark what was lost interrupted. */
  reconcile(): void {
    for (const run of this.#s.registry.runsWithStatus("running")) {
      const held: string[] = run.gpu_slots === null ? [] : (JSON.parse(run.gpu_slots) as string[]);
      if (run.pid === null) {
        // It was marked running but never started (the daemon died in between).
        this.#end(run, null);
        continue;
      }
      const handle = {
        label: `run ${run.id}`,
        pid: run.pid,
        startTime: run.pid_start,
        logFile: run.log_path,
        offset: run.log_offset,
      };
      const alive = this.#s.executor.alive(handle);
      const unknown = this.#s.slots.reserve(run.id, held);
      if (unknown.length > 0)
        this.#s.log(`run ${run.id} holds slots this daemon does not have: ${unknown.join(", ")}`);
      const supervisor = this.#supervisor(run);
      if (alive) {
        this.#s.journal.add(run.id, "adopted", { pid: run.pid, offset: run.log_offset });
        this.#s.log(`run ${run.id}: adopted (process group ${run.pid} still running)`);
      }
      supervisor.adopt(handle, run.last_heartbeat);
      // A stop that was under way when the daemon went down goes on.
      if (alive && run.stop_reason !== null) supervisor.stop(run.stop_reason);
      this.#watch(supervisor, run, alive);
    }
  }

  /** Stop dispatching and following; what runs goes on (the next daemon adopts it). */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#pumpTimer) clearTimeout(this.#pumpTimer);
    this.#pumpTimer = null;
    for (const timer of this.#endRetries) clearTimeout(timer);
    this.#endRetries.clear();
    await Promise.all([...this.#running.values()].map((supervisor) => supervisor.detach()));
  }

  #insert(accepted: AcceptedSubmission): RunRow {
    const { submission, digest, settings } = accepted;
    const manifest: Manifest = {
      out_dir: settings.outDir,
      tensorboard_dir: settings.tfDir,
      record_file: settings.recordFile,
      checkpoints: {},
      metadata: {},
      stages: Object.fromEntries(
        Object.values(settings.stages).map((stage) => [
          stage.stage,
          { out_dir: stage.args.out_dir, ckpt_dir: stage.args.ckpt_dir },
        ]),
      ),
      sweep: {
        queue_file:
          (submission.kind === "sweep" ? parseSweepFlags(submission.args).queue : null) ??
          stagePaths(settings.stages.sft.args).queueFile,
        dpo_root: settings.stages.dpo.outDir,
      },
    };
    // The row and its first event in one transaction (the journal's write joins it): a submission
    // the registry refuses leaves no run behind to be dispatched.
    return this.#s.registry.write(() => {
      const inserted = this.#s.registry.insertRun({
        status: "queued",
        kind: submission.kind,
        name: submission.name,
        config: JSON.stringify(submission),
        config_digest: digest,
        slots_requested: submission.slots,
        submitted_at: now(),
        log_path: (id) => this.#s.paths.runLog(id),
      });
      this.#s.registry.updateRun(inserted.id, { artifact_manifest: JSON.stringify(manifest) });
      this.#s.journal.change(inserted.id, {}, "state", { status: "queued", digest });
      return inserted;
    });
  }

  #supervisor(run: RunRow): RunSupervisor {
    const config = JSON.parse(run.config) as NormalisedSubmission;
    const supervisor = new RunSupervisor(
      { ...this.#s.supervisor, journal: this.#s.journal, executor: this.#s.executor },
      run,
      config,
    );
    this.#running.set(run.id, supervisor);
    return supervisor;
  }

  /** Start a queued run on `devices`; false: the registry refused its `running` (nothing written, slots given back). */
  #dispatch(queued: RunRow, devices: string[]): boolean {
    const { journal, registry } = this.#s;
    const config = JSON.parse(queued.config) as NormalisedSubmission;
    const attempts = queued.attempts + 1;
    try {
      journal.change(
        queued.id,
        {
          status: "running",
          started_at: now(),
          gpu_slots: JSON.stringify(devices),
          attempts,
          pid: null,
          pid_start: null,
          exit_code: null,
        },
        "state",
        { status: "running", slots: devices, attempt: attempts },
      );
    } catch {
      // The journal logged the outage; the run stays queued and nothing was started.
      this.#s.slots.release(queued.id);
      return false;
    }
    const run = registry.getRun(queued.id) as RunRow;
    const supervisor = this.#supervisor(run);
    const env = childEnv(
      { ...this.#inheritedEnv(), ...config.env, [FORWARD_HEARTBEATS_ENV]: "1" },
      this.#s.slots.kind === "gpu" ? { gpus: devices } : {},
    );
    const script = this.#s.scripts[config.kind];
    const handle = supervisor.start({
      label: `run ${run.id}`,
      ...nodeScript(script, config.args),
      env,
      cwd: this.#s.submission.cwd,
      logFile: run.log_path,
    });
    if (handle !== null) {
      const started = { pid: handle.pid, pid_start: handle.startTime };
      try {
        journal.change(run.id, started, "started", { pid: handle.pid });
      } catch {
        // It runs: its pid must reach the registry (a later daemon adopts it by it), so it waits in
        // the journal's queue, retried until written, instead.
        journal.patch(run.id, started);
        journal.add(run.id, "started", { pid: handle.pid });
      }
    }
    this.#watch(supervisor, run, true);
    return true;
  }

  #watch(supervisor: RunSupervisor, run: RunRow, sawItRun: boolean): void {
    supervisor.done.then(
      (outcome) => {
        this.#running.delete(run.id);
        this.#recordEnd(run.id, outcome, sawItRun, 0);
      },
      (error: unknown) => this.#s.log(`run ${run.id}: supervision failed: ${String(error)}`),
    );
  }

  /**
   * Record how a run ended, then dispatch what waits. A registry that refuses it is tried again
   * every RETRY_MS (#end writes all or nothing, so a retry repeats nothing) until the daemon
   * closes — the next daemon then reads the run's exit status beside its log.
   */
  #recordEnd(id: number, outcome: RunOutcome, sawItRun: boolean, failures: number): void {
    try {
      this.#end(this.#s.registry.getRun(id) as RunRow, outcome, sawItRun);
      if (failures > 0) this.#s.log(`run ${id}: its end is recorded`);
    } catch (error) {
      if (failures === 0)
        this.#s.log(
          `run ${id}: recording its end failed: ${(error as Error).message}; tried again every ${RETRY_MS} ms`,
        );
      if (!this.#closed) {
        const timer = setTimeout(() => {
          this.#endRetries.delete(timer);
          this.#recordEnd(id, outcome, sawItRun, failures + 1);
        }, RETRY_MS);
        this.#endRetries.add(timer);
      }
    }
    this.#pumpSafely();
  }

  /** pump() from a callback or timer, where a throw would take the daemon down: logged (once until it works again) and tried again. */
  #pumpSafely(): void {
    try {
      this.pump();
      this.#pumpFailed = false;
    } catch (error) {
      if (!this.#pumpFailed)
        this.#s.log(
          `dispatching queued runs failed: ${(error as Error).message}; tried again every ${RETRY_MS} ms`,
        );
      this.#pumpFailed = true;
      this.#pumpLater();
    }
  }

  #pumpLater(): void {
    if (this.#closed) return;
    this.#pumpTimer ??= setTimeout(() => {
      this.#pumpTimer = null;
      this.#pumpSafely();
    }, RETRY_MS);
  }

  /**
   * Record how a run ended (one write: all of it or, if the registry refuses, nothing); `outcome`
   * null: it never started. `sawItRun`: this daemon knew it alive.
   */
  #end(run: RunRow, outcome: RunOutcome | null, sawItRun = false): void {
    this.#s.slots.release(run.id);
    const base = { finished_at: now(), exit_code: outcome?.exit.exitCode ?? null };
    const set = (status: RunStatus, reason: string | null, resume = false): void => {
      // `resumes` tells a follower (baton logs -f) that the run goes on: queued again next.
      const ended = {
        type: "state",
        data: {
          status,
          ...(reason === null ? {} : { reason }),
          exit_code: base.exit_code,
          ...(resume ? { resumes: true } : {}),
        },
      };
      if (resume) {
        // Interrupted and queued again in the same transaction: never one without the other.
        this.#s.journal.changes(
          run.id,
          { ...base, failure_reason: reason, status: "queued", finished_at: null },
          [ended, { type: "state", data: { status: "queued", resumed: true } }],
        );
      } else
        this.#s.journal.change(run.id, { ...base, status, failure_reason: reason }, ended.type, ended.data);
    };
    if (outcome?.exit.state === "finished") set("finished", null);
    else if (run.stop_reason !== null || outcome?.stopReason) {
      set("stopped", `stopped: ${outcome?.stopReason ?? run.stop_reason}`);
    } else if (outcome?.stalled) set("failed", outcome.exit.message);
    else if (outcome === null || (outcome.lost && !sawItRun)) {
      set(
        "interrupted",
        "its process group was gone when the daemon came back",
        this.#s.autoResume && !this.#closed,
      );
    } else {
      const last = outcome.lastLine === null ? "" : `; last line: ${outcome.lastLine.slice(0, 500)}`;
      set("failed", `${outcome.exit.message ?? "failed"}${last}`);
    }
  }

  /** The daemon's own environment, less what a submission decides: the pipeline's variables, the GPUs, the hooks. */
  #inheritedEnv(): Record<string, string | undefined> {
    const env = { ...this.#s.env };
    for (const name of [...SUBMISSION_VARIABLES, ...Object.values(STAND_IN_ENV), "BATON_TOKEN"])
      delete env[name];
    if (this.#s.slots.kind === "gpu") delete env.CUDA_VISIBLE_DEVICES;
    return env;
  }
}

function now(): string {
  return new Date().toISOString();
}

export function isFinal(status: RunStatus): boolean {
  return FINAL_STATUSES.has(status);
}

export function defaultScripts(repo: string, env: Readonly<Record<string, string | undefined>>) {
  return {
    pipeline: env[STAND_IN_ENV.pipeline] || join(repo, "pipelines", "run.ts"),
    sweep: env[STAND_IN_ENV.sweep] || join(repo, "pipelines", "dpo_sweep.ts"),
  };
}
