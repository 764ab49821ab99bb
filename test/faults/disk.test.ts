/**
 * A full disk, for real: the checkpoints on a small tmpfs. A save that cannot fit is refused before
 * a byte is written; a write that fails half-way (the tmpfs out of inodes: ENOSPC at the next file)
 * names the file and removes its staging folder. Either way exit 1, every existing checkpoint
 * intact, metadata.json `failed`.
 */
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { listCheckpoints, verifyCheckpoint } from "../../lib/checkpoint/index.ts";
import { readRunMetadata } from "../../lib/metadata/run-metadata.ts";
import { runDirs, runTrainerToEnd, TINY_MODEL } from "../support/trainer-process.ts";
import { assertOneLine, cannotMount, mountTmpfs, scratch, within } from "./support.ts";

const root = scratch("disk");

const args = (dir: string, ckptDir: string, legacyDir = dir, maxSteps = 6) => [
  ...runDirs(dir, "pretrain"),
  ...["--ckpt_dir", ckptDir, "--legacy_weights", join(legacyDir, "pretrain_32.safetensors")],
  ...TINY_MODEL,
  ...[
    "--backend",
    "cpu",
    "--eval",
    "false",
    "--max_steps",
    String(maxSteps),
    "--save_interval",
    "1",
    "--keep_last_checkpoints",
    "1",
  ],
];

async function intact(ckptDir: string): Promise<number[]> {
  const saved = await listCheckpoints(ckptDir);
  for (const c of saved) assert.ok((await verifyCheckpoint(c.path)).valid, `${c.name} is damaged`);
  return saved.map((c) => c.step);
}

describe("a full disk", { skip: cannotMount ?? false }, () => {
  test("a save that does not fit is refused before writing: exit 1 naming the folder, bytes needed and free", async () => {
    const dir = join(root, "small");
    // Room for one checkpoint (≈ 0.33 MB) plus the 1 MiB headroom, not for a second beside it.
    const ckptDir = mountTmpfs(join(root, "small-disk"), "size=1500k");
    const run = await within(60_000, "the trainer", runTrainerToEnd("train_pretrain.ts", args(dir, ckptDir)));
    const line = assertOneLine(
      run,
      1,
      /^train_pretrain: error: not enough disk space to save step 2 in .*small-disk: it needs \d+(\.\d)? [kM]B, \d+(\.\d)? [kM]?B free; nothing was written and every existing checkpoint is intact/,
    );
    assert.match(line, /run again to resume from .*step_00000001$/);
    assert.match(
      run.stderr,
      /warning: .*small-disk has .* free, less than --keep_last_checkpoints 1 \+ 1 checkpoints/,
    );
    assert.deepEqual(await intact(ckptDir), [1]);
    assert.deepEqual(readdirSync(ckptDir), ["step_00000001"], "no staging folder left behind");
    assert.equal((await readRunMetadata(join(dir, "pretrain", "metadata.json")))?.state, "failed");
  });

  test("ENOSPC in the middle of a save: exit 1 naming the file; staging removed; the older checkpoint intact", async () => {
    const dir = join(root, "inodes");
    // The tmpfs root takes one inode; the first save takes five (its folder and four files); the
    // second gets its folder, model and optimizer files, and fails creating rng.json.
    const ckptDir = mountTmpfs(join(root, "inode-disk"), "size=64m,nr_inodes=9");
    const run = await within(60_000, "the trainer", runTrainerToEnd("train_pretrain.ts", args(dir, ckptDir)));
    const line = assertOneLine(
      run,
      1,
      /^train_pretrain: error: cannot save .*inode-disk\/step_00000002: writing rng\.json: no space left on device \(the unfinished checkpoint was removed\); every existing checkpoint is intact/,
    );
    assert.match(line, /resume from .*step_00000001$/);
    assert.deepEqual(await intact(ckptDir), [1]);
    assert.deepEqual(readdirSync(ckptDir), ["step_00000001"], "the staging folder was removed");
    assert.equal((await readRunMetadata(join(dir, "pretrain", "metadata.json")))?.state, "failed");
  });

  test("the legacy .pth counts in the pre-check, and ENOSPC writing it names it and the checkpoint to resume", async () => {
    // The tiny model's legacy files: ≈ 130 kB safetensors + ≈ 52 kB float16 .pth, plus 1 MiB headroom.
    // 1180k holds the safetensors alone with ≈ 29 kB to spare, and misses both by ≈ 22 kB.
    const small = mountTmpfs(join(root, "legacy-small"), "size=1180k");
    const both = await within(
      60_000,
      "the trainer",
      runTrainerToEnd(
        "train_pretrain.ts",
        args(join(root, "legacy-both"), join(root, "ckpt-both"), small, 1),
      ),
    );
    assertOneLine(
      both,
      1,
      /^train_pretrain: error: not enough disk space to save step 1 in .*legacy-small: it needs /,
    );
    assert.deepEqual(readdirSync(small), [], "nothing was written");
    const safetensorsOnly = await runTrainerToEnd("train_pretrain.ts", [
      ...args(join(root, "legacy-st"), join(root, "ckpt-st"), small, 1),
      ...["--legacy_format", "safetensors"],
    ]);
    assert.equal(safetensorsOnly.code, 0, safetensorsOnly.stderr);
    assert.deepEqual(readdirSync(small), ["pretrain_32.safetensors"]);

    // Two inodes: the tmpfs root and the .safetensors; the .pth cannot be created.
    const inodes = mountTmpfs(join(root, "legacy-inodes"), "size=64m,nr_inodes=2");
    const ckptDir = join(root, "ckpt-inodes");
    const run = await within(
      60_000,
      "the trainer",
      runTrainerToEnd("train_pretrain.ts", args(join(root, "legacy-inodes-run"), ckptDir, inodes, 1)),
    );
    assertOneLine(
      run,
      1,
      /^train_pretrain: error: cannot write .*legacy-inodes\/pretrain_32\.pth: no space left on device; every existing checkpoint is intact — free some space and run again to resume from .*ckpt-inodes\/step_00000001$/,
    );
    assert.deepEqual(readdirSync(inodes), ["pretrain_32.safetensors"], "no temporary file left behind");
    assert.deepEqual(await intact(ckptDir), [1]);
  });
});
