/**
 * The DPO stage: bit-exact resume (SIGTERM, and SIGKILL after a periodic save) on wasm and cpu
 * with the frozen reference file in the stage folder written once and reused; preference accuracy rises; bad input (a pair without "rejected", a replaced or missing
 * reference, nothing to start from) is one line and exit 2.
 */
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { crashAndRecover, finalModelPath, randomCrashPoint, stepDir } from "./support/crash-resume.ts";
import { assertOneLineError } from "./support/one-line-error.ts";
import {
  evalResults,
  interruptedMatchesUninterrupted,
  randomStopStep,
  sampleDataPath,
  stageTestSetup,
  tinyConfig,
  writeInitialWeights,
} from "./support/stage-fixtures.ts";
import { runDirs, runTrainerToEnd, sha256, TINY_MODEL } from "./support/trainer-process.ts";

const { root, seed, init64, init128 } = stageTestSetup("baton-dpo-");

const STEPS = 10;

/** What identifies the file itself: a rewrite, even of the same bytes, changes the inode or the mtime. */
function fileIdentity(path: string): { ino: bigint; mtimeNs: bigint; sha256: string } {
  const { ino, mtimeNs } = statSync(path, { bigint: true });
  return { ino, mtimeNs, sha256: sha256(path) };
}

describe(`DPO bit-exact resume (BATON_TEST_SEED=${seed})`, { concurrency: 2 }, () => {
  for (const [i, backend] of ["wasm", "cpu"].entries()) {
    test(`on ${backend}: SIGTERM at a random step or SIGKILL after a save, resume, same weights and reference file`, async () => {
      const dir = join(root, `resume-${backend}`);
      const args = (runRoot: string) => [
        ...runDirs(runRoot, "dpo"),
        ...TINY_MODEL,
        ...["--init_from", init64, "--backend", backend, "--max_steps", String(STEPS)],
        ...["--save_interval", "4", "--log_interval", "1", "--eval", "false"],
      ];
      const reference = (name: string) => join(dir, name, "dpo", "reference.safetensors");
      let written: ReturnType<typeof fileIdentity> | null = null;
      const result = await interruptedMatchesUninterrupted(
        "train_dpo.ts",
        "dpo",
        STEPS,
        randomStopStep(seed, i, STEPS),
        args,
        dir,
        () => {
          written = fileIdentity(reference("interrupted"));
        },
      );
      assert.equal(result.resumed, result.whole);
      // One reference, written once by the first session and reused — not rewritten — by the resume.
      assert.deepEqual(fileIdentity(reference("interrupted")), written);
      assert.equal(sha256(reference("interrupted")), sha256(reference("whole")));
      const state = JSON.parse(
        readFileSync(join(dir, "whole", "dpo", "checkpoints", stepDir(STEPS), "state.json"), "utf8"),
      );
      assert.equal(state.reference_sha256, sha256(reference("whole")));
      assert.equal(typeof state.metrics.reward_accuracy, "number");

      // A crash after a periodic save: the recovery resumes from it, with the same reference file.
      let beforeRecovery: ReturnType<typeof fileIdentity> | null = null;
      await crashAndRecover(
        "train_dpo.ts",
        args(join(dir, "crashed")),
        randomCrashPoint(seed, i, STEPS, 4),
        STEPS,
        () => {
          beforeRecovery = fileIdentity(reference("crashed"));
        },
      );
      assert.deepEqual(fileIdentity(reference("crashed")), beforeRecovery);
      assert.equal(sha256(finalModelPath(join(dir, "crashed"), "dpo", STEPS)), result.whole);
    });
  }
});

test("DPO raises preference accuracy on the sample pairs", async () => {
  // Sixty training pairs, learned for eight epochs and evaluated on themselves: from seeded random
  // weights (about chance) the policy must come to prefer the chosen replies.
  const pairs = join(root, "pairs.jsonl");
  writeFileSync(
    pairs,
    `${readFileSync(sampleDataPath("dpo.jsonl"), "utf8").split("\n").slice(0, 60).join("\n")}\n`,
  );
  const dir = join(root, "learn");
  const run = await runTrainerToEnd("train_dpo.ts", [
    ...runDirs(dir, "dpo"),
    ...TINY_MODEL,
    ...["--max_seq_len", "128", "--batch_size", "8", "--epochs", "8", "--learning_rate", "1e-2"],
    ...["--data_path", pairs, "--eval_path", pairs, "--init_from", init128, "--backend", "wasm"],
  ]);
  assert.equal(run.code, 0, run.stderr);
  const [result] = evalResults(dir);
  assert.equal(result?.stage, "dpo");
  assert.match(result?.checkpoint ?? "", /step_00000064$/);
  const m = result?.metrics as Record<string, number>;
  assert.equal(m.baseline_reward_margin, 0, "the policy starts equal to the reference");
  assert.ok(
    (m.preference_accuracy as number) >= (m.baseline_preference_accuracy as number) + 0.15,
    `preference accuracy ${m.preference_accuracy} vs ${m.baseline_preference_accuracy} before DPO`,
  );
  assert.ok((m.reward_accuracy as number) > 0.6, `reward accuracy ${m.reward_accuracy}`);
  assert.ok((m.reward_margin as number) > 0, `reward margin ${m.reward_margin}`);
});

describe("DPO bad input: one line, exit 2", { concurrency: 2 }, () => {
  test("a pair without rejected", async () => {
    const bad = join(root, "bad.jsonl");
    const lines = readFileSync(sampleDataPath("dpo.jsonl"), "utf8").split("\n").slice(0, 10);
    lines[3] = JSON.stringify({ chosen: JSON.parse(lines[3] as string).chosen });
    writeFileSync(bad, `${lines.join("\n")}\n`);
    const run = await runTrainerToEnd("train_dpo.ts", [
      ...runDirs(join(root, "bad"), "dpo"),
      ...TINY_MODEL,
      ...["--data_path", bad, "--init_from", init64, "--backend", "cpu"],
    ]);
    assertOneLineError(run, /bad\.jsonl:4: missing field "rejected"/);
  });

  test("nothing to start from names the stage to run first", async () => {
    const run = await runTrainerToEnd("train_dpo.ts", [
      ...runDirs(join(root, "empty"), "dpo"),
      ...TINY_MODEL,
      ...["--backend", "cpu"],
    ]);
    assertOneLineError(run, /nothing to start from: run the sft stage first/);
  });

  test("a replaced or missing reference model refuses to resume", async () => {
    const dir = join(root, "reference");
    // Without --init_from the SFT stage's legacy file beside the stage folder is the default start.
    mkdirSync(dir, { recursive: true });
    copyFileSync(init64, join(dir, "full_sft_32.safetensors"));
    const args = [
      ...runDirs(dir, "dpo"),
      ...TINY_MODEL,
      ...["--backend", "cpu", "--max_steps", "3", "--save_interval", "1", "--eval", "false"],
    ];
    const first = await runTrainerToEnd("train_dpo.ts", args);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /initialising from .*full_sft_32\.safetensors/);
    const resumeArgs = [...args, "--resume", join(dir, "dpo", "checkpoints", "step_00000002")];

    const reference = join(dir, "dpo", "reference.safetensors");
    const original = readFileSync(reference);
    writeInitialWeights(reference, tinyConfig(64), 99);
    assertOneLineError(
      await runTrainerToEnd("train_dpo.ts", resumeArgs),
      /cannot resume .*step_00000002: reference model .*reference\.safetensors has SHA-256 [0-9a-f]{64}, the checkpoint recorded [0-9a-f]{64}/,
    );
    rmSync(reference);
    assertOneLineError(
      await runTrainerToEnd("train_dpo.ts", resumeArgs),
      /cannot resume .*: the frozen reference model .*reference\.safetensors is unreadable \(no such file/,
    );
    // With the original back in place, the same resume goes ahead.
    writeFileSync(reference, original);
    const resumed = await runTrainerToEnd("train_dpo.ts", resumeArgs);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stdout, /resuming from .*step_00000002/);
  });
});
