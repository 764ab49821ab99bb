/**
 * The executor seam (docs/architecture.md#executors): how the pipeline and the DPO sweep run a
 * stage's trainer without knowing where it runs. An executor starts a command with its environment
 * and log file, reports what the trainer announces (lib/stages/protocol.ts) as events, stops it
 * with a reason (TERM → grace → KILL, or the scheduler's equivalent) and says how it ended. The
 * stage plan, the checkpoint store and the sweep queue never learn which executor ran a stage.
 */
import type { Writable } from "node:stream";
import type { StopController, StopSignal } from "../../lib/process/index.ts";
import type { TrainerLine } from "../../lib/stages/protocol.ts";

export interface StageCommand {
  /** Names the stage in echoed lines and reports: "sft", "dpo:from_step_00000040". */
  label: string;
  /** The tag the trainer puts on its own lines ("dpo" for a sweep child), dropped so each echoed line shows one label. */
  trainerTag?: string;
  /** Executable and arguments (never a shell string). */
  file: string;
  args: string[];
  /** The whole environment (nothing is inherited implicitly). */
  env: Record<string, string>;
  cwd?: string;
  /**
   * Everything the trainer prints is appended here. An executor whose scheduler names the log
   * itself (Slurm: `slurm-<job id>.out`) writes it in this file's folder and names it in its
   * `submitted` event.
   */
  logFile: string;
  /** Where an executor that submits a job script writes it (default: beside the log). */
  scriptFile?: string;
}

export type StageEvent =
  /** Handed to a scheduler (it runs later, elsewhere): its id, its log and job script. */
  | { kind: "submitted"; id: string; log: string; script: string | null }
  /** Not running now: queued, or requeued (no heartbeats are due until it starts again). */
  | { kind: "waiting"; id: string; reason: string }
  /** Running (again, after a requeue): `id` is what identifies it to its executor (a pid, a job id). */
  | { kind: "started"; id: string; restart?: number }
  /** A trainer's machine line (lib/stages/protocol.ts): start, checkpoint, metadata, heartbeat, metrics. */
  | TrainerLine
  | { kind: "line"; stream: "stdout" | "stderr"; line: string };

export interface StageExit {
  /** The command's label. */
  label: string;
  /**
   * finished: exit 0; interrupted: a stop request ended it (for a detached executor: ended the
   * following — the execution itself goes on); failed: anything else.
   */
  state: "finished" | "interrupted" | "failed";
  exitCode: number | null;
  signal: string | null;
  /** The run-wide stop request that interrupted it, if any. */
  interrupted: StopSignal | null;
  /** One line for a person (why it failed or stopped); null when it finished. */
  message: string | null;
  /** The failure report for the terminal: exit status and the last lines of its stderr. */
  report: string;
  /** Its last stderr lines, oldest first, where the executor keeps stderr apart (a Slurm job's log mixes both). */
  stderrTail?: string[];
  id: string | null;
  durationMs: number;
}

export interface StartOptions {
  /**
   * The run's shared stop decision: one Ctrl+C stops every stage (each saves first), a second kills
   * them. A detached executor stops following instead: its executions go on without this process.
   */
  stop: StopController;
  /** How long a stopped trainer gets to save and exit before it is killed. */
  graceMs: number;
  /** Where to echo its lines; false: the log only. */
  echo: { stdout: Writable; stderr: Writable } | false;
  /**
   * Run only after this earlier execution (of the same executor) has finished successfully, and
   * never when it does not (a scheduler's afterok dependency; a local executor waits for it).
   */
  after?: StageExecution;
  onEvent(event: StageEvent): void;
}

export interface StageExecution {
  /** Stop this stage alone, with a reason for its log and report ("stalled: no heartbeat for 600 s"). */
  stop(why: string): void;
  readonly done: Promise<StageExit>;
}

/** An execution started earlier, as a detached executor finds it again. */
export interface ExecutionRef {
  label: string;
  trainerTag?: string;
  /** What the executor named it by (the `submitted` event's id). */
  id: string;
  /** Its log (the `submitted` event's). */
  log: string;
}

/** Where an execution started earlier stands, for `--status` and for following again. */
export interface ExecutionStatus {
  id: string;
  /** waiting: queued or requeued; running; ended (how: `state`); unknown: the executor no longer knows it. */
  phase: "waiting" | "running" | "ended" | "unknown";
  /** The executor's own word for it: "PENDING (Dependency)", "RUNNING", "COMPLETED exit 0". */
  state: string;
  /** Times it was requeued. */
  restarts: number;
}

export interface Executor {
  readonly name: string;
  /**
   * Its executions outlive this process (a scheduler's jobs): a run-wide stop ends the following,
   * not the execution, and `follow`, `inspect` and `cancel` reach them from a later process.
   */
  readonly detached?: boolean;
  start(command: StageCommand, options: StartOptions): StageExecution;
  /** Follow an execution started earlier (detached executors). */
  follow?(ref: ExecutionRef, options: StartOptions): StageExecution;
  /** Where executions started earlier stand (detached executors). */
  inspect?(ids: readonly string[]): Promise<ExecutionStatus[]>;
  /**
   * End executions started earlier (those that ended already are left as they are), and every
   * process of theirs it can reach (detached executors).
   */
  cancel?(ids: readonly string[]): Promise<void>;
}
