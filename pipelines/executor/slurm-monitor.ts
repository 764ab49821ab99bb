/**
 * Where followed Slurm jobs stand, from one poller: every interval one `squeue` for all of them
 * (accounting is off on many clusters, so never sacct), and `scontrol show job` for what squeue
 * cannot say — the exit code of a job that ended, or whether a job missing from squeue is still
 * known at all. A controller that does not answer for a while is reported once and polled again:
 * following must survive a slurmctld restart.
 */
import { type JobInfo, listJobs, showJob } from "../../lib/slurm/index.ts";

export type JobListener = (info: JobInfo | null) => void;

export interface JobMonitorOptions {
  intervalMs?: number;
  /** Told once when Slurm stops answering, and once when it answers again. */
  warn?(line: string): void;
}

export const DEFAULT_POLL_MS = 1_000;

export class JobMonitor {
  readonly #listeners = new Map<string, Set<JobListener>>();
  readonly #intervalMs: number;
  readonly #warn: (line: string) => void;
  #timer: NodeJS.Timeout | undefined;
  #polling = false;
  #failing = false;

  constructor(options: JobMonitorOptions = {}) {
    this.#intervalMs = options.intervalMs ?? DEFAULT_POLL_MS;
    this.#warn = options.warn ?? ((line) => void process.stderr.write(`${line}\n`));
  }

  /** Be told about `jobId` at every poll (null: Slurm does not know it) until the returned unwatch. */
  watch(jobId: string, listener: JobListener): () => void {
    let set = this.#listeners.get(jobId);
    if (set === undefined) {
      set = new Set();
      this.#listeners.set(jobId, set);
    }
    set.add(listener);
    this.#schedule(0);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.#listeners.delete(jobId);
      if (this.#listeners.size === 0) {
        clearTimeout(this.#timer);
        this.#timer = undefined;
      }
    };
  }

  #schedule(ms: number): void {
    if (this.#timer !== undefined || this.#polling || this.#listeners.size === 0) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#poll();
    }, ms);
  }

  async #poll(): Promise<void> {
    this.#polling = true;
    try {
      const ids = [...this.#listeners.keys()];
      const answers = await lookUp(ids);
      if (this.#failing) this.#warn("[slurm] Slurm answers again");
      this.#failing = false;
      for (const [id, info] of answers) {
        for (const listener of [...(this.#listeners.get(id) ?? [])]) listener(info);
      }
    } catch (error) {
      if (!this.#failing) {
        this.#warn(
          `[slurm] cannot ask Slurm where the jobs stand (${error instanceof Error ? error.message : String(error)}); trying again`,
        );
      }
      this.#failing = true;
    } finally {
      this.#polling = false;
      this.#schedule(this.#intervalMs);
    }
  }
}

/** Each id's record: squeue's, completed by scontrol's for jobs that ended or that squeue left out. */
export async function lookUp(ids: readonly string[]): Promise<Map<string, JobInfo | null>> {
  const listed = await listJobs({ jobIds: ids });
  const answers = new Map<string, JobInfo | null>();
  for (const id of ids) {
    const record = listed.find((r) => r.jobId === id || (r.arrayJobId === null && r.internalId === id));
    if (record !== undefined && record.phase !== "finished") {
      answers.set(id, record);
      continue;
    }
    // Ended (its exit code is scontrol's), or not in squeue: scontrol knows whether it exists.
    const [shown] = await showJob(id);
    answers.set(id, shown ?? record ?? null);
  }
  return answers;
}
