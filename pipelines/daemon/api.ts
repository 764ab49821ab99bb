/**
 * The daemon's HTTP API, version 1 (docs/daemon.md#api): the one source of truth for the CLI, a
 * dashboard and scripts. Plain routes (pipelines/board/http.ts's Route), so the board's handler can
 * serve them beside its own (createBoardHandler({ extraRoutes })).
 *
 *   GET  /api/v1/health                  version, pid, uptime, slots, queue, registry and stream figures
 *   GET  /api/v1/schema                  the submission JSON Schema
 *   GET  /api/v1/runs?status=&limit=&before=   runs (each with its current stage) and the newest event id
 *   POST /api/v1/runs                    submit (application/json) → 201 the run; 400 naming the field
 *   GET  /api/v1/runs/:id
 *   POST /api/v1/runs/:id/stop           {"reason": "…"} → 202 the run
 *   POST /api/v1/runs/:id/resubmit       its stored config again, as a new run → 201 the new run
 *   GET  /api/v1/runs/:id/details        timeline, checkpoints, evaluations, sweep table (details.ts)
 *   GET  /api/v1/runs/:id/events?after=&limit=     stored events, JSON
 *   GET  /api/v1/runs/:id/events/stream  SSE: replay after Last-Event-ID / ?after=, then live
 *   GET  /api/v1/runs/:id/log?offset=&limit=       the log file's bytes (x-log-size, x-next-offset)
 *   GET  /api/v1/events/stream           SSE of every run's events (ids: global), ?types=state,…
 */
import { open } from "node:fs/promises";
import type { IncomingMessage } from "node:http";
import { UserError } from "../../lib/cli/errors.ts";
import { RUN_STATUSES, type RunRegistry, type RunRow, type RunStatus } from "../../lib/registry/index.ts";
import { HttpError, type Route, readBody, send, sendJson } from "../board/http.ts";
import { runDetails } from "./details.ts";
import type { RunManager } from "./runs.ts";
import type { SlotPool } from "./slots.ts";
import type { EventStreams } from "./streams.ts";
import { toMessage } from "./streams.ts";
import { SUBMISSION_SCHEMA } from "./submission/schema.ts";
import { runView } from "./view.ts";

export const API = "/api/v1";
const MAX_LOG_CHUNK = 8 * 1024 * 1024;

export interface ApiSettings {
  registry: RunRegistry;
  runs: RunManager;
  slots: SlotPool;
  streams: EventStreams;
  health(): Record<string, unknown>;
}

export function apiRoutes(s: ApiSettings): Route[] {
  const json = (res: Parameters<Route["handle"]>[1], status: number, body: unknown): void =>
    send(res, status, "application/json", `${JSON.stringify(body)}\n`);
  const run = (url: URL): RunRow => {
    const id = Number(/\/runs\/(\d+)/.exec(url.pathname)?.[1]);
    const found = Number.isSafeInteger(id) ? s.registry.getRun(id) : undefined;
    if (found === undefined) throw new HttpError(404, `no run ${/\/runs\/([^/]+)/.exec(url.pathname)?.[1]}`);
    return found;
  };
  /** A run with the stage it is at (its newest trainer start or heartbeat). */
  const listed = (row: RunRow) => {
    const last = s.registry.lastEventOfTypes(row.id, ["start", "heartbeat"]);
    const stage = last === undefined ? null : (JSON.parse(last.data) as { stage?: string | null }).stage;
    return { ...runView(row), stage: stage ?? null };
  };
  return [
    { path: `${API}/health`, handle: (_req, res) => json(res, 200, s.health()) },
    { path: `${API}/schema`, handle: (_req, res) => json(res, 200, SUBMISSION_SCHEMA) },
    {
      path: `${API}/runs`,
      handle(_req, res, url) {
        const status = url.searchParams.get("status");
        if (status !== null && !RUN_STATUSES.includes(status as RunStatus)) {
          throw new HttpError(400, `status: expected one of ${RUN_STATUSES.join(", ")}`);
        }
        const runs = s.registry.listRuns({
          status: (status as RunStatus | null) ?? undefined,
          limit: whole(url, "limit", 100, 1000),
          beforeId: whole(url, "before", Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER),
        });
        // Read in one turn: a stream opened with ?after=last_event misses nothing of what follows.
        json(res, 200, { runs: runs.map(listed), last_event: s.registry.lastEventId() });
      },
    },
    {
      method: "POST",
      path: `${API}/runs`,
      async handle(req, res) {
        const body = await jsonBody(req);
        try {
          json(res, 201, runView(s.runs.submit(body)));
        } catch (error) {
          if (error instanceof UserError) throw new HttpError(400, error.message);
          throw error;
        }
      },
    },
    { path: /^\/api\/v1\/runs\/\d+$/, handle: (_req, res, url) => json(res, 200, listed(run(url))) },
    {
      path: /^\/api\/v1\/runs\/\d+\/details$/,
      handle: async (_req, res, url) => json(res, 200, await runDetails(s.registry, run(url))),
    },
    {
      method: "POST",
      path: /^\/api\/v1\/runs\/\d+\/resubmit$/,
      async handle(req, res, url) {
        await jsonBody(req); // {} — a JSON body, so no page elsewhere can ask for one
        try {
          json(res, 201, listed(s.runs.resubmit(run(url).id)));
        } catch (error) {
          if (error instanceof UserError) throw new HttpError(400, error.message);
          throw error;
        }
      },
    },
    {
      method: "POST",
      path: /^\/api\/v1\/runs\/\d+\/stop$/,
      async handle(req, res, url) {
        const body = (await jsonBody(req, true)) as { reason?: unknown } | null;
        const reason = body?.reason ?? "asked through the API";
        if (typeof reason !== "string" || reason.length > 500) {
          throw new HttpError(400, "reason: expected a string of at most 500 characters");
        }
        json(res, 202, runView(s.runs.stop(run(url).id, reason)));
      },
    },
    {
      path: /^\/api\/v1\/runs\/\d+\/events$/,
      handle(_req, res, url) {
        const found = run(url);
        const events = s.registry.eventsAfter(
          found.id,
          whole(url, "after", 0, Number.MAX_SAFE_INTEGER),
          whole(url, "limit", 500, 5000),
        );
        sendJson(res, `{"events":[${events.map(toMessage).join(",")}]}\n`);
      },
    },
    {
      path: /^\/api\/v1\/runs\/\d+\/events\/stream$/,
      handle: (req, res, url) => s.streams.serve(req, res, url, run(url).id),
    },
    { path: `${API}/events/stream`, handle: (req, res, url) => s.streams.serve(req, res, url, null) },
    {
      path: /^\/api\/v1\/runs\/\d+\/log$/,
      async handle(_req, res, url) {
        const found = run(url);
        const offset = whole(url, "offset", 0, Number.MAX_SAFE_INTEGER);
        const limit = whole(url, "limit", MAX_LOG_CHUNK, MAX_LOG_CHUNK);
        let bytes = Buffer.alloc(0);
        let size = 0;
        const handle = await open(found.log_path, "r").catch(() => null);
        if (handle !== null) {
          try {
            size = (await handle.stat()).size;
            const length = Math.max(0, Math.min(limit, size - offset));
            bytes = Buffer.alloc(length);
            if (length > 0) await handle.read(bytes, 0, length, offset);
          } finally {
            await handle.close();
          }
        }
        send(res, 200, "text/plain; charset=utf-8", bytes, {
          "x-log-size": String(size),
          "x-next-offset": String(offset + bytes.byteLength),
        });
      },
    },
  ];
}

/** A JSON request body; only application/json is read (a page elsewhere cannot post one without CORS, which this API never grants). */
async function jsonBody(req: IncomingMessage, optional = false): Promise<unknown> {
  const text = await readBody(req, 1 << 20);
  if (optional && text.trim() === "") return null;
  const type = req.headers["content-type"] ?? "";
  if (!/^application\/json\b/i.test(type)) {
    throw new HttpError(415, "expected a JSON body (content-type: application/json)");
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new HttpError(400, `the body is not JSON: ${(error as Error).message}`);
  }
}

function whole(url: URL, name: string, fallback: number, max: number): number {
  const text = url.searchParams.get(name);
  if (text === null || text === "") return fallback;
  if (!/^\d+$/.test(text))
    throw new HttpError(400, `${name}: expected a whole number, got ${JSON.stringify(text)}`);
  return Math.min(Number(text), max);
}
