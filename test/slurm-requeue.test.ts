/**
 * Requeue and preemption against a real single-node Slurm (.ci/slurm.sh, AuthInfo=cred_expire=10:
 * a requeued job may start again after about 11 s). The three jobs run side by side.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  allFinished,
  cancelJobs,
  type JobInfo,
  jobStartsInLog,
  releaseJob,
  requeueJob,
  type SbatchOptions,
  submitJob,
  waitForJob,
  writeJobScript,
} from "../lib/slurm/index.ts";
import { cleanUpJobs, eventually, jobDir, REPO, slurmForTests, uniqueName } from "./support/slurm.ts";

const slurm = await slurmForTests();
const SELF_REQUEUE = join(REPO, "test/fixtures/slurm-self-requeue.mjs");

/** The second run has started (right after a requeue the first run is still COMPLETING, with Restarts=1). */
const runningAgain = (r: JobInfo[]) =>
  r.some((j) => j.restartCount >= 1 && (j.state === "RUNNING" || j.phase === "finished"));

describe("Slurm requeue", { skip: slurm.skip, concurrency: true }, () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  const submitted: string[] = [];
  before(async () => {
    ({ dir, cleanup } = await jobDir("requeue"));
  });
  after(async () => {
    await cleanUpJobs(submitted);
    await cleanup();
  });

  async function submit(label: string, command: string[], extra: SbatchOptions = {}) {
    const log = join(dir, `${label}.out`);
    const options: SbatchOptions = {
      jobName: uniqueName(label),
      output: log,
      openMode: "append",
      requeue: true,
      chdir: dir,
      ...extra,
    };
    const script = join(dir, `${label}.sh`);
    await writeJobScript(script, { description: label, options, command });
    const { jobId } = await submitJob({ script, options });
    submitted.push(jobId);
    const logText = () => readFile(log, "utf8").catch(() => "");
    const logShows = (pattern: RegExp, timeoutMs: number) =>
      eventually(`${label} log to show ${pattern}`, timeoutMs, async () => {
        const text = await logText();
        return pattern.test(text) ? text : undefined;
      });
    return { jobId, logText, logShows };
  }

  test("scontrol requeue runs the job again with SLURM_RESTART_COUNT=1, its log keeping the first run", async (t) => {
    const job = await submit("requeue", [
      "bash",
      "-c",
      'echo "run restart=$((SLURM_RESTART_COUNT))"; ((SLURM_RESTART_COUNT >= 1)) || sleep 300',
    ]);
    await job.logShows(/run restart=0/, 30_000);
    const start = Date.now();
    await requeueJob(job.jobId);
    await waitForJob(job.jobId, runningAgain, { timeoutMs: 60_000, intervalMs: 100 });
    t.diagnostic(`requeue to running again: ${Date.now() - start} ms`);
    const [record] = await waitForJob(job.jobId, allFinished, { timeoutMs: 30_000 });
    assert.equal(record?.state, "COMPLETED");
    assert.equal(record?.restartCount, 1);
    const text = await job.logText();
    const runs = [...text.matchAll(/^run restart=(\d)$/gm)].map((m) => m[1]);
    assert.deepEqual(runs, ["0", "1"], `both runs in one log:\n${text}`);
    assert.deepEqual(
      jobStartsInLog(text).map((s) => [s.jobId, s.restartCount]),
      [
        [job.jobId, 0],
        [job.jobId, 1],
      ],
    );
    assert.match(text, /CANCELLED AT .* DUE TO JOB REQUEUE/, "Slurm's own note of the requeue");
  });

  test("a job that traps USR1 (scancel --signal=USR1 --batch) saves, requeues itself and resumes", async (t) => {
    const saved = join(dir, "usr1.saved");
    const job = await submit("usr1", [process.execPath, SELF_REQUEUE, saved]);
    await job.logShows(/started restart=0/, 30_000);
    const start = Date.now();
    await cancelJobs([job.jobId], { signal: "USR1", batchOnly: true });
    await job.logShows(/requeued/, 10_000);
    t.diagnostic(`USR1 to requeued: ${Date.now() - start} ms`);
    await waitForJob(job.jobId, runningAgain, { timeoutMs: 60_000, intervalMs: 100 });
    t.diagnostic(`USR1 to running again: ${Date.now() - start} ms`);
    const [record] = await waitForJob(job.jobId, allFinished, { timeoutMs: 30_000 });
    assert.equal(record?.state, "COMPLETED");
    assert.equal(record?.restartCount, 1);
    const text = await job.logText();
    assert.match(text, /got SIGUSR1: saving\n(.*\n)*.* requeued\n/);
    assert.match(text, /started restart=1 .*\n.*resumed from step 7 of job \d+\n/);
    t.diagnostic(`SIGTERM after its own requeue reached it: ${/got SIGTERM/.test(text)}`);
  });

  test("the time-limit warning --signal=B:USR1@N reaches the job's command, which requeues itself", async (t) => {
    const saved = join(dir, "warning.saved");
    // 1 minute limit, warned 59 s before: due at once, sent when slurmctld next checks time limits
    // (it does so every 30 s, which bounds this test).
    const job = await submit("warning", [process.execPath, SELF_REQUEUE, saved], {
      time: "1",
      signal: { name: "USR1", secondsBefore: 59, batchShellOnly: true },
    });
    const text0 = await job.logShows(/started restart=0/, 30_000);
    const started = Date.now();
    await job.logShows(/got SIGUSR1/, 45_000);
    t.diagnostic(`started to time-limit warning: ${Date.now() - started} ms`);
    assert.match(text0, /started restart=0/);
    const [record] = await waitForJob(job.jobId, (r) => allFinished(r) && r[0]?.restartCount === 1, {
      timeoutMs: 60_000,
    });
    assert.equal(record?.state, "COMPLETED");
    assert.match(await job.logText(), /resumed from step 7/);
  });

  test("requeuehold keeps the job waiting until released", async () => {
    const job = await submit("hold", [
      "bash",
      "-c",
      'echo "run restart=$((SLURM_RESTART_COUNT))"; sleep 300',
    ]);
    await job.logShows(/run restart=0/, 30_000);
    await requeueJob(job.jobId, { hold: true });
    const [held] = await waitForJob(job.jobId, (r) => r[0]?.held === true, { timeoutMs: 30_000 });
    assert.equal(held?.phase, "pending");
    assert.equal(held?.restartCount, 1);
    await releaseJob(job.jobId);
    await waitForJob(job.jobId, (r) => r[0]?.held === false, { timeoutMs: 10_000 });
    await cancelJobs([job.jobId]);
    await waitForJob(job.jobId, allFinished, { timeoutMs: 30_000 });
  });
});
