/**
 * The daemon's dashboard (docs/daemon.md#dashboard): the built-in board's page and scalar charts
 * over the out root's event files, with the daemon's API beside them and one more panel — the
 * runs (page/*.ts, bundled and served here like the board's own script: nothing is loaded from
 * elsewhere). Served by the daemon's router, so its Host, token and Origin rules apply to all of it.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { assetRoute, bundleScript } from "../board/assets.ts";
import type { Route } from "../board/http.ts";
import { type BoardHandler, createBoardHandler } from "../board/server.ts";

const PAGE_DIR = join(import.meta.dirname, "page");
const DASHBOARD_SCRIPT = "/assets/dashboard.js";
const DASHBOARD_STYLE = "/assets/dashboard.css";

export interface DashboardOptions {
  /** The folder whose event files the scalar panel shows (the out root). */
  logdir: string;
  host: string;
  token?: string | undefined;
  /** The API's routes, answered before the board's. */
  apiRoutes: Route[];
  log(line: string): void;
}

function dashboardRoutes(): Route[] {
  return [
    assetRoute(DASHBOARD_SCRIPT, "text/javascript; charset=utf-8", () =>
      bundleScript(join(PAGE_DIR, "main.ts")),
    ),
    assetRoute(DASHBOARD_STYLE, "text/css; charset=utf-8", () =>
      readFileSync(join(PAGE_DIR, "dashboard.css")),
    ),
  ];
}

export function createDashboard(options: DashboardOptions): BoardHandler {
  return createBoardHandler({
    logdir: options.logdir,
    host: options.host,
    ...(options.token ? { token: options.token } : {}),
    extraRoutes: [...options.apiRoutes, ...dashboardRoutes()],
    panelScripts: [DASHBOARD_SCRIPT],
    title: "Baton daemon",
    log: (line) => options.log(line),
  });
}
