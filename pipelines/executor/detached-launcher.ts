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
import { writeSync } from "node:fs";
import { constants } from "node:os";
import { describeFsError, EXIT } from "../../lib/cli/errors.ts";
import { writeFileAtomicSync } from "../../lib/fs/atomic.ts";
import { type LaunchStatus, statusFileOf } from "./detached-status.ts";

const [logFile, separator, file, ...args] = process.argv.slice(2);
if (logFile === undefined || separator !== "--" || file === undefined) {
  process.stderr.write("usage: detached-launcher.ts <log file> -- <file> [args…]\n");
  process.exit(2);
}
const statusFile = statusFileOf(logFile, process.pid);

/**
 * Note how the command ended in the log and leave its status beside it; false when the status could
 * not be written (disk full, folder gone): the cause is then in the log, one line, for the follower's
 * "ended without an exit status" to point at.
 */
function report(status: Omit<LaunchStatus, "endedAt">): boolean {
  const how =
    status.spawnError ?? (status.signal === null ? `code ${status.exitCode}` : `signal ${status.signal}`);
  try {
    writeSync(1, `[baton] ${new Date().toISOString()} exit: ${how}\n`);
  } catch {
    // The log is gone or full: the status file is what the follower reads.
  }
  try {
    writeFileAtomicSync(statusFile, `${JSON.stringify({ ...status, endedAt: new Date().toISOString() })}\n`);
    return true;
  } catch (error) {
    try {
      writeSync(
        2,
        `[baton] cannot write the exit status (${how}) to ${statusFile}: ${describeFsError(error)}\n`,
      );
    } catch {
      // Nowhere left to say it; the follower reports the status file missing.
    }
    return false;
  }
}

for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) process.on(signal, () => {});
const child = spawn(file, args, { stdio: ["ignore", "inherit", "inherit"], env: process.env });
child.once("error", (error) => {
  const reported = report({
    exitCode: null,
    signal: null,
    spawnError: `cannot start ${file}: ${error.message}`,
  });
  process.exit(reported ? 127 : EXIT.failure);
});
child.once("exit", (code, signal) => {
  const reported = report({ exitCode: code, signal });
  process.exit(reported ? (code ?? 128 + (signal === null ? 0 : constants.signals[signal])) : EXIT.failure);
});
