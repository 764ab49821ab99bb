/**
 * MiniMind's legacy files from real trainer saves, and MiniMind's files into Baton, through real
 * PyTorch: every save writes `<prefix>_<hidden>.pth` (`--legacy_format`, `--legacy_dtype`) that
 * `torch.load(weights_only=True)` reads as exactly the checkpoint's tensors in that dtype; a trainer
 * and the pipeline's INIT_FROM start from a torch.save'd `.pth` (float16, bfloat16) with exactly its
 * values; `npm run ckpt -- export` writes the same files from any checkpoint, TensorFlow-free.
 */
import assert from "node:assert/strict";
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { execa } from "execa";
import { decodeSafetensors, float32ToFloat16, type SafeTensor } from "../lib/safetensors/index.ts";
import { assertOneLineError } from "./support/one-line-error.ts";
import { readRecord, runPipeline, TINY_TRAINER_FLAGS } from "./support/pipeline-process.ts";
import { TORCH_MISSING, torchJson, torchTool } from "./support/python-torch.ts";
import { REPO, runDirs, runTrainerToEnd, sha256, TINY_MODEL } from "./support/trainer-process.ts";

const root = mkdtempSync(join(tmpdir(), "baton-legacy-"));
after(() => rmSync(root, { recursive: true, force: true }));

const step = (stage: string, n: number) => join(stage, "checkpoints", `step_${String(n).padStart(8, "0")}`);
const quick = ["--backend", "cpu", "--eval", "false", "--max_steps", "2", "--save_interval", "1"];

/** A trainer run of two saves into `<root>/<name>/pretrain`; its stage folder. */
async function pretrain(name: string, ...flags: string[]): Promise<string> {
  const run = await runTrainerToEnd("train_pretrain.ts", [
    ...runDirs(join(root, name), "pretrain"),
    ...TINY_MODEL,
    ...quick,
    ...flags,
  ]);
  assert.equal(run.code, 0, run.stderr);
  return join(root, name, "pretrain");
}

type Report = Array<{ path: string; type: string; dtypes: string[]; problems: string[] }>;

/** torch.load(weights_only=True) of each .pth against `safetensors`: [type, dtypes, problems] each. */
function checkPth(safetensors: string, ...pths: string[]): Array<[string, string[], string[]]> {
  return torchJson<Report>("check-pth", safetensors, ...pths).map((r) => [r.type, r.dtypes, r.problems]);
}

const ok = (dtype: string): [string, string[], string[]] => ["OrderedDict", [`torch.${dtype}`], []];

const runs: Record<string, Promise<string>> = {};
before(() => {
  runs.half = pretrain("half");
  runs.bf16 = pretrain("bf16", "--legacy_dtype", "bfloat16", "--legacy_format", "pth");
  runs.fp32 = pretrain("fp32", "--legacy_dtype", "float32");
  runs.safetensors = pretrain("st", "--legacy_format", "safetensors");
  // Failed runs are reported by the tests awaiting them, not as unhandled rejections here.
  for (const run of Object.values(runs)) run.catch(() => {});
});

describe("legacy files at every save", { concurrency: true }, () => {
  test("default: pretrain_<hidden>.pth (float16) and .safetensors, both from the last save", {
    skip: TORCH_MISSING,
  }, async () => {
    const stage = await runs.half;
    const model = join(step(stage, 2), "model.safetensors");
    assert.deepEqual(checkPth(model, join(stage, "pretrain_32.pth")), [ok("float16")]);
    // The safetensors twin is the checkpoint's own float32 file, byte for byte.
    assert.equal(sha256(join(stage, "pretrain_32.safetensors")), sha256(model));
  });

  test("--legacy_dtype bfloat16 / float32 give that dtype; --legacy_format pth writes no .safetensors", {
    skip: TORCH_MISSING,
  }, async () => {
    const [bf16, fp32] = [await runs.bf16, await runs.fp32];
    assert.deepEqual(checkPth(join(step(bf16, 2), "model.safetensors"), join(bf16, "pretrain_32.pth")), [
      ok("bfloat16"),
    ]);
    assert.deepEqual(checkPth(join(step(fp32, 2), "model.safetensors"), join(fp32, "pretrain_32.pth")), [
      ok("float32"),
    ]);
    assert.equal(existsSync(join(bf16, "pretrain_32.safetensors")), false);
  });

  test("--legacy_format safetensors writes no .pth", async () => {
    const stage = await runs.safetensors;
    assert.deepEqual(
      readdirSync(stage).filter((f) => f.startsWith("pretrain_32")),
      ["pretrain_32.safetensors"],
    );
  });

  test("a stage that left only its .pth is the next stage's fallback when it has no checkpoint", async () => {
    const dir = join(root, "pth-only");
    mkdirSync(dir);
    // Where the sft stage looks for pretrain's weights file: beside its own folder.
    cpSync(join(await runs.bf16, "pretrain_32.pth"), join(dir, "pretrain_32.pth"));
    const run = await runTrainerToEnd("train_full_sft.ts", [...runDirs(dir, "sft"), ...TINY_MODEL, ...quick]);
    assert.equal(run.code, 0, run.stderr);
    assert.ok(
      run.stdout.includes(
        `initialising from ${join(dir, "pretrain_32.pth")} (pretrain has no valid checkpoint; using its weights file)`,
      ),
      run.stdout,
    );
  });
});

function bytesOf(view: ArrayBufferView): Buffer {
  return Buffer.from(view.buffer, view.byteOffset, view.byteLength);
}

function checkpointTensors(stepDir: string): Map<string, SafeTensor> {
  const file = join(stepDir, "model.safetensors");
  return decodeSafetensors(readFileSync(file), file).tensors;
}

/**
 * The checkpoint's weights are the .pth's values, bit for bit (a learning rate of 0 keeps them), as
 * PyTorch widens them to float32 (`<pth>.f32.safetensors`, written by baton_torch.py minimind-save).
 */
function assertSameWeights(stepDir: string, pth: string): void {
  const saved = checkpointTensors(stepDir);
  const expected = decodeSafetensors(readFileSync(`${pth}.f32.safetensors`), pth).tensors;
  assert.deepEqual([...saved.keys()].sort(), [...expected.keys()].sort());
  for (const [name, want] of expected) {
    const tensor = saved.get(name) as SafeTensor;
    assert.deepEqual([tensor.dtype, want.dtype], ["F32", "F32"], name);
    assert.ok(bytesOf(tensor.data).equals(bytesOf(want.data)), `${name} differs from ${pth}`);
  }
}

describe("starting from a torch.save'd MiniMind .pth", { skip: TORCH_MISSING, concurrency: true }, () => {
  const shape = { hidden_size: 32, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1 };
  const files = { F16: join(root, "minimind-F16.pth"), BF16: join(root, "minimind-BF16.pth") };
  before(() => {
    for (const [dtype, path] of Object.entries(files)) {
      const spec = { ...shape, vocab_size: 263, max_position_embeddings: 64, dtype };
      torchTool("minimind-save", JSON.stringify(spec), "minimind2", path);
    }
  });
  // A learning rate of 0 (and so no decay) makes the first checkpoint hold the initial weights.
  const frozen = ["--learning_rate", "0", "--max_steps", "1", "--backend", "cpu", "--eval", "false"];

  for (const dtype of ["F16", "BF16"] as const) {
    test(`--init_from a ${dtype} file: the trainer starts from exactly its values`, async () => {
      const pth = files[dtype];
      const stage = join(root, `init-${dtype}`, "sft");
      const run = await runTrainerToEnd("train_full_sft.ts", [
        ...runDirs(join(root, `init-${dtype}`), "sft"),
        ...TINY_MODEL,
        ...frozen,
        ...["--init_from", pth],
      ]);
      assert.equal(run.code, 0, run.stderr);
      assert.ok(run.stdout.includes(`initialising from ${pth} (--init_from)`), run.stdout);
      assertSameWeights(step(stage, 1), pth);
      const state = JSON.parse(readFileSync(join(step(stage, 1), "state.json"), "utf8"));
      assert.deepEqual(state.started_from, { kind: "weights", path: pth });
    });
  }

  test("the pipeline's INIT_FROM=<file>.pth starts the run's first stage from it", async () => {
    const out = join(root, "pipeline", "out");
    const run = await runPipeline(
      ["--stages", "sft", "--skip-infer", "--", ...TINY_TRAINER_FLAGS, ...frozen],
      {
        env: { OUT_DIR: out, MODEL_HIDDEN_SIZE: "32", MODEL_NUM_LAYERS: "1", INIT_FROM: files.F16 },
      },
    );
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /\[sft\] initialising from .*minimind-F16\.pth \(--init_from\)/);
    assert.equal(readRecord(out).stages.find((s) => s.stage === "sft")?.state, "finished");
    assertSameWeights(step(join(out, "sft"), 1), files.F16);
  });
});

const CKPT = join(REPO, "pipelines", "ckpt.ts");
const NO_TENSORFLOW = join(REPO, "test", "fixtures", "no-tensorflow.mjs");

/** `npm run ckpt -- …`, with TensorFlow.js made unloadable: the export must never need it. */
async function ckpt(...args: string[]) {
  const result = await execa(
    process.execPath,
    ["--import", NO_TENSORFLOW, "--import", "tsx", CKPT, ...args],
    {
      reject: false,
      stripFinalNewline: { stderr: false },
    },
  );
  return { code: result.exitCode, stdout: result.stdout, stderr: result.stderr };
}

describe("npm run ckpt -- export", { concurrency: true }, () => {
  test("a stage folder to MiniMind's name beside it, float16: torch.load gives the latest checkpoint's tensors", {
    skip: TORCH_MISSING,
  }, async () => {
    const stage = await runs.half;
    const run = await ckpt("export", stage, "--format", "pth");
    assert.equal(run.code, 0, run.stderr);
    const file = join(root, "half", "pretrain_32.pth");
    assert.equal(run.stdout, `wrote ${file} (float16, 52 kB) from ${step(stage, 2)} (pretrain step 2)`);
    assert.deepEqual(checkPth(join(step(stage, 2), "model.safetensors"), file), [ok("float16")]);
    // The trainer's own legacy .pth of that save holds the same bytes.
    assert.equal(sha256(file), sha256(join(stage, "pretrain_32.pth")));
  });

  test("a step dir, --dtype and --out: .pth in bfloat16 and float32, safetensors in float32 and float16", {
    skip: TORCH_MISSING,
  }, async () => {
    const stage = await runs.safetensors;
    const older = step(stage, 1);
    const out = (name: string) => join(root, "exports", name);
    for (const [format, dtype, name] of [
      ["pth", "bfloat16", "bf16.pth"],
      ["pth", "float32", "fp32.pth"],
      ["safetensors", undefined, "fp32.safetensors"],
      ["safetensors", "float16", "fp16.safetensors"],
    ] as const) {
      const run = await ckpt(
        "export",
        older,
        "--format",
        format,
        ...(dtype ? ["--dtype", dtype] : []),
        "--out",
        out(name),
      );
      assert.equal(run.code, 0, run.stderr);
      assert.match(
        run.stdout,
        new RegExp(`^wrote ${out(name)} \\(${dtype ?? "float32"}, .*\\(pretrain step 1\\)$`),
      );
    }
    const model = join(older, "model.safetensors");
    assert.deepEqual(checkPth(model, out("bf16.pth"), out("fp32.pth")), [ok("bfloat16"), ok("float32")]);
    assert.equal(
      sha256(out("fp32.safetensors")),
      sha256(model),
      "a float32 export is the checkpoint's own file",
    );
    const half = decodeSafetensors(readFileSync(out("fp16.safetensors")), "fp16").tensors;
    for (const [name, tensor] of checkpointTensors(older)) {
      const got = half.get(name) as SafeTensor;
      assert.equal(got.dtype, "F16", name);
      assert.deepEqual(got.data, float32ToFloat16(tensor.data as Float32Array), name);
    }
  });

  test("bad input: one line, exit 2; an existing file is replaced only with --force", async () => {
    const stage = await runs.safetensors;
    const target = join(root, "exports-bad", "x.pth");
    const first = await ckpt("export", stage, "--format", "pth", "--out", target);
    assert.equal(first.code, 0, first.stderr);
    const before = sha256(target);
    assertOneLineError(
      await ckpt("export", step(stage, 1), "--format", "pth", "--out", target),
      `ckpt: error: ${target} already exists (the trainer's legacy weights or an earlier export); pass --force to replace it, or --out FILE`,
    );
    assert.equal(sha256(target), before, "left as it was");
    const forced = await ckpt("export", step(stage, 1), "--format", "pth", "--out", target, "--force");
    assert.equal(forced.code, 0, forced.stderr);
    assert.notEqual(sha256(target), before, "step 1's weights replaced step 2's");
    assertOneLineError(
      await ckpt("export", stage),
      "ckpt: error: export: say --format pth or --format safetensors",
    );
    assertOneLineError(
      await ckpt("export", stage, "--format", "pth", "--dtype", "half"),
      /^ckpt: error: Invalid values: Argument: dtype, Given: "half", Choices: "float16", "bfloat16", "float32" \(see --help\)$/,
    );
    assertOneLineError(
      await ckpt("export", root, "--format", "pth"),
      /^ckpt: error: export .*: not a stage folder/,
    );
    assertOneLineError(
      await ckpt("export", stage, "--format", "pth", "--out", root),
      `ckpt: error: --out ${root}: is a directory, expected a file name`,
    );
    assert.deepEqual(readdirSync(join(root, "exports-bad")), ["x.pth"], "no temporary file left behind");
  });

  test("a damaged checkpoint is never exported: a step dir exits 2 naming the file; a stage folder falls back", async () => {
    const copy = join(root, "damaged", "pretrain");
    cpSync(await runs.safetensors, copy, { recursive: true });
    const model = join(step(copy, 2), "model.safetensors");
    const bytes = readFileSync(model);
    bytes[bytes.length - 1] ^= 0xff;
    writeFileSync(model, bytes);
    assertOneLineError(
      await ckpt("export", step(copy, 2), "--format", "pth", "--out", join(root, "damaged", "a.pth")),
      /^ckpt: error: export .*step_00000002: not a valid checkpoint \(model\.safetensors: SHA-256 mismatch/,
    );
    const run = await ckpt("export", copy, "--format", "pth", "--out", join(root, "damaged", "b.pth"));
    assert.equal(run.code, 0, run.stderr);
    assert.match(
      run.stderr,
      /^warning: checkpoint .*step_00000002 failed verification: model\.safetensors: SHA-256 mismatch/,
    );
    assert.match(run.stdout, /from .*step_00000001 \(pretrain step 1\)$/);
    assert.equal(existsSync(join(root, "damaged", "a.pth")), false);
  });
});
