#!/usr/bin/env -S node --import tsx
/**
 * `npm run pipeline` — the run.sh rewrite (DESIGN §5): pretrain → sft → dpo → r1 → an inference
 * sample, each stage a child process in its own process group that resumes from its latest valid
 * checkpoint, with TensorBoard started in the background. Never loads TensorFlow.js: training
 * happens only in the children.
 */
import { readdir } from "node:fs/promises";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chalk, fs } from "zx";
import { EXIT, UserError } from "../lib/cli/errors.ts";
import { runMain } from "../lib/cli/main.ts";
import { STAGE_NAMES, type StageName } from "../lib/config/stages.ts";
import { isFile, pathExists } from "../lib/fs/probe.ts";
import { isTrainingStage, type PipelineFlags, parsePipelineFlags } from "../lib/pipeline/cli.ts";
import { decisionArgs, describeDecision, planStage, type StageDecision } from "../lib/pipeline/plan.ts";
import { RunRecorder, type RunState, type StepName } from "../lib/pipeline/run-record.ts";
import { runStep } from "../lib/pipeline/run-step.ts";
import { displayPath, type PipelineSettings, pipelineSettings } from "../lib/pipeline/settings.ts";
import { routeStopSignals } from "../lib/pipeline/signals.ts";
import { latestCheckpointSummary, surveyStage } from "../lib/pipeline/survey.ts";
import { childEnv, formatFailureReport, interruptExitCode, StopController } from "../lib/process/index.ts";
import { reportCommand } from "../lib/sweep/command.ts";
import { type PipelineSweep, startPipelineSweep } from "../lib/sweep/pipeline-step.ts";
import { sweepSettings } from "../lib/sweep/settings.ts";
import { boardLabel, ensureTensorBoard } from "../lib/tensorboard/launcher.ts";
import { BUILTIN_BOARD } from "./board/launch.ts";
import { HELP } from "./run-help.ts";

const NAME = "pipeline";
const REPO = fileURLToPath(new URL("..", import.meta.url)).replace(/\/$/, "");
/** The tsx loader by absolute URL, so trainers start whatever the working directory. */
const TSX_LOADER = import.meta.resolve("tsx");
const INFER_SCRIPT = "trainer/infer.ts";

const say = (line: string): void => void process.stdout.write(`${line}\n`);
const warn = (line: string): void => void process.stderr.write(`${line}\n`);
const tag = (step: string): string => chalk.bold(`[${step}]`);
const show = (path: string): string => displayPath(path);

interface Context {
  settings: PipelineSettings;
  flags: PipelineFlags;
  recorder: RunRecorder;
  stop: StopController;
  env: Record<string, string>;
}

/** How a step ended, for the loop: go on, or end the run with this exit code. */
type StepEnd = { go: true } | { go: false; exitCode: number };

runMain(NAME, async () => {
  const flags = parsePipelineFlags(process.argv.slice(2));
  if (flags.help) {
    process.stdout.write(HELP);
    return EXIT.ok;
  }
  const settings = pipelineSettings(process.env, flags, REPO);
  if (flags.dpoSweepReport) return reportCommand(sweepSettings(settings, process.env), say);
  return runPipeline(settings, flags);
});

async function runPipeline(settings: PipelineSettings, flags: PipelineFlags): Promise<number> {
  // A closed terminal (SIGHUP) makes writes fail with EIO; that must not crash us mid-stop.
  process.stdout.on("error", () => {});
  process.stderr.on("error", () => {});
  const stop = new StopController();
  const unroute = routeStopSignals(stop, {
    onSignal(signal, outcome) {
      if (outcome === "stop") {
        warn(
          `${tag(NAME)} ${signal}: stopping — the running stage saves a checkpoint and exits (Ctrl+C again kills it at once)`,
        );
      } else if (outcome === "force") warn(`${tag(NAME)} ${signal} again: killing the running stage now`);
    },
  });
  let recorder: RunRecorder | null = null;
  try {
    if (settings.cleanSmokeOutputs) await clearSmokeOutputs(settings);
    await fs.mkdirp(settings.outDir);
    recorder = await RunRecorder.begin(settings.recordFile, {
      argv: process.argv.slice(2),
      outDir: resolve(settings.outDir),
    });
    const context: Context = { settings, flags, recorder, stop, env: childEnv(process.env) };
    const exitCode = await runSteps(context);
    const state: RunState =
      stop.reason !== null && exitCode === interruptExitCode(stop.reason)
        ? "interrupted"
        : exitCode === EXIT.ok
          ? "finished"
          : "failed";
    await recorder.finish(state, exitCode);
    return exitCode;
  } catch (error) {
    // An unreadable checkpoint folder, a full disk…: runMain reports it; the record must not say "running".
    const exitCode = error instanceof UserError ? error.exitCode : EXIT.failure;
    await recorder?.finish("failed", exitCode).catch(() => {});
    throw error;
  } finally {
    unroute();
  }
}

async function runSteps(context: Context): Promise<number> {
  const { settings, flags, recorder, stop } = context;
  const startedAt = performance.now();
  for (const step of [...STAGE_NAMES, "infer" as const]) {
    if (!flags.steps.includes(step))
      await recorder.update(step, { state: "skipped", decision: "not selected" });
  }
  const training = flags.steps.filter(isTrainingStage);
  say(
    `${tag(NAME)} ${flags.steps.join(" → ")}; model hidden ${settings.hiddenSize} × ${settings.numLayers} layers; ` +
      `outputs in ${show(settings.outDir)} (progress in ${show(settings.recordFile)})`,
  );
  if (training.length > 0) await startTensorBoard(context);

  // --dpo-sweep: the dpo step is the sweep; with --watch it starts with the sft stage, beside it.
  const sweepFrom = flags.dpoSweep?.watch && training.includes("sft") ? "sft" : "dpo";
  let sweep: PipelineSweep | null = null;
  try {
    for (const stage of training) {
      if (stop.reason !== null) return interrupted(context);
      if (flags.dpoSweep && stage === sweepFrom) sweep = startSweep(context, stage === "sft");
      const end =
        stage === "dpo" && sweep ? await sweepEnd(context, sweep) : await runTrainingStage(context, stage);
      if (stage === "sft") sweep?.sftDone();
      if (!end.go) return end.exitCode;
    }
  } finally {
    sweep?.sftDone();
    await sweep?.finish().catch(() => {}); // a stopped stage ends the run; the sweep's children must be gone first
  }
  if (flags.steps.includes("infer")) {
    if (stop.reason !== null) return interrupted(context);
    const end = await runInference(context);
    if (!end.go) return end.exitCode;
  }
  if (stop.reason !== null) return interrupted(context);
  say(`${tag(NAME)} ${chalk.green("done")} in ${duration(performance.now() - startedAt)}`);
  const record = recorder.record.tensorboard;
  if (record?.url) {
    const label = record.board === "builtin" ? boardLabel("builtin") : "TensorBoard";
    say(`${tag(NAME)} ${label}: ${record.url} (npm run tensorboard -- --stop to stop it)`);
  }
  return EXIT.ok;
}

async function startTensorBoard({ settings, recorder }: Context): Promise<void> {
  const tb = settings.tensorBoard;
  if (!tb.auto) {
    say(`${tag("tensorboard")} not started (TB_AUTO=0); npm run tensorboard starts it on ${show(tb.logdir)}`);
    return;
  }
  const result = await ensureTensorBoard({
    ...tb,
    builtin: BUILTIN_BOARD,
    log: (line, level) =>
      level === "warn" ? warn(`${tag("tensorboard")} ${line}`) : say(`${tag("tensorboard")} ${line}`),
  });
  await recorder.updateRun({
    tensorboard: {
      status: result.status,
      logdir: result.logdir,
      message: result.message,
      ...(result.url !== undefined ? { url: result.url } : {}),
      ...(result.pid !== undefined ? { pid: result.pid } : {}),
      ...(result.board !== undefined ? { board: result.board } : {}),
    },
  });
}

async function runTrainingStage(context: Context, stage: StageName): Promise<StepEnd> {
  const { settings, recorder } = context;
  const own = settings.stages[stage];
  const previousName = STAGE_NAMES[STAGE_NAMES.indexOf(stage) - 1];
  const previous = previousName === undefined ? null : settings.stages[previousName];
  const survey = await surveyStage(own, previous, previous === null ? null : settings.initOverride);
  const decision = planStage(survey);
  const line = describeDecision(survey, decision, show);

  if (decision.kind === "skip") {
    say(`${tag(stage)} ${line}`);
    await recorder.update(stage, {
      state: "finished",
      decision: line,
      checkpoint: decision.checkpoint.path,
      last_checkpoint: decision.checkpoint.path,
      message: "already finished",
    });
    return { go: true };
  }
  if (decision.kind === "blocked") return fail(context, stage, `error: ${line}`, EXIT.badInput);
  if (!(await isFile(own.trainer))) {
    return fail(
      context,
      stage,
      `error: ${show(own.trainer)} does not exist (is this checkout complete?)`,
      EXIT.failure,
    );
  }

  say(`${tag(stage)} ${line}`);
  const outcome = await runStep({
    step: stage,
    file: process.execPath,
    args: ["--import", TSX_LOADER, own.trainer, ...own.trainerArgs(decisionArgs(decision))],
    env: context.env,
    logsDir: join(own.outDir, "logs"),
    recorder,
    stop: context.stop,
    graceMs: settings.stopGraceMs,
    decision: line,
    checkpoint: startingPoint(decision),
  });
  if (outcome.state === "finished") {
    const latest = await latestCheckpointSummary(own.ckptDir);
    if (latest?.finished !== true) {
      warn(`${tag(stage)} warning: it exited 0 but ${show(own.ckptDir)} holds no finished checkpoint`);
    }
    return { go: true };
  }
  if (outcome.state === "interrupted") return { go: false, exitCode: interrupted(context) };
  warn(formatFailureReport(outcome.result));
  warn(
    `${tag(NAME)} ${chalk.red(`stopped: ${stage} failed`)}; fix the cause and run the same command again to resume it`,
  );
  return { go: false, exitCode: failureExitCode(outcome.result.exitCode) };
}

function startSweep({ settings, flags, recorder, stop, env }: Context, besideSft: boolean): PipelineSweep {
  return startPipelineSweep({
    settings,
    watch: flags.dpoSweep?.watch === true,
    besideSft,
    maxParallel: flags.dpoSweep?.maxParallel ?? 1,
    recorder,
    stop,
    env,
    say,
    warn,
  });
}

async function sweepEnd(context: Context, sweep: PipelineSweep): Promise<StepEnd> {
  const outcome = await sweep.finish();
  if (outcome.exitCode === EXIT.ok) return { go: true };
  if (outcome.interrupted !== null) return { go: false, exitCode: interrupted(context) };
  warn(
    `${tag(NAME)} ${chalk.red("stopped: the DPO sweep failed")}; fix the cause and run the same command again to resume it`,
  );
  return { go: false, exitCode: outcome.exitCode };
}

async function runInference(context: Context): Promise<StepEnd> {
  const { settings, recorder } = context;
  const script = join(REPO, INFER_SCRIPT);
  const checkpoint = settings.infer.checkpoint ?? (await latestOfAnyStage(settings));
  if (settings.infer.checkpoint !== null && !(await pathExists(settings.infer.checkpoint))) {
    return fail(
      context,
      "infer",
      `error: --infer-checkpoint ${settings.infer.checkpoint}: no such file or directory`,
      EXIT.badInput,
    );
  }
  const skip = async (why: string): Promise<StepEnd> => {
    warn(`${tag("infer")} ${why}; skipping the inference sample`);
    await recorder.update("infer", { state: "skipped", decision: why });
    return { go: true };
  };
  if (checkpoint === null) return skip(`no checkpoint under ${show(settings.outDir)} to sample from`);
  if (!(await isFile(script))) return skip(`${INFER_SCRIPT} does not exist yet`);

  const line = `sampling from ${show(checkpoint)}: ${JSON.stringify(settings.infer.prompt)}`;
  say(`${tag("infer")} ${line}`);
  const outcome = await runStep({
    step: "infer",
    file: process.execPath,
    args: [
      "--import",
      TSX_LOADER,
      script,
      "--checkpoint",
      checkpoint,
      "--prompt",
      settings.infer.prompt,
      ...settings.infer.args,
    ],
    env: context.env,
    logsDir: settings.infer.logsDir,
    recorder,
    stop: context.stop,
    graceMs: settings.stopGraceMs,
    decision: line,
    checkpoint,
  });
  if (outcome.state === "finished") return { go: true };
  if (outcome.state === "interrupted") return { go: false, exitCode: interrupted(context) };
  warn(formatFailureReport(outcome.result));
  return { go: false, exitCode: failureExitCode(outcome.result.exitCode) };
}

/** The newest stage's latest valid checkpoint: r1, else dpo, else sft, else pretrain. */
async function latestOfAnyStage(settings: PipelineSettings): Promise<string | null> {
  for (const stage of [...STAGE_NAMES].reverse()) {
    const latest = await latestCheckpointSummary(settings.stages[stage].ckptDir);
    if (latest !== null) return latest.path;
  }
  return null;
}

async function fail(context: Context, step: StepName, message: string, exitCode: number): Promise<StepEnd> {
  warn(`${tag(step)} ${chalk.red(message)}`);
  await context.recorder.update(step, { state: "failed", decision: message, message });
  return { go: false, exitCode };
}

function interrupted({ stop, recorder, settings }: Context): number {
  const reason = stop.reason ?? "SIGINT";
  const stopped = recorder.record.stages.find((s) => s.state === "interrupted");
  const saved = stopped?.last_checkpoint ? ` (last checkpoint ${show(stopped.last_checkpoint)})` : "";
  warn(
    `${tag(NAME)} interrupted by ${reason}${stopped ? ` during ${stopped.stage}${saved}` : ""}; ` +
      `run the same command again to resume${settings.smokeTest && settings.cleanSmokeOutputs ? " (with CLEANUP_SMOKE=0: --smoke-test starts afresh otherwise)" : ""}`,
  );
  return interruptExitCode(reason);
}

/** A failed stage's own exit status when it is an ordinary one (1 error, 2 bad input), else 1. */
function failureExitCode(code: number | null): number {
  return code !== null && code > 0 && code < 126 ? code : EXIT.failure;
}

function startingPoint(decision: StageDecision): string | null {
  if (decision.kind === "resume") return decision.checkpoint.path;
  if (decision.kind === "init") return decision.from;
  return null;
}

/**
 * --smoke-test starts afresh in its own OUT_DIR (like run_mlx.sh's CLEANUP_SMOKE), keeping the
 * TensorBoard record and logdir folder so a TensorBoard already serving them is reused, not leaked.
 */
async function clearSmokeOutputs(settings: PipelineSettings): Promise<void> {
  const keep = new Set([resolve(settings.tensorBoard.recordFile), resolve(settings.tensorBoard.logFile)]);
  const logdir = resolve(settings.tfDir);
  const clear = async (dir: string): Promise<void> => {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      return;
    }
    for (const name of names) {
      const path = resolve(dir, name);
      if (keep.has(path) || path.endsWith(".lock")) continue;
      if (path === logdir || logdir.startsWith(`${path}/`)) await clear(path);
      else await fs.remove(path);
    }
  };
  await clear(resolve(settings.outDir));
}

function duration(ms: number): string {
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
}
