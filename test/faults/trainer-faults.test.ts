/**
 * Fault injection, one trainer at a time: each fault a real machine has, with the default
 * data-parallel thread count, must end the trainer within seconds — one line, the right exit code,
 * no thread left — and leave every intact checkpoint where it was.
 */
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { listCheckpoints } from "../../lib/checkpoint/index.ts";
import { readRunMetadata } from "../../lib/metadata/run-metadata.ts";
import { decodeSafetensors } from "../../lib/safetensors/index.ts";
import { runDirs, runTrainerToEnd, sha256, TINY_MODEL } from "../support/trainer-process.ts";
import type { ProcessExit } from "../support/watched-process.ts";
import { assertOneLine, scratch, unwritableDir, within } from "./support.ts";

const root = scratch("trainer");
/** Trainer scripts are named relative to trainer/. */
const FAULTY = join("..", "test", "fixtures", "faulty-trainer.ts");
/** A tiny pretrain run: `--data_parallel` left at auto (2 threads on this 2-core machine, at least 2 forced). */
const tiny = (dir: string, extra: string[] = []) => [
  ...runDirs(dir, "pretrain"),
  ...TINY_MODEL,
  ...["--backend", "wasm", "--eval", "false", "--log_interval", "1", ...extra],
];
const run = (script: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<ProcessExit> =>
  within(60_000, `${script} ${args.join(" ")}`, runTrainerToEnd(script, args, env));

function modelHashes(ckptDir: string): Record<string, string> {
  return Object.fromEntries(
    readdirSync(ckptDir)
      .filter((name) => name.startsWith("step_"))
      .map((name) => [name, sha256(join(ckptDir, name, "model.safetensors"))]),
  );
}

describe("a trainer hit by a fault after its worker threads started ends at once", { concurrency: 3 }, () => {
  test("an unwritable --out_dir: exit 1 in seconds, one line naming the folder and why", async () => {
    const locked = unwritableDir(join(root, "locked"));
    const started = Date.now();
    const result = await run("train_pretrain.ts", [
      ...tiny(join(locked, "run")),
      "--data_parallel",
      "2",
      "--max_steps",
      "4",
    ]);
    assertOneLine(
      result,
      1,
      /^train_pretrain: failed: cannot create .*locked\/run\/pretrain: .*locked is (on a read-only file system|not writable)$/,
    );
    assert.ok(Date.now() - started < 30_000, `took ${Date.now() - started} ms`);
  });

  for (const fault of ["throw", "exit"] as const) {
    test(`a worker thread that ${fault === "throw" ? "throws" : "dies"}: exit 1 naming it; the saved checkpoint stays`, async () => {
      const dir = join(root, `worker-${fault}`);
      const result = await run(
        FAULTY,
        [...tiny(dir), "--data_parallel", "2", "--max_steps", "6", "--save_interval", "1"],
        {
          BATON_FAULT: fault,
        },
      );
      const pattern =
        fault === "throw"
          ? /worker failed: .*injected fault in a worker's loss/
          : /worker thread exited unexpectedly \(code 7\)/;
      assertOneLine(result, 1, new RegExp(`^train_pretrain: failed: data-parallel ${pattern.source}`));
      const saved = await listCheckpoints(join(dir, "pretrain", "checkpoints"));
      assert.deepEqual(
        saved.map((c) => [c.step, c.valid]),
        [[1, true]],
        "the update before the fault was saved; nothing after it",
      );
      const metadata = await readRunMetadata(join(dir, "pretrain", "metadata.json"));
      assert.equal(metadata?.state, "failed");
    });
  }
});

describe("numerical faults stop cleanly", () => {
  test("a learning rate that is not a finite number is refused before anything runs", async () => {
    for (const value of ["1e309", "abc"]) {
      const result = await run("train_pretrain.ts", [
        ...tiny(join(root, `lr-${value}`)),
        "--learning_rate",
        value,
      ]);
      assertOneLine(
        result,
        2,
        new RegExp(`^train_pretrain: error: --learning_rate ${value}: expected a finite number ≥ 0`),
      );
    }
  });

  test("a learning rate far too high: non-finite updates are skipped, then exit 1 naming the step and the cause; the last good checkpoint stays latest", async () => {
    const dir = join(root, "nan");
    // On the tiny model 100 only makes the loss huge; 1e6 makes the gradients overflow.
    const result = await run("train_pretrain.ts", [
      ...tiny(dir),
      ...[
        "--learning_rate",
        "1e6",
        "--max_steps",
        "40",
        "--save_interval",
        "1",
        "--keep_last_checkpoints",
        "50",
      ],
    ]);
    const line = assertOneLine(
      result,
      1,
      /^train_pretrain: error: 5 updates in a row after step \d+ had a non-finite loss or gradient/,
    );
    assert.match(line, /--learning_rate 1e\+6 is likely too high/);
    assert.match(line, /The last good checkpoint, .*step_\d{8}, is still the latest\.$/);
    assert.match(
      result.stderr,
      /warning: update \d+ skipped: loss NaN, gradient norm NaN \(1 in a row; weights and optimizer unchanged\)/,
    );
    const saved = await listCheckpoints(join(dir, "pretrain", "checkpoints"));
    assert.ok(saved.length > 0 && saved.every((c) => c.valid));
    const last = saved.at(-1);
    assert.ok(last && !last.state?.finished, "never marked finished");
    assert.ok(line.includes(last.path), "the one it names is the latest");
    // Nothing non-finite was ever saved.
    for (const c of saved) {
      const { tensors } = decodeSafetensors(readFileSync(join(c.path, "model.safetensors")), c.path);
      for (const [name, tensor] of tensors) {
        assert.ok((tensor.data as Float32Array).every(Number.isFinite), `${c.name}: ${name} is not finite`);
      }
    }
    assert.equal((await readRunMetadata(join(dir, "pretrain", "metadata.json")))?.state, "failed");
  });
});

describe("bad input is refused", { concurrency: 3 }, () => {
  test("a flag given without its value", async () => {
    const result = await run("train_pretrain.ts", [...tiny(join(root, "novalue")), "--max_steps"]);
    assertOneLine(
      result,
      2,
      /^train_pretrain: error: --max_steps: expected a value after it \(see --help\)$/,
    );
  });

  test("an unknown flag, with a suggestion", async () => {
    const result = await run("train_pretrain.ts", [...tiny(join(root, "typo")), "--max_step", "3"]);
    assertOneLine(
      result,
      2,
      /^train_pretrain: error: unknown flag --max_step \(did you mean --max_steps\?\) \(see --help\)$/,
    );
  });

  test("SFT data whose assistant tokens lie past --max_seq_len: some, a warning with the count; all, exit 2 with the length that fits", async () => {
    const sft = (seqLen: string, dir: string, extra: string[] = []) =>
      run("train_full_sft.ts", [
        ...runDirs(join(root, dir), "sft"),
        ...TINY_MODEL,
        ...["--backend", "cpu", "--max_seq_len", seqLen, "--init_from", "none", ...extra],
      ]);
    const none = await sft("16", "cut");
    assertOneLine(
      none,
      2,
      /^train_full_sft: error: --max_seq_len 16 cuts off every learned token in .*sft_mini_512\.jsonl \(\d+ records checked\): nothing would be trained; use --max_seq_len \d+ or more$/,
    );
    const some = await sft("32", "cut-some", ["--max_steps", "1", "--eval", "false"]);
    assert.equal(some.code, 0, some.stderr);
    assert.match(
      some.stderr,
      /warning: \d+ of 965 records checked in .*sft_mini_512\.jsonl have no assistant token within --max_seq_len 32 and train nothing \(--max_seq_len \d+ keeps them\)/,
    );
  });

  test("--eval false holds nothing out", async () => {
    const result = await run("train_pretrain.ts", [...tiny(join(root, "noeval")), "--max_steps", "1"]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /\(3325 training records, 0 held out\)/);
  });
});

describe("intact weights are never deleted, runs never mixed", () => {
  const base = join(root, "runs");
  const ckptDir = join(base, "pretrain", "checkpoints");
  const args = (extra: string[] = []) => [
    ...tiny(base),
    "--max_steps",
    "4",
    "--save_interval",
    "2",
    ...extra,
  ];

  test("every checkpoint's state.json damaged: refuse naming each, change nothing, train nothing", async () => {
    const first = await run("train_pretrain.ts", args(["--data_parallel", "2"]));
    assert.equal(first.code, 0, first.stderr);
    const before = modelHashes(ckptDir);
    assert.deepEqual(Object.keys(before), ["step_00000002", "step_00000004"]);
    for (const name of Object.keys(before)) writeFileSync(join(ckptDir, name, "state.json"), "{ damaged");
    const refused = await run("train_pretrain.ts", args(["--max_steps", "8"]));
    const line = assertOneLine(refused, 2, /holds 2 checkpoint\(s\) and none is valid/);
    assert.match(
      line,
      /step_00000004: state\.json: not valid JSON; step_00000002: state\.json: not valid JSON/,
    );
    assert.match(line, /--restart/);
    assert.deepEqual(modelHashes(ckptDir), before, "every model.safetensors is still there, unchanged");
    assert.doesNotMatch(refused.stdout, /starting from random weights/);
  });

  test("--resume none over old checkpoints refuses; --restart moves them aside, intact, and says where", async () => {
    // A good run to work on.
    const fresh = join(root, "restart");
    const fresh4 = [...tiny(fresh), "--max_steps", "4", "--save_interval", "2", "--hidden_size", "32"];
    assert.equal((await run("train_pretrain.ts", fresh4)).code, 0);
    const dir = join(fresh, "pretrain", "checkpoints");
    const before = modelHashes(dir);

    const none = await run("train_pretrain.ts", [...fresh4, "--resume", "none"]);
    assertOneLine(
      none,
      2,
      /^train_pretrain: error: --resume none: .*already holds 2 checkpoint\(s\) \(latest step 4\); a new run there would mix two runs in one folder — pass --restart/,
    );
    assert.deepEqual(modelHashes(dir), before);

    const wider = await run("train_pretrain.ts", [...tiny(fresh), "--max_steps", "4", "--hidden_size", "64"]);
    assertOneLine(
      wider,
      2,
      /cannot resume .*step_00000004: it was trained with --hidden_size 32, this run has 64 — .*--restart/,
    );

    const restarted = await run("train_pretrain.ts", [
      ...tiny(fresh),
      "--max_steps",
      "3",
      "--hidden_size",
      "64",
      "--restart",
    ]);
    assert.equal(restarted.code, 0, restarted.stderr);
    const moved =
      /--restart: moved the earlier run's 2 checkpoint\(s\) to (\S+) \(nothing was deleted\)/.exec(
        restarted.stdout,
      );
    assert.ok(moved, restarted.stdout);
    const aside = moved[1] as string;
    assert.match(aside, /checkpoints\.before-\d{8}T\d{6}Z$/);
    assert.deepEqual(modelHashes(aside), before, "the old run is complete where it went");
    assert.ok(existsSync(join(aside, "metadata.json")), "its metadata went with it");
    assert.deepEqual(readdirSync(dir), ["step_00000003"], "the new run is alone in checkpoints/");
    // The old run's id differs from the new one's: pruning in the new run never touches it.
    const oldState = JSON.parse(readFileSync(join(aside, "step_00000004", "state.json"), "utf8"));
    const newState = JSON.parse(readFileSync(join(dir, "step_00000003", "state.json"), "utf8"));
    assert.notEqual(oldState.run_id, newState.run_id);
    assert.ok(statSync(aside).isDirectory());
  });
});

describe("outputs stay where the user put them", () => {
  test("a standalone trainer with only --out_dir writes everything inside it", async () => {
    const dir = join(root, "scratch", "o");
    const result = await run("train_pretrain.ts", [
      "--out_dir",
      dir,
      ...TINY_MODEL,
      ...["--backend", "cpu", "--max_steps", "2", "--save_interval", "1", "--eval_size", "8"],
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(readdirSync(join(root, "scratch")), ["o"], "nothing beside the folder");
    const inside = readdirSync(dir).sort();
    for (const name of [
      "checkpoints",
      "eval_results.jsonl",
      "metadata.json",
      "pretrain_32.safetensors",
      "tensorboard",
    ]) {
      assert.ok(inside.includes(name), `${name} missing from ${inside.join(", ")}`);
    }
    assert.ok(readdirSync(join(dir, "tensorboard")).some((f) => f.startsWith("events.out.tfevents.")));
  });
});
