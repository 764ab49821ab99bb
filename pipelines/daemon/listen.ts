/**
 * The daemon is unique by binding, not by checking: whoever binds the Unix socket is the daemon.
 * A second one finds it taken, asks it who it is, and exits 2 naming its PID. A socket file left
 * by a daemon that died refuses connections: it is taken over — under a short lock, so two new
 * daemons cannot both remove it and each think itself the one.
 */
import { chmodSync, mkdirSync } from "node:fs";
import { unlink } from "node:fs/promises";
import { request, type Server } from "node:http";
import { dirname } from "node:path";
import { EXIT, isNodeError, UserError } from "../../lib/cli/errors.ts";
import { withFileLock } from "../../lib/fs/lock.ts";
import { listenOnce } from "../../lib/http/listen.ts";

const PROBE_MS = 2_000;

export async function bindSocket(server: Server, path: string, lockFile: string): Promise<void> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  if (await tryListen(server, path)) return;
  await withFileLock(`${path}.takeover`, async () => {
    const owner = await probe(path);
    if (owner.live) throw taken(path, owner.pid, lockFile);
    await unlink(path).catch(() => {});
    if (!(await tryListen(server, path))) throw taken(path, (await probe(path)).pid, lockFile);
  });
}

/** Listen on host:port; a port in use is a refusal naming it. */
export async function bindTcp(server: Server, host: string, port: number): Promise<void> {
  try {
    await listenOnce(server, { port, host });
  } catch (error) {
    if (isNodeError(error) && error.code === "EADDRINUSE") {
      throw new UserError(`--port ${port}: ${host}:${port} is already in use (choose another with --port)`);
    }
    if (isNodeError(error) && (error.code === "EADDRNOTAVAIL" || error.code === "ENOTFOUND")) {
      throw new UserError(`--host ${host}: not an address of this machine`);
    }
    throw error;
  }
}

function taken(path: string, pid: number | null, lockFile: string): UserError {
  const who = pid === null ? `see ${lockFile}` : `pid ${pid}`;
  return new UserError(`another daemon is already running (${who}) on ${path}`, EXIT.badInput);
}

async function tryListen(server: Server, path: string): Promise<boolean> {
  // Owner-only from the moment it exists: no window in which another user could connect.
  const umask = process.umask(0o177);
  try {
    await listenOnce(server, { path });
  } catch (error) {
    if (isNodeError(error) && error.code === "EADDRINUSE") return false;
    throw error;
  } finally {
    process.umask(umask);
  }
  chmodSync(path, 0o600);
  return true;
}

/** Whether a daemon answers on `path`, and its pid when it says. */
export async function probe(path: string): Promise<{ live: boolean; pid: number | null }> {
  return new Promise((resolve) => {
    const req = request({ socketPath: path, path: "/api/v1/health", timeout: PROBE_MS }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        text += chunk;
      });
      res.on("end", () => {
        try {
          const pid = (JSON.parse(text) as { pid?: unknown }).pid;
          resolve({ live: true, pid: typeof pid === "number" ? pid : null });
        } catch {
          resolve({ live: true, pid: null });
        }
      });
    });
    req.on("timeout", () => {
      // It accepted the connection: someone listens, even if it does not answer.
      req.destroy();
      resolve({ live: true, pid: null });
    });
    req.on("error", (error) => {
      const code = isNodeError(error) ? error.code : undefined;
      resolve({ live: !(code === "ECONNREFUSED" || code === "ENOENT" || code === "ENOTSOCK"), pid: null });
    });
    req.end();
  });
}
