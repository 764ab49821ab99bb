/**
 * .pth files through real PyTorch (test/python/baton_torch.py): what Baton writes loads with
 * `torch.load(weights_only=True)` as exactly the safetensors' tensors in the saved dtype; what
 * torch.save writes, Baton reads to the same bits; float16/bfloat16 rounding is PyTorch's to
 * the bit; a pickle that would run code is refused without running it; bad files exit 2 in one line.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { UserError } from "../lib/cli/errors.ts";
import { Rng } from "../lib/rng/index.ts";
import {
  bfloat16ToFloat32,
  decodeSafetensors,
  FLOAT_DTYPES,
  float16ToFloat32,
  float32ToBfloat16,
  float32ToFloat16,
} from "../lib/safetensors/index.ts";
import { decodePth, encodePth, encodeTorchArchive, readPth } from "../lib/torch/index.ts";
import { PickleWriter } from "../lib/torch/pickle-writer.ts";
import { resolveModelConfig } from "../trainer/model/config.ts";
import { encodeWeightsPth, pthStateDict } from "../trainer/model/pth.ts";
import { encodeWeights, initialWeights } from "../trainer/model/state-dict.ts";
import { TORCH_MISSING, torchJson, torchTool } from "./support/python-torch.ts";
import { runDirs, runTrainerToEnd } from "./support/trainer-process.ts";

const root = mkdtempSync(join(tmpdir(), "baton-torch-"));
after(() => rmSync(root, { recursive: true, force: true }));

const config = resolveModelConfig({
  model_revision: "minimind3",
  vocab_size: 40,
  hidden_size: 16,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  num_key_value_heads: 1,
  max_seq_len: 16,
});

/** Random weights with values where rounding to half precision matters. */
function testWeights(): Map<string, Float32Array> {
  const weights = initialWeights(config, Rng.fromSeed(11, "init"));
  const embedding = weights.get("model.embed_tokens.weight") as Float32Array;
  const awkward = [65519, 65520, 1e5, 2 ** -25, 3 * 2 ** -26, 1 + 2 ** -11, 1 + 2 ** -8, -0, 1e-40, 3e38];
  embedding.set(awkward.map(Math.fround));
  for (const [name, values] of weights) {
    if (name.includes("q_norm")) for (let i = 0; i < values.length; i++) values[i] = 1 + i / 7;
  }
  return weights;
}

function bytesOf(view: ArrayBufferView): Buffer {
  return Buffer.from(view.buffer, view.byteOffset, view.byteLength);
}

/** Baton's reading of `pth` equals its reading of the safetensors PyTorch wrote beside it, bit for bit. */
function assertSameTensors(pth: string, safetensors: string): void {
  const ours = decodePth(readFileSync(pth), pth).tensors;
  const theirs = decodeSafetensors(readFileSync(safetensors), safetensors).tensors;
  assert.deepEqual([...ours.keys()], [...theirs.keys()], pth);
  for (const [name, tensor] of ours) {
    const want = theirs.get(name);
    assert.ok(want);
    assert.equal(tensor.dtype, want.dtype, `${pth} ${name}`);
    assert.deepEqual(tensor.shape, want.shape, `${pth} ${name}`);
    assert.ok(bytesOf(tensor.data).equals(bytesOf(want.data)), `${pth} ${name}: values differ`);
  }
}

describe("through real PyTorch", { skip: TORCH_MISSING }, () => {
  before(() => torchTool("legacy", join(root, "legacy.pth")));

  test("Baton's .pth loads with torch.load(weights_only=True) as the safetensors' tensors in its dtype", () => {
    const weights = testWeights();
    const safetensors = join(root, "model.safetensors");
    writeFileSync(safetensors, Buffer.concat(encodeWeights(config, weights)));
    const files = FLOAT_DTYPES.map((dtype) => {
      const path = join(root, `model-${dtype}.pth`);
      writeFileSync(path, encodeWeightsPth(config, weights, dtype));
      return path;
    });
    const report = torchJson<Array<{ path: string; type: string; dtypes: string[]; problems: string[] }>>(
      "check-pth",
      safetensors,
      ...files,
    );
    assert.deepEqual(
      report.map((r) => [r.type, r.dtypes, r.problems]),
      [
        ["OrderedDict", ["torch.float32"], []],
        ["OrderedDict", ["torch.float16"], []],
        ["OrderedDict", ["torch.bfloat16"], []],
      ],
    );
  });

  describe("what torch.save writes, Baton reads", () => {
    before(() => torchTool("save", root));
    for (const label of ["F32", "F16", "BF16"]) {
      test(`a ${label} state dict`, () =>
        assertSameTensors(join(root, `${label}.pth`), join(root, `${label}.safetensors`)));
    }
    test("a module's state_dict() (OrderedDict with _metadata, tied weights in one storage)", () =>
      assertSameTensors(join(root, "module.pth"), join(root, "module.safetensors")));
    test("MiniMind's own checkpoint form: {name: tensor.half()}", () =>
      assertSameTensors(join(root, "minimind-half.pth"), join(root, "minimind-half.safetensors")));
    test("views into one storage: at an offset, transposed, strided", () =>
      assertSameTensors(join(root, "views.pth"), join(root, "views.safetensors")));
  });

  test("float16/bfloat16 rounding and widening match PyTorch's bit for bit", () => {
    const bits: number[] = [];
    for (let p = 0; p < 65536; p++)
      bits.push(((p << 16) | 0x8000) >>> 0, ((p << 16) | 0x7fff) >>> 0, ((p << 16) | 0x8001) >>> 0);
    const halves = float16ToFloat32(new Uint16Array(65536).map((_, i) => i));
    for (let i = 0; i + 1 < 65536; i++) {
      // Midpoints between neighbouring halves: every tie float16 rounding can meet.
      if (Number.isFinite(halves[i]) && Number.isFinite(halves[i + 1]))
        bits.push(new Uint32Array(new Float32Array([(halves[i] + halves[i + 1]) / 2]).buffer)[0]);
    }
    const rng = Rng.fromSeed(5, "bits");
    for (let i = 0; i < 100_000; i++) bits.push(Math.floor(rng.nextFloat() * 2 ** 32) >>> 0);
    const input = new Float32Array(new Uint32Array(bits).buffer);
    const source = join(root, "values.f32");
    writeFileSync(source, bytesOf(input));
    torchTool("round", source, join(root, "torch"));
    const torchHalf = new Uint16Array(new Uint8Array(readFileSync(join(root, "torch.F16"))).buffer);
    const torchBf = new Uint16Array(new Uint8Array(readFileSync(join(root, "torch.BF16"))).buffer);
    assert.ok(bytesOf(float32ToFloat16(input)).equals(bytesOf(torchHalf)), "float32 → float16 differs");
    // A NaN's bfloat16 bits differ between PyTorch's own code paths (0x7fc0 scalar, 0xffff vectorised):
    // there both must be a NaN; everywhere else the same bits.
    const ours = float32ToBfloat16(input);
    const isNaN16 = (b: number) => (b & 0x7f80) === 0x7f80 && (b & 0x7f) !== 0;
    for (let i = 0; i < input.length; i++) {
      if (Number.isNaN(input[i]))
        assert.ok(isNaN16(ours[i]) && isNaN16(torchBf[i]), `NaN ${bits[i].toString(16)}`);
      else if (ours[i] !== torchBf[i])
        assert.fail(
          `float32 ${bits[i].toString(16)} → bfloat16 ${ours[i].toString(16)}, PyTorch ${torchBf[i].toString(16)}`,
        );
    }
    assert.ok(
      bytesOf(float16ToFloat32(torchHalf)).equals(readFileSync(join(root, "torch.F16.F32"))),
      "float16 → float32",
    );
    assert.ok(
      bytesOf(bfloat16ToFloat32(torchBf)).equals(readFileSync(join(root, "torch.BF16.F32"))),
      "bfloat16 → float32",
    );
  });

  test("the legacy non-zip format is named, and the conversion the error gives works", () => {
    const legacy = join(root, "legacy.pth");
    assert.throws(
      () => decodePth(readFileSync(legacy), legacy),
      (e: unknown) =>
        e instanceof UserError &&
        !e.message.includes("\n") &&
        /legacy non-zip torch\.save format .* torch\.save\(torch\.load\('old\.pth'\), 'new\.pth'\)/.test(
          e.message,
        ),
    );
    const converted = join(root, "converted.pth");
    torchTool("convert", legacy, converted);
    const weight = decodePth(readFileSync(converted), converted).tensors.get("weight");
    assert.deepEqual(weight, { dtype: "F32", shape: [2, 2], data: new Float32Array([1, 1, 1, 1]) });
  });

  test("a pickle that would run code is refused without running it, though it is live", async () => {
    const payloads: Array<[string, (marker: string) => Uint8Array]> = [
      ["os.system via GLOBAL", (m) => calling("posix", "system", `touch ${m}`)],
      ["builtins.eval", (m) => calling("builtins", "eval", `open(${JSON.stringify(m)}, 'w').close()`)],
      [
        "os.system via INST",
        (m) =>
          new Uint8Array([
            ...new PickleWriter().proto().op(0x28).str(`touch ${m}`).finish(),
            ...ascii("ios\nsystem\n"),
            0x2e,
          ]),
      ],
      ["os.system inside a state dict", (m) => insideStateDict(calling("posix", "system", `touch ${m}`))],
    ];
    const cases = payloads.map(([label, payload]) => {
      const slug = label.replace(/\W+/g, "-");
      const marker = join(root, `ran-${slug}`);
      const path = join(root, `evil-${slug}.pth`);
      writeFileSync(
        path,
        encodeTorchArchive([
          ["data.pkl", payload(marker)],
          ["version", ascii("3\n")],
        ]),
      );
      return { label, marker, path };
    });
    for (const { label, marker, path } of cases) {
      await assert.rejects(readPth(path), (e: unknown) => {
        assert.ok(e instanceof UserError, label);
        assert.match(
          e.message,
          /refused to load: its pickle (names the global (posix\.system|builtins\.eval)|uses the INST)/,
        );
        assert.match(e.message, /nothing in the file was run\)$/);
        return true;
      });
      assert.equal(existsSync(marker), false, `Baton ran the payload (${label})`);
    }
    // Each payload is live: PyTorch without weights_only runs it.
    torchTool("unsafe-load", ...cases.map((c) => c.path));
    for (const { label, marker } of cases)
      assert.equal(existsSync(marker), true, `${label} did not run under torch.load`);
  });

  describe("a trainer starts from MiniMind's own checkpoint (--init_from FILE.pth)", {
    concurrency: true,
  }, () => {
    const shape = { hidden_size: 32, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1 };
    const flags = Object.entries(shape).flatMap(([k, v]) => [`--${k}`, String(v)]);
    const pth = {
      minimind2: join(root, "minimind-minimind2.pth"),
      minimind3: join(root, "minimind-minimind3.pth"),
    };
    before(() =>
      torchTool(
        "minimind-save",
        JSON.stringify({ ...shape, vocab_size: 263, max_position_embeddings: 64 }),
        ...Object.entries(pth).flat(),
      ),
    );
    const sft = (init: string) =>
      runTrainerToEnd("train_full_sft.ts", [
        ...runDirs(root, `sft-${basename(init, ".pth")}`),
        ...flags,
        ...[
          "--max_seq_len",
          "64",
          "--batch_size",
          "2",
          "--max_steps",
          "1",
          "--backend",
          "cpu",
          "--eval",
          "false",
        ],
        ...["--init_from", init],
      ]);

    test("MiniMind2 weights (float16, as its trainer saves them) train on", async () => {
      const path = pth.minimind2;
      const run = await sft(path);
      assert.equal(run.code, 0, run.stderr);
      assert.ok(`${run.stdout}${run.stderr}`.includes(`initialising from ${path}`), run.stdout);
    });

    test("MiniMind-3 weights into the default (MiniMind2) model: exit 2, naming the revision", async () => {
      const run = await sft(pth.minimind3);
      assert.equal(run.code, 2, run.stderr);
      assert.match(
        run.stderr,
        /unexpected model\.layers\.0\.self_attn\.q_norm\.weight.* the file holds minimind3 weights/,
      );
    });
  });

  describe("bad files exit 2 with one line naming the file (npm run infer -- --checkpoint FILE)", {
    concurrency: true,
  }, () => {
    const good = pthStateDict(config, testWeights(), "F16");
    const cases: Array<[string, () => Uint8Array, RegExp]> = [
      ["truncated zip", () => encodePth(good).subarray(0, 3000), /truncated or damaged zip/],
      [
        "not a zip",
        () => ascii("#!/bin/sh\necho not weights\n"),
        /not a PyTorch \.pth: it does not start with a zip header/,
      ],
      [
        "legacy non-zip format",
        () => readFileSync(join(root, "legacy.pth")),
        /legacy non-zip torch\.save format/,
      ],
      [
        "wrong tensor names",
        () => encodePth(good.map(([n, t]) => [n.replace("mlp.up_proj", "mlp.up"), t] as const)),
        /missing model\.layers\.0\.mlp\.up_proj\.weight, model\.layers\.1\.mlp\.up_proj\.weight; unexpected model\.layers\.0\.mlp\.up\.weight/,
      ],
      [
        "wrong shapes",
        () =>
          encodePth(
            good.map(([n, t]) => (n === "model.norm.weight" ? [n, { ...t, shape: [4, 4] }] : [n, t])),
          ),
        /model\.norm\.weight is \[4, 4\], expected \[16\]/,
      ],
    ];
    for (const [label, bytes, pattern] of cases) {
      test(label, async () => {
        const path = join(root, `bad-${label.replace(/\W+/g, "-")}.pth`);
        writeFileSync(path, bytes());
        const args = [
          "--checkpoint",
          path,
          "--prompt",
          "hi",
          "--backend",
          "cpu",
          "--num_attention_heads",
          "2",
        ];
        const run = await runTrainerToEnd("infer.ts", args);
        assert.equal(run.code, 2, run.stderr);
        const lines = run.stderr.trim().split("\n");
        assert.equal(lines.length, 1, run.stderr);
        assert.ok(lines[0].includes(path), lines[0]);
        assert.match(lines[0], pattern);
      });
    }
  });
});

function ascii(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

/** data.pkl for `module.name(arg)`. */
function calling(module: string, name: string, arg: string): Uint8Array {
  return new PickleWriter().proto().global(module, name).str(arg).op(0x85).op(0x52).op(0x2e).finish();
}

/** A state dict whose one value is the call in `payload` (a pickle without its STOP and PROTO). */
function insideStateDict(payload: Uint8Array): Uint8Array {
  const head = new PickleWriter()
    .proto()
    .global("collections", "OrderedDict")
    .op(0x29)
    .op(0x52)
    .op(0x28)
    .str("w")
    .finish();
  const tail = new Uint8Array([0x75, 0x2e]);
  return new Uint8Array([...head, ...payload.subarray(2, payload.length - 1), ...tail]);
}
