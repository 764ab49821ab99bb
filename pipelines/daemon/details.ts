/**
 * What a run's page on the dashboard shows beyond the run's row (GET /api/v1/runs/:id/details),
 * read from what already records it: the stage timeline from the run's stored events (each
 * attempt, each trainer session with what it started from, the last heartbeat per stage), its
 * checkpoints from the stage folders (the checkpoint store's cheap rules, the sweep queue's pins),
 * its evaluations from the stages' metadata.json, the pipeline's own record, and the DPO sweep's
 * table (SFT step → metrics) from the sweep queue. A file that cannot be read is a problem in the
 * answer, not an error.
 */
import { existsSync } from "node:fs";
import { dirname } from "node:path";
import { readRunMetadata, runMetadataPath } from "../../lib/metadata/run-metadata.ts";
import type { RunRegistry, RunRow } from "../../lib/registry/index.ts";
import { STAGE_NAMES } from "../../lib/stages/table.ts";
import { checkpointListing, type ListedCheckpoint } from "../ckpt/listing.ts";
import { readRunRecord } from "../pipeline/run-record.ts";
import { metricNames, type ReportRow, sweepReportRows } from "../sweep/report.ts";
import type { Manifest } from "./supervisor.ts";

const TIMELINE_TYPES = ["state", "start", "stop", "stalled", "adopted"] as const;

export interface TimelineEntry {
  seq: number;
  at: string;
  type: (typeof TIMELINE_TYPES)[number];
  /** The attempt (a dispatch of the run) it belongs to. */
  attempt: number;
  stage?: string | null;
  status?: string;
  /** start: the checkpoint or weights the session started from; null: random weights. */
  from?: string | null;
  /** start: a later session of a stage this attempt or an earlier one already started. */
  resumed?: boolean;
  reason?: string;
}

export interface StageSummary {
  stage: string;
  sessions: number;
  last_step: number | null;
  heartbeats: number;
  last_heartbeat: string | null;
  /** The pipeline record's view of it (pipeline.json), when there is one. */
  state: string | null;
  decision: string | null;
}

export interface RunDetails {
  id: number;
  status: string;
  timeline: TimelineEntry[];
  stages: StageSummary[];
  checkpoints: Array<{
    stage: string;
    ckpt_dir: string;
    queue: string;
    checkpoints: Array<Omit<ListedCheckpoint, "path" | "state" | "mtime"> & { mtime: string }>;
  }>;
  evaluations: Array<{
    stage: string;
    path: string;
    state: string;
    global_step: number;
    evaluation: Record<string, number> | null;
  }>;
  sweep: { queue_file: string; dpo_root: string; metrics: string[]; rows: ReportRow[] } | null;
  problems: string[];
}

function manifestOf(run: RunRow): Manifest {
  return { checkpoints: {}, metadata: {}, ...(JSON.parse(run.artifact_manifest) as Partial<Manifest>) };
}

function ordered(stages: Iterable<string>): string[] {
  const names = new Set(stages);
  const known = STAGE_NAMES.filter((stage) => names.has(stage));
  return [...known, ...[...names].filter((stage) => !known.includes(stage as never)).sort()];
}

function timeline(registry: RunRegistry, run: RunRow): TimelineEntry[] {
  const entries: TimelineEntry[] = [];
  const started = new Set<string>();
  let attempt = 0;
  for (const event of registry.eventsOfTypes(run.id, TIMELINE_TYPES, 5000)) {
    const data = JSON.parse(event.data) as Record<string, unknown>;
    if (event.type === "state" && data.status === "running") attempt = Number(data.attempt) || attempt + 1;
    const entry: TimelineEntry = {
      seq: event.seq,
      at: event.at,
      type: event.type as TimelineEntry["type"],
      attempt,
    };
    if (typeof data.status === "string") entry.status = data.status;
    if (typeof data.reason === "string") entry.reason = data.reason;
    if (event.type === "start") {
      const stage = typeof data.stage === "string" ? data.stage : null;
      entry.stage = stage;
      entry.from = typeof data.from === "string" ? data.from : null;
      entry.resumed = started.has(stage ?? "") || (entry.from ?? "").includes("step_");
      started.add(stage ?? "");
    }
    entries.push(entry);
  }
  return entries;
}

async function stageSummaries(
  registry: RunRegistry,
  run: RunRow,
  manifest: Manifest,
  entries: TimelineEntry[],
  problems: string[],
): Promise<StageSummary[]> {
  const beats = new Map(
    registry.groupedMax(run.id, "heartbeat", "stage", "step").map((row) => [row.key ?? "", row]),
  );
  const recordFile = manifest.record_file;
  // readRunRecord answers null for a missing file and for a damaged one: only the second is a problem.
  const recorded = recordFile !== undefined && existsSync(recordFile);
  const record = recorded ? await readRunRecord(recordFile) : null;
  if (recorded && record === null) problems.push(`${recordFile}: not a pipeline record`);
  const steps = new Map((record?.stages ?? []).map((step) => [step.stage as string, step]));
  const names = ordered([
    ...entries.flatMap((e) => (e.type === "start" && e.stage ? [e.stage] : [])),
    ...[...beats.keys()].filter(Boolean),
    ...[...steps.values()].filter((s) => s.state !== "pending" && s.stage !== "infer").map((s) => s.stage),
  ]);
  return names.map((stage) => {
    const beat = beats.get(stage);
    const step = steps.get(stage);
    return {
      stage,
      sessions: entries.filter((e) => e.type === "start" && e.stage === stage).length,
      last_step: beat?.max ?? null,
      heartbeats: beat?.count ?? 0,
      last_heartbeat: beat?.last_at ?? null,
      state: step?.state ?? null,
      decision: step?.decision ?? null,
    };
  });
}

/** Each stage's checkpoints folder: as the run's settings name it, else beside a checkpoint it announced. */
function checkpointDirs(manifest: Manifest): Map<string, string> {
  const dirs = new Map<string, string>();
  for (const [stage, { ckpt_dir }] of Object.entries(manifest.stages ?? {})) dirs.set(stage, ckpt_dir);
  for (const [stage, path] of Object.entries(manifest.checkpoints))
    if (!dirs.has(stage)) dirs.set(stage, dirname(path));
  return dirs;
}

export async function runDetails(registry: RunRegistry, run: RunRow): Promise<RunDetails> {
  const manifest = manifestOf(run);
  const problems: string[] = [];
  const attempt = async <T>(what: string, body: () => Promise<T>): Promise<T | null> => {
    try {
      return await body();
    } catch (error) {
      problems.push(`${what}: ${error instanceof Error ? error.message : String(error)}`);
      return null;
    }
  };
  const entries = timeline(registry, run);
  const details: RunDetails = {
    id: run.id,
    status: run.status,
    timeline: entries,
    stages: await stageSummaries(registry, run, manifest, entries, problems),
    checkpoints: [],
    evaluations: [],
    sweep: null,
    problems,
  };
  const dirs = checkpointDirs(manifest);
  for (const stage of ordered(dirs.keys())) {
    const ckptDir = dirs.get(stage) as string;
    if (!existsSync(ckptDir)) continue;
    const listing = await attempt(ckptDir, () => checkpointListing(ckptDir));
    if (listing === null || listing.checkpoints.length === 0) continue;
    if (listing.queueProblem) problems.push(listing.queueProblem);
    details.checkpoints.push({
      stage,
      ckpt_dir: ckptDir,
      queue: listing.queue,
      checkpoints: listing.checkpoints.map(({ path: _path, state: _state, mtime, ...c }) => ({
        ...c,
        mtime: mtime.toISOString(),
      })),
    });
  }
  const metadataFiles = new Map(Object.entries(manifest.metadata));
  for (const [stage, { out_dir }] of Object.entries(manifest.stages ?? {}))
    if (!metadataFiles.has(stage)) metadataFiles.set(stage, runMetadataPath(out_dir));
  for (const stage of ordered(metadataFiles.keys())) {
    const path = metadataFiles.get(stage) as string;
    const metadata = await attempt(path, () => readRunMetadata(path));
    if (metadata === null) continue;
    details.evaluations.push({
      stage,
      path,
      state: metadata.state,
      global_step: metadata.global_step,
      evaluation: metadata.evaluation,
    });
  }
  const sweep = manifest.sweep;
  if (sweep !== undefined && (run.kind === "sweep" || existsSync(sweep.queue_file))) {
    const rows = await attempt(sweep.queue_file, () => sweepReportRows(sweep.queue_file, sweep.dpo_root));
    if (rows !== null) details.sweep = { ...sweep, metrics: metricNames(rows), rows };
  }
  return details;
}
