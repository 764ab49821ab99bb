#!/usr/bin/env -S node --import tsx
/**
 * One task of the DPO sweep's Slurm job array (array.ts), run by its job script on a compute node:
 * `array-task.ts <tasks file>`, SLURM_ARRAY_TASK_ID picking the task's queue line. It sweeps that
 * one line exactly as `npm run dpo-sweep` does locally — claimed under the queue lock
 * (claims.ts), the DPO trainer a child in its own process group with the stall watchdog, the line
 * marked completed — so a requeued or duplicated task never trains a line twice: a completed line
 * is left alone, one another task holds is waited for.
 *
 * On SIGUSR1 (Slurm's time-limit warning) the trainer saves and exits, the claim is released, and
 * the task requeues itself (`scontrol requeue`), at most `max_requeues` restarts; on SIGTERM
 * (scancel, preemption, a requeue by Slurm) it saves and exits, and Slurm decides.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { EXIT, UserError } from "../../lib/cli/errors.ts";
import { runMain } from "../../lib/cli/main.ts";
import { StopController } from "../../lib/process/index.ts";
import { readQueue } from "../../lib/queue/index.ts";
import { localExecutor } from "../executor/local.ts";
import { routeStopSignals } from "../pipeline/signals.ts";
import { readArrayTasks } from "./array-spec.ts";
import { runSweep } from "./sweep.ts";

const NAME = "dpo_sweep_task";

const say = (line: string): void => void process.stdout.write(`${line}\n`);
const warn = (line: string): void => void process.stderr.write(`${line}\n`);

runMain(NAME, async () => {
  const file = process.argv[2];
  if (file === undefined)
    throw new UserError("usage: array-task.ts <tasks file> (run by the sweep's job script)");
  const spec = await readArrayTasks(file);
  const indexText = process.env.SLURM_ARRAY_TASK_ID ?? "";
  const task = /^\d+$/.test(indexText) ? spec.tasks[Number(indexText)] : undefined;
  if (task === undefined) {
    throw new UserError(
      `SLURM_ARRAY_TASK_ID=${JSON.stringify(indexText)}: ${file} has tasks 0-${spec.tasks.length - 1}`,
    );
  }
  const restarts = Number(process.env.SLURM_RESTART_COUNT ?? "0") || 0;
  const jobId = process.env.SLURM_JOB_ID;
  say(
    `[sweep] array task ${indexText} (Slurm job ${jobId ?? "?"}, restart ${restarts}): line step ${task.step}`,
  );

  const line = (await readQueue(spec.queue_file)).find((e) => e.step === task.step);
  if (line?.completed) {
    // A duplicate of a task that did it, or a requeue after it was done: never a second training.
    say(`[sweep] step ${task.step}: already completed; nothing to do`);
    return EXIT.ok;
  }
  const stop = new StopController();
  const unroute = routeStopSignals(stop);
  let warned = false;
  const onWarning = (): void => {
    warned = true;
    warn(
      "[sweep] SIGUSR1 (Slurm's time-limit warning): the DPO child saves and exits, then the task requeues",
    );
    stop.stop("SIGTERM", "SIGUSR1 (Slurm's time-limit warning)");
  };
  process.on("SIGUSR1", onWarning);
  try {
    const outcome = await runSweep(
      {
        queueFile: spec.queue_file,
        sftMetadataFile: spec.sft_metadata_file,
        dpoRoot: spec.dpo_root,
        command: () => ({ file: task.file, args: task.args }),
        env: process.env,
        executor: localExecutor,
        lines: new Set([task.step]),
      },
      {
        watch: false,
        maxParallel: 1,
        // Slurm's --gres already set this task's CUDA_VISIBLE_DEVICES: passed through as it is.
        devices: null,
        stop,
        graceMs: spec.grace_ms,
        stallTimeoutMs: spec.stall_timeout_ms,
        echo: { stdout: process.stdout, stderr: process.stderr },
        say,
        warn,
      },
    );
    if (!warned || outcome.interrupted === null || jobId === undefined) return outcome.exitCode;
    if (restarts >= spec.max_requeues) {
      warn(
        `[sweep] not requeueing Slurm job ${jobId}: it has been restarted ${restarts} times (SLURM_MAX_REQUEUES=${spec.max_requeues}); ` +
          "run the sweep again to resume the line",
      );
      return outcome.exitCode;
    }
    unroute(); // the SIGTERM Slurm sends on requeue is expected now
    process.on("SIGTERM", () => {});
    await promisify(execFile)("scontrol", ["requeue", jobId], { timeout: 60_000 });
    say(`[sweep] requeued Slurm job ${jobId} (restart ${restarts + 1} of at most ${spec.max_requeues})`);
    return outcome.exitCode;
  } finally {
    unroute();
    process.off("SIGUSR1", onWarning);
  }
});
