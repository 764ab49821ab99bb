/**
 * What Slurm says about jobs, from `scontrol show job -o` (everything, one record per line) and
 * `squeue` (a list by name or id). Never from sacct: with accounting off it knows nothing.
 *
 * A finished job stays visible to both for MinJobAge (300 s by default), then Slurm forgets it:
 * `showJob` answers [] and the caller decides from its own files (checkpoints, logs) what happened.
 */
import { EXIT, UserError } from "../cli/errors.ts";
import { runSlurmTool, SlurmError, slurmErrorText } from "./command.ts";
import { checkJobId, type JobId } from "./job-id.ts";

/** Slurm's job states (JOB_STATE_* names); an unknown future one is kept as its text. */
export type JobStateName =
  | "PENDING"
  | "RUNNING"
  | "SUSPENDED"
  | "COMPLETING"
  | "COMPLETED"
  | "CANCELLED"
  | "FAILED"
  | "TIMEOUT"
  | "NODE_FAIL"
  | "PREEMPTED"
  | "BOOT_FAIL"
  | "DEADLINE"
  | "OUT_OF_MEMORY"
  | "REQUEUED"
  | "REQUEUE_HOLD"
  | "REQUEUE_FED"
  | "RESV_DEL_HOLD"
  | "CONFIGURING"
  | "RESIZING"
  | "REVOKED"
  | "SIGNALING"
  | "SPECIAL_EXIT"
  | "STAGE_OUT"
  | "STOPPED"
  | (string & {});

/**
 * pending: waiting (queued, held, or requeued and waiting out its BeginTime);
 * active: has or may still have processes (running, completing, suspended…);
 * finished: ended for good unless someone requeues it.
 */
export type JobPhase = "pending" | "active" | "finished";

const PENDING_STATES = new Set(["PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD"]);
const FINISHED_STATES = new Set([
  "COMPLETED",
  "CANCELLED",
  "FAILED",
  "TIMEOUT",
  "NODE_FAIL",
  "PREEMPTED",
  "BOOT_FAIL",
  "DEADLINE",
  "OUT_OF_MEMORY",
  "SPECIAL_EXIT",
  "REVOKED",
]);

export function jobPhase(state: JobStateName): JobPhase {
  if (PENDING_STATES.has(state)) return "pending";
  if (FINISHED_STATES.has(state)) return "finished";
  return "active";
}

export interface JobInfo {
  /** The id to address this record with: "123", "123_4" (array task), "123_[5-7]" (tasks not started). */
  jobId: string;
  /** Slurm's own id of the record (an array task has one of its own). */
  internalId: JobId;
  /** For an array: the array's id and this record's task id ("4", or "5-7" for tasks not yet started). */
  arrayJobId: JobId | null;
  arrayTaskId: string | null;
  name: string;
  state: JobStateName;
  phase: JobPhase;
  /** Why it waits or ended: "None", "Dependency", "BeginTime", "JobHeldUser", "NonZeroExitCode"… */
  reason: string;
  /** How many times it was requeued (the job sees it as SLURM_RESTART_COUNT). */
  restartCount: number;
  /** Pending with priority 0: held (scontrol hold / requeuehold / sbatch --hold). */
  held: boolean;
  /** Exit status and terminating signal of the batch script; null where the source does not say (squeue). */
  exitCode: { status: number; signal: number } | null;
  /** Every field of the record as Slurm printed it (scontrol only; empty from squeue). */
  fields: Readonly<Record<string, string>>;
}

/**
 * One `scontrol show job -o` line as fields. Values may contain spaces (JobName, Command, WorkDir,
 * StdOut, Comment), so a field ends only where the next ` Key=` begins; keys start upper-case.
 */
export function parseScontrolFields(line: string): Record<string, string> {
  const fields: Record<string, string> = {};
  const keys = [...line.matchAll(/(?:^| )([A-Z][A-Za-z0-9_:/]*)=/g)];
  for (let i = 0; i < keys.length; i++) {
    const match = keys[i] as RegExpMatchArray;
    const start = (match.index as number) + match[0].length;
    const next = keys[i + 1];
    const end = next === undefined ? line.length : (next.index as number);
    fields[match[1] as string] = line.slice(start, end).trimEnd();
  }
  return fields;
}

/** A record from parsed scontrol fields; a SlurmError when one the callers rely on is missing. */
export function jobInfoFromFields(fields: Readonly<Record<string, string>>): JobInfo {
  const required = ["JobId", "JobName", "JobState", "Reason", "Restarts", "ExitCode", "Priority"] as const;
  const missing = required.filter((key) => fields[key] === undefined);
  if (missing.length > 0) {
    throw new SlurmError(
      "scontrol",
      `scontrol show job: record without ${missing.join(", ")}: ${JSON.stringify(fields.JobId ?? "?")}`,
      "",
      EXIT.failure,
    );
  }
  const get = (key: (typeof required)[number]): string => fields[key] as string;
  const [status = "0", signal = "0"] = get("ExitCode").split(":");
  const arrayJobId = fields.ArrayJobId ?? null;
  const arrayTaskId = fields.ArrayTaskId ?? null;
  const state = get("JobState");
  return {
    jobId: arrayId(arrayJobId, arrayTaskId) ?? get("JobId"),
    internalId: get("JobId"),
    arrayJobId,
    arrayTaskId,
    name: get("JobName"),
    state,
    phase: jobPhase(state),
    reason: get("Reason"),
    restartCount: Number(get("Restarts")),
    held: jobPhase(state) === "pending" && get("Priority") === "0",
    exitCode: { status: Number(status), signal: Number(signal) },
    fields,
  };
}

function arrayId(arrayJobId: string | null, taskId: string | null): string | null {
  if (arrayJobId === null || taskId === null) return null;
  return /^\d+$/.test(taskId) ? `${arrayJobId}_${taskId}` : `${arrayJobId}_[${taskId}]`;
}

/**
 * Every record of a job: one for a plain job, one per task (and one per range of tasks not started)
 * for an array id, one for "123_4". [] when Slurm does not know the id (never submitted, or
 * finished longer than MinJobAge ago).
 */
export async function showJob(jobId: JobId): Promise<JobInfo[]> {
  checkJobId(jobId, "scontrol show job");
  const result = await runSlurmTool("scontrol", ["show", "job", "-o", jobId]);
  if (result.exitCode !== 0) {
    if (/Invalid job id specified/i.test(result.stderr)) return [];
    throw new SlurmError(
      "scontrol",
      `scontrol show job ${jobId}: ${slurmErrorText(result.stderr) || `exit code ${result.exitCode}`}`,
      result.stderr,
      EXIT.failure,
    );
  }
  return result.stdout
    .split("\n")
    .filter((line) => line.trim() !== "" && line.startsWith("JobId="))
    .map((line) => jobInfoFromFields(parseScontrolFields(line)));
}

/** squeue fields, each ended by a unit separator, which no name or reason contains. */
const SEP = "\x1f";
const SQUEUE_FIELDS = [
  "JobArrayID",
  "ArrayJobID",
  "ArrayTaskID",
  "JobID",
  "Name",
  "State",
  "Reason",
  "RestartCnt",
];

export interface ListFilter {
  /** Jobs with exactly this name (`squeue --name`). */
  name?: string;
  jobIds?: readonly JobId[];
  /** Only jobs Slurm still runs or queues (default: also those finished within MinJobAge). */
  unfinishedOnly?: boolean;
}

/** Jobs matching the filter, one record per array task, from squeue (exitCode null, fields empty). */
export async function listJobs(filter: ListFilter): Promise<JobInfo[]> {
  const args = ["--noheader", "--array", `--Format=${SQUEUE_FIELDS.map((f) => `${f}:${SEP}`).join(",")}`];
  if (filter.unfinishedOnly !== true) args.push("--states=all");
  if (filter.name !== undefined) {
    // squeue --name takes a comma-separated list: a comma would make it match other names.
    if (filter.name === "" || filter.name.includes(",")) {
      throw new UserError(
        `squeue --name: ${JSON.stringify(filter.name)}: expected one job name without commas`,
      );
    }
    args.push(`--name=${filter.name}`);
  }
  if (filter.jobIds !== undefined) {
    if (filter.jobIds.length === 0) return [];
    for (const id of filter.jobIds) checkJobId(id, "squeue --jobs");
    args.push(`--jobs=${filter.jobIds.join(",")}`);
  }
  const result = await runSlurmTool("squeue", args);
  if (result.exitCode !== 0) {
    // One id Slurm no longer knows fails the whole query ("Invalid job id specified"): ask per id.
    if (/Invalid job id specified/i.test(result.stderr)) {
      const ids = filter.jobIds ?? [];
      if (ids.length <= 1) return [];
      const each = await Promise.all(ids.map((id) => listJobs({ ...filter, jobIds: [id] })));
      return each.flat();
    }
    throw new SlurmError(
      "squeue",
      `squeue: ${slurmErrorText(result.stderr) || `exit code ${result.exitCode}`}`,
      result.stderr,
      EXIT.failure,
    );
  }
  return result.stdout
    .split("\n")
    .filter((line) => line.includes(SEP))
    .map((line) => {
      const [
        display = "",
        arrayJob = "",
        task = "",
        internal = "",
        name = "",
        state = "",
        reason = "",
        restarts = "0",
      ] = line.split(SEP);
      const isArray = task !== "N/A" && task !== "";
      return {
        jobId: display,
        internalId: internal,
        arrayJobId: isArray ? arrayJob : null,
        arrayTaskId: isArray ? task : null,
        name,
        state,
        phase: jobPhase(state),
        reason,
        restartCount: Number(restarts),
        held: jobPhase(state) === "pending" && /Held/i.test(reason),
        exitCode: null,
        fields: {},
      };
    });
}
