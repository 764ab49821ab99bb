import { UserError } from "../cli/errors.ts";

/**
 * A Slurm job id as the commands print and take it: "123", or "123_4" for task 4 of array job 123.
 * Checked before it reaches a command line: an empty id makes `scontrol show job` list every job.
 */
export type JobId = string;

const JOB_ID = /^\d+(_\d+)?$/;

export function isJobId(text: string): boolean {
  return JOB_ID.test(text);
}

/** `id` unchanged, or a UserError naming `source` and the bad id. */
export function checkJobId(id: string, source: string): JobId {
  if (!JOB_ID.test(id))
    throw new UserError(`${source}: ${JSON.stringify(id)} is not a Slurm job id (expected 123 or 123_4)`);
  return id;
}
