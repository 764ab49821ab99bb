/**
 * The DPO sweep on Slurm (EXECUTOR=slurm npm run dpo-sweep): one job array, one task per pending
 * queue line (`--array=0-<n-1>%<max-parallel>`, each with SLURM_GRES, e.g. one GPU), each task
 * sweeping its own line on its node as the local sweep does (array-task.ts: the same queue lock and
 * claims, so a requeued or duplicated task never trains a line twice). This side writes the job
 * script and the tasks file into `<dpo>/.sweep/`, submits, follows every task's log and state, and
 * ends with the sweep's report. Ctrl+C stops following; running the same command again while the
 * array's tasks are queued or running follows them instead of submitting another array.
 */

import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { EXIT, UserError } from "../../lib/cli/errors.ts";
import { writeFileAtomic } from "../../lib/fs/atomic.ts";
import { makeDir } from "../../lib/fs/make-dir.ts";
import { pathExists } from "../../lib/fs/probe.ts";
import { childEnv, failureExitCode, interruptExitCode, StopController } from "../../lib/process/index.ts";
import { readQueue, resolveEntryPath } from "../../lib/queue/index.ts";
import {
  baseSbatchOptions,
  type SbatchOptions,
  type SlurmEnvSettings,
  submitJob,
  writeJobScript,
} from "../../lib/slurm/index.ts";
import { type Supervised, supervise } from "../executor/attempt.ts";
import { linkStop } from "../executor/local.ts";
import { nodeScript } from "../executor/node-script.ts";
import { exportedEnv, slurmExecutor } from "../executor/slurm.ts";
import { displayPath } from "../pipeline/settings.ts";
import { ARRAY_TASKS_FORMAT, writeArrayTasks } from "./array-spec.ts";
import { runDirName } from "./claims.ts";
import { printReport } from "./command.ts";
import type { SweepSettings } from "./settings.ts";

const TASK_SCRIPT = fileURLToPath(new URL("./array-task.ts", import.meta.url));
const TAG = "[sweep]";

/** `<dpo>/.sweep/slurm-array.json`: the array last submitted for this queue. */
interface ArrayRecord {
  job_id: string;
  steps: number[];
  script: string;
  tasks_file: string;
  submitted_at: string;
}

export interface ArraySweepOptions {
  maxParallel: number;
  /** The command's stop decision (signals): it ends the following, never the tasks. */
  stop: StopController;
  slurm: SlurmEnvSettings;
  say(line: string): void;
  warn(line: string): void;
}

export async function sweepArrayCommand(
  settings: SweepSettings,
  options: ArraySweepOptions,
): Promise<number> {
  const { say, warn } = options;
  if (!(await pathExists(settings.queueFile))) {
    throw new UserError(
      `no checkpoint queue at ${settings.queueFile}: run the sft stage first (npm run pipeline -- --stages sft)`,
    );
  }
  const sweepDir = join(settings.dpoRoot, ".sweep");
  const recordFile = join(sweepDir, "slurm-array.json");
  const executor = slurmExecutor({ slurm: options.slurm, warn });
  const taskIds = (record: ArrayRecord) => record.steps.map((_, i) => `${record.job_id}_${i}`);

  let record = await readRecord(recordFile);
  let open = false;
  if (record !== null && executor.inspect) {
    const statuses = await executor.inspect(taskIds(record));
    open = statuses.some((s) => s.phase === "waiting" || s.phase === "running");
  }
  if (record !== null && open) {
    say(
      `${TAG} following job array ${record.job_id} again (${record.steps.length} task(s); ${displayPath(recordFile)})`,
    );
  } else {
    const pending = (await readQueue(settings.queueFile)).filter((e) => !e.completed);
    if (pending.length === 0) {
      say(`${TAG} ${displayPath(settings.queueFile)}: every line is completed; nothing to submit`);
      await printReport(settings, say);
      return EXIT.ok;
    }
    await makeDir(sweepDir);
    const tasksFile = join(sweepDir, "slurm-array-tasks.json");
    await writeArrayTasks(tasksFile, {
      format: ARRAY_TASKS_FORMAT,
      queue_file: settings.queueFile,
      sft_metadata_file: settings.sftMetadataFile,
      dpo_root: settings.dpoRoot,
      grace_ms: settings.stopGraceMs,
      stall_timeout_ms: settings.stallTimeoutMs,
      max_requeues: options.slurm.maxRequeues,
      tasks: pending.map((entry) => {
        const checkpoint = resolveEntryPath(settings.queueFile, entry);
        return {
          step: entry.step,
          ...settings.command(entry, checkpoint, join(settings.dpoRoot, runDirName(entry.step))),
        };
      }),
    });
    const sbatch: SbatchOptions = {
      ...baseSbatchOptions(options.slurm),
      jobName: "baton-dpo-sweep",
      output: join(sweepDir, "slurm-%A_%a.out"),
      chdir: process.cwd(),
      array: { spec: `0-${pending.length - 1}`, maxParallel: options.maxParallel },
    };
    const script = join(sweepDir, "slurm-array.sh");
    const task = nodeScript(TASK_SCRIPT, [tasksFile]);
    await writeJobScript(script, {
      description: `Baton: the DPO sweep over ${settings.queueFile}, one task per line of ${tasksFile}`,
      options: sbatch,
      env: exportedEnv(childEnv(settings.env), process.env),
      command: [task.file, ...task.args],
    });
    const { jobId } = await submitJob({ script, options: sbatch });
    record = {
      job_id: jobId,
      steps: pending.map((e) => e.step),
      script,
      tasks_file: tasksFile,
      submitted_at: new Date().toISOString(),
    };
    await writeFileAtomic(recordFile, `${JSON.stringify(record, null, 2)}\n`);
    say(
      `${TAG} job array ${jobId}: ${pending.length} task(s), one per pending line of ${displayPath(settings.queueFile)} ` +
        `(steps ${record.steps.join(", ")}), ${options.maxParallel} at a time${options.slurm.gres ? `, --gres=${options.slurm.gres} each` : ""}; ` +
        `script ${displayPath(script)}`,
    );
  }

  const follow = new StopController();
  const array = record;
  const outcomes: Array<{ step: number; outcome: Promise<Supervised> }> = [];
  const followAgain = executor.follow;
  if (followAgain === undefined) throw new Error("the Slurm executor cannot follow jobs");
  for (const [index, step] of array.steps.entries()) {
    const id = `${array.job_id}_${index}`;
    const label = `dpo:${runDirName(step)}`;
    const outcome = supervise(
      (start) =>
        followAgain.call(
          executor,
          { label, trainerTag: label, id, log: join(sweepDir, `slurm-${id}.out`) },
          start,
        ),
      {
        stop: follow,
        graceMs: settings.stopGraceMs,
        echo: { stdout: process.stdout, stderr: process.stderr },
        // Each task watches its own trainer's heartbeats (the local sweep inside it does).
        stallTimeoutMs: 0,
        onEvent(event) {
          if (event.kind === "started") {
            const again = (event.restart ?? 0) > 0 ? ` again (restart ${event.restart})` : "";
            say(`${TAG} step ${step}: task ${id} running${again}`);
          } else if (event.kind === "waiting" && event.reason === "BeginTime") {
            say(`${TAG} step ${step}: task ${id} requeued, waiting to run again`);
          }
        },
      },
    );
    outcomes.push({ step, outcome });
  }
  const unlink = linkStop(options.stop, follow);
  try {
    let failed: Supervised | null = null;
    let stopped = false;
    for (const { outcome } of outcomes) {
      const result = await outcome;
      if (result.exit.state === "interrupted" && result.exit.interrupted !== null) stopped = true;
      else if (result.exit.state !== "finished") failed ??= result;
    }
    if (stopped) {
      const reason = options.stop.reason ?? "SIGINT";
      warn(
        `${TAG} ${reason}: stopped following; the array's tasks go on in Slurm (job ${array.job_id}). ` +
          "Run the same command again to follow them (scancel " +
          `${array.job_id} cancels them)`,
      );
      return interruptExitCode(reason);
    }
    await printReport(settings, say);
    const left = (await readQueue(settings.queueFile)).filter(
      (e) => array.steps.includes(e.step) && !e.completed,
    );
    if (failed !== null) {
      warn(failed.exit.report || failed.exit.message || `${TAG} a task failed`);
      warn(`${TAG} a task of job array ${array.job_id} failed; run the same command again to retry its line`);
      return failureExitCode(failed.exit.exitCode);
    }
    if (left.length > 0) {
      warn(
        `${TAG} the array ended with line(s) ${left.map((e) => e.step).join(", ")} not completed; run the same command again`,
      );
      return EXIT.failure;
    }
    say(`${TAG} done: every line of job array ${array.job_id} is completed`);
    return EXIT.ok;
  } finally {
    unlink();
  }
}

async function readRecord(path: string): Promise<ArrayRecord | null> {
  try {
    const record = JSON.parse(await readFile(path, "utf8")) as Partial<ArrayRecord>;
    return typeof record.job_id === "string" && Array.isArray(record.steps) ? (record as ArrayRecord) : null;
  } catch {
    return null;
  }
}
