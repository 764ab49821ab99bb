/**
 * The DPO sweep with the real trainers: SIGKILL to the sweep and to its DPO child in the middle of
 * the second line, then the same command again — the first line is skipped, the second resumes
 * from its own step checkpoint, the rest is trained, and no line is trained to completion twice.
 * And the pipeline's --dpo-sweep --watch: DPO runs start while SFT still trains; its report.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { readQueue } from "../lib/queue/index.ts";
import { parsePipelineFlags } from "../pipelines/pipeline/cli.ts";
import { killMentioning, processesMentioning, readRecord, runPipeline } from "./support/pipeline-process.ts";
import { killSweeps, runSweepToEnd, startSweep } from "./support/sweep-process.ts";
import { runDirs, runTrainerToEnd, TINY_MODEL, TINY_SHAPE } from "./support/trainer-process.ts";

const root = mkdtempSync(join(tmpdir(), "baton-sweep-crash-"));
after(() => {
  killSweeps();
  killMentioning(root);
  rmSync(root, { recursive: true, force: true });
});

/** Flags for every DPO child (after `--`); the shape comes from MODEL_HIDDEN_SIZE / MODEL_NUM_LAYERS. */
const DPO_FLAGS = [
  ...["--num_attention_heads", "2", "--num_key_value_heads", "1", "--max_seq_len", "64", "--batch_size", "4"],
  ...["--max_steps", "20", "--save_interval", "4", "--log_interval", "1", "--eval_size", "8"],
  ...["--backend", "wasm", "--data_parallel", "1"],
];

const count = (text: string, pattern: RegExp): number => text.match(new RegExp(pattern, "gm"))?.length ?? 0;

describe("DPO sweep with the real trainers", { concurrency: 2, timeout: 240_000 }, () => {
  test("killed in the middle of the second line, the same command skips the first and resumes the second", async () => {
    const dir = join(root, "crash");
    const sft = await runTrainerToEnd("train_full_sft.ts", [
      ...runDirs(dir, "sft"),
      ...TINY_MODEL,
      ...[
        "--max_steps",
        "6",
        "--save_interval",
        "2",
        "--backend",
        "wasm",
        "--eval",
        "false",
        "--data_parallel",
        "1",
        "--init_from",
        "none",
        "--checkpoint_queue",
        "true",
      ],
    ]);
    assert.equal(sft.code, 0, sft.stderr);
    const queue = join(dir, "sft", "checkpoints.jsonl");
    assert.deepEqual(
      (await readQueue(queue)).map((e) => e.step),
      [2, 4, 6],
    );

    const env = {
      OUT_DIR: dir,
      MODEL_HIDDEN_SIZE: "32",
      MODEL_NUM_LAYERS: "1",
      CUDA_VISIBLE_DEVICES: undefined,
    };
    const args = ["--", ...DPO_FLAGS];
    const first = startSweep(args, env);
    const started = await first.waitForLine(/^\[sweep\] step 4: started pid \d+$/);
    await first.waitForLine(
      /^\[dpo:from_step_00000004\] CHECKPOINT:.*from_step_00000004\/checkpoints\/step_00000004$/,
    );
    process.kill(-(first.child.pid as number), "SIGKILL");
    process.kill(-Number(/pid (\d+)$/.exec(started)?.[1]), "SIGKILL");
    const killed = await first.done;
    assert.equal(killed.signal, "SIGKILL");
    assert.deepEqual(
      (await readQueue(queue)).map((e) => [e.step, e.completed]),
      [
        [2, true],
        [4, false],
        [6, false],
      ],
    );

    const second = await runSweepToEnd(args, env);
    assert.equal(second.code, 0, second.stderr);
    assert.doesNotMatch(second.stdout, /step 2: DPO from|\[dpo:from_step_00000002\]/);
    // The dead sweep's claim on line 4 was taken over at once, not after going stale.
    assert.doesNotMatch(second.stdout, /being trained by/);
    assert.match(
      second.stdout,
      /^\[dpo:from_step_00000004\] resuming from .*from_step_00000004\/checkpoints\/step_\d{8} /m,
    );
    assert.doesNotMatch(second.stdout, /^\[dpo:from_step_00000004\] initialising from/m);
    const both = killed.stdout + second.stdout;
    for (const step of ["00000002", "00000004", "00000006"]) {
      assert.equal(
        count(both, new RegExp(`^\\[dpo:from_step_${step}\\] finished: 20 steps`)),
        1,
        `line ${step}`,
      );
    }
    assert.equal(count(both, /already finished/), 0);
    assert.deepEqual(
      ["00000002", "00000004", "00000006"].map(
        (step) => readdirSync(join(dir, "dpo", `from_step_${step}`, "logs")).length,
      ),
      [1, 2, 1],
    );
    for (const entry of await readQueue(queue)) {
      assert.equal(entry.completed, true);
      assert.match(String(entry.dpo_checkpoint), /from_step_\d{8}\/checkpoints\/step_00000020$/);
      assert.equal(typeof entry.metrics?.preference_accuracy, "number");
    }
    assert.deepEqual(processesMentioning(dir), []);
  });

  test("pipeline --dpo-sweep --watch starts DPO runs while SFT trains; --dpo-sweep-report", async () => {
    const dir = join(root, "pipeline");
    const env = {
      OUT_DIR: dir,
      MODEL_HIDDEN_SIZE: "32",
      MODEL_NUM_LAYERS: "1",
      PRETRAIN_MAX_STEPS: "2",
      SFT_MAX_STEPS: "16",
      SAVE_INTERVAL: "4",
      DPO_MAX_STEPS: "3",
      CUDA_VISIBLE_DEVICES: undefined,
    };
    const trainerFlags = [
      ...TINY_SHAPE,
      ...["--eval_size", "8", "--backend", "wasm", "--data_parallel", "1", "--log_interval", "100"],
    ];
    const run = await runPipeline(["--dpo-sweep", "--watch", "--max-parallel", "2", "--", ...trainerFlags], {
      env,
    });
    assert.equal(run.code, 0, run.stderr);
    const lines = run.stdout.split("\n");
    const firstDpo = lines.findIndex((line) => /^\[sweep\] step 4: DPO from/.test(line));
    const sftFinished = lines.findIndex((line) => /^\[sft\] finished:/.test(line));
    assert.ok(
      firstDpo !== -1 && firstDpo < sftFinished,
      "the first DPO run began only after SFT had finished",
    );
    assert.doesNotMatch(run.stdout, /^\[(r1|infer)\]/m);
    const queue = await readQueue(join(dir, "sft", "checkpoints.jsonl"));
    assert.deepEqual(
      queue.map((e) => [e.step, e.completed]),
      [4, 8, 12, 16].map((step) => [step, true]),
    );
    const record = readRecord(dir);
    assert.equal(record.state, "finished");
    assert.equal(record.stages.find((s) => s.stage === "dpo")?.state, "finished");

    const report = await runPipeline(["--dpo-sweep-report"], { env });
    assert.equal(report.code, 0, report.stderr);
    for (const step of [4, 8, 12, 16])
      assert.match(report.stdout, new RegExp(`^${step}\\s+completed\\s+\\d\\.\\d{4}\\s`, "m"));
    const csv = readFileSync(join(dir, "dpo", "sweep_report.csv"), "utf8")
      .trim()
      .split("\r\n");
    assert.equal(csv.length, 5);
    assert.match(
      csv[0] ?? "",
      /^step,status,checkpoint,dpo_checkpoint,preference_accuracy,baseline_preference_accuracy,/,
    );
  });
});

describe("pipeline sweep flags", () => {
  test("--dpo-sweep replaces dpo by the sweep and ends the pipeline there", () => {
    assert.deepEqual(parsePipelineFlags(["--dpo-sweep"]).steps, ["pretrain", "sft", "dpo"]);
    assert.deepEqual(parsePipelineFlags(["--dpo-sweep", "--watch", "--max-parallel", "3"]).dpoSweep, {
      watch: true,
      maxParallel: 3,
    });
    assert.equal(parsePipelineFlags([]).dpoSweep, null);
    assert.deepEqual(parsePipelineFlags(["--dpo-sweep-report"]).steps, []);
  });

  test("flags that do not fit are one clear error", () => {
    assert.throws(() => parsePipelineFlags(["--watch"]), /--watch applies to --dpo-sweep only/);
    assert.throws(
      () => parsePipelineFlags(["--max-parallel", "2"]),
      /--max-parallel applies to --dpo-sweep only/,
    );
    assert.throws(
      () => parsePipelineFlags(["--dpo-sweep", "--max-parallel", "0"]),
      /--max-parallel "0": expected a whole number ≥ 1/,
    );
    assert.throws(() => parsePipelineFlags(["--dpo-sweep", "--stages", "sft,r1"]), /drop r1 from --stages/);
    assert.throws(() => parsePipelineFlags(["--dpo-sweep", "--skip-dpo"]), /needs the dpo stage/);
    assert.throws(() => parsePipelineFlags(["--dpo-sweep-report", "--dpo-sweep"]), /cannot be combined/);
  });
});
