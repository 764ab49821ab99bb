/**
 * PyTorch .pth files without PyTorch: Baton's writer and reader agree, records sit where torch's
 * writer puts them, the unpickler refuses whatever a state dict does not need, and bad files and
 * mismatched tensors fail in one line naming the file. (tests through real PyTorch: torch-interop)
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { UserError } from "../lib/cli/errors.ts";
import { Rng } from "../lib/rng/index.ts";
import {
  bfloat16ToFloat32,
  float16ToFloat32,
  float32ToBfloat16,
  float32ToFloat16,
} from "../lib/safetensors/index.ts";
import {
  decodePth,
  encodePth,
  encodeTorchArchive,
  RECORD_ALIGNMENT,
  requireTensorShapes,
} from "../lib/torch/index.ts";
import { PickleWriter } from "../lib/torch/pickle-writer.ts";
import { resolveModelConfig } from "../trainer/model/config.ts";
import { encodeWeightsPth, requireMiniMindTensors } from "../trainer/model/pth.ts";
import { initialWeights } from "../trainer/model/state-dict.ts";

function oneLineError(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof UserError, `expected a UserError, got ${String(error)}`);
    assert.ok(!error.message.includes("\n"), `not one line: ${error.message}`);
    assert.match(error.message, pattern);
    return true;
  });
}

/** Offsets of each record's data, read from the local file headers as torch's reader does. */
function recordDataOffsets(zip: Uint8Array): Map<string, number> {
  const view = new DataView(zip.buffer, zip.byteOffset, zip.byteLength);
  const offsets = new Map<string, number>();
  let at = 0;
  while (view.getUint32(at, true) === 0x04034b50) {
    const size = view.getUint32(at + 18, true);
    const nameLength = view.getUint16(at + 26, true);
    const extraLength = view.getUint16(at + 28, true);
    const name = new TextDecoder().decode(zip.subarray(at + 30, at + 30 + nameLength));
    offsets.set(name, at + 30 + nameLength + extraLength);
    at += 30 + nameLength + extraLength + size;
  }
  return offsets;
}

describe("writer and reader", () => {
  const matrix = new Float32Array([1, -2, 3.5, 0, 1e-3, 65504]);
  const bytes = encodePth([
    ["a.weight", { dtype: "F32", shape: [2, 3], data: matrix }],
    ["tied", { dtype: "F32", shape: [2, 3], data: matrix }],
    ["half", { dtype: "F16", shape: [3, 2], data: float32ToFloat16(matrix) }],
    ["brain", { dtype: "BF16", shape: [6], data: float32ToBfloat16(matrix) }],
    ["scalar", { dtype: "F32", shape: [], data: new Float32Array([0.25]) }],
    ["empty", { dtype: "F32", shape: [0, 4], data: new Float32Array(0) }],
  ]);

  test("what Baton writes, Baton reads back: names in order, dtypes, shapes, bits", () => {
    const { tensors } = decodePth(bytes, "round.pth");
    assert.deepEqual([...tensors.keys()], ["a.weight", "tied", "half", "brain", "scalar", "empty"]);
    assert.deepEqual(tensors.get("a.weight"), { dtype: "F32", shape: [2, 3], data: matrix });
    assert.deepEqual(tensors.get("tied")?.data, matrix);
    assert.deepEqual(tensors.get("half"), { dtype: "F16", shape: [3, 2], data: float32ToFloat16(matrix) });
    assert.deepEqual(tensors.get("brain"), { dtype: "BF16", shape: [6], data: float32ToBfloat16(matrix) });
    assert.deepEqual(tensors.get("scalar"), { dtype: "F32", shape: [], data: new Float32Array([0.25]) });
    assert.equal(tensors.get("empty")?.data.length, 0);
  });

  test("tensors given the same data share one storage record; records are 64-byte aligned", () => {
    const offsets = recordDataOffsets(bytes);
    assert.deepEqual(
      [...offsets.keys()],
      [
        "archive/data.pkl",
        "archive/byteorder",
        "archive/data/0",
        "archive/data/1",
        "archive/data/2",
        "archive/data/3",
        "archive/data/4",
        "archive/version",
      ],
    );
    for (const [name, offset] of offsets) assert.equal(offset % RECORD_ALIGNMENT, 0, `${name} at ${offset}`);
  });

  test("the same weights give the same bytes (no timestamps)", () => {
    const config = resolveModelConfig({
      vocab_size: 20,
      hidden_size: 8,
      num_hidden_layers: 1,
      num_attention_heads: 2,
      num_key_value_heads: 1,
      max_seq_len: 8,
    });
    const weights = initialWeights(config, Rng.fromSeed(3, "init"));
    assert.deepEqual(encodeWeightsPth(config, weights, "F16"), encodeWeightsPth(config, weights, "F16"));
  });
});

describe("half precision conversion", () => {
  const f32 = (bits: number) => new Float32Array(new Uint32Array([bits]).buffer)[0];
  test("float32 → float16 rounds to nearest even, overflows to infinity, keeps subnormals", () => {
    const cases: Array<[number, number]> = [
      [1, 0x3c00],
      [-2, 0xc000],
      [65504, 0x7bff],
      [65519, 0x7bff], // below the midpoint to 65536
      [65520, 0x7c00], // the midpoint rounds to even: infinity
      [2 ** -24, 0x0001],
      [2 ** -25, 0x0000], // tie between 0 and the smallest subnormal → 0 (even)
      [3 * 2 ** -26, 0x0001],
      [1 + 2 ** -11, 0x3c00], // tie → even (down)
      [1 + 3 * 2 ** -11, 0x3c02], // tie → even (up)
      [Number.POSITIVE_INFINITY, 0x7c00],
      [-0, 0x8000],
    ];
    for (const [value, bits] of cases) {
      assert.equal(float32ToFloat16(new Float32Array([value]))[0], bits, `${value}`);
    }
    assert.equal(float32ToFloat16(new Float32Array([f32(0xffc00001)]))[0], 0xfe00);
  });

  test("float32 → bfloat16 rounds to nearest even; NaN becomes 0x7fc0", () => {
    assert.equal(float32ToBfloat16(new Float32Array([f32(0x3f808000)]))[0], 0x3f80); // tie → even
    assert.equal(float32ToBfloat16(new Float32Array([f32(0x3f818000)]))[0], 0x3f82); // tie → even
    assert.equal(float32ToBfloat16(new Float32Array([f32(0x3f808001)]))[0], 0x3f81);
    assert.equal(float32ToBfloat16(new Float32Array([f32(0xffc00001)]))[0], 0x7fc0);
  });

  test("every float16 and bfloat16 value widens exactly and narrows back to itself", () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const isNaN16 = (b: number) => (b & 0x7c00) === 0x7c00 && (b & 0x3ff) !== 0;
    const back16 = float32ToFloat16(float16ToFloat32(all));
    const backBf = float32ToBfloat16(bfloat16ToFloat32(all));
    for (let i = 0; i < 65536; i++) {
      if (!isNaN16(i)) assert.equal(back16[i], i, `half ${i}`);
      if ((i & 0x7f80) !== 0x7f80 || (i & 0x7f) === 0) assert.equal(backBf[i], i, `bfloat16 ${i}`);
    }
    assert.equal(float16ToFloat32(new Uint16Array([0x3555]))[0], Math.fround(0.333251953125));
  });
});

/** A data.pkl asking for `module.name(arg)` — what a malicious .pth would hold. */
function callingPickle(module: string, name: string, arg: string): Uint8Array {
  return new PickleWriter().proto().global(module, name).str(arg).op(0x85).op(0x52).op(0x2e).finish();
}

function archiveWith(pickle: Uint8Array): Uint8Array {
  return encodeTorchArchive([
    ["data.pkl", pickle],
    ["version", new TextEncoder().encode("3\n")],
  ]);
}

describe("the unpickler refuses what a state dict does not need", () => {
  for (const [module, name] of [
    ["posix", "system"],
    ["os", "system"],
    ["builtins", "eval"],
    ["torch", "load"],
  ] as const) {
    test(`a pickle naming ${module}.${name}`, () => {
      oneLineError(
        () => decodePth(archiveWith(callingPickle(module, name, "true")), "evil.pth"),
        new RegExp(
          `^evil\\.pth: refused to load: its pickle names the global ${module}\\.${name};.*nothing in the file was run`,
        ),
      );
    });
  }

  test("calling an allowed global that is not a function (a storage type)", () => {
    const pickle = callingPickle("torch", "FloatStorage", "x");
    oneLineError(
      () => decodePth(archiveWith(pickle), "evil.pth"),
      /refused to load: its pickle calls torch\.FloatStorage/,
    );
  });

  test("object-building instructions (INST, NEWOBJ)", () => {
    const inst = new Uint8Array([0x80, 0x02, 0x28, ...new TextEncoder().encode("ios\nsystem\n"), 0x2e]);
    oneLineError(() => decodePth(archiveWith(inst), "evil.pth"), /its pickle uses the INST instruction/);
    const newobj = new PickleWriter()
      .proto()
      .global("collections", "OrderedDict")
      .op(0x29)
      .op(0x81)
      .op(0x2e)
      .finish();
    oneLineError(() => decodePth(archiveWith(newobj), "evil.pth"), /its pickle uses the NEWOBJ instruction/);
  });

  test("a persistent id that is not a storage, and a truncated pickle", () => {
    const pid = new PickleWriter().proto().str("module").op(0x85).op(0x51).op(0x2e).finish();
    oneLineError(
      () => decodePth(archiveWith(pid), "evil.pth"),
      /persistent id a tuple is not a tensor storage/,
    );
    const cut = callingPickle("collections", "OrderedDict", "").subarray(0, 20);
    oneLineError(
      () => decodePth(archiveWith(cut), "cut.pth"),
      /^cut\.pth: damaged archive\/data\.pkl: pickle ends/,
    );
  });
});

describe("bad files, one line each", () => {
  const good = encodePth([["w", { dtype: "F32", shape: [64, 64], data: new Float32Array(4096) }]]);

  test("truncated zip", () => {
    for (const keep of [good.length - 10, Math.floor(good.length / 2), 40]) {
      oneLineError(() => decodePth(good.subarray(0, keep), "cut.pth"), /^cut\.pth: truncated or damaged zip/);
    }
  });

  test("not a zip, empty file", () => {
    const text = new TextEncoder().encode('{"not": "a pth"}');
    oneLineError(
      () => decodePth(text, "x.pth"),
      /^x\.pth: not a PyTorch \.pth: it does not start with a zip header/,
    );
    oneLineError(() => decodePth(new Uint8Array(0), "x.pth"), /^x\.pth: empty file/);
  });

  test("a zip torch.save did not write, a state dict that is not name → tensor", () => {
    const other = encodeTorchArchive([["notes.txt", new Uint8Array(3)]]);
    oneLineError(() => decodePth(other, "o.pth"), /^o\.pth: a zip without archive\/data\.pkl/);
    const nested = new PickleWriter().proto().global("collections", "OrderedDict").op(0x29).op(0x52);
    nested.op(0x28).str("model").op(0x7d).op(0x75).op(0x2e);
    oneLineError(
      () => decodePth(archiveWith(nested.finish()), "r.pth"),
      /"model" holds a dict, expected a tensor/,
    );
  });

  test("wrong tensor names and shapes against an expected name → shape map", () => {
    const { tensors } = decodePth(good, "g.pth");
    assert.doesNotThrow(() => requireTensorShapes(tensors, [["w", [64, 64]]], "g.pth"));
    oneLineError(
      () => requireTensorShapes(tensors, [["v", [64, 64]]], "g.pth"),
      /^g\.pth: .*missing v; unexpected w$/,
    );
    oneLineError(
      () => requireTensorShapes(tensors, [["w", [64, 32]]], "g.pth", "check --hidden_size"),
      /^g\.pth: .*w is \[64, 64\], expected \[64, 32\] — check --hidden_size$/,
    );
  });
});

describe("MiniMind tensors", () => {
  const shape = { vocab_size: 30, hidden_size: 16, num_hidden_layers: 2, num_attention_heads: 2 };
  const config2 = resolveModelConfig({ ...shape, num_key_value_heads: 1, max_seq_len: 8 });
  const config3 = resolveModelConfig({
    ...shape,
    num_key_value_heads: 1,
    max_seq_len: 8,
    model_revision: "minimind3",
  });
  const tensorsOf = (config: typeof config2) =>
    decodePth(encodeWeightsPth(config, initialWeights(config, Rng.fromSeed(1, "init")), "F32"), "w.pth")
      .tensors;

  test("a file of the other revision is refused, saying which revision it holds", () => {
    assert.doesNotThrow(() => requireMiniMindTensors(config3, tensorsOf(config3), "w.pth"));
    oneLineError(
      () => requireMiniMindTensors(config2, tensorsOf(config3), "w.pth"),
      /^w\.pth: tensors do not fit the model: unexpected model\.layers\.0\.self_attn\.q_norm\.weight, .* and 1 more — the file holds minimind3 weights \(with q\/k norms\), the model is minimind2$/,
    );
    oneLineError(
      () => requireMiniMindTensors(config3, tensorsOf(config2), "w.pth"),
      /missing model\.layers\.0\.self_attn\.q_norm\.weight.* — the file holds minimind2 weights/,
    );
  });

  test("a different width is a shape error; an untied head is refused", () => {
    const wide = resolveModelConfig({ ...shape, hidden_size: 32, num_key_value_heads: 1, max_seq_len: 8 });
    oneLineError(
      () => requireMiniMindTensors(config2, tensorsOf(wide), "w.pth"),
      /model\.embed_tokens\.weight is \[30, 32\], expected \[30, 16\].* — the weights were trained with a different hidden size/,
    );
    const tensors = tensorsOf(config2);
    const head = tensors.get("lm_head.weight");
    assert.ok(head);
    tensors.set("lm_head.weight", {
      ...head,
      data: (head.data as Float32Array).map((v) => v + 1),
    } as typeof head);
    oneLineError(
      () => requireMiniMindTensors(config2, tensors, "w.pth"),
      /lm_head\.weight differs from model\.embed_tokens\.weight/,
    );
  });
});
