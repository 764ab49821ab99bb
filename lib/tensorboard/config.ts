import { join } from "node:path";
import { UserError } from "../cli/errors.ts";
import {
  type BoardChoice,
  DEFAULT_TB_BINARY,
  DEFAULT_TB_HOST,
  DEFAULT_TB_PORT,
  type TensorBoardOptions,
} from "./launcher.ts";

/** TensorBoard settings from the environment (docs/pipeline.md), minus the logger and timeout. */
export type TensorBoardEnvSettings = Required<
  Pick<TensorBoardOptions, "logdir" | "recordFile" | "logFile" | "port" | "host" | "binary" | "board">
>;

/**
 * OUT_DIR [out] holds tensorboard.json and tensorboard.log; TF_DIR [OUT_DIR/tensorboard] is the
 * logdir; TB_PORT [6006], TB_HOST [127.0.0.1], TENSORBOARD_BINARY [tensorboard on PATH], TB_BOARD
 * [auto: TensorBoard when installed, else the built-in board].
 */
export function tensorBoardSettingsFromEnv(env: NodeJS.ProcessEnv = process.env): TensorBoardEnvSettings {
  const outDir = env.OUT_DIR || "out";
  return {
    logdir: env.TF_DIR || join(outDir, "tensorboard"),
    recordFile: join(outDir, "tensorboard.json"),
    logFile: join(outDir, "tensorboard.log"),
    port: parsePort(env.TB_PORT, "TB_PORT"),
    host: env.TB_HOST || DEFAULT_TB_HOST,
    binary: env.TENSORBOARD_BINARY || DEFAULT_TB_BINARY,
    board: parseBoardChoice(env.TB_BOARD),
  };
}

const BOARD_CHOICES: readonly BoardChoice[] = ["auto", "tensorboard", "builtin"];

/** TB_BOARD: builtin, tensorboard, or auto (the default, also when empty). */
export function parseBoardChoice(text: string | undefined): BoardChoice {
  const value = (text ?? "").trim();
  if (value === "") return "auto";
  if ((BOARD_CHOICES as readonly string[]).includes(value)) return value as BoardChoice;
  throw new UserError(`TB_BOARD=${text}: expected builtin, tensorboard or auto`);
}

/** A port number 0…65535 (0: any free port); `source` names the variable or flag in the error. */
export function parsePort(text: string | undefined, source: string): number {
  if (text === undefined || text.trim() === "") return DEFAULT_TB_PORT;
  const port = Number(text);
  if (!/^\d+$/.test(text.trim()) || port > 65535) {
    throw new UserError(`${source}=${text}: expected a port number from 0 to 65535 (0 picks any free port)`);
  }
  return port;
}
