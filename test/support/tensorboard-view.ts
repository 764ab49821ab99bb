/**
 * The scalar curves TensorBoard's scalars dashboard shows for one run directory, read with Baton's
 * own TensorBoard-exact reader (lib/tensorboard: RunLoader, RunScalars — checked against the
 * output of TensorBoard's code in test/tensorboard-scalars.test.ts and test/tensorboard-resume.test.ts).
 */
import { RunLoader } from "../../lib/tensorboard/run-loader.ts";

export interface ScalarPoint {
  step: number;
  value: number;
  wallTime: number;
}

/** The points of each tag TensorBoard would show, in the order it serves them. */
export async function tensorBoardScalars(runDir: string): Promise<Map<string, ScalarPoint[]>> {
  const loader = new RunLoader(runDir);
  await loader.reload();
  if (loader.files.length === 0) throw new Error(`${runDir}: no event files`);
  const curves = new Map<string, ScalarPoint[]>();
  for (const { tag } of loader.scalars.scalarTags()) {
    const points = loader.scalars.series(tag)?.points() ?? [];
    curves.set(
      tag,
      points.map(([wallTime, step, value]) => ({ step, value, wallTime })),
    );
  }
  return curves;
}

export function visibleSteps(curves: Map<string, ScalarPoint[]>, tag: string): number[] {
  return (curves.get(tag) ?? []).map((p) => p.step);
}
