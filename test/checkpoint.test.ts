import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdir, readdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, test } from "node:test";
import {
  type CheckpointInfo,
  latestValidCheckpoint,
  listCheckpoints,
  loadLatestCheckpoint,
  saveCheckpoint,
  stepDirName,
  writeLegacyWeights,
} from "../lib/checkpoint/index.ts";
import type { FileContent } from "../lib/fs/atomic.ts";
import { stateFor, tempDir } from "./fixtures/checkpoint-helpers.ts";

/** A PID no process can have (above Linux's pid_max), for staging names of a "dead" writer. */
const DEAD_PID = 99_999_999;

let root: string;
let ckpt: string;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  ({ path: root, cleanup } = await tempDir("checkpoint"));
  ckpt = join(root, "checkpoints");
});
afterEach(() => cleanup());

function filesFor(step: number): Record<string, FileContent> {
  return {
    "model.safetensors": [new Uint8Array(1000).fill(step), new Uint8Array([1, 2, 3])],
    "optimizer.safetensors": new Uint8Array(2000).fill(step + 1),
    "rng.json": `{"format_version":1,"streams":{},"step":${step}}\n`,
  };
}

async function save(
  step: number,
  keepLast = Number.POSITIVE_INFINITY,
  extra: Partial<Parameters<typeof saveCheckpoint>[1]> = {},
) {
  return saveCheckpoint(ckpt, { step, files: filesFor(step), state: stateFor(step), keepLast, ...extra });
}

async function stepsOnDisk(): Promise<number[]> {
  return (await listCheckpoints(ckpt)).map((c) => c.step);
}

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

describe("saveCheckpoint", () => {
  test("writes every file, then state.json with the manifest, into step_%08d", async () => {
    const result = await saveCheckpoint(ckpt, {
      step: 7,
      files: filesFor(7),
      state: stateFor(7, { reference_model_sha256: "abc" }),
      keepLast: 3,
    });
    assert.equal(result.path, join(ckpt, "step_00000007"));
    assert.equal(result.replaced, false);
    assert.deepEqual(result.pruned, []);
    assert.deepEqual((await readdir(ckpt)).sort(), ["step_00000007"]);
    assert.deepEqual((await readdir(result.path)).sort(), [
      "model.safetensors",
      "optimizer.safetensors",
      "rng.json",
      "state.json",
    ]);
    const state = JSON.parse(await readFile(join(result.path, "state.json"), "utf8"));
    assert.equal(state.format_version, 1);
    assert.equal(state.global_step, 7);
    assert.equal(state.stage, "sft");
    assert.equal(state.reference_model_sha256, "abc");
    assert.ok(!Number.isNaN(Date.parse(state.created_at)));
    assert.deepEqual(Object.keys(state.files), ["model.safetensors", "optimizer.safetensors", "rng.json"]);
    for (const name of Object.keys(state.files)) {
      const bytes = await readFile(join(result.path, name));
      assert.deepEqual(state.files[name], { bytes: bytes.byteLength, sha256: sha256(bytes) }, name);
    }
    assert.equal(state.files["model.safetensors"].bytes, 1003);
    assert.deepEqual(result.state, state);
  });

  test("the store's own keys win over the caller's", async () => {
    const state = stateFor(1, { format_version: 99, files: { bogus: 1 }, created_at: "yesterday" });
    const result = await saveCheckpoint(ckpt, { step: 1, files: { a: "x" }, state, keepLast: 1 });
    assert.equal(result.state.format_version, 1);
    assert.deepEqual(Object.keys(result.state.files), ["a"]);
    assert.notEqual(result.state.created_at, "yesterday");
    assert.equal((await latestValidCheckpoint(ckpt))?.step, 1);
  });

  test("refuses a step not matching global_step, a bad keepLast, or a bad file name", async () => {
    await assert.rejects(
      saveCheckpoint(ckpt, { step: 2, files: {}, state: stateFor(3), keepLast: 1 }),
      /global_step 3/,
    );
    await assert.rejects(
      saveCheckpoint(ckpt, { step: 2, files: {}, state: stateFor(2), keepLast: 0 }),
      /keepLast/,
    );
    for (const name of ["state.json", "../x", "a/b", ".hidden", ""]) {
      await assert.rejects(
        saveCheckpoint(ckpt, { step: 2, files: { [name]: "x" }, state: stateFor(2), keepLast: 1 }),
        /bad checkpoint file name/,
      );
    }
    await assert.rejects(
      saveCheckpoint(ckpt, { step: 100_000_000, files: {}, state: stateFor(100_000_000), keepLast: 1 }),
      /step must be/,
    );
  });

  test("a save that fails part-way leaves no step dir and no staging dir", async () => {
    await save(1);
    // A chunk that is not bytes makes the write throw after the first file was written.
    const broken = { a: "fine", b: [42 as unknown as Uint8Array] };
    await assert.rejects(saveCheckpoint(ckpt, { step: 2, files: broken, state: stateFor(2), keepLast: 1 }));
    assert.deepEqual(await readdir(ckpt), ["step_00000001"]);
  });

  test("re-saving a step replaces it in place, keeping every other checkpoint", async () => {
    await save(1);
    await save(2);
    const again = await saveCheckpoint(ckpt, {
      step: 2,
      files: { "model.safetensors": "new weights" },
      state: stateFor(2, { finished: true }),
      keepLast: 2,
    });
    assert.equal(again.replaced, true);
    assert.deepEqual(await readdir(ckpt), ["step_00000001", "step_00000002"]);
    assert.equal(await readFile(join(ckpt, "step_00000002", "model.safetensors"), "utf8"), "new weights");
    const latest = await loadLatestCheckpoint(ckpt);
    assert.equal(latest?.state.finished, true);
    assert.deepEqual(Object.keys(latest?.state.files ?? {}), ["model.safetensors"]);
  });
});

test("saves started together from one process are queued, and all commit", async () => {
  const results = await Promise.all([1, 2, 3].map((step) => save(step)));
  assert.deepEqual(
    results.map((r) => r.step),
    [1, 2, 3],
  );
  assert.deepEqual((await readdir(ckpt)).sort(), ["step_00000001", "step_00000002", "step_00000003"]);
  assert.ok((await listCheckpoints(ckpt)).every((c) => c.valid));
});

describe("staging leftovers", () => {
  test("are never chosen, and the next save removes them", async () => {
    await save(1);
    // A complete-looking checkpoint under a staging name, with a higher step.
    await save(9);
    await rename(join(ckpt, "step_00000009"), join(ckpt, `.tmp-step_00000009-${DEAD_PID}-0badf00d`));
    await mkdir(join(ckpt, ".tmp-half-written"));
    assert.equal((await latestValidCheckpoint(ckpt))?.step, 1);
    assert.equal((await loadLatestCheckpoint(ckpt))?.step, 1);
    assert.deepEqual(await stepsOnDisk(), [1]);
    await save(2);
    assert.deepEqual((await readdir(ckpt)).sort(), ["step_00000001", "step_00000002"]);
  });

  test("a live process's staging dir is left alone", async () => {
    const live = `.tmp-step_00000003-${process.ppid}-00000000`;
    await mkdir(join(ckpt, live), { recursive: true });
    await save(1);
    assert.ok((await readdir(ckpt)).includes(live));
  });

  test("a replacement cut between its two renames is undone: the old checkpoint comes back", async () => {
    await save(4);
    await saveCheckpoint(ckpt, {
      step: 5,
      files: filesFor(5),
      state: stateFor(5, { copy: "old" }),
      keepLast: 9,
    });
    const elsewhere = join(root, "elsewhere");
    await saveCheckpoint(elsewhere, {
      step: 5,
      files: filesFor(5),
      state: stateFor(5, { copy: "new" }),
      keepLast: 9,
    });
    // The crash window: the old step_5 moved aside, the new one still staged.
    await rename(join(ckpt, "step_00000005"), join(ckpt, `.tmp-old-step_00000005-${DEAD_PID}-aaaaaaaa`));
    await rename(join(elsewhere, "step_00000005"), join(ckpt, `.tmp-step_00000005-${DEAD_PID}-bbbbbbbb`));
    assert.equal((await latestValidCheckpoint(ckpt))?.step, 4, "read-only lookups do not repair");
    assert.equal((await loadLatestCheckpoint(ckpt, { repair: false }))?.step, 4, "nor a load told not to");

    const loaded = await loadLatestCheckpoint(ckpt);
    assert.equal(loaded?.step, 5);
    assert.equal(loaded?.state.copy, "old");
    await save(6, 2);
    assert.deepEqual((await readdir(ckpt)).sort(), ["step_00000005", "step_00000006"]);
  });
});

describe("pruning", () => {
  test("keeps the newest keepLast valid checkpoints and reports what it removed", async () => {
    for (const step of [1, 2, 3, 4]) await save(step, 2);
    const result = await save(5, 2);
    assert.deepEqual(result.pruned, [join(ckpt, "step_00000003")]);
    assert.deepEqual(await stepsOnDisk(), [4, 5]);
    assert.deepEqual((await readdir(ckpt)).sort(), ["step_00000004", "step_00000005"]);
  });

  test("keep=1 while resuming from an older step: the resumed-from one and the newest survive", async () => {
    for (const step of [1, 2, 3, 4]) await save(step);
    await save(5, 1, { resumedFrom: join(ckpt, "step_00000002") });
    assert.deepEqual(await stepsOnDisk(), [2, 5]);
    await save(6, 1, { resumedFrom: 2 });
    assert.deepEqual(await stepsOnDisk(), [2, 6]);
  });

  test("resumedFrom in another folder (e.g. the previous stage) protects nothing here", async () => {
    for (const step of [1, 2, 3]) await save(step);
    await save(4, 1, { resumedFrom: join(root, "other", "checkpoints", "step_00000002") });
    assert.deepEqual(await stepsOnDisk(), [4]);
  });

  test("never deletes the newest valid one, nor the one just saved, even when it is older", async () => {
    await save(10);
    await save(3, 1);
    assert.deepEqual(await stepsOnDisk(), [3, 10]);
  });

  test("the protect hook keeps the checkpoints it names, and sees their state", async () => {
    for (const step of [1, 2, 3, 4]) await save(step);
    const seen: CheckpointInfo[] = [];
    await save(5, 1, {
      protect: async (info) => {
        seen.push(info);
        return info.step === 1 || info.step === 3;
      },
    });
    assert.deepEqual(await stepsOnDisk(), [1, 3, 5]);
    assert.deepEqual(seen.map((i) => i.step).sort(), [1, 2, 3, 4]);
    assert.ok(seen.every((i) => i.valid && i.state?.global_step === i.step));
  });

  test("foreign files and dirs, and invalid step dirs, are never pruned", async () => {
    await mkdir(ckpt, { recursive: true });
    await writeFile(join(ckpt, "notes.txt"), "mine");
    await mkdir(join(ckpt, "best"));
    await mkdir(join(ckpt, "step_12"));
    await writeFile(join(ckpt, "step_00000077"), "a file, not a dir");
    await save(1);
    await save(2);
    await writeFile(join(ckpt, "step_00000001", "state.json"), "{ broken");
    for (const step of [3, 4, 5]) await save(step, 1);
    assert.deepEqual((await readdir(ckpt)).sort(), [
      "best",
      "notes.txt",
      "step_00000001",
      "step_00000005",
      "step_00000077",
      "step_12",
    ]);
    assert.equal((await latestValidCheckpoint(ckpt))?.step, 5);
  });
});

describe("legacy weights file", () => {
  test("is replaced atomically, parent created, no temp files left", async () => {
    const legacy = join(root, "out", "full_sft_64.safetensors");
    await writeLegacyWeights(legacy, [new Uint8Array([1, 2]), new Uint8Array([3])]);
    assert.deepEqual([...(await readFile(legacy))], [1, 2, 3]);
    await writeLegacyWeights(legacy, "second");
    assert.equal(await readFile(legacy, "utf8"), "second");
    assert.deepEqual(await readdir(join(root, "out")), ["full_sft_64.safetensors"]);
  });
});

test("stepDirName pads to eight digits", () => {
  assert.equal(stepDirName(0), "step_00000000");
  assert.equal(stepDirName(123), "step_00000123");
  assert.equal(stepDirName(99_999_999), "step_99999999");
});
