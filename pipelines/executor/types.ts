/**
 * The executor seam (docs/architecture.md#executors): how the pipeline and the DPO sweep run a
 * stage's trainer without knowing where it runs. An executor starts a command with its environment
 * and log file, reports what the trainer announces (lib/stages/protocol.ts) as events, stops it
 * with a reason (TERM → grace → KILL, or the scheduler's equivalent) and says how it ended. The
 * stage plan, the checkpoint store and the sweep queue never learn which executor ran a stage.
 */
import type { Writable } from "node:stream";
import type { StopController, StopSignal } from "../../lib/process/index.ts";

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
  /** Everything the trainer prints is appended here. */
  logFile: string;
}

export type StageEvent =
  /** Running: `id` is what identifies it to its executor (a pid, a job id). */
  | { kind: "started"; id: string }
  /** Where the trainer really starts: the checkpoint or weights it loaded (null: random weights). */
  | { kind: "start"; from: string | null }
  | { kind: "checkpoint"; path: string }
  | { kind: "metadata"; path: string }
  | { kind: "heartbeat"; step: number }
  | { kind: "line"; stream: "stdout" | "stderr"; line: string };

export interface StageExit {
  /** The command's label. */
  label: string;
  /** finished: exit 0; interrupted: a stop request ended it; failed: anything else. */
  state: "finished" | "interrupted" | "failed";
  exitCode: number | null;
  signal: string | null;
  /** The run-wide stop request that interrupted it, if any. */
  interrupted: StopSignal | null;
  /** One line for a person (why it failed or stopped); null when it finished. */
  message: string | null;
  /** The failure report for the terminal: exit status and the last lines of its stderr. */
  report: string;
  /** Its last stderr lines, oldest first. */
  stderrTail: string[];
  id: string | null;
  durationMs: number;
}

export interface StartOptions {
  /** The run's shared stop decision: one Ctrl+C stops every stage (each saves first), a second kills them. */
  stop: StopController;
  /** How long a stopped trainer gets to save and exit before it is killed. */
  graceMs: number;
  /** Where to echo its lines; false: the log only. */
  echo: { stdout: Writable; stderr: Writable } | false;
  onEvent(event: StageEvent): void;
}

export interface StageExecution {
  /** Stop this stage alone, with a reason for its log and report ("stalled: no heartbeat for 600 s"). */
  stop(why: string): void;
  readonly done: Promise<StageExit>;
}

export interface Executor {
  readonly name: string;
  start(command: StageCommand, options: StartOptions): StageExecution;
}
