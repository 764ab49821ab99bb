/**
 * Pipeline orchestration cost: `npm run bench:pipeline` (or `node --import tsx bench/pipeline.ts`).
 * Prints one JSON object per measurement:
 *   pipeline.overhead     a whole tiny-model pipeline (4 stages): its wall time, as seen from outside,
 *                         minus the trainers' own (spawn to exit, timed around runChild and recorded
 *                         in pipeline.json), per stage. Goal ≤ 1 s per stage.
 *   pipeline.overhead_skip  the same command again, every stage finished: all of it is orchestration.
 *   pipeline.stop         SIGINT to the pipeline's process group at a random moment mid-stage, until the
 *                         trainer's process group is gone (and until the pipeline exits). Goal ≤ one
 *                         step + one save + 0.2 s, with the step and save times read off the trainer's
 *                         own output (ms/step; the gap between a step line and its CHECKPOINT line).
 * BENCH_REPEATS (default 3) repeats each measurement. Works in a temp dir, removed at the end.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { groupAlive } from "../lib/process/group.ts";
import {
  processesMentioning,
  readRecord,
  runPipeline,
  startPipeline,
  TINY_TRAINER_FLAGS,
} from "../test/support/pipeline-process.ts";

const REPEATS = Number(process.env.BENCH_REPEATS ?? 3);
const print = (record: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(record)}\n`);
const round = (n: number) => Math.round(n);

const TINY_ENV = {
  MODEL_HIDDEN_SIZE: "32",
  MODEL_NUM_LAYERS: "1",
  SAVE_INTERVAL: "5",
  LOG_INTERVAL: "5",
  PRETRAIN_MAX_STEPS: "10",
  SFT_MAX_STEPS: "10",
  DPO_MAX_STEPS: "10",
  R1_MAX_STEPS: "10",
};

async function overhead(root: string, run: number): Promise<void> {
  const out = join(root, `overhead-${run}`);
  for (const kind of ["pipeline.overhead", "pipeline.overhead_skip"]) {
    const started = performance.now();
    const result = await runPipeline(["--skip-infer", "--", ...TINY_TRAINER_FLAGS], {
      env: { ...TINY_ENV, OUT_DIR: out },
    });
    const wallMs = performance.now() - started;
    if (result.code !== 0) throw new Error(`pipeline failed (${result.code}):\n${result.stderr}`);
    const stages = readRecord(out).stages.filter((s) => s.stage !== "infer");
    const trainerMs = stages.reduce((sum, s) => sum + (s.duration_ms ?? 0), 0);
    print({
      bench: kind,
      run,
      stages: stages.length,
      trainers_run: stages.filter((s) => s.duration_ms !== null).length,
      wall_ms: round(wallMs),
      trainers_ms: trainerMs,
      overhead_ms: round(wallMs - trainerMs),
      overhead_per_stage_ms: round((wallMs - trainerMs) / stages.length),
      goal_per_stage_ms: 1000,
    });
  }
}

interface Timed {
  line: string;
  at: number;
}

async function stopLatency(root: string, shape: "tiny" | "default", run: number): Promise<void> {
  const out = join(root, `stop-${shape}-${run}`);
  const env =
    shape === "tiny"
      ? { ...TINY_ENV, OUT_DIR: out, SFT_MAX_STEPS: "1000", LOG_INTERVAL: "1" }
      : {
          OUT_DIR: out,
          SAVE_INTERVAL: "5",
          LOG_INTERVAL: "1",
          SFT_MAX_STEPS: "1000",
          PRETRAIN_MAX_STEPS: "5",
        };
  const args = [
    "--stages",
    "pretrain,sft",
    "--",
    ...(shape === "tiny" ? TINY_TRAINER_FLAGS : ["--eval", "false"]),
  ];
  const pipeline = startPipeline(args, { env });
  const lines: Timed[] = [];
  pipeline.child.stdout?.on("data", (chunk: Buffer) => {
    for (const line of String(chunk).split("\n")) if (line) lines.push({ line, at: performance.now() });
  });
  await pipeline.waitForLine(/^\[sft\] CHECKPOINT:.*step_00000005$/);
  const [trainer] = processesMentioning(join(out, "sft"));
  if (trainer === undefined) throw new Error("no sft trainer found");
  const stepMs = lastStepMs(lines);
  await sleep(Math.random() * stepMs); // land anywhere within a step
  const sent = performance.now();
  process.kill(-(pipeline.child.pid as number), "SIGINT");
  while (groupAlive(trainer)) await sleep(2);
  const groupGone = performance.now() - sent;
  const exit = await pipeline.done;
  const exited = performance.now() - sent;
  if (exit.code !== 130) throw new Error(`expected exit 130, got ${exit.code}:\n${exit.stderr}`);
  const saveMs = periodicSaveMs(lines);
  print({
    bench: "pipeline.stop",
    shape,
    run,
    step_ms: round(stepMs),
    save_ms: round(saveMs),
    group_gone_ms: round(groupGone),
    pipeline_exit_ms: round(exited),
    goal_ms: round(stepMs + saveMs + 200),
    within_goal: groupGone <= stepMs + saveMs + 200,
  });
}

/** The trainer's own ms/step on its last progress line. */
function lastStepMs(lines: Timed[]): number {
  for (const { line } of [...lines].reverse()) {
    const match = /^\[sft\] step .* (\d+) ms\/step/.exec(line);
    if (match) return Number(match[1]);
  }
  throw new Error("no [sft] progress line");
}

/** A periodic save, timed from outside: the `step 5/N` line to its `CHECKPOINT:…step_00000005` line. */
function periodicSaveMs(lines: Timed[]): number {
  const step = lines.find((l) => /^\[sft\] step 5\//.test(l.line));
  const saved = lines.find((l) => /^\[sft\] CHECKPOINT:.*step_00000005$/.test(l.line));
  if (!step || !saved) throw new Error("no periodic save at step 5");
  return saved.at - step.at;
}

const root = await mkdtemp(join(tmpdir(), "baton-bench-pipeline-"));
try {
  for (let run = 1; run <= REPEATS; run++) await overhead(root, run);
  for (const shape of ["tiny", "default"] as const) {
    for (let run = 1; run <= REPEATS; run++) await stopLatency(root, shape, run);
  }
} finally {
  await rm(root, { recursive: true, force: true });
}
