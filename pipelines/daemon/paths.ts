/** Where the daemon keeps its files: everything under `<out root>/daemon/` (docs/daemon.md#files). */
import { join } from "node:path";

export interface DaemonPaths {
  outRoot: string;
  dir: string;
  socket: string;
  /** PID and start time, for people and diagnostics; the socket, not this file, makes the daemon unique. */
  lockFile: string;
  /** --detach's output. */
  logFile: string;
  registry: string;
  runsDir: string;
  runLog(id: number): string;
}

export function daemonPaths(outRoot: string): DaemonPaths {
  const dir = join(outRoot, "daemon");
  const runsDir = join(dir, "runs");
  return {
    outRoot,
    dir,
    socket: join(dir, "baton.sock"),
    lockFile: join(dir, "daemon.json"),
    logFile: join(dir, "daemon.log"),
    registry: join(dir, "registry.db"),
    runsDir,
    runLog: (id) => join(runsDir, String(id), "run.log"),
  };
}
