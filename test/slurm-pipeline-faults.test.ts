/**
 * The pipeline on a real single-node Slurm when things go wrong: `--cancel` leaves no job and no
 * process of the run (a process that escaped Slurm's tracking included); a stage that fails cancels
 * the jobs after it (none left pending forever); the time-limit warning (SIGUSR1) makes the job save
 * and requeue itself, resuming that checkpoint, until SLURM_MAX_REQUEUES, when it says so and the
 * stage is reported failed; a frozen trainer is cancelled by the STALL_TIMEOUT watchdog fed from its
 * log — and a job waiting in the queue is not taken for a stalled one.
 */
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { pathToFileURL } from "node:url";
import { latestValidCheckpoint } from "../lib/checkpoint/index.ts";
import { cancelJobs, listJobs, processesOfJobs, showJob } from "../lib/slurm/index.ts";
import {
  processesMentioning,
  REPO,
  readRecord,
  runPipeline,
  startPipeline,
  TINY_TRAINER_FLAGS,
  tinyPipelineEnv,
} from "./support/pipeline-process.ts";
import { eventually, jobIdsOf, slurmForTests, slurmTestRoot } from "./support/slurm.ts";

const slurm = await slurmForTests();
const { root, jobs: allJobs } = slurmTestRoot("slurm-faults");
const ARGS = ["--skip-infer", "--", ...TINY_TRAINER_FLAGS, "--data_parallel", "1"];
const ESCAPE = pathToFileURL(join(REPO, "test", "fixtures", "slurm-escape.mjs")).href;

function envFor(name: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return tinyPipelineEnv(join(root, name, "out"), {}, { EXECUTOR: "slurm", ...extra });
}

describe("the pipeline on Slurm, faults", { skip: slurm.skip, concurrency: true, timeout: 180_000 }, () => {
  test("--cancel: no job and no process of the run is left, one that escaped Slurm's tracking included", async (t) => {
    const env = envFor("cancel", {
      SFT_MAX_STEPS: "100000",
      // Each trainer leaves a sleep behind that proctrack/linuxproc loses (test/fixtures/slurm-escape.mjs).
      NODE_OPTIONS: `--import=${ESCAPE}`,
      BATON_TEST_ESCAPE: "1",
    });
    const out = env.OUT_DIR as string;
    const run = startPipeline(ARGS, { env });
    await run.waitForLine(/^\[sft\] CHECKPOINT:/);
    const ids = jobIdsOf(out);
    allJobs.push(...ids);
    const escaped = await eventually("the sleep left behind by the sft trainer", 10_000, async () => {
      const pids = await processesOfJobs([ids[1] as string]);
      return pids.length >= 2 ? pids : undefined;
    });
    const started = Date.now();
    const cancel = await runPipeline(["--cancel"], { env });
    t.diagnostic(`--cancel took ${Date.now() - started} ms`);
    assert.equal(cancel.code, 0, cancel.stderr);
    assert.match(cancel.stdout, new RegExp(`cancelling sft ${ids[1]}, dpo ${ids[2]}, r1 ${ids[3]}`));
    const follower = await run.done;
    assert.equal(follower.code, 143, follower.stderr);
    assert.match(
      follower.stderr,
      new RegExp(`\\[sft\\] job ${ids[1]} was cancelled \\(scancel or --cancel\\); its checkpoints are kept`),
    );
    assert.deepEqual(await listJobs({ jobIds: ids, unfinishedOnly: true }), [], "no job left");
    for (const id of ids.slice(1)) assert.equal((await showJob(id))[0]?.state, "CANCELLED", id);
    assert.deepEqual(
      await processesOfJobs(ids),
      [],
      `no process of the jobs (of ${escaped.length} found before)`,
    );
    assert.deepEqual(processesMentioning(out), [], "no process of the run");
    const record = readRecord(out);
    assert.equal(record.stages[1]?.state, "interrupted");
    assert.ok(
      await latestValidCheckpoint(join(out, "sft", "checkpoints")),
      "the cancelled stage saved first",
    );
  });

  test("a stage that fails: its error, and the jobs after it cancelled, never left pending", async () => {
    const dir = join(root, "bad");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "bad.jsonl"), '{"text": \n');
    const env = envFor("bad", { PRETRAIN_JSON: join(dir, "bad.jsonl") });
    const run = await runPipeline(ARGS, { env });
    const out = env.OUT_DIR as string;
    const ids = jobIdsOf(out);
    allJobs.push(...ids);
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /\[pretrain\] job \d+ failed: exited with code 2\n/);
    assert.match(run.stderr, /^ {2}\| train_pretrain: error: .*bad\.jsonl:1: /m);
    assert.match(run.stderr, /stopped: pretrain failed \(cancelled the jobs after it: \d+, \d+, \d+\)/);
    assert.deepEqual(await listJobs({ jobIds: ids, unfinishedOnly: true }), []);
    const record = readRecord(out);
    assert.equal(record.state, "failed");
    assert.equal(record.stages[0]?.exit_code, 2);
    assert.match(record.stages[1]?.message ?? "", /cancelled: pretrain failed/);
  });

  test("SIGUSR1 (the time-limit warning): save, requeue, resume; after SLURM_MAX_REQUEUES reported failed", async (t) => {
    const env = envFor("warning", { PRETRAIN_MAX_STEPS: "100000", SLURM_MAX_REQUEUES: "1" });
    const out = env.OUT_DIR as string;
    const run = startPipeline(["--stages", "pretrain", ...ARGS], { env });
    await run.waitForLine(/^\[pretrain\] CHECKPOINT:.*step_00000010$/);
    const [job] = jobIdsOf(out) as [string];
    allJobs.push(job);
    // What Slurm sends SLURM_SIGNAL_SEC before the time limit (--signal=B:USR1@N), sent now.
    const warnedAt = Date.now();
    await cancelJobs([job], { signal: "USR1", batchOnly: true });
    const savedLine = await run.waitForLine(/^\[pretrain\] interrupted by SIGUSR1: saved step \d+/);
    const saved = Number(/saved step (\d+)/.exec(savedLine)?.[1]);
    await run.waitForLine(
      /^\[pretrain\] requeued Slurm job \d+ \(restart 1 of at most 1\): it resumes from this checkpoint$/,
    );
    await run.waitForLine(new RegExp(`^\\[pretrain\\] job ${job} running again \\(restart 1\\)$`));
    t.diagnostic(`SIGUSR1 to running again: ${Date.now() - warnedAt} ms`);
    await run.waitForLine(
      new RegExp(
        `^\\[pretrain\\] resuming from .*pretrain/checkpoints/step_${String(saved).padStart(8, "0")} `,
      ),
    );
    await run.waitForLine(
      new RegExp(`^\\[pretrain\\] CHECKPOINT:.*step_${String(saved + 10 - (saved % 5)).padStart(8, "0")}$`),
    );
    await cancelJobs([job], { signal: "USR1", batchOnly: true });
    const end = await run.done;
    assert.equal(end.code, 1, end.stderr);
    assert.match(
      end.stdout,
      /^\[pretrain\] not requeueing Slurm job \d+: it has been restarted 1 times \(--requeue_on_stop 1, SLURM_MAX_REQUEUES\)/m,
    );
    assert.match(end.stderr, new RegExp(`\\[pretrain\\] job ${job} failed: exited with code 138`));
    assert.match(end.stderr, /stopped: pretrain failed/);
    const record = readRecord(out);
    assert.equal(record.stages[0]?.state, "failed");
    assert.equal(record.stages[0]?.restarts, 1);
    const latest = await latestValidCheckpoint(join(out, "pretrain", "checkpoints"));
    assert.ok(
      latest !== null && latest.step > saved && latest.state?.finished === false,
      "saved before it ended",
    );
    assert.equal((await showJob(job))[0]?.restartCount, 1, "not requeued a second time");
  });

  test("a frozen trainer: no heartbeat in its log for STALL_TIMEOUT, so its job is cancelled and the stage failed", async () => {
    const env = envFor("stall", { PRETRAIN_MAX_STEPS: "100000", STALL_TIMEOUT: "8" });
    const out = env.OUT_DIR as string;
    const run = startPipeline(["--stages", "pretrain,sft", ...ARGS], { env });
    await run.waitForLine(/^\[pretrain\] CHECKPOINT:.*step_00000005$/);
    const ids = jobIdsOf(out);
    allJobs.push(...ids);
    const [trainer] = await processesOfJobs([ids[0] as string]);
    assert.ok(trainer, "the pretrain trainer runs");
    process.kill(trainer, "SIGSTOP");
    const end = await run.done;
    assert.equal(end.code, 1, end.stderr);
    assert.match(
      end.stderr,
      new RegExp(
        `\\[pretrain\\] stalled: no heartbeat for 8 s \\(STALL_TIMEOUT\\): cancelling job ${ids[0]} \\(scancel\\)`,
      ),
    );
    const record = readRecord(out);
    assert.match(record.stages[0]?.message ?? "", /stalled: no heartbeat for 8 s/);
    assert.doesNotMatch(
      end.stderr,
      /\[sft\] stalled/,
      "sft waited in the queue (no heartbeats due) and was not stalled",
    );
    assert.equal(record.stages[1]?.state, "pending");
    assert.match(record.stages[1]?.message ?? "", /cancelled: pretrain failed/);
    assert.deepEqual(await listJobs({ jobIds: ids, unfinishedOnly: true }), []);
  });
});
