import assert from "node:assert/strict";
import { test } from "node:test";
import { LineSplitter } from "../lib/process/lines.ts";

const bytes = (text: string): Buffer => Buffer.from(text, "utf8");

test("splits chunks into lines, joining a line cut across chunks", () => {
  const splitter = new LineSplitter();
  assert.deepEqual(splitter.push(bytes("one\ntw")), ["one"]);
  assert.deepEqual(splitter.push(bytes("o\nthree\n\nfour")), ["two", "three", ""]);
  assert.deepEqual(splitter.end(), ["four"]);
  assert.deepEqual(splitter.end(), []);
});

test("drops the \\r of CRLF but keeps a bare \\r", () => {
  const splitter = new LineSplitter();
  assert.deepEqual(splitter.push(bytes("dos\r\nbar 10%\rbar 20%\n")), ["dos", "bar 10%\rbar 20%"]);
});

test("decodes a multi-byte character cut between chunks", () => {
  const splitter = new LineSplitter();
  const text = bytes("héllo 😀\n");
  const lines = [
    ...splitter.push(text.subarray(0, 2)),
    ...splitter.push(text.subarray(2, 9)),
    ...splitter.push(text.subarray(9)),
  ];
  assert.deepEqual(lines, ["héllo 😀"]);
});

test("cuts an overlong line into pieces of the cap, never holding more", () => {
  const splitter = new LineSplitter(10);
  assert.deepEqual(splitter.push(bytes("abcdefgh")), []);
  assert.deepEqual(splitter.push(bytes("ijklmnopqrstuvwxy")), ["abcdefghij", "klmnopqrst"]);
  assert.deepEqual(splitter.push(bytes("z\n")), ["uvwxyz"]);
  // A line of exactly the cap stays whole, one longer is cut.
  assert.deepEqual(splitter.push(bytes("0123456789\n0123456789A\n")), ["0123456789", "0123456789", "A"]);
});

test("a flood without newlines yields capped pieces that add up to the input", () => {
  const splitter = new LineSplitter(1000);
  const chunk = Buffer.alloc(4096, "x");
  let total = 0;
  for (let i = 0; i < 100; i++) {
    for (const line of splitter.push(chunk)) {
      assert.equal(line.length, 1000);
      total += line.length;
    }
  }
  for (const line of splitter.end()) total += line.length;
  assert.equal(total, 409_600);
});

test("never splits a surrogate pair at the cap", () => {
  const splitter = new LineSplitter(4);
  const lines = [...splitter.push(bytes("abc😀def\n"))];
  assert.deepEqual(lines, ["abc", "😀de", "f"]);
});

test("rejects a cap that cannot hold a character", () => {
  assert.throws(() => new LineSplitter(1), /maxLineLength/);
});
