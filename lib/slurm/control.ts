/** Cancel, signal, requeue, hold and release jobs (scancel, scontrol), by id. */
import { EXIT, UserError } from "../cli/errors.ts";
import { runSlurmToolOrThrow } from "./command.ts";
import { checkJobId, type JobId } from "./job-id.ts";

export interface CancelOptions {
  /**
   * Send this signal instead of ending the job (scancel --signal). Without `batchOnly` or `full`,
   * Slurm signals only srun steps, so a job without any receives nothing (measured).
   */
  signal?: string;
  /** --batch: the batch shell alone (not its children). */
  batchOnly?: boolean;
  /** --full: the batch shell and the processes of its process group (not those that left it). */
  full?: boolean;
}

/**
 * `scancel <ids…>`: an array's id cancels every task, "123_4" one task. Ending a job sends SIGCONT
 * and SIGTERM to every process Slurm tracks for it, then SIGKILL after KillWait (30 s). Idempotent:
 * scancel says nothing and succeeds for an id Slurm does not know (measured on 22.05).
 */
export async function cancelJobs(jobIds: readonly JobId[], options: CancelOptions = {}): Promise<void> {
  if (jobIds.length === 0) return;
  for (const id of jobIds) checkJobId(id, "scancel");
  const args: string[] = [];
  if (options.signal !== undefined) {
    if (!/^((SIG)?[A-Z][A-Z0-9]*|[0-9]+)$/.test(options.signal)) {
      throw new UserError(`scancel --signal: ${JSON.stringify(options.signal)} is not a signal name`);
    }
    args.push(`--signal=${options.signal.replace(/^SIG/, "")}`);
  }
  if (options.batchOnly === true) args.push("--batch");
  if (options.full === true) args.push("--full");
  await runSlurmToolOrThrow("scancel", [...args, ...jobIds], {
    what: jobIds.join(" "),
    exitCode: EXIT.failure,
  });
}

/**
 * `scontrol requeue <id>`: a running job is ended (SIGTERM, then SIGKILL after KillWait) and queued
 * again; it may start once cred_expire + 1 s have passed (AuthInfo=cred_expire, default 120 s) and
 * sees SLURM_RESTART_COUNT one higher. `hold`: requeuehold, it waits for `releaseJob`.
 * Beware: Slurm also requeues a job that already COMPLETED (it runs again), so look first.
 */
export async function requeueJob(jobId: JobId, options: { hold?: boolean } = {}): Promise<void> {
  checkJobId(jobId, "scontrol requeue");
  const verb = options.hold === true ? "requeuehold" : "requeue";
  await runSlurmToolOrThrow("scontrol", [verb, jobId], { what: `${verb} ${jobId}`, exitCode: EXIT.failure });
}

/** `scontrol hold <id>`: a pending job stays pending (priority 0) until released. */
export async function holdJob(jobId: JobId): Promise<void> {
  checkJobId(jobId, "scontrol hold");
  await runSlurmToolOrThrow("scontrol", ["hold", jobId], { what: `hold ${jobId}`, exitCode: EXIT.failure });
}

/** `scontrol release <id>`: a held (or requeue-held) job may run. */
export async function releaseJob(jobId: JobId): Promise<void> {
  checkJobId(jobId, "scontrol release");
  await runSlurmToolOrThrow("scontrol", ["release", jobId], {
    what: `release ${jobId}`,
    exitCode: EXIT.failure,
  });
}
