/**
 * The DPO sweep's scheduling, with a stand-in DPO trainer (test/fixtures/fake-dpo-trainer.mjs)
 * that records when it ran and on which GPU: two sweeps on one queue never train a line at the
 * same time; watch mode starts a run for a line listed after it started and ends when the SFT run
 * has finished; parallel children each get one GPU of their own; a malformed queue line is one
 * error naming file:line; a line whose checkpoint is gone is skipped; the report. The real DPO
 * trainer is swept in dpo-sweep-crash.test.ts.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { saveCheckpoint } from "../lib/checkpoint/index.ts";
import { writeRunMetadata } from "../lib/metadata/run-metadata.ts";
import { addCheckpoints, queueFileFor, readQueue } from "../lib/queue/index.ts";
import { GpuSlots, visibleDevices } from "../pipelines/sweep/gpu-slots.ts";
import { stateFor } from "./fixtures/checkpoint-helpers.ts";
import { assertOneLineError } from "./support/one-line-error.ts";
import { killMentioning, processesMentioning, REPO } from "./support/pipeline-process.ts";
import {
  FAKE_DPO,
  fakeCheckpoints,
  fakeRuns,
  intervals,
  killSweeps,
  runSweepToEnd,
  startSweep,
} from "./support/sweep-process.ts";

const root = mkdtempSync(join(tmpdir(), "baton-sweep-"));
after(() => {
  killSweeps();
  killMentioning(root);
  rmSync(root, { recursive: true, force: true });
});

/** A run folder with a queue of placeholder checkpoints, and the sweep's environment for it. */
async function setup(name: string, steps: number[], env: NodeJS.ProcessEnv = {}) {
  const dir = join(root, name);
  const queue = queueFileFor(join(dir, "sft"));
  if (steps.length > 0) await addCheckpoints(queue, fakeCheckpoints(dir, steps));
  const record = join(dir, "runs.jsonl");
  return {
    dir,
    queue,
    record,
    env: {
      OUT_DIR: dir,
      BATON_DPO_SWEEP_TRAINER: FAKE_DPO,
      FAKE_DPO_RECORD: record,
      FAKE_DPO_MS: "300",
      CUDA_VISIBLE_DEVICES: undefined,
      ...env,
    },
  };
}

function overlapping(a: { from: number; to: number }, b: { from: number; to: number }): boolean {
  return a.from < b.to && b.from < a.to;
}

describe("DPO sweep scheduling", { concurrency: 3, timeout: 120_000 }, () => {
  test("two sweeps started at once on one queue never train the same line at the same time", async () => {
    const steps = [10, 20, 30, 40, 50, 60];
    const { queue, record, env } = await setup("two", steps, { FAKE_DPO_MS: "700" });
    const [a, b] = await Promise.all([runSweepToEnd([], env), runSweepToEnd([], env)]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    const runs = intervals(fakeRuns(record));
    for (const step of steps) {
      const ofLine = runs.filter((run) => run.step === step);
      assert.equal(ofLine.length, 1, `line ${step} was trained ${ofLine.length} times`);
    }
    for (const [i, x] of runs.entries()) {
      for (const y of runs.slice(i + 1)) {
        if (x.step === y.step) assert.ok(!overlapping(x, y), `line ${x.step} trained twice at once`);
      }
    }
    // They shared the work rather than one waiting for the other.
    assert.equal(new Set(runs.map((run) => run.sweep)).size, 2, JSON.stringify(runs));
    assert.ok((await readQueue(queue)).every((entry) => entry.completed));
  });

  test("watch mode trains a checkpoint listed after it started, and ends once SFT has finished", async () => {
    const { dir, queue, record, env } = await setup("watch", [], { FAKE_DPO_MS: "100" });
    const sweep = startSweep(["--watch"], env);
    await sweep.waitForLine(/\[sweep\] watching /);
    const listedAt = Date.now();
    await addCheckpoints(queue, fakeCheckpoints(dir, [7]));
    await sweep.waitForLine(/\[sweep\] step 7: completed/);
    // Well within the sweep's 15 s fallback re-read: the file watch saw the new line.
    assert.ok(Date.now() - listedAt < 6_000, `picked up after ${Date.now() - listedAt} ms`);
    assert.deepEqual(
      fakeRuns(record).map((run) => [run.event, run.step]),
      [
        ["start", 7],
        ["end", 7],
      ],
    );
    await new Promise((done) => setTimeout(done, 300));
    assert.equal(sweep.exited(), false, "a watching sweep must wait while the SFT run has not finished");

    await addCheckpoints(queue, fakeCheckpoints(dir, [9]));
    await writeRunMetadata(join(dir, "sft"), {
      stage: "sft",
      state: "finished",
      global_step: 9,
      tokens_seen: 0,
      last_checkpoint: null,
      started_from: null,
      out_dir: join(dir, "sft"),
      ckpt_dir: join(dir, "sft", "checkpoints"),
      evaluation: null,
    });
    const end = await sweep.done;
    assert.equal(end.code, 0, end.stderr);
    assert.deepEqual(
      (await readQueue(queue)).map((entry) => [entry.step, entry.completed]),
      [
        [7, true],
        [9, true],
      ],
    );
  });

  test("with CUDA_VISIBLE_DEVICES=0,1 and --max-parallel 2 each child gets one GPU, never one in use", async () => {
    const steps = [1, 2, 3, 4, 5, 6];
    const { record, env } = await setup("gpus", steps, { CUDA_VISIBLE_DEVICES: "0,1", FAKE_DPO_MS: "500" });
    const end = await runSweepToEnd(["--max-parallel", "2"], env);
    assert.equal(end.code, 0, end.stderr);
    const runs = intervals(fakeRuns(record));
    assert.equal(runs.length, steps.length);
    for (const run of runs) assert.ok(run.cuda === "0" || run.cuda === "1", `child got ${run.cuda}`);
    let concurrent = 0;
    for (const [i, x] of runs.entries()) {
      for (const y of runs.slice(i + 1)) {
        if (!overlapping(x, y)) continue;
        concurrent++;
        assert.notEqual(x.cuda, y.cuda, `lines ${x.step} and ${y.step} ran on GPU ${x.cuda} at once`);
      }
    }
    assert.ok(concurrent > 0, "the two GPUs were never used at the same time");
  });

  test("--max-parallel beyond the GPUs listed runs one child per GPU", async () => {
    const { record, env } = await setup("one-gpu", [1, 2, 3], {
      CUDA_VISIBLE_DEVICES: "3",
      FAKE_DPO_MS: "200",
    });
    const end = await runSweepToEnd(["--max-parallel", "4"], env);
    assert.equal(end.code, 0, end.stderr);
    assert.match(end.stderr, /lists 1 device\(s\): running 1 at a time/);
    const runs = intervals(fakeRuns(record));
    assert.deepEqual(
      runs.map((run) => run.cuda),
      ["3", "3", "3"],
    );
    for (const [i, x] of runs.entries()) for (const y of runs.slice(i + 1)) assert.ok(!overlapping(x, y));
  });

  test("one Ctrl+C stops every running child; their lines stay pending and unclaimed", async () => {
    const { dir, queue, record, env } = await setup("stop", [1, 2, 3], { FAKE_DPO_MS: "30000" });
    const sweep = startSweep(["--max-parallel", "2"], env);
    while (fakeRuns(record).filter((run) => run.event === "start").length < 2) {
      await new Promise((wait) => setTimeout(wait, 50));
    }
    process.kill(sweep.child.pid as number, "SIGINT");
    const end = await sweep.done;
    assert.equal(end.code, 130, end.stderr);
    assert.deepEqual(
      fakeRuns(record)
        .map((run) => [run.event, run.step])
        .sort(),
      [
        ["start", 1],
        ["start", 2],
        ["stopped", 1],
        ["stopped", 2],
      ],
    );
    assert.deepEqual(
      (await readQueue(queue)).map((entry) => entry.completed),
      [false, false, false],
    );
    assert.deepEqual(readdirSync(join(dir, "dpo", ".sweep")), []);
    assert.deepEqual(processesMentioning(dir), []);
  });

  test("a malformed queue line is one error naming file:line, and nothing is trained", async () => {
    const { queue, record, env } = await setup("malformed", [1, 2]);
    const lines = readFileSync(queue, "utf8").split("\n");
    lines.splice(1, 0, '{"checkpoint": 5, "step": 3, "completed": false}');
    writeFileSync(queue, lines.join("\n"));
    const end = await runSweepToEnd([], env);
    assertOneLineError(end, `dpo_sweep: error: ${queue}:2: "checkpoint" must be a non-empty path, got 5`);
    assert.deepEqual(fakeRuns(record), []);
  });

  test("a line whose checkpoint is gone is completed as skipped; the report shows each line", async () => {
    const { dir, queue, record, env } = await setup("skipped", [4, 8]);
    rmSync(join(dir, "sft", "checkpoints", "step_00000004"), { recursive: true });
    const end = await runSweepToEnd([], env);
    assert.equal(end.code, 0, end.stderr);
    assert.match(end.stderr, /step 4: skipped: .*step_00000004 no longer exists/);
    assert.deepEqual(
      fakeRuns(record).map((run) => run.step),
      [8, 8],
    );
    const [skipped, trained] = await readQueue(queue);
    assert.equal(skipped?.completed, true);
    assert.match(String(skipped?.skipped), /no longer exists/);
    assert.equal(trained?.metrics?.preference_accuracy, 0.08);

    const report = await runSweepToEnd(["--report"], env);
    assert.equal(report.code, 0, report.stderr);
    assert.match(report.stdout, /^4\s+skipped\s/m);
    assert.match(report.stdout, /^8\s+completed\s+0\.0800\s+0\.5000\s/m);
    const csv = readFileSync(join(dir, "dpo", "sweep_report.csv"), "utf8").split("\r\n");
    assert.equal(
      csv[0],
      "step,status,checkpoint,dpo_checkpoint,preference_accuracy,baseline_preference_accuracy,note",
    );
    assert.match(
      csv[2] ?? "",
      /^8,completed,.*step_00000008,.*from_step_00000008\/checkpoints\/step_00000003,0\.08,0\.5,$/,
    );
  });

  test("a line's run folder trained from another SFT run is moved aside, whole, and the line trained afresh", async () => {
    const { dir, record, env } = await setup("foreign", []);
    const sftCkpts = join(dir, "sft", "checkpoints");
    // The SFT checkpoint of step 4 as it is now (run "sft-new"), and a DPO run left from the SFT run before it.
    const sft = await saveCheckpoint(sftCkpts, {
      step: 4,
      files: { "model.safetensors": "w" },
      state: { ...stateFor(4), run_id: "sft-new" },
      keepLast: 5,
    });
    await addCheckpoints(queueFileFor(join(dir, "sft")), [{ checkpoint: sft.path, step: 4 }]);
    const runCkpts = join(dir, "dpo", "from_step_00000004", "checkpoints");
    const startedFrom = {
      kind: "checkpoint",
      path: sft.path,
      stage: "sft",
      step: 4,
      run_id: "sft-old",
      ckpt_dir: sftCkpts,
    };
    await saveCheckpoint(runCkpts, {
      step: 2,
      files: { "model.safetensors": "old" },
      state: { ...stateFor(2), stage: "dpo", started_from: startedFrom },
      keepLast: 5,
    });
    const end = await runSweepToEnd([], env);
    assert.equal(end.code, 0, end.stderr);
    assert.match(
      end.stderr,
      /step 4: .*from_step_00000004 holds a DPO run trained from another SFT checkpoint .*run sft-old\); moved it to \S+checkpoints\.before-\S+ \(nothing was deleted\)/,
    );
    const aside = readdirSync(join(dir, "dpo", "from_step_00000004")).filter((n) =>
      n.startsWith("checkpoints.before-"),
    );
    assert.equal(aside.length, 1);
    assert.ok(
      existsSync(
        join(dir, "dpo", "from_step_00000004", aside[0] as string, "step_00000002", "model.safetensors"),
      ),
    );
    assert.deepEqual(
      fakeRuns(record)
        .filter((r) => r.event === "start")
        .map((r) => r.step),
      [4],
    );

    // The same DPO run again, now trained from this very checkpoint: it is resumed, not moved.
    const again = await runSweepToEnd([], env);
    assert.equal(again.code, 0, again.stderr);
    assert.doesNotMatch(again.stderr, /holds a DPO run trained from another/);
  });

  test("a DPO child that sends no heartbeat for STALL_TIMEOUT is stopped as stalled; its line stays pending", async () => {
    // The stand-in trainer never heartbeats: with a long run and a short timeout it looks stuck. (Not
    // shorter than a node start on a loaded machine: the timeout also covers the time to the first beat.)
    const { queue, record, env } = await setup("stall", [4], {
      FAKE_DPO_MS: "60000",
      STALL_TIMEOUT: "8",
      STOP_GRACE_SEC: "2",
    });
    const started = Date.now();
    const end = await runSweepToEnd([], env);
    assert.equal(end.code, 1, end.stderr);
    assert.ok(Date.now() - started < 40_000, "stopped long before the child would have finished");
    assert.match(
      end.stderr,
      /\[dpo:from_step_00000004\] stalled: no heartbeat for 8 s \(STALL_TIMEOUT\): asking it to save and exit/,
    );
    assert.match(end.stderr, /step 4 failed; no further lines are started/);
    assert.deepEqual(
      fakeRuns(record).map((run) => run.event),
      ["start", "stopped"],
    );
    assert.equal((await readQueue(queue))[0]?.completed, false);
  });

  test("the sweep never loads TensorFlow.js", async () => {
    const { env } = await setup("no-tf", [1]);
    const noTensorFlow = ["--import", join(REPO, "test", "fixtures", "no-tensorflow.mjs")];
    const end = await startSweep([], env, noTensorFlow).done;
    assert.equal(end.code, 0, end.stderr);
    assert.match(end.stdout, /step 1: completed/);
  });
});

describe("GPU slots", () => {
  test("CUDA_VISIBLE_DEVICES is read like CUDA reads it", () => {
    assert.equal(visibleDevices({}), null);
    assert.equal(visibleDevices({ CUDA_VISIBLE_DEVICES: "" }), null);
    assert.equal(visibleDevices({ CUDA_VISIBLE_DEVICES: "-1" }), null);
    assert.deepEqual(visibleDevices({ CUDA_VISIBLE_DEVICES: " 0, 1,1 " }), ["0", "1"]);
    assert.deepEqual(visibleDevices({ CUDA_VISIBLE_DEVICES: "2,-1,3" }), ["2"]);
    assert.deepEqual(visibleDevices({ CUDA_VISIBLE_DEVICES: "GPU-8f1c,GPU-77aa" }), ["GPU-8f1c", "GPU-77aa"]);
  });

  test("a device is handed out once until it is given back", () => {
    const slots = new GpuSlots(["0", "1"]);
    assert.equal(slots.take(), "0");
    assert.equal(slots.take(), "1");
    assert.equal(slots.available, 0);
    assert.throws(() => slots.take(), /every device is in use/);
    slots.give("1");
    assert.equal(slots.take(), "1");
    slots.give("0");
    assert.throws(() => slots.give("0"), /was not taken/);
    const none = new GpuSlots(null);
    assert.equal(none.take(), null);
    assert.equal(none.available, Number.POSITIVE_INFINITY);
  });
});
