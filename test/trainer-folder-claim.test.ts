/**
 * One trainer per checkpoints folder (lib/process/folder-claim.ts): a second one started on the
 * folder a live trainer writes is refused before it reads or writes anything; a killed trainer's
 * claim is taken over at once, so resuming after SIGKILL waits for nothing.
 */
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { assertUnclaimed, claimFolder, ownerFileOf } from "../lib/process/folder-claim.ts";
import { processStartTime } from "../lib/process/group.ts";
import { tempDir } from "./fixtures/checkpoint-helpers.ts";
import { assertOneLineError } from "./support/one-line-error.ts";
import { runDirs, runTrainerToEnd, startTrainer, TINY_MODEL } from "./support/trainer-process.ts";

const { path: root, cleanup } = await tempDir("folder-claim");
after(cleanup);

const trainerArgs = (name: string, steps: number) => [
  ...runDirs(root, name),
  ...TINY_MODEL,
  ...["--backend", "cpu", "--data_parallel", "1", "--eval", "false"],
  ...["--max_steps", String(steps), "--save_interval", "2", "--log_interval", "1"],
  // Nothing pruned: the live trainer's folder may only grow while the second one is refused.
  ...["--keep_last_checkpoints", "1000"],
];

test("a second trainer on a live trainer's checkpoints is refused; after a SIGKILL the next one takes over and resumes", async () => {
  const args = trainerArgs("busy", 100_000);
  const ckptDir = join(root, "busy", "checkpoints");
  const first = startTrainer("train_pretrain.ts", args);
  try {
    await first.waitForLine(/^CHECKPOINT:.*step_00000002$/);
    const before = readdirSync(ckptDir).sort();
    const second = await runTrainerToEnd("train_pretrain.ts", args);
    assertOneLineError(
      second,
      new RegExp(
        `^train_pretrain: error: pretrain's checkpoints \\(${ckptDir}\\) are being written by pid ${first.child.pid} since .*; if it is not running, remove ${ownerFileOf(ckptDir)}$`,
      ),
    );
    assert.doesNotMatch(second.stdout, /START:|resuming/, "refused before choosing a start");
    assert.ok(
      before.every((name) => readdirSync(ckptDir).includes(name)),
      "the live trainer's checkpoints are untouched",
    );
  } finally {
    first.child.kill("SIGKILL");
  }
  await first.done;
  assert.ok(existsSync(ownerFileOf(ckptDir)), "a killed trainer leaves its claim behind");
  const resumed = await runTrainerToEnd("train_pretrain.ts", trainerArgs("busy", 6));
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.match(
    resumed.stdout,
    new RegExp(`took over ${ckptDir} from pid ${first.child.pid}, which has ended`),
  );
  assert.match(resumed.stdout, /resuming from .*step_0000000\d/);
  assert.ok(!existsSync(ownerFileOf(ckptDir)), "a trainer that ends removes its claim");
});

test("another host's claim: refused, unless it is this Slurm job before its requeue; a damaged owner file is named", async (t) => {
  const dir = await tempDir("folder-claim-host");
  t.after(dir.cleanup);
  const folder = join(dir.path, "checkpoints");
  const owner = { pid: 4242, start: "1", host: "node-a", slurm_job: "77", since: "2026-12-02T00:00:00Z" };
  writeFileSync(ownerFileOf(folder), JSON.stringify(owner));
  await assert.rejects(
    claimFolder(folder, "sft's checkpoints", { SLURM_JOB_ID: "78" }),
    /are being written by pid 4242 on node-a since 2026-12-02T00:00:00Z/,
  );
  assert.deepEqual(JSON.parse(readFileSync(ownerFileOf(folder), "utf8")), owner, "the claim stays");
  const claim = await claimFolder(folder, "sft's checkpoints", { SLURM_JOB_ID: "77" });
  assert.equal(claim.tookOverFrom, "Slurm job 77 before its requeue");
  assert.equal(JSON.parse(readFileSync(ownerFileOf(folder), "utf8")).pid, process.pid);
  claim.release();
  assert.ok(!existsSync(ownerFileOf(folder)));

  // A live process on this host (the test's parent): moving its folder aside is refused too.
  const live = {
    pid: process.ppid,
    start: processStartTime(process.ppid),
    host: hostname(),
    slurm_job: null,
    since: "now",
  };
  writeFileSync(ownerFileOf(folder), JSON.stringify(live));
  assert.throws(
    () => assertUnclaimed(folder, "the checkpoints to move aside"),
    new RegExp(
      `^UserError: the checkpoints to move aside \\(${folder}\\) are being written by pid ${process.ppid} since now: `,
    ),
  );
  await assert.rejects(claimFolder(folder, "sft's checkpoints"), /are being written by pid/);
  writeFileSync(ownerFileOf(folder), JSON.stringify({ ...live, start: "1" }));
  assertUnclaimed(folder, "the checkpoints to move aside"); // that pid is now another process

  writeFileSync(ownerFileOf(folder), "{not json");
  await assert.rejects(claimFolder(folder, "sft's checkpoints"), (error: Error) => {
    assert.equal(
      error.message,
      `${ownerFileOf(folder)}: not an owner file (expected {"pid": …, "host": …}); remove it if no trainer runs`,
    );
    return true;
  });
});
