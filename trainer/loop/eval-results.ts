/** Evaluation results, one JSON line per evaluation, in --eval_results (TF_DIR/eval_results.jsonl in the pipeline). */
import { mkdir, readFile } from "node:fs/promises";
import { dirname } from "node:path";
import { writeFileAtomic } from "../../lib/fs/atomic.ts";
import { withFileLock } from "../../lib/fs/lock.ts";
import type { TrainerArgs } from "../../lib/stages/args.ts";

export async function appendEvalResult(
  args: TrainerArgs,
  stage: string,
  step: number,
  metrics: Record<string, number>,
  checkpoint: string | null = null,
): Promise<void> {
  const path = args.eval_results;
  await mkdir(dirname(path), { recursive: true });
  const line = JSON.stringify({ stage, step, checkpoint, metrics, time: new Date().toISOString() });
  // Rewritten whole and atomically, so a crash never leaves half a line; under a lock, because
  // parallel DPO sweep children share the file.
  await withFileLock(path, async () => {
    const previous = await readFile(path, "utf8").catch(() => "");
    await writeFileAtomic(path, `${previous}${previous && !previous.endsWith("\n") ? "\n" : ""}${line}\n`);
  });
}
