/**
 * The trainer's stop signals (trainer/loop/stop-signal.ts) without a cluster: SIGUSR1 (Slurm's
 * time-limit warning) is a stop like SIGTERM; the same signal twice within a moment is one request
 * (Slurm signals every process of a job); after the save, a job that has used up its requeues says
 * so and ends instead of requeueing; outside a Slurm job, or without --requeue_on_stop, nothing is
 * requeued. The requeue itself is shown against a real Slurm in slurm-pipeline-faults.test.ts.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { StopSignal } from "../trainer/loop/stop-signal.ts";

const tick = () => new Promise((resolve) => setImmediate(resolve));

test("SIGUSR1 is a stop request (exit 138 after the save); a second copy within 0.3 s is the same request", async () => {
  const stop = new StopSignal().install();
  const exit = process.exit;
  let exited: number | undefined;
  process.exit = ((code?: number) => {
    exited = code;
  }) as typeof process.exit;
  try {
    process.kill(process.pid, "SIGUSR1");
    await tick();
    process.kill(process.pid, "SIGTERM");
    await tick();
    assert.equal(stop.requested, "SIGUSR1");
    assert.equal(exited, undefined, "the duplicate did not end the process without saving");
    assert.equal(stop.exitCode(), 138);
    assert.equal(await stop.afterSave(), 138, "not a Slurm job: nothing to requeue");
    await new Promise((resolve) => setTimeout(resolve, 350));
    process.kill(process.pid, "SIGTERM");
    await tick();
    assert.equal(exited, 143, "a second request later still exits at once");
  } finally {
    process.exit = exit;
    stop.dispose();
  }
});

test("after SLURM_MAX_REQUEUES restarts the job is not requeued again: it says so and ends", async () => {
  const lines: string[] = [];
  const env = { SLURM_JOB_ID: "4242", SLURM_RESTART_COUNT: "3" };
  const stop = new StopSignal({ requeueLimit: 3, env, log: (line) => lines.push(line) }).install();
  try {
    assert.match(
      lines[0] ?? "",
      /^Slurm job 4242, restart 3 \(SLURM_RESTART_COUNT\); on SIGUSR1 it saves and requeues itself, at most 3 restarts$/,
    );
    stop.requested = "SIGUSR1";
    assert.equal(await stop.afterSave(), 138);
    assert.match(
      lines[1] ?? "",
      /^not requeueing Slurm job 4242: it has been restarted 3 times \(--requeue_on_stop 3, SLURM_MAX_REQUEUES\)/,
    );
    const off = new StopSignal({
      requeueLimit: 0,
      env: { SLURM_JOB_ID: "4242" },
      log: (line) => lines.push(line),
    });
    off.requested = "SIGUSR1";
    assert.equal(await off.afterSave(), 138);
    assert.equal(lines.length, 2, "--requeue_on_stop 0: no requeue, nothing said");
    const term = new StopSignal({
      requeueLimit: 3,
      env: { SLURM_JOB_ID: "4242" },
      log: (line) => lines.push(line),
    });
    term.requested = "SIGTERM";
    assert.equal(
      await term.afterSave(),
      143,
      "SIGTERM is Slurm's to decide (cancel, preemption): no requeue",
    );
    assert.equal(lines.length, 2);
  } finally {
    stop.dispose();
  }
});
