/**
 * The tasks file of the DPO sweep's Slurm job array: written beside the job script by the sweep
 * that submits the array (array.ts), read by each task (array-task.ts). Task i trains queue line
 * `tasks[i].step` with `tasks[i]`'s command — the sweep's own DPO child for that line — so a task
 * needs neither the submitting shell's environment nor its settings.
 */
import { readFile } from "node:fs/promises";
import { UserError } from "../../lib/cli/errors.ts";
import { writeFileAtomic } from "../../lib/fs/atomic.ts";

export const ARRAY_TASKS_FORMAT = "baton-dpo-sweep-array/1";

export interface ArrayTasks {
  format: typeof ARRAY_TASKS_FORMAT;
  queue_file: string;
  sft_metadata_file: string;
  dpo_root: string;
  grace_ms: number;
  stall_timeout_ms: number;
  /** SLURM_MAX_REQUEUES: a task requeues itself after a time-limit save this many times at most. */
  max_requeues: number;
  tasks: Array<{ step: number; file: string; args: string[] }>;
}

export async function writeArrayTasks(path: string, spec: ArrayTasks): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify(spec, null, 2)}\n`);
}

export async function readArrayTasks(path: string): Promise<ArrayTasks> {
  let spec: Partial<ArrayTasks>;
  try {
    spec = JSON.parse(await readFile(path, "utf8")) as Partial<ArrayTasks>;
  } catch (error) {
    throw new UserError(`${path}: cannot read the sweep's array tasks (${(error as Error).message})`);
  }
  if (spec.format !== ARRAY_TASKS_FORMAT || !Array.isArray(spec.tasks)) {
    throw new UserError(`${path}: not a tasks file of the DPO sweep (expected format ${ARRAY_TASKS_FORMAT})`);
  }
  return spec as ArrayTasks;
}
