import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { UserError } from "../lib/cli/errors.ts";
import type { Tokenizer } from "../trainer/data/tokenizer.ts";
import { ByteTokenizer, loadTokenizer, SPECIAL_TOKENS } from "../trainer/data/tokenizer.ts";
import { tinyTokenizerJson } from "./fixtures/tiny-hf-tokenizer.ts";

/** Feed ids one by one, collecting each piece the decoder hands back. */
function streamPieces(tokenizer: Tokenizer, ids: number[]): string[] {
  const decoder = tokenizer.streamDecoder();
  const pieces = ids.map((id) => decoder.push(id));
  pieces.push(decoder.flush());
  return pieces;
}

describe("byte tokenizer", () => {
  const tok = new ByteTokenizer();

  test("has MiniMind's special ids, then the 256 bytes", () => {
    assert.equal(tok.id, "byte-v1");
    assert.equal(tok.vocabSize, 263);
    assert.deepEqual([tok.padId, tok.bosId, tok.eosId], [0, 1, 2]);
    assert.deepEqual(
      SPECIAL_TOKENS.map((s) => tok.tokenToId(s)),
      [0, 1, 2, 3, 4, 5, 6],
    );
    assert.deepEqual(tok.encode("A"), [0x41 + 7]);
    assert.equal(tok.tokenToId("A"), 0x41 + 7);
    assert.equal(tok.tokenToId("AB"), undefined);
  });

  test("round-trips ASCII and multi-byte UTF-8", () => {
    for (const text of ["", "hello, world\n", "héllo wörld", "你好，世界", "emoji 🧪 ok", "\u0000\t\r"]) {
      const ids = tok.encode(text);
      assert.equal(ids.length, Buffer.byteLength(text));
      assert.equal(tok.decode(ids), text);
    }
  });

  test("encodes special-token strings as single ids, anywhere in the text", () => {
    const ids = tok.encode("<|im_start|>user\nhi<|im_end|>\n<think>x</think><answer>1</answer><|endoftext|>");
    assert.deepEqual(ids.slice(0, 2), [1, "u".charCodeAt(0) + 7]);
    assert.deepEqual(
      ids.filter((id) => id < 7),
      [1, 2, 3, 4, 5, 6, 0],
    );
    assert.equal(
      tok.decode(ids),
      "<|im_start|>user\nhi<|im_end|>\n<think>x</think><answer>1</answer><|endoftext|>",
    );
    // A near-miss is plain bytes.
    assert.equal(
      tok.encode("<|im_end>").every((id) => id >= 7),
      true,
    );
  });

  test("streaming decoder holds split multi-byte characters until complete", () => {
    const ids = tok.encode("a你b🧪<|im_end|>é");
    const pieces = streamPieces(tok, ids);
    // "你" is 3 bytes: nothing for its first two, the whole character on the third.
    assert.deepEqual(pieces.slice(0, 5), ["a", "", "", "你", "b"]);
    assert.deepEqual(pieces.slice(5, 9), ["", "", "", "🧪"]);
    assert.equal(pieces[9], "<|im_end|>");
    assert.deepEqual(pieces.slice(10), ["", "é", ""]);
    assert.equal(pieces.join(""), "a你b🧪<|im_end|>é");
  });

  test("invalid or truncated UTF-8 decodes to U+FFFD instead of throwing", () => {
    const cut = tok.encode("你").slice(0, 2);
    assert.equal(tok.decode(cut), "\uFFFD");
    assert.equal(tok.decode([...cut, tok.eosId]), "\uFFFD<|im_end|>");
    assert.throws(() => tok.decode([263]), RangeError);
  });
});

describe("Hugging Face tokenizer.json", () => {
  let dir: string;
  let path: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "baton-tok-"));
    path = join(dir, "tokenizer.json");
    await writeFile(path, JSON.stringify(tinyTokenizerJson()));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test("loadTokenizer(null) is the byte tokenizer", async () => {
    assert.equal((await loadTokenizer(null)).id, "byte-v1");
    assert.equal((await loadTokenizer("")).id, "byte-v1");
  });

  test("loads, encodes with merges and special tokens, and round-trips", async () => {
    const tok = await loadTokenizer(path);
    assert.match(tok.id, /^hf-[0-9a-f]{16}$/);
    assert.equal(tok.vocabSize, 3 + 256 + 13);
    assert.deepEqual([tok.padId, tok.bosId, tok.eosId], [0, 1, 2]);
    const ids = tok.encode("<|im_start|>assistant\nhello world<|im_end|>");
    assert.equal(ids[0], 1);
    assert.equal(ids[1], tok.tokenToId("assistant"));
    assert.equal(ids.at(-1), 2);
    assert.ok(ids.includes(tok.tokenToId("hello") as number));
    for (const text of ["hello world", "你好 🧪", "<|im_start|>x<|im_end|>\n"])
      assert.equal(tok.decode(tok.encode(text)), text);
  });

  test("its id depends on content, not on the path", async () => {
    const copy = join(dir, "copy");
    await mkdir(copy);
    await writeFile(join(copy, "tokenizer.json"), JSON.stringify(tinyTokenizerJson()));
    assert.equal((await loadTokenizer(join(copy, "tokenizer.json"))).id, (await loadTokenizer(path)).id);
  });

  test("streaming decoder emits whole characters only", async () => {
    const tok = await loadTokenizer(path);
    const text = "hello 你好 world";
    const pieces = streamPieces(tok, tok.encode(text));
    assert.equal(pieces.join(""), text);
    assert.ok(pieces.every((p) => !p.includes("\uFFFD")));
    assert.ok(pieces.includes("你"));
  });

  test("bad tokenizer files are UserErrors naming the file", async () => {
    await assert.rejects(loadTokenizer(join(dir, "missing.json")), (e: Error) => {
      assert.ok(e instanceof UserError);
      assert.match(e.message, /missing\.json: cannot read tokenizer \(no such file/);
      return true;
    });
    const bad = join(dir, "bad.json");
    await writeFile(bad, "{not json");
    await assert.rejects(loadTokenizer(bad), /bad\.json: invalid JSON in tokenizer file/);
    await writeFile(bad, "{}");
    await assert.rejects(loadTokenizer(bad), /bad\.json: not a Hugging Face tokenizer\.json/);
    await assert.rejects(loadTokenizer(dir), /is a directory/);
  });
});
