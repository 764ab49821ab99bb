/** The pipeline's last word after a Ctrl+C, SIGTERM or SIGHUP: where it stopped and how to go on. */
import { interruptExitCode } from "../../lib/process/index.ts";
import { PIPELINE, type PipelineRun, show, tag, warn } from "./context.ts";

export function interrupted({ stop, recorder, settings }: PipelineRun): number {
  const reason = stop.reason ?? "SIGINT";
  const stopped = recorder.record.stages.find((s) => s.state === "interrupted");
  const saved = stopped?.last_checkpoint ? ` (last checkpoint ${show(stopped.last_checkpoint)})` : "";
  warn(
    `${tag(PIPELINE)} interrupted by ${reason}${stopped ? ` during ${stopped.stage}${saved}` : ""}; ` +
      `run the same command again to resume${settings.smokeTest && settings.cleanSmokeOutputs ? " (with CLEANUP_SMOKE=0: --smoke-test starts afresh otherwise)" : ""}`,
  );
  return interruptExitCode(reason);
}
