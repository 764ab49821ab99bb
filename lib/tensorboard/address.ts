import { hostname } from "node:os";

const WILDCARD_HOSTS = new Set(["", "0.0.0.0", "::", "[::]"]);

/** Where to knock to see whether TensorBoard answers: a wildcard bind is reached over loopback. */
export function probeHostFor(host: string): string {
  if (!WILDCARD_HOSTS.has(host)) return stripBrackets(host);
  return host.includes(":") ? "::1" : "127.0.0.1";
}

/** The URL to show people: a wildcard bind is announced under this machine's name, as TensorBoard does. */
export function urlFor(host: string, port: number): string {
  const shown = WILDCARD_HOSTS.has(host) ? hostname() : stripBrackets(host);
  return `http://${shown.includes(":") ? `[${shown}]` : shown}:${port}/`;
}

function stripBrackets(host: string): string {
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
}
