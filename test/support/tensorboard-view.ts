/**
 * The scalar curves TensorBoard's scalars dashboard shows for one run directory, modelled on its
 * data-provider path (plugin_event_accumulator with purge_orphaned_data, TensorBoard 2.x) — the
 * part a resumed run depends on:
 *
 * - the run's event files are read in file-name order, each record in file order;
 * - a run's first `SessionLog START` is ignored (it marks the first session, not a restart);
 * - each later START discards every point of the run, in every tag, at a step ≥ the START's step
 *   (the steps a crash orphaned past its checkpoint), read before it;
 * - nothing else is dropped or sorted: a step logged twice without a START between shows twice.
 *
 * Only `brain.Event:2` files are modelled (older ones purge on out-of-order steps instead), and
 * reservoir sampling, which starts past 1,000 points per tag, is left out: tests log far fewer.
 * test/tensorboard-resume.test.ts checks this model against TensorBoard-written files and the
 * output of TensorBoard's own code (test/fixtures/tensorboard/).
 */
import { readRunEvents, scalarOf, type TbEvent } from "../../lib/tensorboard/index.ts";

export interface ScalarPoint {
  step: number;
  value: number;
  wallTime: number;
}

/** The points of each tag TensorBoard would show, in the order it serves them. */
export async function tensorBoardScalars(runDir: string): Promise<Map<string, ScalarPoint[]>> {
  const { events, files } = await readRunEvents(runDir);
  if (files.length === 0) throw new Error(`${runDir}: no event files`);
  return visibleScalars(events, runDir);
}

export function visibleScalars(events: readonly TbEvent[], runDir = "run"): Map<string, ScalarPoint[]> {
  const series = new Map<string, ScalarPoint[]>();
  let seenStart = false;
  for (const event of events) {
    if (event.fileVersion !== undefined) {
      if (event.fileVersion !== "brain.Event:2") {
        throw new Error(`${runDir}: file version ${event.fileVersion}: only brain.Event:2 is modelled`);
      }
      continue;
    }
    if (event.sessionLog?.status === "START") {
      if (seenStart) {
        for (const [tag, points] of series)
          series.set(
            tag,
            points.filter((p) => p.step < event.step),
          );
      }
      seenStart = true;
      continue;
    }
    for (const value of event.summary?.value ?? []) {
      const scalar = scalarOf(value);
      if (scalar === undefined) continue;
      const points = series.get(value.tag) ?? [];
      points.push({ step: event.step, value: scalar, wallTime: event.wallTime });
      series.set(value.tag, points);
    }
  }
  return series;
}

/** The steps of one tag's visible curve, in order (what "each step once" is checked on). */
export function visibleSteps(curves: Map<string, ScalarPoint[]>, tag: string): number[] {
  return (curves.get(tag) ?? []).map((p) => p.step);
}
