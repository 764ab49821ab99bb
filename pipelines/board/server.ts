/*
 * The built-in scalar board: TensorBoard's scalar endpoints and a page of charts over one logdir,
 * followed live. `createBoardHandler` gives the request handler alone, for a server that serves
 * more (the daemon mounts it, adds its own routes before the board's and more panels to the page);
 * `createBoardServer` wraps it in an HTTP server of its own.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { resolve } from "node:path";
import { listenOnce } from "../../lib/http/listen.ts";
import { urlFor } from "../../lib/tensorboard/address.ts";
import { type LogdirLog, LogdirScalars } from "../../lib/tensorboard/logdir-scalars.ts";
import { admit } from "./access.ts";
import { pageRoutes } from "./assets.ts";
import { boardRoutes } from "./board-routes.ts";
import { ChangeFeed } from "./feed.ts";
import { dispatch, type Route } from "./http.ts";
import { tensorBoardRoutes } from "./tensorboard-routes.ts";

export type { Route } from "./http.ts";

export const DEFAULT_BOARD_HOST = "127.0.0.1";

export interface BoardHandlerOptions {
  logdir: string;
  /** The address the server is bound to (for the loopback-only Host check); default 127.0.0.1. */
  host?: string;
  /** When set, every request must carry this token (see access.ts). */
  token?: string;
  /** Routes answered before the board's own (a daemon's API and its panels' scripts). */
  extraRoutes?: Route[];
  /** Script URLs of further panels for the page (served by extraRoutes); see page/panels.ts. */
  panelScripts?: string[];
  title?: string;
  /** Full re-scan period (default 5 s) and file watching (default on), passed to LogdirScalars. */
  reloadIntervalMs?: number;
  watch?: boolean;
  tornGraceMs?: number;
  /** How long changes are gathered before the event stream sends them (default 150 ms). */
  feedFlushMs?: number;
  log?: LogdirLog;
}

export interface BoardHandler {
  handle(req: IncomingMessage, res: ServerResponse): void;
  /** Every route it answers, extraRoutes first: for a host with a router of its own (the daemon's). */
  routes: readonly Route[];
  scalars: LogdirScalars;
  feed: ChangeFeed;
  /** Resolves when the logdir's first full load is done (the handler answers before). */
  loaded: Promise<void>;
  close(): Promise<void>;
}

export function createBoardHandler(options: BoardHandlerOptions): BoardHandler {
  const log = options.log ?? (() => {});
  const scalars = new LogdirScalars({
    logdir: resolve(options.logdir),
    log,
    ...(options.reloadIntervalMs !== undefined ? { reloadIntervalMs: options.reloadIntervalMs } : {}),
    ...(options.watch !== undefined ? { watch: options.watch } : {}),
    ...(options.tornGraceMs !== undefined ? { tornGraceMs: options.tornGraceMs } : {}),
  });
  const feed = new ChangeFeed(scalars, options.feedFlushMs);
  const routes: Route[] = [
    ...(options.extraRoutes ?? []),
    ...tensorBoardRoutes(scalars),
    ...boardRoutes(scalars, feed),
    ...pageRoutes({ title: options.title ?? "Baton board", panelScripts: options.panelScripts ?? [] }),
  ];
  const rules = { bindHost: options.host ?? DEFAULT_BOARD_HOST, token: options.token };
  const loaded = scalars.start();
  loaded.catch((error: unknown) =>
    log(`warning: loading ${scalars.logdir} failed: ${String(error)}`, "warn"),
  );

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? "/", "http://board.invalid");
    if (!admit(req, res, url, rules)) return;
    dispatch(routes, req, res, url, (line) => log(line, "warn"));
  };

  return {
    handle,
    routes,
    scalars,
    feed,
    loaded,
    close: async () => {
      feed.close();
      await scalars.close();
    },
  };
}

export interface BoardServerOptions extends BoardHandlerOptions {
  /** Port to listen on; 0 (the default) takes any free port. */
  port?: number;
}

export interface BoardServer extends BoardHandler {
  server: Server;
  host: string;
  port: number;
  url: string;
}

/** Listen on host:port (127.0.0.1 by default); rejects with the listen error (EADDRINUSE…). */
export async function createBoardServer(options: BoardServerOptions): Promise<BoardServer> {
  const host = options.host ?? DEFAULT_BOARD_HOST;
  const handler = createBoardHandler({ ...options, host });
  const server = createServer(handler.handle);
  server.keepAliveTimeout = 5000;
  try {
    await listenOnce(server, { port: options.port ?? 0, host });
  } catch (error) {
    await handler.close();
    throw error;
  }
  const { port } = server.address() as AddressInfo;
  return {
    ...handler,
    server,
    host,
    port,
    url: urlFor(host, port),
    close: async () => {
      await handler.close(); // ends the event streams, which would otherwise hold the server open
      server.closeAllConnections();
      await new Promise<void>((done) => server.close(() => done()));
    },
  };
}
