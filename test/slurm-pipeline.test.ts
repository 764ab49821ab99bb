/**
 * The pipeline on a real single-node Slurm (EXECUTOR=slurm; .ci/slurm.sh), real trainers, a tiny
 * model: the four stages as a chain of jobs, followed, detached with Ctrl+C (the jobs go on),
 * `--status`, followed again by the same command (nothing submitted twice), ending with the same
 * final weights, bit for bit, as the local executor on the same settings; and a forced
 * `scontrol requeue` in the middle of a stage, which resumes from its checkpoint with the same
 * final weights. Failures, cancel, preemption and stalls are in slurm-pipeline-faults.test.ts.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { jobStartsInLog, listJobs, requeueJob } from "../lib/slurm/index.ts";
import { assertOneLineError } from "./support/one-line-error.ts";
import {
  processesMentioning,
  readRecord,
  runPipeline,
  startPipeline,
  TINY_TRAINER_FLAGS,
  tinyPipelineEnv,
} from "./support/pipeline-process.ts";
import { jobIdsOf, slurmForTests, slurmTestRoot } from "./support/slurm.ts";
import { sha256 } from "./support/trainer-process.ts";

const slurm = await slurmForTests();
const { root, jobs: allJobs } = slurmTestRoot("slurm-pipeline");
const STEPS = { pretrain: 10, sft: 60, dpo: 10, r1: 30 } as const;
// One thread per trainer: two jobs share this machine's cores (a run is reproducible per thread count).
const TRAINER_FLAGS = ["--", ...TINY_TRAINER_FLAGS, "--data_parallel", "1"];
const ARGS = ["--skip-infer", ...TRAINER_FLAGS];

function envFor(name: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return tinyPipelineEnv(join(root, name, "out"), STEPS, {
    EXECUTOR: "slurm",
    INFER_MAX_NEW_TOKENS: "4",
    ...extra,
  });
}

const finalModel = (name: string) =>
  join(root, name, "out", "r1", "checkpoints", `step_000000${STEPS.r1}`, "model.safetensors");
describe("the pipeline on Slurm", { skip: slurm.skip, concurrency: true, timeout: 240_000 }, () => {
  // The same settings through the local executor: the weights every Slurm run must end with.
  const reference = slurm.skip
    ? Promise.resolve(null)
    : runPipeline(ARGS, { env: envFor("local", { EXECUTOR: "local" }) });

  test("a chain of four jobs, detached by Ctrl+C, followed again: the local executor's final weights", async (t) => {
    const env = envFor("chain");
    const out = env.OUT_DIR as string;
    const startedAt = Date.now();
    const first = startPipeline(TRAINER_FLAGS, { env });
    await first.waitForLine(/^\[sft\] job \d+ running$/);
    const ids = jobIdsOf(out);
    allJobs.push(...ids);
    assert.equal(ids.length, 4, "one job per training stage, submitted up front");
    process.kill(-(first.child.pid as number), "SIGINT");
    const detached = await first.done;
    assert.equal(detached.code, 130, detached.stderr);
    assert.match(
      detached.stderr,
      /\[pipeline\] SIGINT: stopped following; the jobs go on in Slurm \(pretrain \d+, sft \d+, dpo \d+, r1 \d+\)\. Run the same command again to follow them/,
    );
    assert.match(detached.stdout, new RegExp(`^\\[sft\\] job ${ids[1]} \\(after job ${ids[0]}\\): `, "m"));
    assert.match(
      detached.stdout,
      /^\[pretrain\] job \d+: starting from random weights \(the job decides at run time\)$/m,
    );
    assert.equal(readRecord(out).state, "detached");
    const r1Job = ids[3] as string;
    const waiting = await listJobs({ jobIds: [r1Job], unfinishedOnly: true });
    assert.equal(waiting.length, 1, "the last job still waits in Slurm after the follower left");

    const status = await runPipeline(["--status"], { env });
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, new RegExp(`^ {2}r1 +\\S+ +job ${r1Job} (PENDING|RUNNING|COMPLETED)`, "m"));
    assert.match(status.stdout, /\(slurm\), detached with exit 130/);

    // Meanwhile no second run may start into the same folder, here or on Slurm.
    const local = await runPipeline(TRAINER_FLAGS, { env: { ...env, EXECUTOR: "local" } });
    assertOneLineError(
      local,
      /^pipeline: error: the Slurm jobs of the run in .* are still queued or running \(.*r1 job \d+/,
    );
    const other = await runPipeline(["--stages", "pretrain", ...TRAINER_FLAGS], { env });
    assertOneLineError(
      other,
      /^pipeline: error: the Slurm jobs of another run in .* are still queued or running .*--cancel/,
    );

    const again = await runPipeline(TRAINER_FLAGS, { env });
    t.diagnostic(`submitted to done, with a detach and a follow: ${Date.now() - startedAt} ms`);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, new RegExp(`^\\[r1\\] following job ${r1Job} again`, "m"));
    assert.doesNotMatch(again.stdout, /\(after job \d+\)|^\[\w+\] job \d+: /m, "nothing submitted twice");
    const record = readRecord(out);
    assert.equal(record.state, "finished");
    assert.equal(record.executor, "slurm");
    assert.deepEqual(jobIdsOf(out), ids);
    assert.equal(record.stages[4]?.state, "finished", "the inference sample, on this host, after the chain");
    for (const [index, stage] of (["pretrain", "sft", "dpo", "r1"] as const).entries()) {
      const step = record.stages[index];
      assert.equal(step?.state, "finished", stage);
      assert.equal(step?.attempts, 1, stage);
      assert.equal(step?.log, join(out, stage, "logs", `slurm-${ids[index]}.out`));
      assert.ok(existsSync(join(out, "slurm", `${stage}.sh`)), "the job script is kept in the run folder");
    }
    const script = readFileSync(join(out, "slurm", "sft.sh"), "utf8");
    assert.match(script, /^#SBATCH --requeue$/m);
    assert.match(script, /^#SBATCH --open-mode=append$/m);
    assert.match(script, /^#SBATCH --signal=B:USR1@120$/m);
    assert.match(
      script,
      /^exec \S+ --import \S+ \S+\/trainer\/train_full_sft\.ts .*--resume auto --requeue_on_stop 3 /m,
    );
    assert.deepEqual(processesMentioning(out), [], "no process of the run is left");

    const ref = await reference;
    assert.equal(ref?.code, 0, ref?.stderr);
    assert.equal(sha256(finalModel("chain")), sha256(finalModel("local")), "bit-identical to the local run");

    // Once the chain has ended, the same command plans from the checkpoints on disk: nothing to run.
    const done = await runPipeline(TRAINER_FLAGS, { env });
    assert.equal(done.code, 0, done.stderr);
    for (const stage of ["pretrain", "sft", "dpo", "r1"]) {
      assert.match(
        done.stdout,
        new RegExp(`^\\[${stage}\\] already finished at step \\d+ .*; skipping$`, "m"),
      );
    }
    assert.doesNotMatch(done.stdout, /^\[\w+\] job \d+/m);
  });

  test("scontrol requeue in the middle of sft: it resumes from its checkpoint; the final weights still match", async (t) => {
    // As under the daemon: the trainers' lines for programs are passed on, from Slurm jobs too.
    const env = envFor("requeue", { BATON_FORWARD_HEARTBEATS: "1" });
    const out = env.OUT_DIR as string;
    const run = startPipeline(ARGS, { env });
    await run.waitForLine(/^\[sft\] CHECKPOINT:.*step_00000010$/);
    const sftJob = readRecord(out).stages[1]?.job_id as string;
    allJobs.push(...jobIdsOf(out));
    const requeuedAt = Date.now();
    await requeueJob(sftJob);
    await run.waitForLine(new RegExp(`^\\[sft\\] job ${sftJob} running again \\(restart 1\\)$`));
    t.diagnostic(`scontrol requeue to running again: ${Date.now() - requeuedAt} ms`);
    const end = await run.done;
    assert.equal(end.code, 0, end.stderr);
    const saved = /^\[sft\] interrupted by SIGTERM: saved step (\d+); /m.exec(end.stdout);
    assert.ok(saved, `the trainer saved on Slurm's SIGTERM:\n${end.stdout}`);
    const step = Number(saved[1]);
    assert.ok(step >= 10 && step < STEPS.sft, `mid-stage (step ${step})`);
    const resumed = `[sft] resuming from ${join(out, "sft", "checkpoints", `step_${String(step).padStart(8, "0")}`)} `;
    assert.ok(end.stdout.includes(resumed), `the requeued job resumed that checkpoint:\n${end.stdout}`);
    const starts = [...end.stdout.matchAll(/^\[sft\] START:(.*)$/gm)].map((m) => m[1]);
    assert.equal(starts.length, 2, "a START line forwarded for each run of the job");
    assert.equal(starts[1], join(out, "sft", "checkpoints", `step_${String(step).padStart(8, "0")}`));
    assert.match(end.stdout, /^\[sft\] METRICS:\d+ \{"loss":/m, "METRICS lines forwarded");
    const record = readRecord(out);
    assert.equal(record.state, "finished");
    assert.equal(record.stages[1]?.restarts, 1);
    assert.equal(record.stages[1]?.attempts, 1, "a requeue is the same job, not another attempt");
    const log = readFileSync(record.stages[1]?.log as string, "utf8");
    assert.deepEqual(
      jobStartsInLog(log).map((s) => [s.jobId, s.restartCount]),
      [
        [sftJob, 0],
        [sftJob, 1],
      ],
      "both runs of the job in one log (--open-mode=append)",
    );
    assert.match(log, /^\[sft\] Slurm job \d+, restart 1 \(SLURM_RESTART_COUNT\)/m);
    const ref = await reference;
    assert.equal(ref?.code, 0, ref?.stderr);
    assert.equal(
      sha256(finalModel("requeue")),
      sha256(finalModel("local")),
      "bit-identical to the local run",
    );
  });
});
