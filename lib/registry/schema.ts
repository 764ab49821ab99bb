/**
 * The run registry's tables (docs/daemon.md#the-registry). `runs` holds one row per submitted run,
 * updated as it moves; `events` is append-only (triggers refuse UPDATE and DELETE): every state
 * change, log line, heartbeat and checkpoint of a run, numbered per run (`seq`, from 1, without
 * gaps) and overall (`id`). No blobs: logs and checkpoints stay files and the registry holds their
 * paths; JSON columns are text.
 */
export const SCHEMA_VERSION = 1;

export const SCHEMA = `
CREATE TABLE IF NOT EXISTS runs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  status TEXT NOT NULL,
  kind TEXT NOT NULL,
  name TEXT,
  config TEXT NOT NULL,
  config_digest TEXT NOT NULL,
  slots_requested INTEGER NOT NULL,
  submitted_at TEXT NOT NULL,
  started_at TEXT,
  finished_at TEXT,
  last_heartbeat TEXT,
  gpu_slots TEXT,
  exit_code INTEGER,
  failure_reason TEXT,
  log_path TEXT NOT NULL,
  artifact_manifest TEXT NOT NULL DEFAULT '{}',
  attempts INTEGER NOT NULL DEFAULT 0,
  pid INTEGER,
  pid_start TEXT,
  log_offset INTEGER NOT NULL DEFAULT 0,
  stop_reason TEXT,
  last_step INTEGER,
  dropped_lines INTEGER NOT NULL DEFAULT 0,
  last_seq INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs (status, id);
CREATE TABLE IF NOT EXISTS events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  run_id INTEGER NOT NULL REFERENCES runs (id),
  seq INTEGER NOT NULL,
  at TEXT NOT NULL,
  type TEXT NOT NULL,
  data TEXT NOT NULL,
  UNIQUE (run_id, seq)
);
-- A run's page asks for its few state/start/checkpoint/heartbeat events among millions of lines.
CREATE INDEX IF NOT EXISTS events_by_type ON events (run_id, type, seq);
CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events
  BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events
  BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
`;

/** Where a run stands. `interrupted`: its process group was gone when the daemon came back (queued again with --auto-resume). */
export const RUN_STATUSES = [
  "queued",
  "running",
  "finished",
  "failed",
  "stopped",
  "interrupted",
  "cancelled",
] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];

/** Statuses a run never leaves by itself. */
export const FINAL_STATUSES: ReadonlySet<RunStatus> = new Set([
  "finished",
  "failed",
  "stopped",
  "interrupted",
  "cancelled",
]);

export interface RunRow {
  id: number;
  status: RunStatus;
  kind: string;
  name: string | null;
  /** The normalised submission, JSON. */
  config: string;
  config_digest: string;
  slots_requested: number;
  submitted_at: string;
  started_at: string | null;
  finished_at: string | null;
  last_heartbeat: string | null;
  /** JSON array of the device ids (or CPU slot names) it holds while running. */
  gpu_slots: string | null;
  exit_code: number | null;
  failure_reason: string | null;
  log_path: string;
  /** JSON: where its outputs are (folders, the last checkpoint and metadata file of each stage). */
  artifact_manifest: string;
  attempts: number;
  /** Its process group leader, and that process's start time (so a recycled pid is told apart). */
  pid: number | null;
  pid_start: string | null;
  /** Bytes of its log turned into events so far: a daemon that restarts follows on from here. */
  log_offset: number;
  stop_reason: string | null;
  last_step: number | null;
  dropped_lines: number;
  last_seq: number;
}

export interface EventRow {
  id: number;
  run_id: number;
  seq: number;
  at: string;
  type: string;
  /** JSON object. */
  data: string;
}

/** Columns a write may set (id and last_seq are the registry's own). */
export const UPDATABLE_COLUMNS = [
  "status",
  "name",
  "started_at",
  "finished_at",
  "last_heartbeat",
  "gpu_slots",
  "exit_code",
  "failure_reason",
  "artifact_manifest",
  "attempts",
  "pid",
  "pid_start",
  "log_offset",
  "stop_reason",
  "last_step",
  "dropped_lines",
] as const;
export type RunPatch = Partial<Pick<RunRow, (typeof UPDATABLE_COLUMNS)[number]>>;

export type NewRun = Pick<
  RunRow,
  "status" | "kind" | "name" | "config" | "config_digest" | "slots_requested" | "submitted_at"
> & { log_path(id: number): string };
