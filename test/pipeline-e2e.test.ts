/**
 * The real pipeline, real trainers, a tiny model: all four stages run; Ctrl+C mid-stage exits 130
 * after the trainer saved, leaving no process behind; a trainer killed like an OOM victim is
 * reported and the pipeline stops; each re-run skips finished stages, resumes the interrupted one
 * from its checkpoint, and ends with the same final weights, bit for bit, as an uninterrupted run.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { pathToFileURL } from "node:url";
import { latestValidCheckpoint } from "../lib/checkpoint/index.ts";
import { groupAlive } from "../lib/process/group.ts";
import { assertOneLineError } from "./support/one-line-error.ts";
import {
  pipelineTestRoot,
  processesMentioning,
  REPO,
  readRecord,
  runPipeline,
  startPipeline,
  TINY_TRAINER_FLAGS,
  tinyPipelineEnv,
} from "./support/pipeline-process.ts";
import { sha256 } from "./support/trainer-process.ts";

const root = pipelineTestRoot("pipeline-e2e");

const HAS_INFER = existsSync(join(REPO, "trainer", "infer.ts"));
const STEPS = { pretrain: 10, sft: 60, dpo: 10, r1: 30 } as const;
const ARGS = ["--", ...TINY_TRAINER_FLAGS];

function envFor(name: string): NodeJS.ProcessEnv {
  return tinyPipelineEnv(join(root, name, "out"), STEPS, { INFER_MAX_NEW_TOKENS: "8" });
}

const finalModel = (name: string) =>
  join(root, name, "out", "r1", "checkpoints", `step_000000${STEPS.r1}`, "model.safetensors");

function assertNothingLeft(name: string): void {
  assert.deepEqual(processesMentioning(join(root, name)), [], "no process of the run may survive it");
}

describe("pipeline end to end (tiny model)", { timeout: 240_000 }, () => {
  test("uninterrupted: every stage runs, in order, each starting from the previous one", async () => {
    const run = await runPipeline(ARGS, { env: envFor("whole") });
    assert.equal(run.code, 0, run.stderr);
    const out = envFor("whole").OUT_DIR as string;
    const record = readRecord(out);
    assert.equal(record.state, "finished");
    assert.equal(record.exit_code, 0);
    for (const stage of ["pretrain", "sft", "dpo", "r1"] as const) {
      const step = record.stages.find((s) => s.stage === stage);
      assert.equal(step?.state, "finished", stage);
      assert.equal(step?.attempts, 1);
      assert.equal(step?.exit_code, 0);
      assert.ok(step?.log && existsSync(step.log), `${stage} has its attempt log`);
      assert.match(readFileSync(step?.log as string, "utf8"), /CHECKPOINT:/);
      assert.equal(
        step?.last_checkpoint,
        join(out, stage, "checkpoints", `step_000000${String(STEPS[stage]).padStart(2, "0")}`),
      );
    }
    assert.match(run.stdout, /\[pretrain\] starting from random weights\n/);
    assert.match(
      run.stdout,
      /\[sft\] initialising from .*pretrain\/checkpoints\/step_00000010 \(pretrain's latest checkpoint\)/,
    );
    assert.match(run.stdout, /\[r1\] initialising from .*dpo\/checkpoints\/step_00000010/);
    assert.doesNotMatch(run.stdout, /\[sft\] \[sft\]/, "the trainer's own prefix is not doubled");
    assert.ok(existsSync(join(out, "reason_32.safetensors")), "the legacy weights files are written");
    if (HAS_INFER) assert.equal(record.stages[4]?.state, "finished");
    else assert.match(run.stderr, /\[infer\] trainer\/infer\.ts does not exist yet; skipping/);
    assertNothingLeft("whole");
  });

  test("Ctrl+C mid-stage, an OOM-style kill, two re-runs: same final weights", async () => {
    const env = envFor("resumed");
    const out = env.OUT_DIR as string;

    // 1. Ctrl+C (SIGINT to the pipeline's process group, as a terminal sends it) during sft.
    const first = startPipeline(ARGS, { env });
    await first.waitForLine(/^\[sft\] CHECKPOINT:.*step_00000005$/);
    process.kill(-(first.child.pid as number), "SIGINT");
    const stopped = await first.done;
    assert.equal(stopped.code, 130, stopped.stderr);
    assert.match(
      stopped.stderr,
      /interrupted by SIGINT during sft \(last checkpoint .*sft\/checkpoints\/step_\d{8}\)/,
    );
    let record = readRecord(out);
    assert.equal(record.state, "interrupted");
    assert.equal(record.exit_code, 130);
    const sft = record.stages[1];
    assert.equal(sft?.state, "interrupted");
    assert.equal(sft?.exit_code, 143, "the trainer got SIGTERM and exited after saving");
    const saved = await latestValidCheckpoint(join(out, "sft", "checkpoints"));
    assert.ok(saved?.state && !saved.state.finished, "an unfinished checkpoint was saved on the way out");
    assert.equal(sft?.last_checkpoint, saved.path);
    assert.ok(saved.step >= 5 && saved.step < STEPS.sft, `stopped mid-stage (step ${saved.step})`);
    assert.equal(record.stages[2]?.state, "pending");
    assert.equal(groupAlive(sft?.pid as number), false);
    assertNothingLeft("resumed");

    // 2. Re-run: pretrain skipped, sft resumes from that checkpoint; r1's trainer is SIGKILLed mid-stage.
    const second = startPipeline(ARGS, { env });
    await second.waitForLine(/^\[r1\] CHECKPOINT:.*step_00000005$/);
    const [r1Trainer] = processesMentioning(join(out, "r1"));
    assert.ok(r1Trainer, "the r1 trainer is running");
    process.kill(r1Trainer, "SIGKILL");
    const crashed = await second.done;
    assert.equal(crashed.code, 1, crashed.stderr);
    assert.match(crashed.stdout, /\[pretrain\] already finished at step 10 .*; skipping/);
    assert.ok(
      crashed.stdout.includes(
        `[sft] resuming from ${saved.path} (epoch ${saved.state.epoch + 1}, batch ${saved.state.step_in_epoch})`,
      ),
      crashed.stdout,
    );
    assert.match(crashed.stderr, /\[r1\] was killed by SIGKILL \(out of memory\? check dmesg\)/);
    assert.match(crashed.stderr, /\[r1\] (last \d+ lines of stderr:|\(it wrote nothing to stderr\))/);
    assert.ok(crashed.stderr.includes(`[r1] full log: ${join(out, "r1", "logs", "attempt-1.log")}`));
    assert.match(crashed.stderr, /stopped: r1 failed/);
    record = readRecord(out);
    assert.equal(record.state, "failed");
    assert.equal(record.exit_code, 1);
    assert.equal(record.stages[1]?.attempts, 2);
    assert.equal(record.stages[1]?.checkpoint, saved.path);
    assert.equal(record.stages[3]?.state, "failed");
    assert.equal(record.stages[3]?.signal, "SIGKILL");
    assertNothingLeft("resumed");

    // 3. Re-run: finished stages skipped, r1 resumes its last periodic checkpoint and finishes.
    const third = await runPipeline(ARGS, { env });
    assert.equal(third.code, 0, third.stderr);
    for (const stage of ["pretrain", "sft", "dpo"]) {
      assert.match(third.stdout, new RegExp(`\\[${stage}\\] already finished at step \\d+ .*; skipping`));
    }
    assert.match(third.stdout, /\[r1\] resuming from .*r1\/checkpoints\/step_\d{8} \(epoch \d+, batch \d+\)/);
    record = readRecord(out);
    assert.equal(record.state, "finished");
    assert.equal(record.stages[3]?.attempts, 2);
    assert.ok(existsSync(join(out, "r1", "logs", "attempt-2.log")));
    assertNothingLeft("resumed");

    assert.equal(sha256(finalModel("resumed")), sha256(finalModel("whole")));
    assert.equal(sha256(join(out, "reason_32.safetensors")), sha256(finalModel("whole")));
  });

  test("Ctrl+C under `npm run pipeline`, with a forwarded copy of the signal: still one graceful stop", async () => {
    const env = envFor("npm");
    const out = env.OUT_DIR as string;
    const signalLog = join(root, "npm-pipeline-signals.log");
    const npm = spawn("npm", ["run", "--silent", "pipeline", "--", "--stages", "pretrain", ...ARGS], {
      cwd: REPO,
      env: {
        ...process.env,
        ...env,
        PRETRAIN_MAX_STEPS: "1000",
        // Only the pipeline process acts on it: it logs each signal it receives.
        NODE_OPTIONS: `--import=${pathToFileURL(join(REPO, "test", "fixtures", "record-signals.mjs")).href}`,
        BATON_SIGNAL_LOG: signalLog,
        TB_AUTO: "0",
        FORCE_COLOR: "0",
      },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    let stderr = "";
    npm.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
    });
    const closed = new Promise((resolve) => npm.on("close", resolve));
    const stopNotice = new Promise<void>((resolve) => {
      npm.stderr.on("data", () => {
        if (/\[pipeline\] SIGINT: stopping/.test(stderr)) resolve();
      });
    });
    await new Promise<void>((resolve) => {
      npm.stdout.setEncoding("utf8").on("data", (chunk: string) => {
        if (/\[pretrain\] CHECKPOINT:.*step_00000005/.test(chunk)) resolve();
      });
    });
    const pipelinePid = readRecord(out).pid;
    // The terminal's SIGINT reaches npm, sh and the pipeline; an older npm also forwards its own copy.
    // The copy goes only once the pipeline has taken the first as its stop request (its notice is on
    // stderr): sent sooner, the two could merge into one delivery — signals do not queue.
    process.kill(-(npm.pid as number), "SIGINT");
    await stopNotice;
    process.kill(pipelinePid, "SIGINT");
    await closed; // every holder of the output pipes, the pipeline included, has exited
    assert.deepEqual(
      readFileSync(signalLog, "utf8").split("\n").filter(Boolean),
      ["SIGINT", "SIGINT"],
      "the pipeline received the terminal's SIGINT and then the forwarded copy",
    );
    assert.equal(stderr.match(/SIGINT: stopping/g)?.length, 1, stderr);
    const record = readRecord(out);
    assert.equal(record.state, "interrupted", stderr);
    assert.equal(record.exit_code, 130);
    assert.equal(record.stages[0]?.exit_code, 143, "the trainer saved and exited; it was not killed");
    assert.equal(record.stages[0]?.signal, null);
    assert.doesNotMatch(stderr, /again: killing|SIGKILL/);
    const saved = await latestValidCheckpoint(join(out, "pretrain", "checkpoints"));
    assert.ok(saved !== null && saved.step >= 5 && saved.state?.finished === false);
    assertNothingLeft("npm");
  });

  test("a stage that fails on bad data: exit code, stderr tail, log path, then attempt 2", async () => {
    const dir = join(root, "bad");
    const out = join(dir, "out");
    const data = join(dir, "pairs.jsonl");
    mkdirSync(dir, { recursive: true });
    writeFileSync(data, '{"chosen": [], "rejected": []}\n');
    const env = { ...envFor("bad"), DPO_JSON: data, INIT_FROM: join(dir, "missing.safetensors") };
    for (const attempt of [1, 2]) {
      const run = await runPipeline(["--stages", "dpo", ...ARGS], { env });
      assert.equal(run.code, 2, run.stderr);
      assert.match(
        run.stderr,
        /\[dpo\] exited with code 2\n\[dpo\] last 1 lines of stderr:\n {2}\| train_dpo: error: .*pairs\.jsonl:1: /,
      );
      assert.ok(run.stderr.includes(`[dpo] full log: ${join(out, "dpo", "logs", `attempt-${attempt}.log`)}`));
      const record = readRecord(out);
      assert.equal(record.state, "failed");
      assert.equal(record.stages[2]?.state, "failed");
      assert.equal(record.stages[2]?.exit_code, 2);
      assert.equal(record.stages[2]?.attempts, attempt);
      assert.match(record.stages[2]?.stderr_tail?.at(-1) ?? "", /^train_dpo: error: .*pairs\.jsonl:1: /);
      assert.equal(record.stages[0]?.state, "skipped");
    }
  });

  test("a stage with nothing to start from: one line naming the stage to run first, nothing spawned", async () => {
    const env = envFor("blocked");
    const run = await runPipeline(["--stages", "dpo,r1"], { env });
    assertOneLineError(run, /^\[dpo\] error: nothing to start from: run the sft stage first \(/);
    const record = readRecord(env.OUT_DIR as string);
    assert.equal(record.stages[2]?.state, "failed");
    assert.equal(record.stages[2]?.attempts, 0);
    assert.equal(record.stages[3]?.state, "pending");
  });
});
