/**
 * The R1 reasoning-distillation stage: bit-exact resume (SIGTERM, and SIGKILL after a periodic save)
 * on wasm and cpu; training raises the share
 * of well-formed <think>…</think><answer>…</answer> replies; bad input is one line and exit 2.
 */
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { crashAndRecover, finalModelPath, randomCrashPoint } from "./support/crash-resume.ts";
import { assertOneLineError } from "./support/one-line-error.ts";
import {
  evalResults,
  interruptedMatchesUninterrupted,
  randomStopStep,
  sampleDataPath,
  stageTestSetup,
} from "./support/stage-fixtures.ts";
import { runDirs, runTrainerToEnd, sha256, TINY_MODEL } from "./support/trainer-process.ts";

const { root, seed, init64, init128 } = stageTestSetup("baton-r1-");

const STEPS = 12;

describe(`R1 bit-exact resume (BATON_TEST_SEED=${seed})`, { concurrency: 2 }, () => {
  for (const [i, backend] of ["wasm", "cpu"].entries()) {
    test(`on ${backend}: SIGTERM at a random step or SIGKILL after a save, resume, same final weights`, async () => {
      const dir = join(root, `resume-${backend}`);
      const args = (runRoot: string) => [
        ...runDirs(runRoot, "r1"),
        ...TINY_MODEL,
        ...["--init_from", init64, "--backend", backend, "--max_steps", String(STEPS)],
        ...["--save_interval", "5", "--log_interval", "1", "--eval", "false"],
      ];
      const result = await interruptedMatchesUninterrupted(
        "train_distill_reason.ts",
        "r1",
        STEPS,
        randomStopStep(seed, 10 + i, STEPS),
        args,
        dir,
      );
      assert.equal(result.resumed, result.whole);

      const crashAt = randomCrashPoint(seed, 10 + i, STEPS, 5);
      await crashAndRecover("train_distill_reason.ts", args(join(dir, "crashed")), crashAt, STEPS);
      assert.equal(sha256(finalModelPath(join(dir, "crashed"), "r1", STEPS)), result.whole);
    });
  }
});

test("R1 training raises format adherence on held-out questions", async () => {
  const dir = join(root, "learn");
  const run = await runTrainerToEnd("train_distill_reason.ts", [
    ...runDirs(dir, "r1"),
    ...TINY_MODEL,
    ...["--max_seq_len", "128", "--batch_size", "8", "--max_steps", "120", "--learning_rate", "1e-2"],
    ...["--init_from", init128, "--backend", "wasm", "--log_interval", "40"],
  ]);
  assert.equal(run.code, 0, run.stderr);
  const [result] = evalResults(dir);
  assert.equal(result?.stage, "r1");
  const m = result?.metrics as Record<string, number>;
  assert.equal(m.baseline_format_adherence, 0, "random weights never write the format");
  assert.ok((m.format_adherence as number) >= 0.5, `format adherence ${m.format_adherence} after training`);
});

describe("R1 bad input: one line, exit 2", { concurrency: 2 }, () => {
  test("a conversation with no assistant turn", async () => {
    const bad = join(root, "bad.jsonl");
    const lines = readFileSync(sampleDataPath("r1_mix_1024.jsonl"), "utf8").split("\n").slice(0, 10);
    lines[6] = JSON.stringify({ conversations: [{ role: "user", content: "Where does Nuvo live?" }] });
    writeFileSync(bad, `${lines.join("\n")}\n`);
    const run = await runTrainerToEnd("train_distill_reason.ts", [
      ...runDirs(join(root, "bad"), "r1"),
      ...TINY_MODEL,
      ...["--data_path", bad, "--init_from", init64, "--backend", "cpu"],
    ]);
    assertOneLineError(run, /bad\.jsonl:7: "conversations" has no assistant turn/);
  });

  test("nothing to start from names the stage to run first", async () => {
    const run = await runTrainerToEnd("train_distill_reason.ts", [
      ...runDirs(join(root, "empty"), "r1"),
      ...TINY_MODEL,
      ...["--backend", "cpu"],
    ]);
    assertOneLineError(run, /nothing to start from: run the dpo stage first .*dpo.*sft/);
  });
});
