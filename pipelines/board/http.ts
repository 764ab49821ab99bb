/** Small HTTP helpers and the route shape the board (and a daemon mounting it) shares. */
import type { IncomingMessage, ServerResponse } from "node:http";

export interface Route {
  method?: "GET" | "POST" | "PUT" | "DELETE";
  /** Exact pathname, or a pattern tested against it. */
  path: string | RegExp;
  handle(req: IncomingMessage, res: ServerResponse, url: URL): void | Promise<void>;
}

function pathMatches(route: Route, pathname: string): boolean {
  return typeof route.path === "string" ? route.path === pathname : route.path.test(pathname);
}

/** A GET route answers HEAD too. */
function matches(route: Route, method: string, pathname: string): boolean {
  const wanted = route.method ?? "GET";
  return (wanted === method || (method === "HEAD" && wanted === "GET")) && pathMatches(route, pathname);
}

/**
 * Answer a request with the first route that matches its method and path (see runRoute); none: 405
 * when some route has that path (under another method), else 404.
 */
export function dispatch(
  routes: readonly Route[],
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  warn: (line: string) => void,
): void {
  const route = routes.find((candidate) => matches(candidate, req.method ?? "GET", url.pathname));
  if (route) {
    runRoute(req, res, url, route, warn);
    return;
  }
  if (routes.some((candidate) => pathMatches(candidate, url.pathname))) {
    sendError(res, 405, `Method ${req.method} not allowed`);
  } else {
    sendError(res, 404, `Not found: ${url.pathname}`);
  }
}

export function send(
  res: ServerResponse,
  status: number,
  contentType: string,
  body: string | Buffer,
  headers: Record<string, string> = {},
): void {
  const bytes = typeof body === "string" ? Buffer.from(body, "utf8") : body;
  res.writeHead(status, {
    "content-type": contentType,
    "content-length": String(bytes.byteLength),
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    ...headers,
  });
  res.end(res.req?.method === "HEAD" ? undefined : bytes);
}

export function sendJson(res: ServerResponse, body: string, headers: Record<string, string> = {}): void {
  send(res, 200, "application/json", body, headers);
}

/** An error as one line of text, the way TensorBoard answers "Not found: …". */
export function sendError(res: ServerResponse, status: number, message: string): void {
  send(res, status, "text/plain; charset=utf-8", `${message}\n`);
}

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Answer a request whose route handler failed or threw: an HttpError as its status and message, a
 * bug as a 500 (and a warning in the log); a response already under way is cut off.
 */
function runRoute(
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  route: Route,
  warn: (line: string) => void,
): void {
  const fail = (error: unknown): void => {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (error instanceof HttpError) sendError(res, error.status, error.message);
    else {
      warn(`warning: ${req.method} ${url.pathname} failed: ${String(error)}`);
      sendError(res, 500, `Internal error: ${error instanceof Error ? error.message : String(error)}`);
    }
  };
  try {
    const answer = route.handle(req, res, url);
    if (answer instanceof Promise) answer.catch(fail);
  } catch (error) {
    fail(error);
  }
}

/** The request body as text, refusing more than `limit` bytes. */
export async function readBody(req: IncomingMessage, limit = 1 << 20): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.byteLength;
    if (size > limit) throw new HttpError(413, `Request body over ${limit} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}
