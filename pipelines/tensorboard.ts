/**
 * `npm run tensorboard` — start (or reuse) the background board on TF_DIR — TensorBoard, or
 * Baton's built-in board when TensorBoard is not installed or TB_BOARD=builtin — stop it, or say
 * whether it runs. The training pipeline does the same start with TB_AUTO=1.
 */
import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import { EXIT, UserError } from "../lib/cli/errors.ts";
import { runMain } from "../lib/cli/main.ts";
import { strictCommandLine } from "../lib/cli/yargs.ts";
import { tensorBoardSettingsFromEnv } from "../lib/tensorboard/config.ts";
import { boardOf } from "../lib/tensorboard/instance-record.ts";
import {
  boardLabel,
  DEFAULT_STARTUP_TIMEOUT_MS,
  ensureTensorBoard,
  inspectTensorBoard,
  stopTensorBoard,
} from "../lib/tensorboard/launcher.ts";
import { BUILTIN_BOARD } from "./board/launch.ts";

const NAME = "tensorboard";

const ENVIRONMENT = `Environment:
  TF_DIR              logdir to serve [OUT_DIR/tensorboard]
  TB_PORT             preferred port, used if free, else any free port; 0 = any [6006]
  TB_HOST             address to bind; 0.0.0.0 serves the network [127.0.0.1]
  TENSORBOARD_BINARY  TensorBoard executable [tensorboard on PATH]
  TB_BOARD            tensorboard, builtin (Baton's own board: npm run board) or auto:
                      TensorBoard when installed, else the built-in board [auto]
  OUT_DIR             holds tensorboard.json (the running instance) and tensorboard.log [out]

An instance recorded in OUT_DIR/tensorboard.json is reused when its process is alive, its port
answers, it serves the same logdir and is the board TB_BOARD asks for; otherwise a new one is started in the background and
keeps running after this command exits. Exit status: 0 running, 1 not running or could not start,
2 bad flags or environment.`;

/** Warnings go to stderr, progress to stdout. */
function log(line: string, level: "info" | "warn" = "info"): void {
  if (level === "warn") process.stderr.write(`${NAME}: ${line}\n`);
  else process.stdout.write(`${line}\n`);
}

runMain(NAME, async () => {
  const argv = await strictCommandLine(
    yargs(hideBin(process.argv))
      .scriptName("npm run tensorboard --")
      .usage(
        "$0 [--stop | --status] [--timeout <seconds>]\n\nStart TensorBoard on TF_DIR in the background, or reuse the one already serving it.",
      )
      .option("stop", {
        type: "boolean",
        describe: "Stop the recorded TensorBoard (its whole process group)",
      })
      .option("status", {
        type: "boolean",
        describe: "Print the recorded TensorBoard and whether it answers",
      })
      .option("timeout", {
        type: "number",
        default: DEFAULT_STARTUP_TIMEOUT_MS / 1000,
        describe: "Seconds to wait for a new TensorBoard to answer",
      })
      .conflicts("stop", "status"),
    ENVIRONMENT,
  ).parseAsync();

  if (!(argv.timeout > 0))
    throw new UserError(`--timeout ${argv.timeout}: expected a number of seconds above 0`);
  const settings = tensorBoardSettingsFromEnv(process.env);

  if (argv.stop) {
    await stopTensorBoard(settings.recordFile, { log });
    return EXIT.ok;
  }

  if (argv.status) {
    const state = await inspectTensorBoard(settings.recordFile);
    if (state.problem) log(`warning: ${state.problem}`, "warn");
    const { record } = state;
    if (!record) {
      log(`The board is not running (nothing recorded in ${settings.recordFile})`);
      return EXIT.failure;
    }
    const health = !state.running
      ? "is not running"
      : state.answers
        ? "is running"
        : "is running but does not answer";
    const label = boardLabel(boardOf(record));
    log(`${label.charAt(0).toUpperCase()}${label.slice(1)} (pid ${record.pid}) ${health} at ${record.url}`);
    log(
      `  logdir   ${record.logdir}${state.servedLogdir && state.servedLogdir !== record.logdir ? ` (serves ${state.servedLogdir})` : ""}`,
    );
    log(`  started  ${record.started_at}`);
    log(`  binary   ${record.binary}`);
    log(`  log      ${record.log_file}`);
    return state.running && state.answers ? EXIT.ok : EXIT.failure;
  }

  const result = await ensureTensorBoard({
    ...settings,
    builtin: BUILTIN_BOARD,
    startupTimeoutMs: argv.timeout * 1000,
    log,
  });
  return result.status === "started" || result.status === "reused" ? EXIT.ok : EXIT.failure;
});
