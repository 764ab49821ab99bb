/**
 * Fault injection through the pipeline and the sweep: a stalled trainer is stopped and reported,
 * a trainer that fails is recorded `failed`, and re-running with other settings does what the user
 * means — never mixing runs, never keeping more than KEEP_LAST checkpoints without a sweep.
 */
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { latestValidCheckpoint, listCheckpoints } from "../../lib/checkpoint/index.ts";
import { groupAlive } from "../../lib/process/index.ts";
import {
  processesMentioning,
  readRecord,
  runPipeline,
  startPipeline,
  TINY_TRAINER_FLAGS,
} from "../support/pipeline-process.ts";
import { assertOneLine, scratch, unwritableDir, within } from "./support.ts";

const root = scratch("pipeline");
const env = (name: string, extra: NodeJS.ProcessEnv = {}) => ({
  OUT_DIR: join(root, name, "out"),
  MODEL_HIDDEN_SIZE: "32",
  MODEL_NUM_LAYERS: "1",
  SAVE_INTERVAL: "2",
  STOP_GRACE_SEC: "2",
  ...extra,
});
const pipeline = (args: string[], e: NodeJS.ProcessEnv) =>
  within(
    120_000,
    `pipeline ${args.join(" ")}`,
    runPipeline([...args, "--", ...TINY_TRAINER_FLAGS, "--backend", "cpu"], { env: e }),
  );

describe("a stalled trainer", () => {
  test("frozen (SIGSTOP): no heartbeat for STALL_TIMEOUT, so the pipeline stops it, says it stalled, records it failed", async () => {
    // Longer than a trainer's start on a loaded machine (the timeout also covers the time to its first beat).
    const e = env("stall", { PRETRAIN_MAX_STEPS: "100000", STALL_TIMEOUT: "12" });
    const run = startPipeline(["--stages", "pretrain", "--", ...TINY_TRAINER_FLAGS, "--backend", "cpu"], {
      env: e,
    });
    await within(60_000, "the first checkpoint", run.waitForLine(/^\[pretrain\] CHECKPOINT:/));
    const out = e.OUT_DIR;
    const pid = readRecord(out).stages[0]?.pid as number;
    assert.ok(pid > 0);
    process.kill(pid, "SIGSTOP");
    const end = await within(60_000, "the stalled pipeline", run.done);
    assert.equal(end.code, 1, end.stderr);
    assert.match(
      end.stderr,
      /\[pretrain\] stalled: no heartbeat for 12 s \(STALL_TIMEOUT\): asking it to save and exit/,
    );
    assert.match(end.stderr, /stopped: pretrain failed/);
    const record = readRecord(out);
    assert.equal(record.state, "failed");
    assert.equal(record.stages[0]?.state, "failed");
    assert.match(record.stages[0]?.message ?? "", /^stalled: no heartbeat for 12 s/);
    assert.ok(Array.isArray(record.stages[0]?.stderr_tail), "the record keeps its last stderr lines");
    assert.equal(groupAlive(pid), false, "its process group is gone");
    assert.ok(
      (await latestValidCheckpoint(join(out, "pretrain", "checkpoints"))) !== null,
      "its checkpoints are intact",
    );
  });
});

describe("a failing trainer is recorded failed, promptly", () => {
  test("an unwritable stage folder: exit 1 in seconds, the stage `failed`, saying why", async () => {
    const locked = unwritableDir(join(root, "locked"));
    const e = env("unlocked", { PRETRAIN_OUT: join(locked, "pretrain"), PRETRAIN_MAX_STEPS: "4" });
    const started = Date.now();
    const end = await pipeline(["--stages", "pretrain"], e);
    assert.equal(end.code, 1, end.stderr);
    assert.ok(Date.now() - started < 60_000);
    assert.match(
      end.stderr,
      /\[pretrain\] cannot open log .*: cannot create .*locked\/pretrain\/logs: .*locked is (on a read-only file system|not writable)/,
    );
    const record = readRecord(e.OUT_DIR);
    assert.equal(record.stages[0]?.state, "failed");
    assert.match(record.stages[0]?.message ?? "", /cannot open log .*: cannot create /);
    assert.equal(processesMentioning(locked).length, 0);
  });
});

describe("re-running with other settings", () => {
  const e = env("rerun", { PRETRAIN_MAX_STEPS: "4", SFT_MAX_STEPS: "4" });
  const out = e.OUT_DIR;
  const ckpts = (stage: string) => join(out, stage, "checkpoints");

  test("a first run of two stages keeps at most KEEP_LAST checkpoints each (no sweep, no pinning)", async () => {
    const first = await pipeline(["--stages", "pretrain,sft"], { ...e, KEEP_LAST: "1", SAVE_INTERVAL: "1" });
    assert.equal(first.code, 0, first.stderr);
    for (const stage of ["pretrain", "sft"]) assert.deepEqual(readdirSync(ckpts(stage)), ["step_00000004"]);
    assert.equal(existsSync(join(out, "sft", "checkpoints.jsonl")), false, "no queue without --dpo-sweep");
  });

  test("another model shape on a finished stage: exit 2 naming the flag, both values and the --restart", async () => {
    const run = await pipeline(["--stages", "pretrain"], { ...e, MODEL_HIDDEN_SIZE: "64" });
    const line = assertOneLine(
      run,
      2,
      /^\[pretrain\] error: cannot resume .*step_00000004: it was trained with --hidden_size 32, this run has 64/,
    );
    assert.match(line, /--restart pretrain/);
    assert.doesNotMatch(run.stdout, /already finished/);
  });

  test("other hyper-parameters on a finished stage: skipped, with a warning that they change nothing", async () => {
    const run = await pipeline(["--stages", "pretrain"], { ...e, PRETRAIN_ARGS: "--learning_rate 5e-4" });
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /\[pretrain\] already finished at step 4 .*; skipping/);
    assert.match(
      run.stderr,
      /\[pretrain\] warning: it is finished, so --learning_rate 0\.0005 \(trained with 0\.002\) changes nothing — retrain it with --restart pretrain/,
    );
  });

  test("a longer --max_steps continues the finished stage to the new length", async () => {
    const run = await pipeline(["--stages", "pretrain"], { ...e, PRETRAIN_MAX_STEPS: "8" });
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /\[pretrain\] continuing the finished run from .*step_00000004 .* to 8 updates/);
    const latest = await latestValidCheckpoint(ckpts("pretrain"));
    assert.equal(latest?.step, 8);
    assert.equal(latest?.state?.finished, true);
  });

  test("upstream retrained: the later stage is stale — refused up front, then by the plan; --restart fixes it", async () => {
    // pretrain moved on (4 → 8 updates), so sft, trained from pretrain's step 4, is stale.
    const stale = await pipeline(["--stages", "pretrain,sft"], { ...e, PRETRAIN_MAX_STEPS: "8" });
    const line = assertOneLine(
      stale,
      2,
      /^\[sft\] error: sft is stale: it was trained from pretrain step 4, and pretrain has since been trained further \(now step 8\)/,
    );
    assert.match(line, /retrain it with --restart sft,dpo,r1$/);

    // Restarting pretrain while keeping sft would make it stale too: refused before anything runs.
    const keep = await pipeline(["--stages", "pretrain,sft", "--restart", "pretrain"], {
      ...e,
      PRETRAIN_MAX_STEPS: "8",
    });
    assertOneLine(
      keep,
      2,
      /^pipeline: error: --restart pretrain: sft holds checkpoints trained from what is being replaced and would be stale; restart it too \(--restart pretrain,sft\)/,
    );
    assert.equal((await latestValidCheckpoint(ckpts("pretrain")))?.step, 8, "nothing was moved");

    const before = (await listCheckpoints(ckpts("sft"))).map((c) => c.name);
    const fixed = await pipeline(["--stages", "pretrain,sft", "--restart", "sft"], {
      ...e,
      PRETRAIN_MAX_STEPS: "8",
    });
    assert.equal(fixed.code, 0, fixed.stderr);
    assert.match(
      fixed.stdout,
      /\[sft\] --restart: moved the earlier run's \d+ checkpoint\(s\) to \S+checkpoints\.before-/,
    );
    assert.match(
      fixed.stdout,
      /\[sft\] initialising from .*pretrain\/checkpoints\/step_00000008 \(pretrain's latest checkpoint\)/,
    );
    const aside = readdirSync(join(out, "sft")).filter((n) => n.startsWith("checkpoints.before-"));
    assert.equal(aside.length, 1);
    assert.deepEqual(
      readdirSync(join(out, "sft", aside[0] as string)).filter((n) => n.startsWith("step_")),
      before,
      "the stale run's checkpoints were kept, moved aside",
    );
  });
});

describe("what the pipeline announces is what happens", () => {
  test("every stage: the start line printed, the start recorded and the plan agree; a damaged newest checkpoint: the trainer falls back and the record says so", async () => {
    const e = env("announce", {
      PRETRAIN_MAX_STEPS: "4",
      SFT_MAX_STEPS: "4",
      DPO_MAX_STEPS: "2",
      R1_MAX_STEPS: "2",
    });
    const out = e.OUT_DIR;
    const run = await pipeline(["--skip-infer"], e);
    assert.equal(run.code, 0, run.stderr);
    const record = readRecord(out);
    for (const entry of record.stages.slice(0, 4)) {
      const printed = new RegExp(`^\\[${entry.stage}\\] (.*)$`, "m").exec(
        run.stdout
          .split("\n")
          .filter((l) => /^\[\w+\] (starting from|initialising from|resuming from)/.test(l))
          .join("\n"),
      );
      assert.ok(printed, `${entry.stage} printed no start line`);
      assert.equal(printed[1], entry.decision, `${entry.stage}: the start printed is the one planned`);
      if (entry.stage === "pretrain") assert.equal(entry.checkpoint, null, "random weights");
      else
        assert.ok(
          entry.decision?.includes(entry.checkpoint ?? "\0"),
          `${entry.stage}: recorded start ${entry.checkpoint}`,
        );
    }

    // Flip one byte of pretrain's newest checkpoint (same size: the cheap rules still call it valid).
    const newest = join(out, "pretrain", "checkpoints", "step_00000004", "model.safetensors");
    const bytes = readFileSync(newest);
    bytes[bytes.length - 1] ^= 0xff;
    writeFileSync(newest, bytes);
    const again = await pipeline(["--stages", "pretrain"], { ...e, PRETRAIN_MAX_STEPS: "6" });
    assert.equal(again.code, 0, again.stderr);
    const planned = readRecord(out).stages[0];
    assert.match(
      planned?.decision ?? "",
      /continuing the finished run from .*step_00000004/,
      "the plan chose the newest",
    );
    assert.match(
      again.stderr,
      /checkpoint .*step_00000004 failed verification: model\.safetensors: SHA-256 mismatch/,
    );
    assert.match(
      again.stdout,
      /\[pretrain\] resuming from .*step_00000002 \(epoch 1, batch 2\)/,
      "the trainer says what it did",
    );
    assert.equal(
      planned?.checkpoint,
      join(out, "pretrain", "checkpoints", "step_00000002"),
      "and the record says it too",
    );
  });
});
