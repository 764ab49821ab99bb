/**
 * How many threads share each update, and their start. Auto means one per core (at most 4) on the
 * single-threaded backends — or, on resume, the count the checkpoint was trained with: the count
 * changes the arithmetic, and a resumed run should match an uninterrupted one bit for bit.
 */
import { availableParallelism } from "node:os";
import type { TrainerArgs } from "../../lib/stages/args.ts";
import type { ModelConfig } from "../model/config.ts";
import type { MiniMind } from "../model/minimind.ts";
import type { Objective } from "../stages/objective.ts";
import { GradientWorkers } from "./pool.ts";

const MAX_AUTO_THREADS = 4;

export function dataParallelThreads(
  args: Pick<TrainerArgs, "data_parallel">,
  backend: string,
  objective: Objective,
  resumedWith: unknown,
  warn: (m: string) => void,
): number {
  if (!objective.workerModule || (backend !== "wasm" && backend !== "cpu")) return 1;
  if (args.data_parallel !== "auto") {
    const threads = Number(args.data_parallel);
    if (typeof resumedWith === "number" && resumedWith !== threads) {
      warn(
        `resuming with --data_parallel ${threads}, the checkpoint was trained with ${resumedWith}: ` +
          "the result will differ slightly from an uninterrupted run",
      );
    }
    return threads;
  }
  if (typeof resumedWith === "number" && resumedWith >= 1) return resumedWith;
  return Math.max(1, Math.min(MAX_AUTO_THREADS, availableParallelism()));
}

export interface SessionForWorkers {
  args: TrainerArgs;
  config: ModelConfig;
  model: MiniMind;
  backend: { name: "tensorflow-gpu" | "tensorflow" | "wasm" | "cpu" };
  start: { resume: { state: Record<string, unknown> } | null };
  log(message: string): void;
  warn(message: string): void;
}

/** Start the session's worker threads (none on one thread); the caller closes them on every path. */
export async function startWorkers(
  session: SessionForWorkers,
  objective: Objective,
): Promise<{ threads: number; workers: GradientWorkers | null }> {
  const threads = dataParallelThreads(
    session.args,
    session.backend.name,
    objective,
    session.start.resume?.state.data_parallel,
    session.warn,
  );
  if (threads <= 1 || !objective.workerModule) return { threads: 1, workers: null };
  const workers = await GradientWorkers.start({
    count: threads - 1,
    objectiveModule: objective.workerModule,
    backend: session.backend.name,
    config: session.config,
    args: session.args,
    model: session.model,
  });
  session.log(`data parallel: ${threads} threads share each update`);
  return { threads, workers };
}
