/** The daemon's API as the dashboard uses it (docs/daemon.md#api); same origin, so the token cookie goes along. */

export interface RunItem {
  id: number;
  status: string;
  kind: string;
  name: string | null;
  config: { args?: string[]; env?: Record<string, string> };
  slots_requested: number;
  gpu_slots: string[] | null;
  submitted_at: string;
  started_at: string | null;
  finished_at: string | null;
  last_heartbeat: string | null;
  last_step: number | null;
  attempts: number;
  exit_code: number | null;
  failure_reason: string | null;
  stop_reason: string | null;
  dropped_lines: number;
  last_seq: number;
  stage: string | null;
}

export interface StreamEvent {
  id: number;
  run: number;
  seq: number;
  at: string;
  type: string;
  data: Record<string, unknown>;
}

export interface Checkpoint {
  name: string;
  step: number;
  valid: boolean;
  reason: string | null;
  bytes: number;
  mtime: string;
  finished: boolean;
  latest: boolean;
  pinned: string | null;
}

export interface TimelineEntry {
  seq: number;
  at: string;
  type: string;
  attempt: number;
  stage?: string | null;
  status?: string;
  from?: string | null;
  resumed?: boolean;
  reason?: string;
}

export interface RunDetails {
  id: number;
  status: string;
  timeline: TimelineEntry[];
  stages: Array<{
    stage: string;
    sessions: number;
    last_step: number | null;
    heartbeats: number;
    last_heartbeat: string | null;
    state: string | null;
    decision: string | null;
  }>;
  checkpoints: Array<{ stage: string; ckpt_dir: string; queue: string; checkpoints: Checkpoint[] }>;
  evaluations: Array<{
    stage: string;
    path: string;
    state: string;
    global_step: number;
    evaluation: Record<string, number> | null;
  }>;
  sweep: {
    queue_file: string;
    dpo_root: string;
    metrics: string[];
    rows: Array<{
      step: number;
      status: string;
      metrics: Record<string, number> | null;
      note: string | null;
    }>;
  } | null;
  problems: string[];
}

const API = "/api/v1";

async function call<T>(method: "GET" | "POST", path: string, body?: unknown): Promise<T> {
  const response = await fetch(`${API}${path}`, {
    method,
    cache: "no-store",
    ...(body === undefined
      ? {}
      : { headers: { "content-type": "application/json" }, body: JSON.stringify(body) }),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text.trim()}`);
  return JSON.parse(text) as T;
}

export const listRuns = () => call<{ runs: RunItem[]; last_event: number }>("GET", "/runs?limit=200");
export const getRun = (id: number) => call<RunItem>("GET", `/runs/${id}`);
export const runDetails = (id: number) => call<RunDetails>("GET", `/runs/${id}/details`);
export const stopRun = (id: number, reason: string) => call<RunItem>("POST", `/runs/${id}/stop`, { reason });
export const resubmitRun = (id: number) => call<RunItem>("POST", `/runs/${id}/resubmit`, {});

/**
 * Follow an event stream (replay, then live). EventSource reconnects by itself, sending the last
 * id it saw (Last-Event-ID), so the daemon picks up exactly after it.
 */
export function follow(
  path: string,
  onEvent: (event: StreamEvent) => void,
  onLive: (live: boolean) => void,
): { close(): void } {
  const source = new EventSource(`${API}${path}`);
  source.addEventListener("message", (message) =>
    onEvent(JSON.parse((message as MessageEvent<string>).data) as StreamEvent),
  );
  source.addEventListener("live", () => onLive(true));
  source.addEventListener("error", () => onLive(false));
  return { close: () => source.close() };
}

export const FINAL = new Set(["finished", "failed", "stopped", "interrupted", "cancelled"]);
