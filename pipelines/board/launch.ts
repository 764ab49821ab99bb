/** How the launcher (lib/tensorboard/launcher.ts) starts the built-in board in the background. */
import { join } from "node:path";
import type { BuiltinBoardCommand } from "../../lib/tensorboard/launcher.ts";
import { nodeScript } from "../executor/node-script.ts";

const BOARD_SCRIPT = join(import.meta.dirname, "..", "board.ts");

/** node, the tsx loader by absolute URL (any working directory works), and pipelines/board.ts. */
const { file, args } = nodeScript(BOARD_SCRIPT);
export const BUILTIN_BOARD: BuiltinBoardCommand = { command: file, args, describe: BOARD_SCRIPT };
