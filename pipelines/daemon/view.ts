/** A run as the API shows it: the registry's row with its JSON columns as JSON. */
import type { RunRow } from "../../lib/registry/index.ts";

export interface RunView {
  id: number;
  status: RunRow["status"];
  kind: string;
  name: string | null;
  config: unknown;
  config_digest: string;
  slots_requested: number;
  gpu_slots: string[] | null;
  submitted_at: string;
  started_at: string | null;
  finished_at: string | null;
  last_heartbeat: string | null;
  last_step: number | null;
  attempts: number;
  pid: number | null;
  exit_code: number | null;
  failure_reason: string | null;
  stop_reason: string | null;
  log_path: string;
  log_offset: number;
  dropped_lines: number;
  last_seq: number;
  artifact_manifest: unknown;
}

export function runView(run: RunRow): RunView {
  return {
    id: run.id,
    status: run.status,
    kind: run.kind,
    name: run.name,
    config: JSON.parse(run.config),
    config_digest: run.config_digest,
    slots_requested: run.slots_requested,
    gpu_slots: run.gpu_slots === null ? null : (JSON.parse(run.gpu_slots) as string[]),
    submitted_at: run.submitted_at,
    started_at: run.started_at,
    finished_at: run.finished_at,
    last_heartbeat: run.last_heartbeat,
    last_step: run.last_step,
    attempts: run.attempts,
    pid: run.pid,
    exit_code: run.exit_code,
    failure_reason: run.failure_reason,
    stop_reason: run.stop_reason,
    log_path: run.log_path,
    log_offset: run.log_offset,
    dropped_lines: run.dropped_lines,
    last_seq: run.last_seq,
    artifact_manifest: JSON.parse(run.artifact_manifest),
  };
}
