/** Submit a batch job with `sbatch --parsable`, its options as an argument array. */
import { EXIT } from "../cli/errors.ts";
import { runSlurmToolOrThrow, SlurmError } from "./command.ts";
import { isJobId, type JobId } from "./job-id.ts";
import { type SbatchOptions, sbatchArgs } from "./options.ts";

export interface SubmitRequest {
  /** Path of the batch script (see writeJobScript). */
  script: string;
  /** On the command line, so they apply even where the script's #SBATCH lines say otherwise. */
  options: SbatchOptions;
  /**
   * Added to sbatch's environment, which the job inherits under the default --export=ALL. The way to
   * pass values that may contain commas (see SbatchOptions.export).
   */
  env?: Readonly<Record<string, string>>;
  /** Where sbatch runs (the job's working directory unless options.chdir says otherwise). */
  cwd?: string;
  timeoutMs?: number;
}

export interface SubmittedJob {
  jobId: JobId;
  /** The cluster sbatch names after the id (`123;cluster`) on a federation, else null. */
  cluster: string | null;
  /** The full argument list sbatch ran with, for the log and for "resubmit with". */
  args: string[];
}

/** `sbatch --parsable <options> <script>` → the new job's id, or a SlurmError quoting sbatch. */
export async function submitJob(request: SubmitRequest): Promise<SubmittedJob> {
  const args = ["--parsable", ...sbatchArgs(request.options), request.script];
  const result = await runSlurmToolOrThrow("sbatch", args, {
    what: `refused ${request.script}`,
    env: request.env,
    cwd: request.cwd,
    timeoutMs: request.timeoutMs,
    // The options come from the user's settings (partition, account, SBATCH_ARGS…): bad input.
    exitCode: EXIT.badInput,
  });
  const line = result.stdout.trim().split("\n").at(-1) ?? "";
  const [jobId = "", cluster] = line.split(";");
  if (!isJobId(jobId)) {
    throw new SlurmError(
      "sbatch",
      `sbatch ${request.script}: expected a job id from --parsable, got ${JSON.stringify(result.stdout.trim())}`,
      result.stderr,
      EXIT.failure,
    );
  }
  return { jobId, cluster: cluster ?? null, args };
}
