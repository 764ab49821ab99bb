/**
 * The detached executor's launcher (detached.ts): leads the process group, runs the command in it
 * with stdout and stderr going straight to the log file that is its own stdout, waits, and leaves
 * the command's exit status beside the log (detached-status.ts), so a daemon that was not running
 * when it ended — or that adopted it after a restart, and so is not its parent — still learns how
 * it ended. Stop signals to the group reach the command, which decides; the launcher ignores them
 * and reports.
 *
 *   node --import tsx detached-launcher.ts <log file> -- <file> [args…]
 */
import { spawn } from "node:child_process";
import { constants } from "node:os";
import { writeFileAtomicSync } from "../../lib/fs/atomic.ts";
import { type LaunchStatus, statusFileOf } from "./detached-status.ts";

const [logFile, separator, file, ...args] = process.argv.slice(2);
if (logFile === undefined || separator !== "--" || file === undefined) {
  process.stderr.write("usage: detached-launcher.ts <log file> -- <file> [args…]\n");
  process.exit(2);
}
const statusFile = statusFileOf(logFile, process.pid);

function report(status: Omit<LaunchStatus, "endedAt">): void {
  const how =
    status.spawnError ?? (status.signal === null ? `code ${status.exitCode}` : `signal ${status.signal}`);
  process.stdout.write(`[baton] ${new Date().toISOString()} exit: ${how}\n`);
  writeFileAtomicSync(statusFile, `${JSON.stringify({ ...status, endedAt: new Date().toISOString() })}\n`);
}

for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) process.on(signal, () => {});
const child = spawn(file, args, { stdio: ["ignore", "inherit", "inherit"], env: process.env });
child.once("error", (error) => {
  report({ exitCode: null, signal: null, spawnError: `cannot start ${file}: ${error.message}` });
  process.exit(127);
});
child.once("exit", (code, signal) => {
  report({ exitCode: code, signal });
  process.exit(code ?? 128 + (signal === null ? 0 : constants.signals[signal]));
});
