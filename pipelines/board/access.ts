/*
 * Who may read the board. Bound to a loopback address (the default), only requests naming a
 * loopback host are served, so a web page elsewhere cannot reach it through a DNS name that
 * points at 127.0.0.1 (DNS rebinding). With a token (the daemon's rule), every request must carry
 * it: `Authorization: Bearer <token>`, or the cookie the page gets by opening `/?token=<token>`
 * once (EventSource cannot send headers).
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";

export const TOKEN_COOKIE = "baton_board_token";

const LOOPBACK_NAMES = new Set(["localhost", "::1", "[::1]"]);

export function isLoopbackHost(host: string): boolean {
  return LOOPBACK_NAMES.has(host) || /^127\.\d+\.\d+\.\d+$/.test(host) || host.endsWith(".localhost");
}

/** The host part of a Host header ("127.0.0.1:6006" → "127.0.0.1", "[::1]:80" → "[::1]"). */
function hostName(header: string): string {
  if (header.startsWith("[")) return header.slice(0, header.indexOf("]") + 1);
  const colon = header.lastIndexOf(":");
  return (colon === -1 ? header : header.slice(0, colon)).toLowerCase();
}

function digest(text: string): Buffer {
  return createHash("sha256").update(text).digest();
}

function sameToken(given: string | undefined, token: string): boolean {
  return given !== undefined && timingSafeEqual(digest(given), digest(token));
}

function cookie(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? "").split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) return decodeURIComponent(rest.join("="));
  }
  return undefined;
}

export interface AccessRules {
  /** The address the server is bound to. */
  bindHost: string;
  token?: string | undefined;
}

/**
 * Whether to serve `req`; when not, the answer has been sent. A right token in the query sets
 * the cookie and redirects to the same URL without it, so it does not linger in the address bar.
 */
export function admit(req: IncomingMessage, res: ServerResponse, url: URL, rules: AccessRules): boolean {
  if (isLoopbackHost(rules.bindHost)) {
    const host = hostName(req.headers.host ?? "");
    if (!isLoopbackHost(host)) {
      refuse(
        res,
        403,
        `Host ${JSON.stringify(req.headers.host ?? "")} is not a loopback name; this board serves only this machine`,
      );
      return false;
    }
  }
  const { token } = rules;
  if (!token) return true;
  const bearer = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? "")?.[1];
  if (sameToken(bearer, token) || sameToken(cookie(req, TOKEN_COOKIE), token)) return true;
  const query = url.searchParams.get("token");
  if (query !== null && sameToken(query, token)) {
    url.searchParams.delete("token");
    res.writeHead(303, {
      location: `${url.pathname}${url.search}`,
      "set-cookie": `${TOKEN_COOKIE}=${encodeURIComponent(token)}; Path=/; HttpOnly; SameSite=Strict`,
      "cache-control": "no-store",
    });
    res.end();
    return false;
  }
  refuse(
    res,
    401,
    "Unauthorized: this board needs its token (Authorization: Bearer <token>, or open /?token=<token>)",
  );
  return false;
}

function refuse(res: ServerResponse, status: number, message: string): void {
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" });
  res.end(`${message}\n`);
}
