/**
 * A crash that loses work: a trainer SIGKILLed after one of its periodic checkpoints, and the run
 * that recovers from it. The kill waits for the `CHECKPOINT:` line (a kill that lands before the
 * first save would leave nothing to resume, and two from-scratch runs match anyway), and the
 * recovered run must say it resumed from exactly that checkpoint.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runTrainerToEnd, startTrainer } from "./trainer-process.ts";
import type { ProcessExit } from "./watched-process.ts";

export interface CrashPoint {
  /** The periodic checkpoint to wait for. */
  checkpointStep: number;
  /** Kill once this step is logged; equal to checkpointStep: at the CHECKPOINT line itself. */
  killStep: number;
}

/**
 * A crash point from the test seed: one of the periodic saves (every `saveInterval` updates, short
 * of the last step) and a kill step after it that leaves at least two updates before the next save,
 * so the kill lands before that save commits.
 */
export function randomCrashPoint(
  seed: number,
  salt: number,
  steps: number,
  saveInterval: number,
): CrashPoint {
  const points: CrashPoint[] = [];
  for (let c = saveInterval; c < steps; c += saveInterval) {
    const nextSave = Math.min(c + saveInterval, steps);
    for (let k = c; k <= nextSave - 2; k++) points.push({ checkpointStep: c, killStep: k });
  }
  if (points.length === 0)
    throw new Error(`no periodic save to crash after: ${steps} steps, every ${saveInterval}`);
  const x = Math.sin(seed * 7919 + salt * 104729) * 233280;
  return points[Math.floor((x - Math.floor(x)) * points.length)] as CrashPoint;
}

export const stepDir = (step: number) => `step_${String(step).padStart(8, "0")}`;

/** model.safetensors of the last checkpoint of a run rooted at `runRoot` (its `--out_dir` is runRoot/stage). */
export function finalModelPath(runRoot: string, stage: string, steps: number): string {
  return join(runRoot, stage, "checkpoints", stepDir(steps), "model.safetensors");
}

export interface CrashAndRecovery {
  /** The checkpoint the kill waited for, as the trainer printed it. */
  checkpoint: string;
  killed: ProcessExit;
  recovered: ProcessExit;
}

/**
 * Start `script` with `args`, SIGKILL it at `point`, then run the same command again to the end.
 * Asserts that the killed run's last save was the awaited checkpoint, that the recovery resumed
 * from it and finished. `betweenSessions` runs after the kill, before the recovery.
 */
export async function crashAndRecover(
  script: string,
  args: string[],
  point: CrashPoint,
  steps: number,
  betweenSessions?: () => void,
): Promise<CrashAndRecovery> {
  const crashed = startTrainer(script, args);
  const saved = await crashed.waitForLine(new RegExp(`^CHECKPOINT:.*/${stepDir(point.checkpointStep)}$`));
  const checkpoint = saved.slice("CHECKPOINT:".length);
  if (point.killStep > point.checkpointStep) {
    await crashed.waitForLine(new RegExp(`\\] step ${point.killStep}/${steps} `));
  }
  crashed.child.kill("SIGKILL");
  const killed = await crashed.done;
  assert.equal(killed.signal, "SIGKILL", `the trainer ended before the kill:\n${killed.stdout}`);
  const saves = [...killed.stdout.matchAll(/^CHECKPOINT:(.*)$/gm)].map((m) => m[1]);
  assert.equal(
    saves.at(-1),
    checkpoint,
    `the kill at step ${point.killStep} was meant to land before the next save:\n${killed.stdout}`,
  );
  betweenSessions?.();

  const recovered = await runTrainerToEnd(script, args);
  assert.equal(recovered.code, 0, recovered.stderr);
  assert.ok(
    recovered.stdout.includes(`resuming from ${checkpoint} (`),
    `the recovered run must resume from ${checkpoint}:\n${recovered.stdout}`,
  );
  return { checkpoint, killed, recovered };
}
