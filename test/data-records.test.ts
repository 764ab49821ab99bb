import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, stat, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { UserError } from "../lib/cli/errors.ts";
import type { OpenDatasetOptions } from "../trainer/data/dataset.ts";
import { openDataset } from "../trainer/data/dataset.ts";
import type { DataFormat } from "../trainer/data/records.ts";

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "baton-records-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

let fileCounter = 0;
async function jsonl(lines: string[], name = `f${fileCounter++}.jsonl`): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, lines.join("\n"));
  return path;
}

const chat = (answer = "ok") =>
  JSON.stringify({
    conversations: [
      { role: "user", content: "q" },
      { role: "assistant", content: answer },
    ],
  });

/** Expect openDataset to fail with a UserError whose message is exactly `message`. */
async function rejectsWith(path: string, format: DataFormat, message: string, options?: OpenDatasetOptions) {
  await assert.rejects(openDataset(path, format, { onWarning: () => {}, ...options }), (error: Error) => {
    assert.ok(error instanceof UserError, `not a UserError: ${error}`);
    assert.equal(error.message, message);
    return true;
  });
}

describe("JSONL index", () => {
  test("indexes records by offset, skipping blank lines, reading any record positionally", async () => {
    const lines = [
      '{"text": "zero"}',
      "",
      "  ",
      '{"text": "tw\\u00f6 — ünïcode"}',
      '{"text": "three"}\r',
      "",
    ];
    const path = await jsonl(lines);
    const ds = await openDataset(path, "pretrain");
    assert.equal(ds.length, 3);
    assert.deepEqual(
      [0, 1, 2].map((i) => ds.lineNumber(i)),
      [1, 4, 5],
    );
    assert.deepEqual(ds.readRecord(2), { text: "three" });
    assert.deepEqual(ds.readRecord(1), { text: "twö — ünïcode" });
    assert.deepEqual(ds.readRecord(0), { text: "zero" });
    assert.throws(() => ds.readRecord(3), RangeError);
    ds.close();
  });

  test("lines longer than the read chunk and a last line without newline", async () => {
    const big = "x".repeat(5 * 1024 * 1024);
    const path = await jsonl([
      JSON.stringify({ text: "a" }),
      JSON.stringify({ text: big }),
      JSON.stringify({ text: "c" }),
    ]);
    const ds = await openDataset(path, "pretrain");
    assert.equal(ds.length, 3);
    assert.equal((ds.readRecord(1) as { text: string }).text.length, big.length);
    assert.deepEqual(ds.readRecord(2), { text: "c" });
    ds.close();
  });

  test("a UTF-8 byte-order mark on line 1 is tolerated", async () => {
    const path = join(dir, "bom.jsonl");
    await writeFile(path, `\uFEFF${chat()}\n${chat("b")}\n`);
    const ds = await openDataset(path, "sft");
    assert.equal(ds.length, 2);
    assert.equal(ds.readRecord(0).conversations[1].content, "ok");
  });

  test("the cache is reused by a second open, and rebuilt when the file changes", async () => {
    const path = await jsonl([chat("a"), chat("b")]);
    const first = await openDataset(path, "sft");
    assert.equal(first.indexSource, "scan");
    const cacheTime = (await stat(`${path}.idx`)).mtimeMs;

    const second = await openDataset(path, "sft");
    assert.equal(second.indexSource, "cache");
    assert.equal((await stat(`${path}.idx`)).mtimeMs, cacheTime, "the cache was not rewritten");
    assert.equal(second.readRecord(1).conversations[1].content, "b");

    // Same size, same mtime, different bytes: the edge hash catches it.
    const before = await stat(path);
    await writeFile(path, [chat("c"), chat("d")].join("\n"));
    await utimes(path, before.atime, before.mtime);
    const third = await openDataset(path, "sft");
    assert.equal(third.indexSource, "scan");
    assert.equal(third.readRecord(1).conversations[1].content, "d");

    // Appending a record changes the size.
    await writeFile(path, [chat("c"), chat("d"), chat("e")].join("\n"));
    const fourth = await openDataset(path, "sft");
    assert.equal(fourth.indexSource, "scan");
    assert.equal(fourth.length, 3);
  });

  test("a cache built for another format is not used", async () => {
    const path = await jsonl([chat("a")]);
    await openDataset(path, "sft");
    assert.equal((await openDataset(path, "r1", { onWarning: () => {} })).indexSource, "scan");
  });

  test("an unwritable cache location keeps the index in memory and says so once", async () => {
    const path = await jsonl([chat("a")]);
    const warnings: string[] = [];
    const cachePath = join(dir, "no-such-dir", "x.idx");
    for (let i = 0; i < 2; i++) {
      const ds = await openDataset(path, "sft", { cachePath, onWarning: (m) => warnings.push(m) });
      assert.equal(ds.indexSource, "scan");
      assert.equal(ds.readRecord(0).conversations[1].content, "a");
    }
    assert.equal(warnings.length, 1);
    assert.match(
      warnings[0],
      /cannot save its line index to .*x\.idx \(no such file or directory\); keeping it in memory/,
    );
  });

  test("split holds out the last records, deterministically", async () => {
    const path = await jsonl(Array.from({ length: 10 }, (_, i) => JSON.stringify({ text: String(i) })));
    const ds = await openDataset(path, "pretrain");
    const { train, eval: held } = ds.split(3);
    assert.deepEqual([...train], [0, 1, 2, 3, 4, 5, 6]);
    assert.deepEqual([...held], [7, 8, 9]);
    assert.deepEqual(ds.readRecord(held[0]), { text: "7" });
    assert.equal(ds.split(0).eval.length, 0);
    assert.throws(() => ds.split(10), /cannot hold out 10 records for evaluation, it has only 10/);
  });
});

describe("bad input", () => {
  test("bad JSON names file:line (physical, 1-based) and the parser's complaint", async () => {
    const path = await jsonl([chat(), "", chat(), "{oops"], "x.jsonl");
    await assert.rejects(openDataset(path, "sft"), (e: Error) => {
      assert.ok(e instanceof UserError);
      assert.match(e.message, /^.*x\.jsonl:4: invalid JSON \(.+\)$/);
      return true;
    });
  });

  test("missing field, wrong type, missing assistant turn, bad role", async () => {
    const p1 = await jsonl(['{"text": "a"}', '{"txt": "b"}']);
    await rejectsWith(p1, "pretrain", `${p1}:2: missing field "text", expected {"text": string}`);
    const p2 = await jsonl(['{"text": 3}']);
    await rejectsWith(p2, "pretrain", `${p2}:1: "text" is a number, expected a string`);
    const p3 = await jsonl(['{"conversations": [{"role": "user", "content": "hi"}]}']);
    await rejectsWith(p3, "sft", `${p3}:1: "conversations" has no assistant turn (nothing to learn from)`);
    const p4 = await jsonl(['{"conversations": [{"role": "bot", "content": "hi"}]}']);
    await rejectsWith(
      p4,
      "sft",
      `${p4}:1: conversations[0].role is "bot", expected "system", "user" or "assistant"`,
    );
    const p5 = await jsonl(['{"conversations": [{"role": "assistant", "content": null}]}']);
    await rejectsWith(p5, "sft", `${p5}:1: conversations[0].content is null, expected a string`);
    const p6 = await jsonl(['{"conversations": "hi"}']);
    await rejectsWith(p6, "r1", `${p6}:1: "conversations" is a string, expected an array of messages`);
    const p7 = await jsonl(["[1, 2]"]);
    await rejectsWith(p7, "pretrain", `${p7}:1: expected {"text": string}, got an array`);
  });

  test("DPO without rejected, or with a rejected side lacking an assistant turn", async () => {
    const chosen = [
      { role: "user", content: "q" },
      { role: "assistant", content: "a" },
    ];
    const p1 = await jsonl([JSON.stringify({ chosen, rejected: chosen }), JSON.stringify({ chosen })]);
    await rejectsWith(p1, "dpo", `${p1}:2: missing field "rejected"`);
    const p2 = await jsonl([JSON.stringify({ chosen, rejected: [chosen[0]] })]);
    await rejectsWith(p2, "dpo", `${p2}:1: "rejected" has no assistant turn (nothing to learn from)`);
  });

  test("empty file, only blank lines, missing file, directory", async () => {
    const empty = await jsonl([]);
    await rejectsWith(empty, "pretrain", `${empty}: no records (file is empty)`);
    const blank = await jsonl(["", "  ", ""]);
    await rejectsWith(blank, "pretrain", `${blank}: no records (only blank lines)`);
    await rejectsWith(join(dir, "nope.jsonl"), "sft", `${join(dir, "nope.jsonl")}: no such file`);
    const folder = join(dir, "folder.jsonl");
    await mkdir(folder);
    await rejectsWith(folder, "sft", `${folder}: is a directory, expected a JSONL file`);
  });

  test("skipBadLines leaves bad lines out and reports a count with the first line numbers", async () => {
    const lines = [
      chat("a"),
      "{bad",
      chat("b"),
      '{"conversations": []}',
      chat("c"),
      "nope",
      "[]",
      "1",
      "2",
      "3",
    ];
    const path = await jsonl(lines);
    const warnings: string[] = [];
    const ds = await openDataset(path, "sft", { skipBadLines: true, onWarning: (m) => warnings.push(m) });
    assert.equal(ds.length, 3);
    assert.equal(ds.skippedLines, 7);
    assert.deepEqual(
      [0, 1, 2].map((i) => ds.lineNumber(i)),
      [1, 3, 5],
    );
    assert.equal(ds.readRecord(2).conversations[1].content, "c");
    assert.equal(warnings.length, 1);
    assert.match(
      warnings[0],
      /: 7 bad lines skipped \(line 2: invalid JSON .*; line 4: "conversations" is empty.*; line 6: .*; …\)$/,
    );

    // From the cache: same records, same warning, and a strict open still fails on the first bad line.
    const again: string[] = [];
    const cached = await openDataset(path, "sft", { skipBadLines: true, onWarning: (m) => again.push(m) });
    assert.equal(cached.indexSource, "cache");
    assert.equal(cached.length, 3);
    assert.deepEqual(again, warnings);
    await assert.rejects(openDataset(path, "sft"), /:2: invalid JSON/);
  });

  test("all lines bad with skipBadLines is still an error", async () => {
    const path = await jsonl(["{", "{"]);
    await rejectsWith(
      path,
      "sft",
      `${path}: no records (all 2 non-blank lines are invalid; line 1: invalid JSON (Expected property name or '}' in JSON at position 1))`,
      { skipBadLines: true },
    );
  });

  test("r1 records without <think>/<answer> are counted in a warning, not rejected", async () => {
    const good = chat("<think>x</think>\n<answer>y</answer>");
    const path = await jsonl([good, chat("no tags"), good, chat("<answer>only</answer>")]);
    const warnings: string[] = [];
    const ds = await openDataset(path, "r1", { onWarning: (m) => warnings.push(m) });
    assert.equal(ds.length, 4);
    assert.equal(warnings.length, 1);
    assert.match(
      warnings[0],
      /: 2 of 4 records have no tag weight to learn from \(line 2: .*; line 4: .*\)$/,
    );
  });
});
