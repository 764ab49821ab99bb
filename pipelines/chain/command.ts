/**
 * `npm run pipeline` with EXECUTOR=slurm (docs/pipeline.md#running-on-slurm), and `--status` /
 * `--cancel` for any run: the run scope around a chain of jobs — signals (Ctrl+C stops following,
 * never the jobs), the run record (kept with the job ids, carried over when a later run of the same
 * command follows the chain again), TensorBoard on this host, the inference sample at the end.
 */
import { resolve } from "node:path";
import { EXIT, UserError } from "../../lib/cli/errors.ts";
import { makeDir } from "../../lib/fs/make-dir.ts";
import { childEnv, StopController } from "../../lib/process/index.ts";
import { slurmSettingsFromEnv } from "../../lib/slurm/index.ts";
import type { StageName } from "../../lib/stages/table.ts";
import { localExecutor } from "../executor/local.ts";
import { slurmExecutor } from "../executor/slurm.ts";
import type { Executor } from "../executor/types.ts";
import { isTrainingStage, type PipelineFlags } from "../pipeline/cli.ts";
import { PIPELINE, type PipelineRun, say, show, tag, warn } from "../pipeline/context.ts";
import { runInference } from "../pipeline/infer-step.ts";
import { interrupted } from "../pipeline/interrupted.ts";
import { type RunRecord, RunRecorder, readRunRecord } from "../pipeline/run-record.ts";
import { beginStages } from "../pipeline/run-scope.ts";
import type { PipelineSettings } from "../pipeline/settings.ts";
import { routeStopSignals } from "../pipeline/signals.ts";
import { clearSmokeOutputs } from "../pipeline/smoke.ts";
import { startTensorBoard } from "../pipeline/tensorboard-step.ts";
import { awaitChain, type ChainEnd, followChain, type Member, submitChain } from "./chain.ts";
import { cancelCommand, jobsOf, openOnes, statusCommand } from "./status.ts";

/** The executor that ran a recorded run, for asking about its jobs. */
function executorOf(settings: PipelineSettings, record: RunRecord | null): Executor | null {
  if (record?.executor !== "slurm") return null;
  return slurmExecutor({ slurm: settings.slurm ?? slurmSettingsFromEnv(process.env), warn });
}

/** `--status` / `--cancel`: about the last run into OUT_DIR, whichever executor ran it. */
export async function statusOrCancel(settings: PipelineSettings, flags: PipelineFlags): Promise<number> {
  const record = await readRunRecord(settings.recordFile);
  const executor = executorOf(settings, record);
  return flags.cancel ? cancelCommand(settings, record, executor) : statusCommand(settings, record, executor);
}

/** A local run into an OUT_DIR whose Slurm chain still runs would be two runs in one folder. */
export async function refuseOverOpenChain(settings: PipelineSettings): Promise<void> {
  const record = await readRunRecord(settings.recordFile);
  const open = openOnes(await jobsOf(record, executorOf(settings, record)));
  if (open.size === 0) return;
  throw new UserError(
    `the Slurm jobs of the run in ${show(settings.outDir)} are still queued or running (${describe(open)}): ` +
      "follow them with EXECUTOR=slurm and the same command, or cancel them with --cancel",
  );
}

export async function chainCommand(settings: PipelineSettings, flags: PipelineFlags): Promise<number> {
  const slurm = settings.slurm ?? slurmSettingsFromEnv(process.env);
  if (flags.dpoSweep) {
    throw new UserError(
      "--dpo-sweep with EXECUTOR=slurm: train up to sft first (--stages pretrain,sft), then run the sweep as a " +
        "job array with EXECUTOR=slurm npm run dpo-sweep",
    );
  }
  const executor = slurmExecutor({ slurm, warn });
  const argv = process.argv.slice(2);
  const previous = await readRunRecord(settings.recordFile);
  const jobs = await jobsOf(previous?.executor === "slurm" ? previous : null, executor);
  const open = openOnes(jobs);
  if (open.size > 0 && JSON.stringify(previous?.argv) !== JSON.stringify(argv)) {
    throw new UserError(
      `the Slurm jobs of another run in ${show(settings.outDir)} are still queued or running (${describe(open)}), ` +
        `started with: ${JSON.stringify((previous?.argv ?? []).join(" "))}; run that command to follow them, ` +
        "--status to see them, or --cancel to cancel them",
    );
  }
  const following = open.size > 0;

  process.stdout.on("error", () => {});
  process.stderr.on("error", () => {});
  const stop = new StopController();
  const unroute = routeStopSignals(stop, {
    onSignal(signal, outcome) {
      if (outcome === "stop") {
        warn(
          `${tag(PIPELINE)} ${signal}: stopping the following (the jobs go on in Slurm; --cancel cancels them)`,
        );
      }
    },
  });
  let recorder: RunRecorder | null = null;
  try {
    if (!following && settings.cleanSmokeOutputs) await clearSmokeOutputs(settings);
    await makeDir(settings.outDir);
    recorder = await RunRecorder.begin(settings.recordFile, {
      argv,
      outDir: resolve(settings.outDir),
      executor: "slurm",
      continues: following,
    });
    const restarts = following
      ? { now: new Set<never>(), done: new Map<never, string>() }
      : await beginStages(settings, flags, recorder, argv);
    const run: PipelineRun = {
      settings,
      flags,
      recorder,
      stop,
      // The inference sample at the end runs here: it is short, and reads the shared out folder.
      executor: localExecutor,
      env: childEnv(process.env),
      restarts,
    };
    const failedMeanwhile = following ? await recordEnded(run, jobs) : null;
    if (failedMeanwhile !== null) {
      // Its later jobs can never start: cancel them rather than follow them.
      await executor.cancel?.([...open.values()].map((job) => job.id)).catch(() => {});
      warn(
        `${tag(PIPELINE)} stopped: ${failedMeanwhile} failed; fix the cause and run the same command again to resume it`,
      );
      await recorder.finish("failed", EXIT.failure);
      return EXIT.failure;
    }
    const end = await body(
      run,
      executor,
      flags.steps.filter(isTrainingStage),
      following ? open : null,
      slurm.maxRequeues,
    );
    await recorder.finish(end.state, end.exitCode);
    return end.exitCode;
  } catch (error) {
    const exitCode = error instanceof UserError ? error.exitCode : EXIT.failure;
    await recorder?.finish("failed", exitCode).catch(() => {});
    throw error;
  } finally {
    unroute();
  }
}

async function body(
  run: PipelineRun,
  executor: Executor,
  training: readonly StageName[],
  open: ReadonlyMap<StageName, { id: string; log: string }> | null,
  maxRequeues: number,
): Promise<ChainEnd> {
  const { settings, flags, stop } = run;
  const startedAt = performance.now();
  say(
    `${tag(PIPELINE)} ${flags.steps.join(" → ")} on Slurm; model hidden ${settings.hiddenSize} × ${settings.numLayers} layers; ` +
      `outputs in ${show(settings.outDir)} (progress in ${show(settings.recordFile)})`,
  );
  const stopped = (): ChainEnd => ({ exitCode: interrupted(run), state: "interrupted" });
  const failed = (exitCode: number): ChainEnd => ({ exitCode, state: "failed" });
  if (training.length > 0) await startTensorBoard(run);
  if (stop.reason !== null) return stopped();
  const follow = new StopController();
  let members: Member[];
  if (open !== null) {
    members = followChain(run, executor, follow, open);
  } else {
    const submitted = await submitChain(run, executor, training, follow, maxRequeues);
    members = submitted.members;
    if (submitted.failed !== null) {
      const ids = members.map((m) => m.jobId()).filter((id): id is string => id !== null);
      if (ids.length > 0) await executor.cancel?.(ids).catch(() => {});
      const last = members.at(-1);
      if (last)
        await run.recorder.update(last.stage, { state: "failed", message: submitted.failed.exit.message });
      warn(submitted.failed.exit.report);
      if (ids.length > 0) warn(`${tag(PIPELINE)} cancelled the jobs already submitted: ${ids.join(", ")}`);
      return failed(submitted.failed.exit.exitCode ?? EXIT.failure);
    }
  }
  const result = await awaitChain(run, executor, members);
  if (result.state !== "finished") return result;
  if (flags.steps.includes("infer")) {
    if (stop.reason !== null) return stopped();
    const end = await runInference(run);
    if (!end.go)
      return stop.reason !== null ? { exitCode: end.exitCode, state: "interrupted" } : failed(end.exitCode);
  }
  const s = Math.round((performance.now() - startedAt) / 1000);
  say(
    `${tag(PIPELINE)} done in ${s < 60 ? `${s}s` : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`}`,
  );
  const board = run.recorder.record.tensorboard;
  if (board?.url)
    say(`${tag(PIPELINE)} TensorBoard: ${board.url} (npm run tensorboard -- --stop to stop it)`);
  return { exitCode: EXIT.ok, state: "finished" };
}

/** Following again: what the jobs that ended meanwhile did, in the record and in one line each. */
async function recordEnded(
  run: PipelineRun,
  jobs: Awaited<ReturnType<typeof jobsOf>>,
): Promise<StageName | null> {
  let failed: StageName | null = null;
  for (const [stage, job] of jobs) {
    const status = job.status;
    if (status === null || status.phase === "waiting" || status.phase === "running") continue;
    const finished = status.phase === "ended" && /^COMPLETED\b.*exit 0:0/.test(status.state);
    say(`${tag(stage)} job ${job.id} ${finished ? "finished" : `ended: ${status.state}`} meanwhile`);
    if (!finished && !/Dependency/.test(status.state)) failed ??= stage;
    if (run.recorder.step(stage).state === "finished") continue;
    await run.recorder.update(stage, {
      state: finished ? "finished" : "failed",
      ...(finished ? { exit_code: 0, message: null } : { message: `job ${job.id} ${status.state}` }),
    });
  }
  return failed;
}

function describe(open: ReadonlyMap<string, { id: string; status: { state: string } | null }>): string {
  return [...open]
    .map(([stage, job]) => `${stage} job ${job.id} ${job.status?.state ?? ""}`.trim())
    .join(", ");
}
