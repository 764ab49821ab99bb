/**
 * Evaluation after a stage, with the same measurement of the weights the stage started from, so
 * every result shows what the stage changed: the final metrics plus `baseline_<name>` for the
 * initial weights (random for pretrain, the previous stage's output for the others).
 *
 * The baseline is measured once, before the first training step of a fresh run, and carried in
 * every state.json (`baseline_eval`), so a resumed run reports it without the initial weights —
 * which may be long pruned — at hand.
 */
import type { DataFormat } from "../data/records.ts";
import type { RunContext, StageTask } from "../loop/task.ts";
import type { MiniMind } from "../model/minimind.ts";

export type Measure<F extends DataFormat> = (
  run: RunContext<F>,
  model: MiniMind,
) => Promise<Record<string, number>>;

const STATE_KEY = "baseline_eval";

function savedBaseline(state: Record<string, unknown> | undefined): Record<string, number> | null {
  const saved = state?.[STATE_KEY];
  if (typeof saved !== "object" || saved === null) return null;
  const entries = Object.entries(saved).filter(
    (entry): entry is [string, number] => typeof entry[1] === "number",
  );
  return Object.fromEntries(entries);
}

/** `task` with prepare/stateExtras/evaluate extended to measure the initial and the final weights. */
export function withEvaluation<F extends DataFormat>(task: StageTask<F>, measure: Measure<F>): StageTask<F> {
  let baseline: Record<string, number> | null = null;
  return {
    ...task,
    async prepare(run) {
      await task.prepare?.(run);
      if (run.resumedFrom) {
        baseline = savedBaseline(run.resumedFrom.state);
      } else if (run.args.eval && run.evalIndices.length > 0) {
        const started = performance.now();
        baseline = await measure(run, run.model);
        run.log(
          `initial weights: ${describeMetrics(baseline)} (${((performance.now() - started) / 1000).toFixed(1)} s)`,
        );
      }
    },
    stateExtras(run) {
      return { ...(task.stateExtras?.(run) ?? {}), ...(baseline ? { [STATE_KEY]: baseline } : {}) };
    },
    async evaluate(run) {
      const metrics = await measure(run, run.model);
      const before = Object.entries(baseline ?? {}).map(([name, value]) => [`baseline_${name}`, value]);
      return { ...metrics, ...Object.fromEntries(before) };
    },
  };
}

export function describeMetrics(metrics: Record<string, number>): string {
  return Object.entries(metrics)
    .map(([name, value]) => `${name} ${value.toFixed(4)}`)
    .join(", ");
}
