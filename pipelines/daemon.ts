#!/usr/bin/env -S node --import tsx
/**
 * `npm run daemon` — the training daemon (docs/daemon.md): one long-running service that owns the
 * runs — queue, GPU slots, registry, live streams — behind an HTTP API on loopback and a Unix
 * socket. `--detach` starts it in the background and returns once it serves. SIGINT, SIGTERM and
 * SIGHUP stop the daemon, never the runs: they go on, and the next daemon adopts them.
 */
import { spawn } from "node:child_process";
import { closeSync, fstatSync, mkdirSync, openSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { EXIT, UserError } from "../lib/cli/errors.ts";
import { runMain } from "../lib/cli/main.ts";
import { STOP_SIGNALS } from "../lib/process/stop.ts";
import { logTail } from "../lib/tensorboard/board-process.ts";
import { DAEMON_HELP, type DaemonFlags, parseDaemonFlags } from "./daemon/flags.ts";
import { probe } from "./daemon/listen.ts";
import { daemonPaths } from "./daemon/paths.ts";
import { startDaemon } from "./daemon/service.ts";

const NAME = "daemon";
const REPO = fileURLToPath(new URL("..", import.meta.url)).replace(/\/$/, "");
const DETACH_WAIT_MS = 30_000;

const log = (line: string): void =>
  void process.stderr.write(`[daemon] ${new Date().toISOString()} ${line}\n`);

runMain(NAME, async () => {
  const argv = process.argv.slice(2);
  const flags = parseDaemonFlags(argv, process.env);
  if (flags.help) {
    process.stdout.write(DAEMON_HELP);
    return EXIT.ok;
  }
  if (flags.detach)
    return detach(
      flags,
      argv.filter((arg) => arg !== "--detach"),
    );
  process.stdout.on("error", () => {});
  process.stderr.on("error", () => {});
  const daemon = await startDaemon({
    ...flags,
    repo: REPO,
    cwd: process.cwd(),
    env: process.env,
    checkpointIntervalMs: 30_000,
    log,
  });
  process.stdout.write(`daemon ${daemon.pid} serving on ${daemon.socket} and ${daemon.url}\n`);
  await new Promise<void>((resolve) => {
    const stop = (signal: NodeJS.Signals): void => {
      log(`${signal}: stopping the daemon; runs go on (the next daemon adopts them)`);
      daemon.close().then(resolve, (error: unknown) => {
        log(`closing failed: ${String(error)}`);
        resolve();
      });
    };
    for (const signal of STOP_SIGNALS) process.once(signal, stop);
  });
  return EXIT.ok;
});

/** Start the daemon in the background, its output in daemon.log, and return once it answers. */
async function detach(flags: DaemonFlags, argv: string[]): Promise<number> {
  const paths = daemonPaths(flags.outRoot);
  mkdirSync(paths.dir, { recursive: true, mode: 0o700 });
  const fd = openSync(paths.logFile, "a");
  // daemon.log is appended to by every start: on a failure, show this start's lines only.
  const startOffset = fstatSync(fd).size;
  const child = spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), ...argv], {
    detached: true,
    stdio: ["ignore", fd, fd],
    env: process.env,
  });
  closeSync(fd);
  child.unref();
  const exited = new Promise<number>((resolve) =>
    child.once("exit", (code) => resolve(code ?? EXIT.failure)),
  );
  const deadline = Date.now() + DETACH_WAIT_MS;
  for (;;) {
    const outcome = await Promise.race([exited.then((code) => ({ code })), sleep(200).then(() => null)]);
    if (outcome !== null) {
      const tail = (await logTail(paths.logFile, startOffset)).slice(-5).join("\n");
      throw new UserError(
        `the daemon exited (${outcome.code}) before serving; ${paths.logFile} ends:\n${tail}`,
        outcome.code === EXIT.badInput ? EXIT.badInput : EXIT.failure,
      );
    }
    const answer = await probe(paths.socket);
    if (answer.pid === child.pid) break;
    if (Date.now() > deadline)
      throw new UserError(
        `the daemon (pid ${child.pid}) did not answer within ${DETACH_WAIT_MS / 1000} s; see ${paths.logFile}`,
        EXIT.failure,
      );
  }
  process.stdout.write(`daemon ${child.pid} started in the background; its output: ${paths.logFile}\n`);
  return EXIT.ok;
}
