/**
 * Requests to routes. On TCP, the board's admission rules (pipelines/board/access.ts): bound to
 * loopback, only loopback Host names (no DNS rebinding); with BATON_TOKEN, the bearer token on
 * every request. Plus: a request carrying an Origin from elsewhere may not change anything (no
 * cross-site form posts). The Unix socket is owner-only (mode 0600): whoever reaches it is the owner.
 *
 * The dashboard mounts here later: createBoardHandler({ extraRoutes: apiRoutes(…), host, token })
 * serves the same routes, with the same rules, beside its own.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { admit } from "../board/access.ts";
import { dispatch, type Route, sendError } from "../board/http.ts";

export interface RouterOptions {
  /** null: the Unix socket (no Host or token rules). */
  tcp: { bindHost: string; token?: string } | null;
  log(line: string): void;
}

export function createRouter(routes: () => readonly Route[], options: RouterOptions) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? "/", "http://daemon.invalid");
    if (options.tcp !== null) {
      if (!admit(req, res, url, options.tcp)) return;
      const origin = req.headers.origin;
      if (
        req.method !== "GET" &&
        req.method !== "HEAD" &&
        origin !== undefined &&
        !sameOrigin(origin, req.headers.host)
      ) {
        sendError(res, 403, `Origin ${origin} may not change anything here`);
        return;
      }
    }
    dispatch(routes(), req, res, url, options.log);
  };
}

function sameOrigin(origin: string, host: string | undefined): boolean {
  try {
    return new URL(origin).host === host;
  } catch {
    return false;
  }
}
