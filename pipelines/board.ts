/**
 * `npm run board` — Baton's built-in scalar board on TF_DIR, in the foreground: TensorBoard's
 * scalar endpoints and a page of live charts, no Python needed. The pipeline and
 * `npm run tensorboard` start the same script in the background when TensorBoard is not installed
 * (or TB_BOARD=builtin). SIGTERM or Ctrl+C stops it cleanly.
 */
import { readFile } from "node:fs/promises";
import getPort from "get-port";
import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import { describeFsError, EXIT, isNodeError, UserError } from "../lib/cli/errors.ts";
import { runMain } from "../lib/cli/main.ts";
import { strictCommandLine } from "../lib/cli/yargs.ts";
import { parsePort, tensorBoardSettingsFromEnv } from "../lib/tensorboard/config.ts";
import { createBoardServer } from "./board/server.ts";

const NAME = "board";
const CLOSE_TIMEOUT_MS = 5000;

const ENVIRONMENT = `Environment:
  TF_DIR    logdir to serve [OUT_DIR/tensorboard]
  TB_PORT   preferred port, used if free, else any free port; 0 = any [6006]
  TB_HOST   address to bind; 0.0.0.0 serves the network [127.0.0.1]

Serves http://HOST:PORT/ (the charts) and TensorBoard's /data/runs, /data/plugin/scalars/tags and
/data/plugin/scalars/scalars?run=&tag= (every point, not a 1000-point sample). Runs are the
directories under the logdir holding event files; they are followed as they grow.`;

function log(line: string, level: "info" | "warn" = "info"): void {
  const text = `[${new Date().toISOString()}] ${NAME}: ${line}\n`;
  if (level === "warn") process.stderr.write(text);
  else process.stdout.write(text);
}

runMain(NAME, async () => {
  const argv = await strictCommandLine(
    yargs(hideBin(process.argv))
      .scriptName("npm run board --")
      .usage(
        "$0 [--logdir <dir>] [--port <n>] [--host <addr>]\n\nServe Baton's scalar board in the foreground.",
      )
      .option("logdir", { type: "string", describe: "Directory of runs [TF_DIR]" })
      .option("port", { type: "string", describe: "Port, exactly (default TB_PORT if free, else any)" })
      .option("host", { type: "string", describe: "Address to bind [TB_HOST or 127.0.0.1]" })
      .option("token-file", { type: "string", describe: "File holding a token every request must carry" })
      .option("reload-interval", { type: "number", default: 5, describe: "Seconds between full re-scans" }),
    ENVIRONMENT,
  ).parseAsync();

  const settings = tensorBoardSettingsFromEnv(process.env);
  const logdir = argv.logdir || settings.logdir;
  const host = argv.host || settings.host;
  if (!(argv["reload-interval"] >= 0)) {
    throw new UserError(`--reload-interval ${argv["reload-interval"]}: expected a number of seconds ≥ 0`);
  }
  // An explicit --port is taken as given (the launcher has chosen a free one); TB_PORT is a preference.
  const port = argv.port !== undefined ? parsePort(argv.port, "--port") : await freePort(settings.port);
  const token = argv["token-file"] ? await readToken(argv["token-file"]) : undefined;

  let board: Awaited<ReturnType<typeof createBoardServer>>;
  try {
    board = await createBoardServer({
      logdir,
      host,
      port,
      log,
      reloadIntervalMs: argv["reload-interval"] * 1000,
      ...(token ? { token } : {}),
    });
  } catch (error) {
    if (isNodeError(error) && (error.code === "EADDRINUSE" || error.code === "EADDRNOTAVAIL")) {
      const why = error.code === "EADDRINUSE" ? "is already in use" : "is not an address of this machine";
      throw new UserError(`--port ${port} on ${host} ${why}`, EXIT.failure);
    }
    throw error;
  }
  log(`serving ${board.scalars.logdir} at ${board.url} (pid ${process.pid})`);

  const signal = await new Promise<NodeJS.Signals>((stop) => {
    process.once("SIGTERM", () => stop("SIGTERM"));
    process.once("SIGINT", () => stop("SIGINT"));
  });
  log(`${signal}: stopping`);
  const timeout = setTimeout(() => {
    log(`warning: could not close within ${CLOSE_TIMEOUT_MS / 1000} s; exiting anyway`, "warn");
    process.exit(EXIT.failure);
  }, CLOSE_TIMEOUT_MS);
  timeout.unref();
  await board.close();
  clearTimeout(timeout);
  log("stopped");
  return EXIT.ok;
});

async function freePort(preferred: number): Promise<number> {
  if (preferred === 0) return 0;
  const port = await getPort({ port: preferred });
  if (port !== preferred) log(`port ${preferred} is in use; using ${port}`);
  return port;
}

async function readToken(file: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    throw new UserError(`--token-file ${file}: ${describeFsError(error)}`);
  }
  const token = text.trim();
  if (token === "") throw new UserError(`--token-file ${file}: the file is empty, expected a token`);
  return token;
}
