/** TensorBoard in the background on TF_DIR (TB_AUTO), recorded in the run record; a missing TensorBoard only warns. */
import { ensureTensorBoard } from "../../lib/tensorboard/launcher.ts";
import { BUILTIN_BOARD } from "../board/launch.ts";
import { type PipelineRun, say, show, tag, warn } from "./context.ts";

export async function startTensorBoard({ settings, recorder }: PipelineRun): Promise<void> {
  const tb = settings.tensorBoard;
  if (!tb.auto) {
    say(`${tag("tensorboard")} not started (TB_AUTO=0); npm run tensorboard starts it on ${show(tb.logdir)}`);
    return;
  }
  const result = await ensureTensorBoard({
    ...tb,
    builtin: BUILTIN_BOARD,
    whenMissing: "going on without it",
    log: (line, level) =>
      level === "warn" ? warn(`${tag("tensorboard")} ${line}`) : say(`${tag("tensorboard")} ${line}`),
  });
  await recorder.updateRun({
    tensorboard: {
      status: result.status,
      logdir: result.logdir,
      message: result.message,
      ...(result.url !== undefined ? { url: result.url } : {}),
      ...(result.pid !== undefined ? { pid: result.pid } : {}),
      ...(result.board !== undefined ? { board: result.board } : {}),
    },
  });
}
