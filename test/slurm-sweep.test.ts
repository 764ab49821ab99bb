/**
 * The DPO sweep as a Slurm job array (EXECUTOR=slurm npm run dpo-sweep) on a real single-node
 * Slurm, with the stand-in DPO trainer (test/fixtures/fake-dpo-trainer.mjs) that records each run:
 * one task per pending queue line; a duplicate of the whole array submitted by hand from its job
 * script, whose first task runs beside the original's on the same line and waits for its claim; the
 * original task killed mid-line by `scontrol requeue` and run again by Slurm — and still every line
 * is trained to its end, and completed, exactly once, never by two tasks at a time.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { addCheckpoints, queueFileFor, readQueue } from "../lib/queue/index.ts";
import { allFinished, requeueJob, submitJob, waitForJob } from "../lib/slurm/index.ts";
import { killMentioning, processesMentioning } from "./support/pipeline-process.ts";
import { cleanUpJobs, eventually, slurmForTests } from "./support/slurm.ts";
import {
  FAKE_DPO,
  fakeCheckpoints,
  fakeRuns,
  intervals,
  killSweeps,
  startSweep,
} from "./support/sweep-process.ts";

const slurm = await slurmForTests();
const root = mkdtempSync(join(tmpdir(), "baton-slurm-sweep-"));
const jobs: string[] = [];
after(async () => {
  killSweeps();
  await cleanUpJobs(jobs);
  killMentioning(root);
  rmSync(root, { recursive: true, force: true });
});

describe("the DPO sweep on Slurm", { skip: slurm.skip, timeout: 180_000 }, () => {
  test("a job array over two lines, one task requeued mid-line, a duplicate array: each line trained and completed once", async (t) => {
    const queue = queueFileFor(join(root, "sft"));
    await addCheckpoints(queue, fakeCheckpoints(root, [10, 20]));
    const record = join(root, "runs.jsonl");
    const env = {
      EXECUTOR: "slurm",
      OUT_DIR: root,
      BATON_DPO_SWEEP_TRAINER: FAKE_DPO,
      FAKE_DPO_RECORD: record,
      FAKE_DPO_MS: "6000",
      CUDA_VISIBLE_DEVICES: undefined,
    };
    const startedAt = Date.now();
    // One task at a time, so that the duplicate's first task runs beside the original's, on the same line.
    const sweep = startSweep(["--max-parallel", "1"], env);
    const submitted = await sweep.waitForLine(/^\[sweep\] job array \d+: 2 task\(s\)/);
    const arrayId = /job array (\d+)/.exec(submitted)?.[1] as string;
    jobs.push(arrayId);
    assert.match(submitted, /one per pending line of .* \(steps 10, 20\), 1 at a time; script /);
    await eventually("step 10's DPO run started", 30_000, async () =>
      fakeRuns(record).some((r) => r.step === 10 && r.event === "start") ? true : undefined,
    );

    // The whole array once more, by hand from its job script: its task 0 finds line 10 taken.
    const script = join(root, "dpo", ".sweep", "slurm-array.sh");
    // (Its tasks get the stand-in's settings from this environment, as a user's would get theirs.)
    const duplicate = await submitJob({
      script,
      options: {},
      env: { FAKE_DPO_RECORD: record, FAKE_DPO_MS: env.FAKE_DPO_MS },
    });
    jobs.push(duplicate.jobId);
    const duplicateLog = (task: string) =>
      readFileSync(join(root, "dpo", ".sweep", `slurm-${duplicate.jobId}_${task}.out`), "utf8");
    await eventually("the duplicate task waiting for line 10", 30_000, async () => {
      const text = existsSync(join(root, "dpo", ".sweep", `slurm-${duplicate.jobId}_0.out`))
        ? duplicateLog("0")
        : "";
      return /step 10: being trained by pid \d+/.test(text) ? true : undefined;
    });
    // The original task 0 killed mid-line and queued again by Slurm.
    await requeueJob(`${arrayId}_0`);

    const end = await sweep.done;
    t.diagnostic(`submitted to every line completed: ${Date.now() - startedAt} ms`);
    assert.equal(end.code, 0, `${end.stdout}\n${end.stderr}`);
    assert.match(
      end.stdout,
      new RegExp(`^\\[sweep\\] step 10: task ${arrayId}_0 requeued, waiting to run again$`, "m"),
    );
    assert.match(
      end.stdout,
      new RegExp(`^\\[sweep\\] step 10: task ${arrayId}_0 running again \\(restart 1\\)$`, "m"),
    );
    assert.match(end.stdout, /^\[sweep\] done: every line of job array \d+ is completed$/m);
    await waitForJob(duplicate.jobId, (r) => r.length === 2 && allFinished(r), { timeoutMs: 60_000 });

    const runs = fakeRuns(record);
    for (const step of [10, 20]) {
      const ends = runs.filter((r) => r.step === step && r.event === "end");
      assert.equal(ends.length, 1, `step ${step} trained to its end exactly once: ${JSON.stringify(runs)}`);
    }
    assert.ok(
      runs.some((r) => r.step === 10 && r.event === "stopped"),
      "the requeue stopped step 10's first run mid-line",
    );
    const lines = await readQueue(queue);
    assert.deepEqual(
      lines.map((l) => [l.step, l.completed]),
      [
        [10, true],
        [20, true],
      ],
    );
    // Whichever task got a line (the requeued original or its duplicate), never two at once.
    const spans = intervals(runs);
    for (const a of spans) {
      for (const b of spans) {
        if (a !== b && a.step === b.step)
          assert.ok(a.to <= b.from || b.to <= a.from, `step ${a.step} ran twice at once`);
      }
    }
    const duplicateLogs = ["0", "1"]
      .map((task) =>
        readFileSync(join(root, "dpo", ".sweep", `slurm-${duplicate.jobId}_${task}.out`), "utf8"),
      )
      .join("\n");
    t.diagnostic(
      `the duplicate array's tasks: ${duplicateLogs.match(/^\[sweep\] step \d+: .*$/gm)?.join(" | ")}`,
    );
    assert.deepEqual(processesMentioning(root), []);
  });
});
