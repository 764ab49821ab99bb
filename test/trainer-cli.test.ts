/**
 * The trainer command line: --help lists every flag with its default, and bad input (flags, data
 * files, an incompatible checkpoint) ends with one clear line and exit 2 — never a stack trace.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { assertOneLineError } from "./support/one-line-error.ts";
import { runDirs, runTrainerToEnd, TINY_MODEL } from "./support/trainer-process.ts";

const root = mkdtempSync(join(tmpdir(), "baton-cli-"));
after(() => rmSync(root, { recursive: true, force: true }));

const FLAGS = [
  "data_path",
  "out_dir",
  "ckpt_dir",
  "resume",
  "init_from",
  "keep_last_checkpoints",
  "save_interval",
  "max_steps",
  "epochs",
  "batch_size",
  "accumulation_steps",
  "learning_rate",
  "grad_clip",
  "hidden_size",
  "num_hidden_layers",
  "num_attention_heads",
  "num_key_value_heads",
  "max_seq_len",
  "vocab_size",
  "seed",
  "tensorboard_dir",
  "log_interval",
  "backend",
  "legacy_weights",
  "legacy_format",
  "legacy_dtype",
  "preset",
  "model_revision",
  "tokenizer",
  "skip_bad_lines",
];

function dataFile(name: string, content: string): string {
  const path = join(root, name);
  writeFileSync(path, content);
  return path;
}

const quick = (dir: string, stage = "pretrain") => [
  ...runDirs(join(root, dir), stage),
  ...TINY_MODEL,
  "--backend",
  "cpu",
];

describe("trainer command line", { concurrency: 4 }, () => {
  for (const script of ["train_pretrain.ts", "train_full_sft.ts"]) {
    test(`${script} --help lists every flag with its default`, async () => {
      const run = await runTrainerToEnd(script, ["--help"]);
      assert.equal(run.code, 0);
      for (const flag of FLAGS)
        assert.match(run.stdout, new RegExp(`--${flag}\\b`), `--${flag} missing from --help`);
      assert.match(run.stdout, /--batch_size\b.*\[default: 8\]/);
      assert.match(run.stdout, /--keep_last_checkpoints\b.*\[default: 3\]/);
      // Each flag's text as one line, however the terminal wrapped it.
      const help = run.stdout.replace(/\s+/g, " ");
      assert.match(help, /--legacy_dtype\b.*?\[default: "float16"\]/);
      assert.match(help, /--model_revision\b.*?\[default: "minimind2"\]/);
      assert.match(
        help,
        /minimind2-small: MiniMind2-Small \(26M\), minimind2 512 × 8, 8 heads, 2 kv heads, vocab 6400/,
      );
    });
  }

  test("an unknown flag or a bad value names the flag", async () => {
    assertOneLineError(await runTrainerToEnd("train_pretrain.ts", ["--batch_sise", "4"]), /batch_sise/);
    assertOneLineError(
      await runTrainerToEnd("train_pretrain.ts", ["--batch_size", "0"]),
      /--batch_size 0: expected/,
    );
    assertOneLineError(
      await runTrainerToEnd("train_pretrain.ts", ["--hidden_size", "30", "--num_attention_heads", "4"]),
      /--hidden_size 30 must be divisible by --num_attention_heads 4/,
    );
  });

  test("a missing data file is named", async () => {
    const run = await runTrainerToEnd("train_pretrain.ts", [
      ...quick("missing"),
      "--data_path",
      join(root, "nope.jsonl"),
    ]);
    assertOneLineError(run, /nope\.jsonl: no such file/);
  });

  test("an empty data file is named", async () => {
    const run = await runTrainerToEnd("train_pretrain.ts", [
      ...quick("empty"),
      "--data_path",
      dataFile("empty.jsonl", ""),
    ]);
    assertOneLineError(run, /empty\.jsonl: no records/);
  });

  test("a bad JSON line is named by file and line", async () => {
    const path = dataFile("badjson.jsonl", '{"text": "one"}\n{"text": "two"\n{"text": "three"}\n');
    assertOneLineError(
      await runTrainerToEnd("train_pretrain.ts", [...quick("badjson"), "--data_path", path]),
      /badjson\.jsonl:2: invalid JSON/,
    );
  });

  test("a missing field and a wrong type are named by file and line", async () => {
    const missing = dataFile("missing-field.jsonl", '{"text": "one"}\n{"txt": "two"}\n');
    assertOneLineError(
      await runTrainerToEnd("train_pretrain.ts", [...quick("field"), "--data_path", missing]),
      /missing-field\.jsonl:2: .*"text"/,
    );
    const wrongType = dataFile("wrong-type.jsonl", '{"conversations": "hello"}\n');
    assertOneLineError(
      await runTrainerToEnd("train_full_sft.ts", [...quick("type", "sft"), "--data_path", wrongType]),
      /wrong-type\.jsonl:1: .*conversations/,
    );
  });

  test("--skip_bad_lines warns with a count and trains on the rest", async () => {
    const lines = Array.from({ length: 40 }, (_, i) => JSON.stringify({ text: `line ${i} of the corpus` }));
    lines.splice(5, 0, "{broken");
    lines.splice(20, 0, '{"txt": 1}');
    const path = dataFile("some-bad.jsonl", `${lines.join("\n")}\n`);
    const run = await runTrainerToEnd("train_pretrain.ts", [
      ...quick("skip"),
      "--data_path",
      path,
      "--skip_bad_lines",
      "--max_steps",
      "2",
      "--eval_size",
      "4",
    ]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stderr, /2 bad lines?.*skipped|skipped 2/i);
  });

  test("resuming with a different model shape is refused, naming both values", async () => {
    const args = [...quick("shape"), "--max_steps", "2", "--eval", "false"];
    const first = await runTrainerToEnd("train_pretrain.ts", [...args, "--save_interval", "1"]);
    assert.equal(first.code, 0, first.stderr);
    mkdirSync(join(root, "shape"), { recursive: true });
    const wider = args.map((a, i) => (args[i - 1] === "--hidden_size" ? "64" : a));
    const run = await runTrainerToEnd("train_pretrain.ts", [...wider, "--max_steps", "4"]);
    assertOneLineError(run, /hidden_size 32.*this run has 64/);
  });
});
