/**
 * RunRegistry.open on a file it cannot use: one UserError naming the file and why, and no SQLite
 * handle left open on it.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import Database from "better-sqlite3";
import { UserError } from "../lib/cli/errors.ts";
import { RunRegistry } from "../lib/registry/index.ts";

const root = mkdtempSync(join(tmpdir(), "registry-open-"));
after(() => rmSync(root, { recursive: true, force: true }));

/** This process's open file descriptors on `path` (Linux /proc). */
function openOn(path: string): number {
  return readdirSync("/proc/self/fd").filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === path;
    } catch {
      return false;
    }
  }).length;
}

test("a file that is not a database: a UserError naming it, its handle closed", () => {
  const path = join(root, "registry.db");
  writeFileSync(path, "these are not the pages of a SQLite database\n".repeat(200));
  assert.throws(
    () => RunRegistry.open(path),
    (error: Error) => {
      assert.ok(error instanceof UserError, `a UserError, not ${error.name}`);
      assert.equal(error.message, `cannot open the run registry ${path}: file is not a database`);
      return true;
    },
  );
  assert.equal(openOn(path), 0, "no handle left open on the file");
});

test("a registry from a newer Baton keeps its own message, naming the file", () => {
  const path = join(root, "newer.db");
  const db = new Database(path);
  db.pragma("user_version = 999");
  db.close();
  assert.throws(
    () => RunRegistry.open(path),
    (error: Error) => {
      assert.ok(error instanceof UserError);
      assert.match(error.message, new RegExp(`^the run registry ${path} has schema version 999, newer than`));
      return true;
    },
  );
  assert.equal(openOn(path), 0);
});
