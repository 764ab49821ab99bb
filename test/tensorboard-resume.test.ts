/**
 * TensorBoard across a resume, end to end: a real tiny trainer stopped by SIGTERM, resumed,
 * SIGKILLed after a periodic save (leaving logged steps past it orphaned in its event file) and
 * recovered — alone, and under the pipeline — must show in TensorBoard exactly the curve of an
 * uninterrupted run: every step once, the same values. The curve is read the way TensorBoard's
 * scalars dashboard reads it (test/support/tensorboard-view.ts), a model checked here first
 * against files TensorBoard wrote and what its own code serves for them.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { readRunEvents, scalarSeries } from "../lib/tensorboard/index.ts";
import { crashAndRecover, finalModelPath, stepDir } from "./support/crash-resume.ts";
import {
  pipelineTestRoot,
  processesMentioning,
  REPO,
  readRecord,
  runPipeline,
  startPipeline,
  TINY_TRAINER_FLAGS,
} from "./support/pipeline-process.ts";
import { type ScalarPoint, tensorBoardScalars, visibleSteps } from "./support/tensorboard-view.ts";
import { runDirs, runTrainerToEnd, sha256, startTrainer, TINY_MODEL } from "./support/trainer-process.ts";

const root = pipelineTestRoot("tb-resume");

const seed = Number(process.env.BATON_TEST_SEED ?? Date.now() % 100000);
const FIXTURES = join(REPO, "test", "fixtures", "tensorboard");

describe("the TensorBoard view model", () => {
  test("serves TensorBoard-written resumed runs exactly as TensorBoard's own code does", async () => {
    const rows = readFileSync(join(FIXTURES, "resume.provider.tsv"), "utf8").trim().split("\n").slice(1);
    for (const run of ["with_start", "no_start"]) {
      const expected = new Map<string, ScalarPoint[]>();
      for (const row of rows) {
        const [name, tag, step, value, wallTime] = row.split("\t") as [
          string,
          string,
          string,
          string,
          string,
        ];
        if (name !== run) continue;
        const points = expected.get(tag) ?? [];
        points.push({ step: Number(step), value: Number(value), wallTime: Number(wallTime) });
        expected.set(tag, points);
      }
      assert.deepEqual(await tensorBoardScalars(join(FIXTURES, "resume", run)), expected, run);
    }
  });
});

/** Steps 1..n, each once: an uninterrupted run's curve at log interval 1. */
const eachStepOnce = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

/**
 * The resumed run's TensorBoard curves equal the uninterrupted run's: the same steps, once each,
 * in every tag; and the same values where training is deterministic (all but tokens/s).
 */
async function assertSameCurves(resumedDir: string, wholeDir: string, stage: string, steps: number) {
  const whole = await tensorBoardScalars(wholeDir);
  const resumed = await tensorBoardScalars(resumedDir);
  const tags = [...whole.keys()].sort();
  assert.deepEqual(tags, [`${stage}/grad_norm`, `${stage}/loss`, `${stage}/lr`, `${stage}/tokens_per_sec`]);
  assert.deepEqual([...resumed.keys()].sort(), tags);
  for (const tag of tags) {
    assert.deepEqual(visibleSteps(whole, tag), eachStepOnce(steps), `${tag}, uninterrupted`);
    assert.deepEqual(visibleSteps(resumed, tag), eachStepOnce(steps), `${tag} after the resumes`);
    if (tag.endsWith("tokens_per_sec")) continue;
    assert.deepEqual(
      resumed.get(tag)?.map((p) => p.value),
      whole.get(tag)?.map((p) => p.value),
      `${tag} values`,
    );
  }
  // The purge was exercised: the crash left steps past its checkpoint in the files, logged twice.
  const { events } = await readRunEvents(resumedDir);
  const logged = scalarSeries(events, `${stage}/loss`).map(([step]) => step);
  assert.ok(logged.length > steps, `no orphaned steps in the event files: ${logged.join(",")}`);
}

const STEPS = 12;
const SAVE_INTERVAL = 4;
/** Stopped (SIGTERM) before the save at 8, so the second session makes that save; then killed after it. */
const stopAt = 2 + (seed % 4);
const crashAt = { checkpointStep: 8, killStep: 9 + (seed % 2) };

test(`a trainer stopped, resumed, killed after a save and recovered shows the uninterrupted curve (BATON_TEST_SEED=${seed})`, async () => {
  const args = (name: string) => [
    ...runDirs(join(root, name), "pretrain"),
    ...TINY_MODEL,
    ...["--backend", "wasm", "--max_steps", String(STEPS), "--save_interval", String(SAVE_INTERVAL)],
    ...["--log_interval", "1", "--eval", "false"],
  ];
  const whole = await runTrainerToEnd("train_pretrain.ts", args("whole"));
  assert.equal(whole.code, 0, whole.stderr);

  const first = startTrainer("train_pretrain.ts", args("resumed"));
  await first.waitForLine(new RegExp(`\\] step ${stopAt}/${STEPS} `));
  first.child.kill("SIGTERM");
  const stopped = await first.done;
  assert.equal(stopped.code, 143, stopped.stderr);
  const saved = [...stopped.stdout.matchAll(/^CHECKPOINT:(.*)$/gm)].at(-1)?.[1];
  const { killed } = await crashAndRecover("train_pretrain.ts", args("resumed"), crashAt, STEPS);
  assert.ok(killed.stdout.includes(`resuming from ${saved} (`), killed.stdout);

  await assertSameCurves(
    join(root, "resumed", "tb", "pretrain"),
    join(root, "whole", "tb", "pretrain"),
    "pretrain",
    STEPS,
  );
  assert.equal(
    sha256(finalModelPath(join(root, "resumed"), "pretrain", STEPS)),
    sha256(finalModelPath(join(root, "whole"), "pretrain", STEPS)),
  );
});

test(`through the pipeline: Ctrl+C, a re-run whose trainer is killed after a save, a re-run (BATON_TEST_SEED=${seed})`, async () => {
  const args = ["--stages", "pretrain", "--", ...TINY_TRAINER_FLAGS];
  const envFor = (name: string): NodeJS.ProcessEnv => ({
    OUT_DIR: join(root, "pipeline", name),
    MODEL_HIDDEN_SIZE: "32",
    MODEL_NUM_LAYERS: "1",
    SAVE_INTERVAL: String(SAVE_INTERVAL),
    LOG_INTERVAL: "1",
    PRETRAIN_MAX_STEPS: String(STEPS),
  });
  const whole = await runPipeline(args, { env: envFor("whole") });
  assert.equal(whole.code, 0, whole.stderr);

  const env = envFor("resumed");
  const out = env.OUT_DIR as string;
  const first = startPipeline(args, { env });
  await first.waitForLine(new RegExp(`^\\[pretrain\\] step ${stopAt}/${STEPS} `));
  process.kill(-(first.child.pid as number), "SIGINT");
  assert.equal((await first.done).code, 130);

  const second = startPipeline(args, { env });
  await second.waitForLine(new RegExp(`^\\[pretrain\\] CHECKPOINT:.*/${stepDir(crashAt.checkpointStep)}$`));
  await second.waitForLine(new RegExp(`^\\[pretrain\\] step ${crashAt.killStep}/${STEPS} `));
  const [trainer, ...others] = processesMentioning(join(out, "pretrain"));
  assert.ok(trainer && others.length === 0, "one pretrain trainer runs");
  process.kill(trainer, "SIGKILL");
  const crashed = await second.done;
  assert.equal(crashed.code, 1, crashed.stderr);
  assert.equal(readRecord(out).stages[0]?.last_checkpoint, join(out, "pretrain", "checkpoints", stepDir(8)));

  const third = await runPipeline(args, { env });
  assert.equal(third.code, 0, third.stderr);
  assert.ok(
    third.stdout.includes(`[pretrain] resuming from ${join(out, "pretrain", "checkpoints", stepDir(8))} (`),
  );

  await assertSameCurves(
    join(out, "tensorboard", "pretrain"),
    join(root, "pipeline", "whole", "tensorboard", "pretrain"),
    "pretrain",
    STEPS,
  );
});
