/**
 * Bit-exact resume (docs/formats.md#step-checkpoints): a run interrupted by SIGTERM at a random step — or SIGKILLed after a
 * periodic save, losing everything since — and resumed in a fresh process from the checkpoint it
 * last saved ends with the same model.safetensors, byte for byte, as an uninterrupted run. Pretrain
 * and SFT, on wasm and cpu.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { crashAndRecover, finalModelPath, randomCrashPoint } from "./support/crash-resume.ts";
import { runDirs, runTrainerToEnd, sha256, startTrainer, TINY_MODEL } from "./support/trainer-process.ts";

const root = mkdtempSync(join(tmpdir(), "baton-resume-"));
after(() => rmSync(root, { recursive: true, force: true }));

const STEPS = 12;
const seed = Number(process.env.BATON_TEST_SEED ?? Date.now() % 100000);

function randomStep(salt: number): number {
  // Deterministic per seed so a failure can be reproduced with BATON_TEST_SEED.
  const x = Math.sin(seed * 9301 + salt * 49297) * 233280;
  return 2 + Math.floor((x - Math.floor(x)) * (STEPS - 3));
}

const cases = [
  { script: "train_pretrain.ts", stage: "pretrain", backend: "wasm" },
  { script: "train_pretrain.ts", stage: "pretrain", backend: "cpu" },
  { script: "train_full_sft.ts", stage: "sft", backend: "wasm" },
  { script: "train_full_sft.ts", stage: "sft", backend: "cpu" },
];

describe(`bit-exact resume (BATON_TEST_SEED=${seed})`, { concurrency: 2 }, () => {
  for (const [i, c] of cases.entries()) {
    test(`${c.stage} on ${c.backend}: SIGTERM at a random step or SIGKILL after a save, resume, same weights`, async () => {
      const args = (name: string) => [
        ...runDirs(join(root, `${c.stage}-${c.backend}-${name}`), c.stage),
        ...TINY_MODEL,
        "--backend",
        c.backend,
        "--max_steps",
        String(STEPS),
        "--save_interval",
        "5",
        "--log_interval",
        "1",
        "--eval",
        "false",
        ...(c.stage === "sft" ? ["--init_from", "none"] : []),
      ];
      const finalModel = (name: string) =>
        finalModelPath(join(root, `${c.stage}-${c.backend}-${name}`), c.stage, STEPS);

      const whole = await runTrainerToEnd(c.script, args("whole"));
      assert.equal(whole.code, 0, whole.stderr);

      const stopAt = randomStep(i);
      const interrupted = startTrainer(c.script, args("interrupted"));
      await interrupted.waitForLine(new RegExp(`step ${stopAt}/${STEPS} `));
      interrupted.child.kill("SIGTERM");
      const first = await interrupted.done;
      assert.equal(first.code, 143, `expected exit 143 after SIGTERM\n${first.stderr}`);
      // The save is the last thing before the notice (a heartbeat, on its own timer, may come between).
      assert.match(first.stdout, /CHECKPOINT:.*step_\d{8}\n(?:HEARTBEAT:\d+\n)*[^\n]*interrupted by SIGTERM/);

      const saved = [...first.stdout.matchAll(/^CHECKPOINT:(.*)$/gm)].at(-1)?.[1];
      const resumed = await runTrainerToEnd(c.script, args("interrupted"));
      assert.equal(resumed.code, 0, resumed.stderr);
      assert.ok(resumed.stdout.includes(`resuming from ${saved} (`), resumed.stdout);
      assert.equal(sha256(finalModel("interrupted")), sha256(finalModel("whole")));

      // A crash (SIGKILL) after a periodic save loses the steps since; the recovery resumes from
      // that save and recomputes them identically.
      await crashAndRecover(c.script, args("crashed"), randomCrashPoint(seed, i, STEPS, 5), STEPS);
      assert.equal(sha256(finalModel("crashed")), sha256(finalModel("whole")));
    });
  }
});
