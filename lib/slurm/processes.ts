/**
 * The processes of a job on this host, found the way Slurm's own accounting cannot always: every
 * process a job starts inherits SLURM_JOB_ID (an array task's own id) and, in an array,
 * SLURM_ARRAY_JOB_ID in its environment; slurmstepd itself has neither. With proctrack/linuxproc a
 * process whose parent died is reparented to init and Slurm loses it (measured: it survives
 * scancel), so whoever cancels a job looks here afterwards. Only this host's /proc is visible.
 */
import { readdir, readFile } from "node:fs/promises";
import { checkJobId, type JobId } from "./job-id.ts";

/** Pids of living processes of these jobs on this host (zombies hold nothing and are left out). */
export async function processesOfJobs(jobIds: readonly JobId[]): Promise<number[]> {
  if (jobIds.length === 0) return [];
  const wanted = new Set<string>();
  for (const id of jobIds) {
    checkJobId(id, "processes of job");
    wanted.add(`SLURM_JOB_ID=${id}`);
    // An array's id names every task's processes; a plain job's id never appears as an array's.
    if (!id.includes("_")) wanted.add(`SLURM_ARRAY_JOB_ID=${id}`);
  }
  const pids: number[] = [];
  for (const name of await readdir("/proc").catch(() => [] as string[])) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const stat = await readFile(`/proc/${name}/stat`, "utf8");
      if (/^\d+ \(.*\) [ZX]/s.test(stat)) continue;
      const environ = await readFile(`/proc/${name}/environ`, "utf8");
      if (environ.split("\0").some((entry) => wanted.has(entry))) pids.push(Number(name));
    } catch {
      // gone meanwhile, another user's process, or a kernel thread without an environment
    }
  }
  return pids;
}

/** `processesOfJobs([jobId])`. */
export function processesOfJob(jobId: JobId): Promise<number[]> {
  return processesOfJobs([jobId]);
}
