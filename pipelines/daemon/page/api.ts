/** The daemon's API as the dashboard uses it (docs/daemon.md#api); same origin, so the token cookie goes along. */

import type { RunDetails } from "../details.ts";
import type { RunView } from "../view.ts";

// Types only (erased when the page is bundled): the page reads what the daemon's own modules
// declare they answer, so the two cannot drift apart.
export type { RunDetails, TimelineEntry } from "../details.ts";

/** A run in the list and on its page: the API's run view plus the stage it is in. */
export type RunItem = Omit<RunView, "config"> & {
  config: { args?: string[]; env?: Record<string, string> };
  stage: string | null;
};

export type Checkpoint = RunDetails["checkpoints"][number]["checkpoints"][number];

/** One event of a run's stream, as the daemon sends it (docs/daemon.md#api). */
export interface StreamEvent {
  id: number;
  run: number;
  seq: number;
  at: string;
  type: string;
  data: Record<string, unknown>;
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
