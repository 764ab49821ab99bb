// Following a log another process appends to: every line once, in order, from an offset; a
// half-written last line waits; a replaced (shorter) file is read again from its start.
import assert from "node:assert/strict";
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { tailLog } from "../lib/process/log-tail.ts";

const root = mkdtempSync(join(tmpdir(), "baton-tail-"));
after(() => rmSync(root, { recursive: true, force: true }));

test("lines as they are appended, from a saved offset, a half-written line only once complete", async () => {
  const file = join(root, "job.out");
  const seen: Array<[string, number]> = [];
  const tail = tailLog(file, { intervalMs: 20, onLine: (line, offset) => seen.push([line, offset]) });
  await sleep(60); // the file does not exist yet
  writeFileSync(file, "one\ntw");
  await sleep(80);
  assert.deepEqual(seen, [["one", 4]]);
  appendFileSync(file, "o\r\nthree\n");
  await tail.stop();
  assert.deepEqual(seen, [
    ["one", 4],
    ["two", 9],
    ["three", 15],
  ]);
  // A follower that restarts at the saved offset sees only what came after.
  appendFileSync(file, "four\n");
  const again: string[] = [];
  const resumed = tailLog(file, { offset: tail.offset, intervalMs: 20, onLine: (line) => again.push(line) });
  await resumed.stop();
  assert.deepEqual(again, ["four"]);

  writeFileSync(file, "new\n"); // replaced by a shorter file
  const fresh: string[] = [];
  const replaced = tailLog(file, {
    offset: resumed.offset,
    intervalMs: 20,
    onLine: (line) => fresh.push(line),
  });
  await replaced.stop();
  assert.deepEqual(fresh, ["new"]);
});

test("a line longer than the cap comes in pieces, and memory stays bounded", async () => {
  const file = join(root, "flood.out");
  writeFileSync(file, `${"x".repeat(25)}\n`);
  const seen: string[] = [];
  const tail = tailLog(file, { maxLineLength: 10, intervalMs: 20, onLine: (line) => seen.push(line) });
  await tail.stop();
  assert.deepEqual(seen, ["xxxxxxxxxx", "xxxxxxxxxx", "xxxxx"]);
});
