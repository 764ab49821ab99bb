import assert from "node:assert/strict";
import { readdir, readFile, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { UserError } from "../lib/cli/errors.ts";
import {
  decodeSafetensors,
  encodeSafetensors,
  readSafetensors,
  readSafetensorsHeader,
  requireTensor,
  type TensorInput,
  writeSafetensors,
} from "../lib/safetensors/index.ts";
import { tempDir } from "./fixtures/checkpoint-helpers.ts";

const PYTHON_FILE = fileURLToPath(
  new URL("./fixtures/checkpoint-python-written.safetensors", import.meta.url),
);

let dir: string;
let cleanup: () => Promise<void>;
before(async () => {
  ({ path: dir, cleanup } = await tempDir("safetensors"));
});
after(() => cleanup());

const EVERY_DTYPE: Record<string, TensorInput> = {
  f64: { dtype: "F64", shape: [2], data: new Float64Array([Math.PI, -0]) },
  f32: { dtype: "F32", shape: [2, 2], data: new Float32Array([1.5, -2, 3.25, Number.NaN]) },
  f16: { dtype: "F16", shape: [3], data: new Uint16Array([0x3c00, 0xc000, 0x7bff]) },
  bf16: { dtype: "BF16", shape: [1, 2], data: new Uint16Array([0x3f80, 0xbf80]) },
  i64: { dtype: "I64", shape: [2], data: new BigInt64Array([-(2n ** 62n), 123n]) },
  i32: { dtype: "I32", shape: [3], data: new Int32Array([-7, 0, 2 ** 31 - 1]) },
  i16: { dtype: "I16", shape: [1], data: new Int16Array([-300]) },
  i8: { dtype: "I8", shape: [2], data: new Int8Array([-128, 127]) },
  u64: { dtype: "U64", shape: [1], data: new BigUint64Array([2n ** 64n - 1n]) },
  u32: { dtype: "U32", shape: [1], data: new Uint32Array([4_000_000_000]) },
  u16: { dtype: "U16", shape: [1], data: new Uint16Array([65535]) },
  u8: { dtype: "U8", shape: [5], data: new Uint8Array([0, 1, 2, 254, 255]) },
  bool: { dtype: "BOOL", shape: [2], data: new Uint8Array([1, 0]) },
  f8: { dtype: "F8_E4M3", shape: [1], data: new Uint8Array([0x38]) },
  scalar: { dtype: "F32", shape: [], data: new Float32Array([42]) },
  empty: { dtype: "F32", shape: [0, 3], data: new Float32Array(0) },
};

function headerText(bytes: Uint8Array): string {
  const length = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return Buffer.from(bytes.subarray(8, 8 + length)).toString("utf8");
}

/** A file with a hand-made header and `data` bytes after it. */
function rawFile(header: unknown, data: Uint8Array = new Uint8Array(0), declaredLength?: bigint): Uint8Array {
  const json = Buffer.from(typeof header === "string" ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + json.byteLength + data.byteLength);
  new DataView(out.buffer).setBigUint64(0, declaredLength ?? BigInt(json.byteLength), true);
  out.set(json, 8);
  out.set(data, 8 + json.byteLength);
  return out;
}

function assertUserError(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof UserError, `expected a UserError, got ${String(error)}`);
    assert.match(error.message, pattern);
    return true;
  });
}

describe("safetensors round trip", () => {
  test("every dtype comes back with the same values, shapes, order and metadata", async () => {
    const path = join(dir, "all.safetensors");
    await writeSafetensors(path, EVERY_DTYPE, { format: "pt", note: "ünïcode" });
    const file = await readSafetensors(path);
    assert.deepEqual(file.metadata, { format: "pt", note: "ünïcode" });
    assert.deepEqual([...file.tensors.keys()], Object.keys(EVERY_DTYPE));
    for (const [name, input] of Object.entries(EVERY_DTYPE)) {
      const tensor = file.tensors.get(name);
      assert.ok(tensor, name);
      assert.equal(tensor.dtype, input.dtype, name);
      assert.deepEqual(tensor.shape, input.shape, name);
      assert.equal(tensor.data.constructor, input.data.constructor, `${name}: array type`);
      assert.deepEqual(
        Array.from(tensor.data as ArrayLike<unknown>),
        Array.from(input.data as unknown as ArrayLike<unknown>),
      );
    }
  });

  test("insertion order is kept, even for integer-like and unsorted names", () => {
    const names = ["zeta", "10", "2", "alpha", "__proto__"];
    const tensors = names.map((n, i): [string, TensorInput] => [
      n,
      { dtype: "U8", shape: [1], data: new Uint8Array([i]) },
    ]);
    const file = decodeSafetensors(Buffer.concat(encodeSafetensors(tensors)));
    assert.deepEqual([...file.tensors.keys()], names);
    assert.deepEqual(Array.from(file.tensors.get("2")?.data as Uint8Array), [2]);
  });

  test("the header is space-padded so the data starts on an 8-byte boundary", () => {
    for (let extra = 0; extra < 9; extra++) {
      const bytes = Buffer.concat(
        encodeSafetensors({
          ["x".repeat(extra + 1)]: { dtype: "U8", shape: [1], data: new Uint8Array([7]) },
        }),
      );
      const text = headerText(bytes);
      assert.equal((8 + Buffer.byteLength(text)) % 8, 0);
      assert.match(text, /^\{.*\} *$/);
      assert.equal(bytes.at(-1), 7);
    }
  });

  test("the encoder hands back views of the caller's arrays, not copies", () => {
    const data = new Float32Array(1024);
    const chunks = encodeSafetensors({ w: { dtype: "F32", shape: [1024], data } });
    assert.equal(chunks.length, 2);
    assert.equal(chunks[1]?.buffer, data.buffer);
  });

  test("a misaligned tensor (after an odd-sized one) is read correctly", () => {
    const bytes = Buffer.concat(
      encodeSafetensors({
        odd: { dtype: "U8", shape: [3], data: new Uint8Array([1, 2, 3]) },
        f: { dtype: "F32", shape: [2], data: new Float32Array([0.5, -4]) },
      }),
    );
    const f = requireTensor(decodeSafetensors(bytes), "f", "F32");
    assert.deepEqual(Array.from(f.data), [0.5, -4]);
  });

  test("aligned tensors are views into the file's buffer", async () => {
    const path = join(dir, "view.safetensors");
    await writeSafetensors(path, { a: { dtype: "F32", shape: [4], data: new Float32Array([1, 2, 3, 4]) } });
    const file = await readSafetensors(path);
    const a = requireTensor(file, "a", "F32", path);
    assert.equal(a.data.buffer.byteLength, (await readFile(path)).byteLength);
  });

  test("writeSafetensors replaces a file atomically and leaves no temp files", async () => {
    const sub = join(dir, "atomic");
    const path = join(sub, "w.safetensors");
    await writeSafetensors(path, { a: { dtype: "I32", shape: [1], data: new Int32Array([1]) } });
    await writeSafetensors(path, { b: { dtype: "I32", shape: [1], data: new Int32Array([2]) } });
    assert.deepEqual(await readdir(sub), ["w.safetensors"]);
    assert.deepEqual([...(await readSafetensors(path)).tensors.keys()], ["b"]);
  });
});

describe("compatibility with python safetensors", () => {
  test("reads a file written by python safetensors 0.8.0", async () => {
    const file = await readSafetensors(PYTHON_FILE);
    assert.equal(file.metadata.format, "pt");
    assert.deepEqual(Array.from(requireTensor(file, "lm_head.weight", "F32").data), [
      0.5,
      -1.25,
      3,
      Math.fround(1e-3),
    ]);
    assert.deepEqual(Array.from(requireTensor(file, "model.norm.weight", "F16").data), [0x3c00, 0xc000]);
    assert.deepEqual(
      Array.from(requireTensor(file, "model.embed_tokens.weight", "BF16").data),
      [0x3f80, 0x4049, 0],
    );
    assert.deepEqual(requireTensor(file, "model.embed_tokens.weight", "BF16").shape, [1, 3]);
    assert.deepEqual(Array.from(requireTensor(file, "step", "I64").data), [-123456789012n]);
    assert.deepEqual(requireTensor(file, "step", "I64").shape, []);
    assert.deepEqual(Array.from(requireTensor(file, "ids", "I32").data), [7, -8, 2147483647]);
    assert.deepEqual(Array.from(requireTensor(file, "mask", "U8").data), [0, 1, 254, 255]);
  });

  test("writing the same tensors in the same order gives python's exact bytes", async () => {
    const python = await readFile(PYTHON_FILE);
    const file = decodeSafetensors(python, PYTHON_FILE);
    const length = Number(python.readBigUInt64LE(0));
    const metadataOrder = Object.keys(JSON.parse(python.subarray(8, 8 + length).toString()).__metadata__);
    const metadata = Object.fromEntries(metadataOrder.map((k) => [k, file.metadata[k] as string]));
    const ours = Buffer.concat(encodeSafetensors(file.tensors, metadata));
    assert.ok(ours.equals(python), "bytes differ from python's");
  });
});

describe("safetensors errors name the file and the defect", () => {
  const valid = () =>
    Buffer.concat(
      encodeSafetensors({
        a: { dtype: "F32", shape: [2], data: new Float32Array([1, 2]) },
        b: { dtype: "I64", shape: [1], data: new BigInt64Array([3n]) },
      }),
    );

  test("truncated data", async () => {
    const path = join(dir, "truncated.safetensors");
    await writeFile(path, valid());
    await truncate(path, valid().byteLength - 1);
    await assert.rejects(readSafetensors(path), (error: unknown) => {
      assert.ok(error instanceof UserError);
      assert.ok(error.message.startsWith(`${path}: `), error.message);
      assert.match(error.message, /truncated/);
      return true;
    });
  });

  test("shorter than the length prefix", () => {
    assertUserError(() => decodeSafetensors(new Uint8Array(5), "tiny.st"), /^tiny\.st: .*truncated: 5 bytes/);
  });

  test("header length beyond the end of the file", () => {
    assertUserError(
      () => decodeSafetensors(rawFile({}, new Uint8Array(0), 1000n), "f"),
      /header says 1000 bytes/,
    );
  });

  test("header length over the 100 MB limit", () => {
    assertUserError(() => decodeSafetensors(rawFile({}, new Uint8Array(0), 200_000_000n), "f"), /exceeds/);
  });

  test("oversized: bytes after the last tensor", async () => {
    const path = join(dir, "oversized.safetensors");
    await writeFile(path, Buffer.concat([valid(), Buffer.from([0, 0, 0, 0])]));
    await assert.rejects(readSafetensors(path), /oversized: 4 bytes after the last tensor/);
  });

  test("garbage", () => {
    const garbage = new Uint8Array(4096).map((_, i) => (i * 7919) & 0xff);
    assertUserError(
      () => decodeSafetensors(garbage, "garbage.bin"),
      /^garbage\.bin: not a valid safetensors file/,
    );
  });

  test("header not JSON, not an object", () => {
    assertUserError(() => decodeSafetensors(rawFile("{nope"), "f"), /not UTF-8 JSON/);
    assertUserError(() => decodeSafetensors(rawFile("[1, 2]"), "f"), /not a JSON object/);
  });

  test("unknown dtype, bad shape, bad offsets", () => {
    const four = new Uint8Array(4);
    assertUserError(
      () => decodeSafetensors(rawFile({ a: { dtype: "F33", shape: [1], data_offsets: [0, 4] } }, four)),
      /tensor "a": unsupported dtype "F33"/,
    );
    assertUserError(
      () => decodeSafetensors(rawFile({ a: { dtype: "F32", shape: [-1], data_offsets: [0, 4] } }, four)),
      /bad shape/,
    );
    assertUserError(
      () => decodeSafetensors(rawFile({ a: { dtype: "F32", shape: [1], data_offsets: [4, 0] } }, four)),
      /end before they begin/,
    );
    assertUserError(
      () => decodeSafetensors(rawFile({ a: { dtype: "F32", shape: [1], data_offsets: [0] } }, four)),
      /data_offsets must be/,
    );
  });

  test("size not matching dtype × shape", () => {
    assertUserError(
      () =>
        decodeSafetensors(
          rawFile({ a: { dtype: "F32", shape: [2], data_offsets: [0, 4] } }, new Uint8Array(4)),
        ),
      /4 bytes of data, but F32 \[2\] needs 8/,
    );
  });

  test("gaps and overlaps between tensors", () => {
    const gap = {
      a: { dtype: "U8", shape: [1], data_offsets: [0, 1] },
      b: { dtype: "U8", shape: [1], data_offsets: [2, 3] },
    };
    assertUserError(() => decodeSafetensors(rawFile(gap, new Uint8Array(3))), /leaves a gap after byte 1/);
    const overlap = {
      a: { dtype: "U8", shape: [2], data_offsets: [0, 2] },
      b: { dtype: "U8", shape: [1], data_offsets: [1, 2] },
    };
    assertUserError(() => decodeSafetensors(rawFile(overlap, new Uint8Array(2))), /overlaps/);
    const late = { a: { dtype: "U8", shape: [1], data_offsets: [1, 2] } };
    assertUserError(() => decodeSafetensors(rawFile(late, new Uint8Array(2))), /gap after byte 0/);
  });

  test("metadata values must be strings", () => {
    assertUserError(
      () => decodeSafetensors(rawFile({ __metadata__: { n: 1 } })),
      /__metadata__\.n is not a string/,
    );
  });

  test("a missing file", async () => {
    await assert.rejects(
      readSafetensors(join(dir, "nope.safetensors")),
      /nope\.safetensors: cannot read .*no such file/,
    );
  });

  test("readSafetensorsHeader validates without reading the data", async () => {
    const path = join(dir, "header.safetensors");
    await writeFile(path, valid());
    const header = await readSafetensorsHeader(path);
    assert.deepEqual(
      header.tensors.map((t) => [t.name, t.dtype, t.shape]),
      [
        ["a", "F32", [2]],
        ["b", "I64", [1]],
      ],
    );
    assert.equal(header.dataStart % 8, 0);
    await truncate(path, valid().byteLength - 2);
    await assert.rejects(readSafetensorsHeader(path), /truncated/);
  });

  test("requireTensor says what is missing or mistyped", () => {
    const file = decodeSafetensors(valid(), "m.st");
    assertUserError(() => requireTensor(file, "c", "F32", "m.st"), /m\.st: no tensor named "c"/);
    assertUserError(() => requireTensor(file, "b", "F32", "m.st"), /"b" is I64, expected F32/);
  });
});

describe("safetensors encoder refuses bad input", () => {
  test("data size not matching the shape", () => {
    assert.throws(
      () => encodeSafetensors({ a: { dtype: "F32", shape: [3], data: new Float32Array(2) } }),
      /8 bytes of data, but F32 \[3\] needs 12/,
    );
  });
  test("reserved and duplicate names", () => {
    const t: TensorInput = { dtype: "U8", shape: [1], data: new Uint8Array(1) };
    assert.throws(() => encodeSafetensors({ __metadata__: t }), /reserved/);
    assert.throws(
      () =>
        encodeSafetensors([
          ["a", t],
          ["a", t],
        ]),
      /given twice/,
    );
  });
});
