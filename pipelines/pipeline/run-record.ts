/**
 * `out/pipeline.json`: where a run stands, for the user (and later a daemon). Rewritten atomically
 * at every change, so a reader never sees half a file and a crash leaves the last state written.
 */
import { readFile } from "node:fs/promises";
import { writeFileAtomic } from "../../lib/fs/atomic.ts";
import { STAGE_NAMES, type StageName } from "../../lib/stages/table.ts";

export const RUN_RECORD_FORMAT_VERSION = 1;

/** detached: the follower stopped (Ctrl+C) while the run's jobs go on in a scheduler (EXECUTOR=slurm). */
export type RunState = "running" | "finished" | "failed" | "interrupted" | "detached";
export type StepState = "pending" | "running" | "finished" | "failed" | "interrupted" | "skipped";
/** The training stages and the inference sample at the end. */
export type StepName = StageName | "infer";

export interface StepRecord {
  stage: StepName;
  state: StepState;
  /** How many times this stage has been started, over every run into this OUT_DIR (= N of attempt-N.log). */
  attempts: number;
  /** What the pipeline decided (plan.ts), or why it did not run ("not selected"). */
  decision: string | null;
  /** The checkpoint or weights file the current attempt resumed or started from (as the trainer reported it). */
  checkpoint: string | null;
  /** The last `CHECKPOINT:<path>` the trainer announced. */
  last_checkpoint: string | null;
  /** The child's pid, also its process group id. */
  pid: number | null;
  exit_code: number | null;
  signal: string | null;
  started_at: string | null;
  ended_at: string | null;
  /** From spawn to the end of the child's process group. */
  duration_ms: number | null;
  log: string | null;
  /** One line for a person: why it failed, why it was skipped. */
  message: string | null;
  /** When it failed: the last lines it wrote to stderr. */
  stderr_tail: string[] | null;
  /**
   * --restart moved aside the run with this id: running the same command again after an
   * interruption resumes the new run instead of restarting once more.
   */
  restart_of_run: string | null;
  /** EXECUTOR=slurm: the stage's job (its id, its job script) and how often Slurm restarted it. */
  job_id?: string | null;
  job_script?: string | null;
  restarts?: number;
}

export interface RunRecord {
  format_version: number;
  state: RunState;
  /** The pipeline's own pid while it runs. */
  pid: number;
  argv: string[];
  out_dir: string;
  /** Where the stages ran: "local" (absent in records of older runs) or "slurm". */
  executor?: string;
  started_at: string;
  ended_at: string | null;
  exit_code: number | null;
  tensorboard: {
    status: string;
    url?: string;
    pid?: number;
    /** "tensorboard" or "builtin" (Baton's own board), when one serves. */
    board?: string;
    logdir: string;
    message: string;
  } | null;
  stages: StepRecord[];
}

/** What one attempt at a step records about its process: cleared when a new attempt begins. */
export const attemptFields = {
  last_checkpoint: null,
  pid: null,
  exit_code: null,
  signal: null,
  started_at: null,
  ended_at: null,
  duration_ms: null,
  log: null,
  message: null,
} as const satisfies Partial<StepRecord>;

function emptyStep(stage: StepName, attempts: number): StepRecord {
  return {
    stage,
    state: "pending",
    attempts,
    decision: null,
    checkpoint: null,
    ...attemptFields,
    stderr_tail: null,
    restart_of_run: null,
  };
}

/** The record a previous run left, or null when there is none or it cannot be read. */
export async function readRunRecord(path: string): Promise<RunRecord | null> {
  try {
    const parsed = JSON.parse(await readFile(path, "utf8")) as Partial<RunRecord>;
    return Array.isArray(parsed.stages) && typeof parsed.state === "string" ? (parsed as RunRecord) : null;
  } catch {
    return null;
  }
}

/**
 * Holds the record of this run and writes it after every change. Writes are serialised: a change
 * made while one is in flight is written right after it, so the file always ends with the newest state.
 */
export class RunRecorder {
  readonly path: string;
  readonly record: RunRecord;
  /** What the previous run into this OUT_DIR left (null: none, or unreadable). */
  readonly previous: RunRecord | null;
  #writing: Promise<void> = Promise.resolve();
  #dirty = false;
  #error: unknown = null;

  private constructor(path: string, record: RunRecord, previous: RunRecord | null) {
    this.path = path;
    this.record = record;
    this.previous = previous;
  }

  /**
   * Start a record for this run; attempt counts carry over from the previous record. `continues`:
   * this process follows that run's jobs again (EXECUTOR=slurm), so its stages are carried over whole.
   */
  static async begin(
    path: string,
    init: { argv: string[]; outDir: string; executor?: string; continues?: boolean },
  ): Promise<RunRecorder> {
    const previous = await readRunRecord(path);
    const attemptsBefore = (stage: StepName): number =>
      previous?.stages.find((s) => s.stage === stage)?.attempts ?? 0;
    const recorder = new RunRecorder(
      path,
      {
        format_version: RUN_RECORD_FORMAT_VERSION,
        state: "running",
        pid: process.pid,
        argv: init.argv,
        out_dir: init.outDir,
        started_at: new Date().toISOString(),
        ended_at: null,
        exit_code: null,
        tensorboard: null,
        stages: [...STAGE_NAMES, "infer" as const].map((stage) => emptyStep(stage, attemptsBefore(stage))),
        ...(init.executor === undefined ? {} : { executor: init.executor }),
      },
      previous,
    );
    if (init.continues && previous !== null) {
      recorder.record.started_at = previous.started_at;
      recorder.record.argv = previous.argv;
      recorder.record.tensorboard = previous.tensorboard;
      recorder.record.stages = structuredClone(previous.stages);
    }
    await recorder.flush();
    return recorder;
  }

  step(stage: StepName): StepRecord {
    const step = this.record.stages.find((s) => s.stage === stage);
    if (step === undefined) throw new Error(`no stage ${stage} in the run record`);
    return step;
  }

  /** Change one stage and write. */
  update(stage: StepName, changes: Partial<StepRecord>): Promise<void> {
    Object.assign(this.step(stage), changes);
    return this.flush();
  }

  /** Change the run's own fields and write. */
  updateRun(changes: Partial<Omit<RunRecord, "stages">>): Promise<void> {
    Object.assign(this.record, changes);
    return this.flush();
  }

  /** End the run: its state, exit code and end time. */
  finish(state: RunState, exitCode: number): Promise<void> {
    return this.updateRun({ state, exit_code: exitCode, ended_at: new Date().toISOString() });
  }

  /** Write the current state (after any write in flight); rejects if the last write failed. */
  flush(): Promise<void> {
    if (this.#dirty) return this.#writing.then(() => this.#throwIfFailed());
    this.#dirty = true;
    this.#writing = this.#writing.then(async () => {
      this.#dirty = false;
      try {
        await writeFileAtomic(this.path, `${JSON.stringify(this.record, null, 2)}\n`);
        this.#error = null;
      } catch (error) {
        this.#error = error;
      }
    });
    return this.#writing.then(() => this.#throwIfFailed());
  }

  #throwIfFailed(): void {
    if (this.#error !== null) throw this.#error;
  }
}
