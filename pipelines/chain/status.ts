/**
 * `--status` and `--cancel`: where the stages of the last run into OUT_DIR stand (with each job's
 * state, asked of the executor that ran it), and cancelling its jobs — nothing is trained.
 */
import { EXIT } from "../../lib/cli/errors.ts";
import { writeFileAtomic } from "../../lib/fs/atomic.ts";
import { isStageName, type StageName } from "../../lib/stages/table.ts";
import type { ExecutionStatus, Executor } from "../executor/types.ts";
import { PIPELINE, say, show, tag } from "../pipeline/context.ts";
import type { RunRecord } from "../pipeline/run-record.ts";
import type { PipelineSettings } from "../pipeline/settings.ts";

/** Jobs of a record, by stage, with where each stands now. */
export async function jobsOf(
  record: RunRecord | null,
  executor: Executor | null,
): Promise<Map<StageName, { id: string; log: string; status: ExecutionStatus | null }>> {
  const jobs = new Map<StageName, { id: string; log: string; status: ExecutionStatus | null }>();
  if (record === null) return jobs;
  for (const step of record.stages) {
    if (isStageName(step.stage) && typeof step.job_id === "string") {
      jobs.set(step.stage, { id: step.job_id, log: step.log ?? "", status: null });
    }
  }
  if (executor?.inspect !== undefined && jobs.size > 0) {
    const statuses = await executor.inspect([...jobs.values()].map((j) => j.id));
    for (const job of jobs.values()) job.status = statuses.find((s) => s.id === job.id) ?? null;
  }
  return jobs;
}

/** Jobs still queued or running. */
export function openOnes<T extends { status: ExecutionStatus | null }>(
  jobs: ReadonlyMap<StageName, T>,
): Map<StageName, T> {
  return new Map(
    [...jobs].filter(([, job]) => job.status?.phase === "waiting" || job.status?.phase === "running"),
  );
}

export async function statusCommand(
  settings: PipelineSettings,
  record: RunRecord | null,
  executor: Executor | null,
): Promise<number> {
  if (record === null) {
    say(`${tag(PIPELINE)} no run recorded in ${show(settings.recordFile)}`);
    return EXIT.ok;
  }
  const jobs = await jobsOf(record, executor);
  say(
    `${tag(PIPELINE)} ${show(settings.recordFile)}: run started ${record.started_at} (${record.executor ?? "local"}), ${record.state}` +
      (record.exit_code === null ? "" : ` with exit ${record.exit_code}`),
  );
  for (const step of record.stages) {
    const job = isStageName(step.stage) ? jobs.get(step.stage) : undefined;
    const where = job
      ? `job ${job.id} ${job.status?.state ?? "?"}`
      : step.pid !== null
        ? `pid ${step.pid}`
        : "";
    const note =
      step.message ?? (step.state === "pending" || step.state === "skipped" ? step.decision : null);
    say(
      `  ${step.stage.padEnd(9)}${step.state.padEnd(12)}${where}${note ? `${where ? " — " : ""}${note}` : ""}`,
    );
  }
  return EXIT.ok;
}

export async function cancelCommand(
  settings: PipelineSettings,
  record: RunRecord | null,
  executor: Executor | null,
): Promise<number> {
  const all = await jobsOf(record, executor);
  const jobs = openOnes(all);
  if (record === null || all.size === 0 || executor?.cancel === undefined) {
    say(`${tag(PIPELINE)} nothing to cancel: the run in ${show(settings.recordFile)} has no jobs`);
    return EXIT.ok;
  }
  // Every job of the run: the open ones are cancelled, and no process of any of them may be left.
  const ids = [...all.values()].map((job) => job.id);
  if (jobs.size === 0) {
    await executor.cancel(ids);
    say(
      `${tag(PIPELINE)} nothing to cancel: no job of the run in ${show(settings.recordFile)} is queued or running`,
    );
    return EXIT.ok;
  }
  const list = [...jobs].map(([stage, job]) => `${stage} ${job.id}`).join(", ");
  say(`${tag(PIPELINE)} cancelling ${list}`);
  await executor.cancel(ids);
  for (const step of record.stages) {
    if (isStageName(step.stage) && jobs.has(step.stage)) {
      step.state = "interrupted";
      step.message = "cancelled (--cancel)";
      step.ended_at = new Date().toISOString();
    }
  }
  record.state = "interrupted";
  record.ended_at = new Date().toISOString();
  await writeFileAtomic(settings.recordFile, `${JSON.stringify(record, null, 2)}\n`);
  say(
    `${tag(PIPELINE)} cancelled; their checkpoints are kept: run the same command again to resume from them`,
  );
  return EXIT.ok;
}
