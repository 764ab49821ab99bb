/**
 * Durability order of a save (README "Checkpoints": a crash at any instant, power loss included,
 * leaves only complete checkpoints). A killed process cannot show a missing fsync — the page cache
 * outlives it — so these tests watch the file-system calls themselves: every file synced after its
 * last write, state.json written only once the others are synced, and synced too; the staging
 * directory synced, then renamed into place, then the parent directory synced — all before the
 * save returns. Likewise for a same-step replacement and for writeFileAtomic (the legacy weights).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { afterEach, beforeEach, test } from "node:test";
import { saveCheckpoint } from "../lib/checkpoint/index.ts";
import { writeFileAtomic } from "../lib/fs/atomic.ts";
import { stateFor, tempDir } from "./fixtures/checkpoint-helpers.ts";
import { stepDir } from "./support/crash-resume.ts";
import { type FsCall, type FsSpy, spyOnFileSystem } from "./support/fs-spy.ts";

let root: string;
let cleanup: () => Promise<void>;
let spy: FsSpy | null = null;

beforeEach(async () => {
  ({ path: root, cleanup } = await tempDir("durability"));
});
afterEach(async () => {
  spy?.restore();
  spy = null;
  await cleanup();
});

const FILES = {
  "model.safetensors": new Uint8Array(4096).fill(7),
  "optimizer.safetensors": [new Uint8Array(1000).fill(1), new Uint8Array(24).fill(2)],
  "rng.json": '{"init": [1, 2, 3]}',
};

/** Index helpers over the recorded calls. */
function callLog(calls: FsCall[]) {
  // Calls that threw (a rename refused because the target exists) did nothing: skipped.
  const find = (from: number, match: (c: FsCall) => boolean) => {
    for (let i = from; i < calls.length; i++) {
      const call = calls[i] as FsCall;
      if (!call.failed && match(call)) return i;
    }
    return -1;
  };
  const findLast = (match: (c: FsCall) => boolean) => {
    for (let i = calls.length - 1; i >= 0; i--) {
      const call = calls[i] as FsCall;
      if (!call.failed && match(call)) return i;
    }
    return -1;
  };
  return {
    calls,
    /** Where the last write to `path` started. */
    lastWrite: (path: string) => findLast((c) => c.path === path && c.op === "write" && c.phase === "start"),
    firstWrite: (path: string) => find(0, (c) => c.path === path && c.op === "write" && c.phase === "start"),
    /** Where an fsync (or fdatasync) of `path` that started after `after` finished. */
    syncedAfter: (path: string, after: number) => {
      const start = find(after + 1, (c) => c.path === path && /sync$/.test(c.op) && c.phase === "start");
      return start < 0 ? -1 : find(start, (c) => c.path === path && /sync$/.test(c.op) && c.phase === "end");
    },
    renameStart: (to: string) => find(0, (c) => c.op === "rename" && c.to === to && c.phase === "start"),
    renameEnd: (to: string) => find(0, (c) => c.op === "rename" && c.to === to && c.phase === "end"),
    start: (op: FsCall["op"], path: string) =>
      find(0, (c) => c.op === op && c.path === path && c.phase === "start"),
  };
}

/**
 * The order of one committed save into `ckptDir`; returns where the parent directory's sync ended.
 * `names` are the checkpoint's files other than state.json.
 */
function assertDurableSave(calls: FsCall[], ckptDir: string, step: number, names: string[]): number {
  const log = callLog(calls);
  const final = join(ckptDir, stepDir(step));
  const rename = log.renameStart(final);
  assert.ok(rename >= 0, `the staging directory is renamed to ${final}`);
  const staging = (calls[rename] as FsCall).path;
  assert.notEqual(staging, final);

  const syncedAt: Record<string, number> = {};
  for (const name of [...names, "state.json"]) {
    const path = join(staging, name);
    const lastWrite = log.lastWrite(path);
    assert.ok(lastWrite >= 0, `${name} is written into the staging directory`);
    const synced = log.syncedAfter(path, lastWrite);
    assert.ok(synced >= 0, `${name} is fsynced after its last write`);
    assert.ok(synced < rename, `${name} is fsynced before the rename`);
    syncedAt[name] = synced;
  }
  const stateWritten = log.firstWrite(join(staging, "state.json"));
  for (const name of names) {
    assert.ok(
      (syncedAt[name] as number) < stateWritten,
      `state.json is written only after ${name} is synced`,
    );
  }
  const stagingSynced = log.syncedAfter(staging, syncedAt["state.json"] as number);
  assert.ok(stagingSynced >= 0, "the staging directory is fsynced after state.json");
  assert.ok(stagingSynced < rename, "the staging directory is fsynced before the rename");
  const parentSynced = log.syncedAfter(ckptDir, log.renameEnd(final));
  assert.ok(parentSynced >= 0, "the checkpoints folder is fsynced after the rename");
  return parentSynced;
}

test("a save: each file synced, state.json last, staging synced, renamed, parent synced, then returns", async () => {
  const ckptDir = join(root, "checkpoints");
  spy = await spyOnFileSystem(root);
  await saveCheckpoint(ckptDir, { step: 3, files: FILES, state: stateFor(3), keepLast: 3 });
  const returned = spy.mark("saveCheckpoint returned");
  const parentSynced = assertDurableSave(spy.calls, ckptDir, 3, Object.keys(FILES));
  assert.ok(parentSynced < returned, "the parent is synced before the save returns");
});

test("replacing a same-step checkpoint: durable as a new one, the parent synced before the old copy goes", async () => {
  const ckptDir = join(root, "checkpoints");
  await saveCheckpoint(ckptDir, { step: 5, files: FILES, state: stateFor(5), keepLast: 3 });
  spy = await spyOnFileSystem(root);
  const result = await saveCheckpoint(ckptDir, { step: 5, files: FILES, state: stateFor(5), keepLast: 3 });
  assert.equal(result.replaced, true);
  const log = callLog(spy.calls);
  const final = join(ckptDir, stepDir(5));
  assertDurableSave(spy.calls, ckptDir, 5, Object.keys(FILES));
  // The old step_5 steps aside (renamed from `final`), the new one takes its name.
  const aside = spy.calls.find((c) => c.op === "rename" && c.path === final && !c.failed);
  assert.ok(aside?.to, "the old checkpoint is moved aside first");
  const removed = log.start("rm", aside.to);
  assert.ok(removed >= 0, "the old copy is removed");
  const synced = log.syncedAfter(ckptDir, log.renameEnd(final));
  assert.ok(
    synced >= 0 && synced < removed,
    "the parent is synced after the swap, before the old copy is removed",
  );
});

test("writeFileAtomic: the staging file synced, renamed over the target, the folder synced", async () => {
  const target = join(root, "full_sft_32.safetensors");
  spy = await spyOnFileSystem(root);
  await writeFileAtomic(target, [new Uint8Array(100).fill(3), new Uint8Array(10)]);
  const returned = spy.mark("writeFileAtomic returned");
  const log = callLog(spy.calls);
  const rename = log.renameStart(target);
  assert.ok(rename >= 0, "a staging file is renamed over the target");
  const staging = (spy.calls[rename] as FsCall).path;
  const synced = log.syncedAfter(staging, log.lastWrite(staging));
  assert.ok(
    log.lastWrite(staging) >= 0 && synced >= 0 && synced < rename,
    "the staging file is synced before the rename",
  );
  const parentSynced = log.syncedAfter(root, log.renameEnd(target));
  assert.ok(parentSynced >= 0 && parentSynced < returned, "the folder is synced before it returns");
});
