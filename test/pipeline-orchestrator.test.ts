/**
 * The orchestrator side: it never loads TensorFlow.js (run under a loader hook that refuses any
 * @tensorflow/* module, while its trainer children — separate processes — train normally), its
 * --help, and the TensorBoard auto-launch (a stand-in executable; a missing one only warns).
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { promisify } from "node:util";
import { saveCheckpoint } from "../lib/checkpoint/index.ts";
import { STAGE_NAMES } from "../lib/stages/table.ts";
import { stopTensorBoard } from "../lib/tensorboard/launcher.ts";
import { stateFor } from "./fixtures/checkpoint-helpers.ts";
import {
  pipelineTestRoot,
  processesMentioning,
  REPO,
  readRecord,
  runPipeline,
  TINY_TRAINER_FLAGS,
} from "./support/pipeline-process.ts";

const root = pipelineTestRoot("pipeline-orch");

const NO_TENSORFLOW = ["--import", join(REPO, "test", "fixtures", "no-tensorflow.mjs")];
const FAKE_TENSORBOARD = join(REPO, "test", "fixtures", "fake-tensorboard");

/** Every stage already finished, so a run does everything but train (fast). */
async function finishedStages(outDir: string): Promise<void> {
  for (const stage of STAGE_NAMES) {
    await saveCheckpoint(join(outDir, stage, "checkpoints"), {
      step: 3,
      files: { "model.safetensors": "weights" },
      state: { ...stateFor(3), stage, finished: true },
      keepLast: 3,
    });
  }
}

describe("the orchestrator never loads TensorFlow.js", { timeout: 120_000 }, () => {
  test("the hook does refuse TensorFlow.js: a trainer cannot even print its help under it", async () => {
    const trainer = join(REPO, "trainer", "train_pretrain.ts");
    const failure = await promisify(execFile)(
      process.execPath,
      [...NO_TENSORFLOW, "--import", "tsx", trainer, "--help"],
      {
        cwd: REPO,
        env: { ...process.env, NODE_OPTIONS: "" },
      },
    ).then(
      () => null,
      (error: { code: number; stderr: string }) => error,
    );
    assert.ok(failure, "a trainer imports TensorFlow.js, so it must fail under the hook");
    assert.match(failure.stderr, /TensorFlow\.js must not be loaded by the orchestrator: @tensorflow\//);
  });

  test("--help under the hook, with STOP_GRACE_SEC's default and why", async () => {
    const run = await runPipeline(["--help"], { execArgv: NO_TENSORFLOW });
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^Usage: npm run pipeline/);
    assert.match(
      run.stdout,
      /STOP_GRACE_SEC +on Ctrl\+C, SIGTERM or SIGHUP[\s\S]*\[120\]\. Generous on purpose/,
    );
    for (const name of [
      "--smoke-test",
      "--skip-r1",
      "--stages a,b",
      "OUT_DIR",
      "PRETRAIN_JSON",
      "TF_DIR",
      "KEEP_LAST",
      "R1_ARGS",
      "TB_HOST",
    ]) {
      assert.ok(run.stdout.includes(name), `--help mentions ${name}`);
    }
  });

  test("a real one-stage run under the hook: TensorBoard auto-launch, the trainer trains, the URL is recorded", async (t) => {
    const out = join(root, "hooked", "out");
    const env = {
      OUT_DIR: out,
      TB_AUTO: "1",
      TB_PORT: "0",
      TENSORBOARD_BINARY: FAKE_TENSORBOARD,
      MODEL_HIDDEN_SIZE: "32",
      MODEL_NUM_LAYERS: "1",
      PRETRAIN_MAX_STEPS: "4",
      SAVE_INTERVAL: "2",
    };
    t.after(() => stopTensorBoard(join(out, "tensorboard.json")));
    const run = await runPipeline(["--stages", "pretrain", "--", ...TINY_TRAINER_FLAGS], {
      env,
      execArgv: NO_TENSORFLOW,
    });
    assert.equal(run.code, 0, run.stderr);
    assert.doesNotMatch(run.stderr, /TensorFlow\.js must not be loaded/);
    assert.ok(existsSync(join(out, "pretrain", "checkpoints", "step_00000004", "model.safetensors")));
    const started = /\[tensorboard\] TensorBoard started \(pid (\d+)\) at (http:\/\/127\.0\.0\.1:\d+\/)/.exec(
      run.stdout,
    );
    assert.ok(started, run.stdout);
    assert.ok(
      run.stdout.indexOf("[tensorboard]") < run.stdout.indexOf("[pretrain]"),
      "TensorBoard starts before the first stage",
    );
    assert.ok(run.stdout.includes(`[pipeline] TensorBoard: ${started[2]}`), "the URL is repeated at the end");
    const record = readRecord(out);
    assert.equal(record.tensorboard?.status, "started");
    assert.equal(record.tensorboard?.url, started[2]);
    assert.equal(record.tensorboard?.pid, Number(started[1]));
    assert.equal(record.tensorboard?.logdir, join(out, "tensorboard"));
    assert.equal(processesMentioning(join(out, "pretrain")).length, 0);

    // The next run reuses the live instance instead of starting another.
    const again = await runPipeline(["--stages", "pretrain", "--", ...TINY_TRAINER_FLAGS], {
      env,
      execArgv: NO_TENSORFLOW,
    });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /\[pretrain\] already finished at step 4/);
    assert.ok(
      again.stdout.includes(`TensorBoard already running (pid ${started[1]}) at ${started[2]}`),
      again.stdout,
    );
    assert.equal(readRecord(out).tensorboard?.status, "reused");
  });
});

describe("--smoke-test", { timeout: 60_000 }, () => {
  test("runs from any directory into ./out/smoke, clearing the last one but keeping TensorBoard's record", async () => {
    const cwd = join(root, "elsewhere");
    const smoke = join(cwd, "out", "smoke");
    mkdirSync(join(smoke, "pretrain", "checkpoints", "step_00000099"), { recursive: true });
    writeFileSync(join(smoke, "pretrain", "checkpoints", "step_00000099", "state.json"), "{}");
    mkdirSync(join(smoke, "tensorboard", "pretrain"), { recursive: true });
    writeFileSync(join(smoke, "tensorboard", "pretrain", "events.out.tfevents.1.old"), "");
    writeFileSync(join(smoke, "tensorboard.json"), "{}");

    const run = await runPipeline(["--smoke-test", "--stages", "pretrain"], { cwd, env: { OUT_DIR: "" } });
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /model hidden 64 × 2 layers; outputs in out\/smoke/);
    assert.match(run.stdout, /\[pretrain\] starting from random weights/);
    assert.ok(existsSync(join(smoke, "pretrain", "checkpoints", "step_00000010", "model.safetensors")));
    assert.ok(
      !existsSync(join(smoke, "pretrain", "checkpoints", "step_00000099")),
      "the last smoke run's outputs are gone",
    );
    assert.ok(!existsSync(join(smoke, "tensorboard", "pretrain", "events.out.tfevents.1.old")));
    assert.ok(existsSync(join(smoke, "tensorboard.json")), "TensorBoard's record is kept");
    assert.ok(existsSync(join(smoke, "pretrain_64.safetensors")));
  });
});

describe("TensorBoard not installed", () => {
  test("a warning with the install hint, and the pipeline goes on", async () => {
    const out = join(root, "missing", "out");
    await finishedStages(out);
    const run = await runPipeline(["--skip-infer"], {
      env: {
        OUT_DIR: out,
        TB_AUTO: "1",
        TB_BOARD: "tensorboard",
        TENSORBOARD_BINARY: join(root, "no", "tensorboard"),
      },
    });
    assert.equal(run.code, 0, run.stderr);
    assert.match(
      run.stderr,
      /\[tensorboard\] warning: TensorBoard not found .*pip install tensorboard.*going on without it/,
    );
    for (const stage of STAGE_NAMES)
      assert.match(run.stdout, new RegExp(`\\[${stage}\\] already finished at step 3`));
    assert.match(run.stdout, /\[pipeline\] done in/);
    const record = readRecord(out);
    assert.equal(record.state, "finished");
    assert.equal(record.tensorboard?.status, "missing");
    assert.equal(record.stages[4]?.state, "skipped");
    const log = join(out, "tensorboard.log");
    assert.ok(
      !existsSync(log) || !readFileSync(log, "utf8").includes("baton:"),
      "no launch line: nothing was launched",
    );

    // `npm run tensorboard` alone goes on with nothing: it says what is missing and exits 1.
    const alone = await promisify(execFile)(
      process.execPath,
      ["--import", "tsx", join(REPO, "pipelines", "tensorboard.ts")],
      {
        cwd: REPO,
        env: {
          ...process.env,
          OUT_DIR: out,
          TB_BOARD: "tensorboard",
          TENSORBOARD_BINARY: join(root, "no", "tensorboard"),
        },
      },
    ).then(
      () => null,
      (error: { code: number; stderr: string; stdout: string }) => error,
    );
    assert.equal(alone?.code, 1);
    assert.match(`${alone?.stdout}${alone?.stderr}`, /TensorBoard not found/);
    assert.doesNotMatch(`${alone?.stdout}${alone?.stderr}`, /going on without it/);
  });

  test("TB_AUTO=0 does not look for it at all", async () => {
    const out = join(root, "off", "out");
    await finishedStages(out);
    const run = await runPipeline(["--skip-infer"], {
      env: { OUT_DIR: out, TB_AUTO: "0", TENSORBOARD_BINARY: "/nonexistent" },
    });
    assert.equal(run.code, 0, run.stderr);
    assert.doesNotMatch(run.stderr, /not found/);
    assert.equal(readRecord(out).tensorboard, null);
  });
});
