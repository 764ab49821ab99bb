/** How the launcher (lib/tensorboard/launcher.ts) starts the built-in board in the background. */
import { join } from "node:path";
import type { BuiltinBoardCommand } from "../../lib/tensorboard/launcher.ts";

const BOARD_SCRIPT = join(import.meta.dirname, "..", "board.ts");

/** node, the tsx loader by absolute URL (any working directory works), and pipelines/board.ts. */
export const BUILTIN_BOARD: BuiltinBoardCommand = {
  command: process.execPath,
  args: ["--import", import.meta.resolve("tsx"), BOARD_SCRIPT],
  describe: BOARD_SCRIPT,
};
