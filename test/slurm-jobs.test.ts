/**
 * lib/slurm against a real single-node Slurm (.ci/slurm.sh): submit, state, arrays, cancel.
 * Requeue and preemption are in slurm-requeue.test.ts.
 */
import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  allFinished,
  cancelJobs,
  JOB_START_MARKER,
  listJobs,
  SlurmError,
  showJob,
  submitJob,
  waitForJob,
  writeJobScript,
} from "../lib/slurm/index.ts";
import {
  cleanUpJobs,
  eventually,
  jobDir,
  processesOfJob,
  slurmForTests,
  uniqueName,
} from "./support/slurm.ts";

const slurm = await slurmForTests();

describe("Slurm jobs", { skip: slurm.skip, concurrency: true }, () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  const submitted: string[] = [];
  before(async () => {
    ({ dir, cleanup } = await jobDir("jobs"));
  });
  after(async () => {
    await cleanUpJobs(submitted);
    await cleanup();
  });

  test("a trivial job runs in its directory with its environment and appends to its log", async (t) => {
    const name = uniqueName("trivial");
    const log = join(dir, "trivial.out");
    await writeFile(log, "a line from before\n");
    const options = { jobName: name, output: log, openMode: "append" as const, chdir: dir, requeue: true };
    const script = join(dir, "trivial.sh");
    await writeJobScript(script, {
      description: "trivial test job",
      options,
      // A comma and a quote in a value: sbatch --export would split it, the script's export does not.
      env: { GREETING: "hello, it's me" },
      command: ["bash", "-c", 'echo "greeting=$GREETING cwd=$PWD name=$SLURM_JOB_NAME"'],
    });
    const start = Date.now();
    const { jobId } = await submitJob({ script, options });
    submitted.push(jobId);
    await waitForJob(jobId, (r) => r.some((j) => j.phase !== "pending"), {
      timeoutMs: 30_000,
      intervalMs: 50,
    });
    t.diagnostic(
      `sbatch to running (or done), sharing the node with this file's other jobs: ${Date.now() - start} ms`,
    );
    const [record] = await waitForJob(jobId, allFinished, { timeoutMs: 30_000 });
    assert.equal(record?.state, "COMPLETED");
    assert.deepEqual(record?.exitCode, { status: 0, signal: 0 });
    assert.equal(record?.name, name);
    assert.equal(record?.restartCount, 0);

    const lines = (await readFile(log, "utf8")).trimEnd().split("\n");
    assert.equal(lines[0], "a line from before", "the log was appended to, not truncated");
    assert.match(lines[1] ?? "", new RegExp(`^\\[slurm\\] job ${jobId} restart 0 on \\S+ at \\d{4}-`));
    assert.equal(lines[2], `greeting=hello, it's me cwd=${dir} name=${name}`);
    assert.equal(lines.length, 3);
  });

  test("the job script alone (its #SBATCH lines) reproduces the options, odd values included", async () => {
    const name = uniqueName("it's a test #1 $HOME");
    const logPattern = join(dir, "by hand %j.out");
    const script = join(dir, "by-hand.sh");
    await writeJobScript(script, {
      description: "resubmitted by hand",
      options: {
        jobName: name,
        output: logPattern,
        openMode: "append",
        afterOk: ["1"], // not repeated: a resubmission must not wait for a job long gone
        extraArgs: ["--comment", "a b, c 'd'", "--hold"],
      },
      command: ["echo", "by hand"],
    });
    const text = await readFile(script, "utf8");
    assert.doesNotMatch(text, /^#SBATCH .*(dependency|--hold)/m);
    // Submitted with no options of our own, the way a user would: `sbatch by-hand.sh`.
    const { jobId } = await submitJob({ script, options: {} });
    submitted.push(jobId);
    const [record] = await waitForJob(jobId, allFinished, { timeoutMs: 30_000 });
    assert.equal(record?.name, name);
    assert.equal(record?.fields.Comment, "a b, c 'd'");
    assert.equal(record?.fields.StdOut, logPattern.replace("%j", jobId));
    assert.equal(record?.state, "COMPLETED", "not held: --hold stays off the script");
    assert.match(await readFile(logPattern.replace("%j", jobId), "utf8"), /\nby hand\n$/);
  });

  test("sbatch refusing a job is one line quoting its reason; a missing sbatch says so", async () => {
    const script = join(dir, "refused.sh");
    await writeJobScript(script, { description: "refused", options: {}, command: ["true"] });
    await assert.rejects(
      submitJob({ script, options: { partition: "no-such-partition" } }),
      (error: unknown) => {
        assert.ok(error instanceof SlurmError);
        assert.equal(error.exitCode, 2);
        assert.doesNotMatch(error.message, /\n/);
        assert.match(error.message, /^sbatch refused .*refused\.sh: .*invalid partition.*no-such-partition/i);
        return true;
      },
    );
    await assert.rejects(
      submitJob({ script, options: {}, env: { PATH: dir } }),
      /^SlurmError: sbatch not found on PATH/,
    );
  });

  test("an array of 3 tasks with %2 runs each task once, at most two at a time", async (t) => {
    const name = uniqueName("array");
    const options = {
      jobName: name,
      output: join(dir, "array-%A_%a.out"),
      openMode: "append" as const,
      array: { spec: "0-2", maxParallel: 2 },
    };
    const script = join(dir, "array.sh");
    await writeJobScript(script, {
      description: "array test",
      options,
      command: [
        "bash",
        "-c",
        'echo "task $SLURM_ARRAY_TASK_ID start $(date +%s.%N)"; sleep 2; echo "end $(date +%s.%N)"',
      ],
    });
    const { jobId } = await submitJob({ script, options });
    submitted.push(jobId);
    const reasons = new Set<string>();
    const records = await waitForJob(
      jobId,
      (r) => {
        for (const j of r) if (j.phase === "pending") reasons.add(j.reason);
        return r.length === 3 && allFinished(r);
      },
      { timeoutMs: 60_000 },
    );
    t.diagnostic(`reasons seen while a task waited: ${[...reasons].join(", ")}`);
    assert.deepEqual(records.map((r) => r.arrayTaskId).sort(), ["0", "1", "2"]);
    for (const r of records) {
      assert.equal(r.state, "COMPLETED");
      assert.equal(r.arrayJobId, jobId);
      assert.equal(r.fields.ArrayTaskThrottle, "2");
    }
    const listed = await listJobs({ name });
    assert.deepEqual(listed.map((r) => r.jobId).sort(), [`${jobId}_0`, `${jobId}_1`, `${jobId}_2`]);

    const spans: Array<[number, number]> = [];
    for (const task of ["0", "1", "2"]) {
      const text = await readFile(join(dir, `array-${jobId}_${task}.out`), "utf8");
      assert.equal(text.split(JOB_START_MARKER).length - 1, 1, `task ${task} ran once`);
      const match = /task (\d) start ([\d.]+)\nend ([\d.]+)/.exec(text);
      assert.ok(match, `task ${task} log: ${text}`);
      assert.equal(match[1], task);
      spans.push([Number(match[2]), Number(match[3])]);
    }
    const mostAtOnce = Math.max(...spans.map(([s]) => spans.filter(([a, b]) => a <= s && s < b).length));
    assert.ok(mostAtOnce <= 2, `at most two tasks at a time, saw ${mostAtOnce}`);
  });

  test("cancel ends the job and every process it started, a setsid one included", async (t) => {
    const name = uniqueName("cancel");
    const options = { jobName: name, output: join(dir, "cancel.out"), openMode: "append" as const };
    const script = join(dir, "cancel.sh");
    await writeJobScript(script, {
      description: "cancel test",
      options,
      command: ["bash", "-c", "setsid sleep 300 & sleep 300 & echo children started; wait"],
    });
    const { jobId } = await submitJob({ script, options });
    submitted.push(jobId);
    const running = await eventually("the job's three processes", 30_000, async () => {
      const pids = await processesOfJob(jobId);
      return pids.length >= 3 ? pids : undefined;
    });
    const start = Date.now();
    await cancelJobs([jobId]);
    const [record] = await waitForJob(jobId, allFinished, { timeoutMs: 30_000, intervalMs: 50 });
    t.diagnostic(`scancel to CANCELLED: ${Date.now() - start} ms`);
    assert.equal(record?.state, "CANCELLED");
    await eventually("no process of the job", 10_000, async () =>
      (await processesOfJob(jobId)).length === 0 ? true : undefined,
    );
    t.diagnostic(`scancel to no process left (of ${running.length}): ${Date.now() - start} ms`);
    assert.deepEqual(await listJobs({ name, unfinishedOnly: true }), []);
    await cancelJobs([jobId]); // again: nothing to do, no error
  });

  test("cancelling an array's id cancels every task, running or waiting", async () => {
    const name = uniqueName("cancel-array");
    const options = {
      jobName: name,
      output: join(dir, "cancel-array-%a.out"),
      array: { spec: "0-3", maxParallel: 1 },
    };
    const script = join(dir, "cancel-array.sh");
    await writeJobScript(script, { description: "array cancel", options, command: ["sleep", "300"] });
    const { jobId } = await submitJob({ script, options });
    submitted.push(jobId);
    const running = await waitForJob(jobId, (r) => r.some((j) => j.state === "RUNNING"), {
      timeoutMs: 30_000,
    });
    const task = running.find((j) => j.state === "RUNNING");
    assert.ok(task);
    await cancelJobs([jobId]);
    const records = await waitForJob(jobId, allFinished, { timeoutMs: 30_000 });
    assert.ok(records.length >= 2, "the running task and the waiting ones");
    for (const r of records) assert.equal(r.state, "CANCELLED");
    await eventually("no process of the running task", 10_000, async () =>
      (await processesOfJob(task.internalId)).length === 0 ? true : undefined,
    );
  });

  test("a job Slurm does not know is an empty answer, not an error", async () => {
    assert.deepEqual(await showJob("999999999"), []);
    assert.deepEqual(await listJobs({ jobIds: ["999999999"] }), []);
  });
});
