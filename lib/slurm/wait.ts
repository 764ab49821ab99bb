/** Poll a job's records until a condition holds (Slurm has no way to be told; squeue is the source). */
import { setTimeout as sleep } from "node:timers/promises";
import { UserError } from "../cli/errors.ts";
import type { JobId } from "./job-id.ts";
import { type JobInfo, showJob } from "./query.ts";

export interface WaitOptions {
  timeoutMs: number;
  /** Between two looks; scontrol answers in milliseconds, but every look is a controller RPC. */
  intervalMs?: number;
  signal?: AbortSignal;
}

/** A short account of records for messages: "123 RUNNING restart 1", "123_0 COMPLETED exit 0:0". */
export function describeJobs(records: readonly JobInfo[]): string {
  if (records.length === 0) return "unknown to Slurm";
  return records
    .map((r) => {
      const exit =
        r.phase === "finished" && r.exitCode !== null
          ? ` exit ${r.exitCode.status}:${r.exitCode.signal}`
          : "";
      const why = r.reason !== "None" ? ` (${r.reason})` : "";
      return `${r.jobId} ${r.state}${why}${r.restartCount > 0 ? ` restart ${r.restartCount}` : ""}${exit}`;
    })
    .join(", ");
}

/**
 * `showJob(jobId)` until `until(records)` is true; resolves with those records. Times out with an
 * error naming the job and its last state.
 */
export async function waitForJob(
  jobId: JobId,
  until: (records: JobInfo[]) => boolean,
  options: WaitOptions,
): Promise<JobInfo[]> {
  const deadline = Date.now() + options.timeoutMs;
  const interval = options.intervalMs ?? 250;
  for (;;) {
    const records = await showJob(jobId);
    if (until(records)) return records;
    if (Date.now() >= deadline) {
      throw new UserError(
        `job ${jobId}: condition not reached within ${Math.round(options.timeoutMs / 1000)} s; last seen: ${describeJobs(records)}`,
        1,
      );
    }
    await sleep(interval, undefined, { signal: options.signal });
  }
}

/** Every record finished (a job Slurm has forgotten counts as finished: it has no processes left). */
export function allFinished(records: readonly JobInfo[]): boolean {
  return records.every((r) => r.phase === "finished");
}
