/**
 * `--restart STAGE[,STAGE]`: which stages this run moves aside and trains afresh — decided before
 * anything runs, so a restart that would leave later stages stale is refused up front, and a
 * command run again after an interruption resumes the restarted run instead of restarting again.
 */
import { UserError } from "../../lib/cli/errors.ts";
import { surveyFolder } from "../../lib/stages/survey.ts";
import { laterStages, type StageName } from "../../lib/stages/table.ts";
import { restartHint } from "./plan.ts";
import type { RunRecord } from "./run-record.ts";
import type { PipelineSettings } from "./settings.ts";

export interface RestartPlan {
  /** Stages to restart now. */
  now: Set<StageName>;
  /** Stages an interrupted run of this same command already restarted: they resume that new run. */
  done: Map<StageName, string>;
}

export async function planRestarts(
  settings: PipelineSettings,
  requested: readonly StageName[],
  training: readonly StageName[],
  argv: readonly string[],
  previous: RunRecord | null,
): Promise<RestartPlan> {
  const plan: RestartPlan = { now: new Set(), done: new Map() };
  if (requested.length === 0) return plan;
  const sameCommand =
    previous !== null &&
    previous.state !== "finished" &&
    JSON.stringify(previous.argv) === JSON.stringify(argv);
  for (const stage of requested) {
    const folder = await surveyFolder(settings.stages[stage].ckptDir);
    const movedRun = sameCommand ? previous?.stages.find((s) => s.stage === stage)?.restart_of_run : null;
    if (movedRun && folder.latest?.runId !== movedRun) plan.done.set(stage, movedRun);
    else plan.now.add(stage);
  }
  // A later stage this run trains, kept, but trained from a run being replaced, would be stale.
  const stale: StageName[] = [];
  for (const stage of plan.now) {
    for (const later of laterStages(stage)) {
      if (!training.includes(later) || requested.includes(later) || stale.includes(later)) continue;
      if ((await surveyFolder(settings.stages[later].ckptDir)).stepDirs > 0) stale.push(later);
    }
  }
  if (stale.length > 0) {
    const all = training.filter((s) => requested.includes(s) || stale.includes(s));
    throw new UserError(
      `${restartHint([...plan.now])}: ${stale.join(", ")} ${stale.length > 1 ? "hold checkpoints" : "holds checkpoints"} ` +
        `trained from what is being replaced and would be stale; restart ${stale.length > 1 ? "them" : "it"} too ` +
        `(${restartHint(all)}), or leave ${stale.length > 1 ? "them" : "it"} out of this run (--stages)`,
    );
  }
  return plan;
}
