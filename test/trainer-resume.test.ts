/**
 * Bit-exact resume (DESIGN §3): a run interrupted by SIGTERM at a random step — or SIGKILLed, losing
 * everything since its last periodic save — and resumed in a fresh process ends with the same
 * model.safetensors, byte for byte, as an uninterrupted run. Pretrain and SFT, on wasm and cpu.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
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
    test(`${c.stage} on ${c.backend}: SIGTERM at a random step, resume, same final weights`, async () => {
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
        join(
          root,
          `${c.stage}-${c.backend}-${name}`,
          c.stage,
          "checkpoints",
          `step_000000${STEPS}`,
          "model.safetensors",
        );

      const whole = await runTrainerToEnd(c.script, args("whole"));
      assert.equal(whole.code, 0, whole.stderr);

      const stopAt = randomStep(i);
      const interrupted = startTrainer(c.script, args("interrupted"));
      await interrupted.waitForLine(new RegExp(`step ${stopAt}/${STEPS} `));
      interrupted.child.kill("SIGTERM");
      const first = await interrupted.done;
      assert.equal(first.code, 143, `expected exit 143 after SIGTERM\n${first.stderr}`);
      assert.match(first.stdout, /CHECKPOINT:.*step_\d{8}\n[^\n]*interrupted by SIGTERM/);

      const resumed = await runTrainerToEnd(c.script, args("interrupted"));
      assert.equal(resumed.code, 0, resumed.stderr);
      assert.match(resumed.stdout, /resuming from .*step_\d{8}/);
      assert.equal(sha256(finalModel("interrupted")), sha256(finalModel("whole")));

      // A crash (SIGKILL) loses the steps since the last save; the resumed run recomputes them identically.
      const crashed = startTrainer(c.script, args("crashed"));
      await crashed.waitForLine(new RegExp(`step ${Math.min(stopAt + 2, STEPS - 1)}/${STEPS} `));
      crashed.child.kill("SIGKILL");
      await crashed.done;
      const recovered = await runTrainerToEnd(c.script, args("crashed"));
      assert.equal(recovered.code, 0, recovered.stderr);
      assert.equal(sha256(finalModel("crashed")), sha256(finalModel("whole")));
    });
  }
});
