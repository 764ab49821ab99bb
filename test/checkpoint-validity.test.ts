import assert from "node:assert/strict";
import { readFile, rename, rm, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, test } from "node:test";
import {
  inspectCheckpoint,
  latestValidCheckpoint,
  listCheckpoints,
  loadLatestCheckpoint,
  loadNamedCheckpoint,
  parseCheckpointState,
  saveCheckpoint,
  verifyCheckpoint,
} from "../lib/checkpoint/index.ts";
import { UserError } from "../lib/cli/errors.ts";
import { decodeSafetensors, encodeSafetensors, requireTensor } from "../lib/safetensors/index.ts";
import { stateFor, tempDir } from "./fixtures/checkpoint-helpers.ts";

let root: string;
let ckpt: string;
let cleanup: () => Promise<void>;
beforeEach(async () => {
  ({ path: root, cleanup } = await tempDir("checkpoint-validity"));
  ckpt = join(root, "checkpoints");
});
afterEach(() => cleanup());

function weights(step: number): Uint8Array[] {
  return encodeSafetensors({
    "lm_head.weight": { dtype: "F32", shape: [4], data: new Float32Array(4).fill(step) },
  });
}

async function save(step: number): Promise<string> {
  const files = { "model.safetensors": weights(step), "rng.json": '{"format_version":1,"streams":{}}' };
  return (await saveCheckpoint(ckpt, { step, files, state: stateFor(step), keepLast: 100 })).path;
}

const modelOf = (path: string) => join(path, "model.safetensors");

async function flipLastByte(file: string): Promise<void> {
  const bytes = await readFile(file);
  bytes[bytes.length - 1] = (bytes[bytes.length - 1] as number) ^ 0xff;
  await writeFile(file, bytes);
}

async function editState(path: string, edit: (state: Record<string, unknown>) => void): Promise<void> {
  const file = join(path, "state.json");
  const state = JSON.parse(await readFile(file, "utf8"));
  edit(state);
  await writeFile(file, JSON.stringify(state));
}

describe("cheap validity", () => {
  test("a complete checkpoint is valid, with its size, mtime and state", async () => {
    const path = await save(3);
    const info = await inspectCheckpoint(path);
    assert.equal(info.valid, true);
    assert.equal(info.reason, null);
    assert.equal(info.step, 3);
    assert.equal(info.name, "step_00000003");
    assert.equal(info.state?.tokens_seen, 3000);
    const stateBytes = (await readFile(join(path, "state.json"))).byteLength;
    const listed = Object.values(info.state?.files ?? {}).reduce((sum, f) => sum + f.bytes, 0);
    assert.equal(info.bytes, listed + stateBytes);
    assert.ok(Date.now() - info.mtime.getTime() < 60_000);
  });

  const cases: Array<[string, (path: string) => Promise<unknown>, RegExp]> = [
    ["a listed file is missing", (p) => rm(modelOf(p)), /^model\.safetensors: missing$/],
    [
      "a listed file has the wrong size",
      (p) => writeFile(modelOf(p), "short"),
      /^model\.safetensors: 5 bytes, expected \d+$/,
    ],
    ["state.json is missing", (p) => rm(join(p, "state.json")), /^state\.json: missing$/],
    [
      "state.json does not parse",
      (p) => writeFile(join(p, "state.json"), '{"stage": "sft",'),
      /not valid JSON/,
    ],
    ["state.json is not an object", (p) => writeFile(join(p, "state.json"), "[1]"), /not a JSON object/],
    [
      "state.json lacks a required field",
      (p) =>
        editState(p, (s) => {
          delete s.tokens_seen;
        }),
      /^state\.json: missing field tokens_seen$/,
    ],
    [
      "a field has the wrong type",
      (p) =>
        editState(p, (s) => {
          s.finished = "no";
        }),
      /field finished must be a boolean/,
    ],
    [
      "the format is newer than we read",
      (p) =>
        editState(p, (s) => {
          s.format_version = 2;
        }),
      /format_version 2 is newer/,
    ],
    [
      "the manifest names a path outside the checkpoint",
      (p) =>
        editState(p, (s) => {
          s.files = { "../x": { bytes: 0, sha256: "0".repeat(64) } };
        }),
      /not a plain file name/,
    ],
    [
      "global_step does not match the directory",
      (p) =>
        editState(p, (s) => {
          s.global_step = 12;
        }),
      /^state\.json: global_step 12 does not match directory step_00000003$/,
    ],
  ];
  for (const [what, damage, reason] of cases) {
    test(`invalid when ${what}`, async () => {
      const older = await save(2);
      const path = await save(3);
      await damage(path);
      const info = await inspectCheckpoint(path);
      assert.equal(info.valid, false);
      assert.match(info.reason ?? "", reason);
      assert.equal((await latestValidCheckpoint(ckpt))?.path, older);
      const warnings: string[] = [];
      assert.equal((await loadLatestCheckpoint(ckpt, { onWarning: (m) => warnings.push(m) }))?.step, 2);
      assert.equal(warnings.length, 1);
      assert.ok(warnings[0]?.includes("step_00000003"), warnings[0]);
    });
  }

  test("a directory renamed to another step number is invalid", async () => {
    const path = await save(3);
    await rename(path, join(ckpt, "step_00000004"));
    const [info] = await listCheckpoints(ckpt);
    assert.equal(info?.reason, "state.json: global_step 3 does not match directory step_00000004");
  });

  test("parseCheckpointState reports problems in words", () => {
    assert.deepEqual(parseCheckpointState("nope"), { problem: "not valid JSON" });
    assert.deepEqual(parseCheckpointState("{}"), { problem: "missing field format_version" });
  });
});

describe("hash verification", () => {
  test("a flipped byte (same size) passes the cheap rules but fails verification", async () => {
    const path = await save(3);
    await flipLastByte(modelOf(path));
    assert.equal((await inspectCheckpoint(path)).valid, true);
    const result = await verifyCheckpoint(path);
    assert.equal(result.valid, false);
    assert.equal(result.problems.length, 1);
    assert.match(
      result.problems[0] ?? "",
      /^model\.safetensors: SHA-256 mismatch \(expected [0-9a-f]{64}, got [0-9a-f]{64}\)$/,
    );
    assert.equal((await verifyCheckpoint(path, { hashes: false })).valid, true);
  });

  test("loadLatestCheckpoint falls back to the next older verified one, warning about checkpoint and file", async () => {
    await save(1);
    const good = await save(2);
    const bad = await save(3);
    await flipLastByte(join(bad, "rng.json"));
    const warnings: string[] = [];
    const loaded = await loadLatestCheckpoint(ckpt, {
      onWarning: (m) => warnings.push(m),
      keepContents: true,
    });
    assert.equal(loaded?.path, good);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0] ?? "", /step_00000003 failed verification: rng\.json: SHA-256 mismatch/);
    // The bytes returned are the verified ones, ready to decode.
    const model = decodeSafetensors(loaded?.contents?.get("model.safetensors") as Uint8Array);
    assert.deepEqual(Array.from(requireTensor(model, "lm_head.weight", "F32").data), [2, 2, 2, 2]);
    assert.equal((await latestValidCheckpoint(ckpt))?.path, bad, "the cheap lookup does not hash");
  });

  test("verifyCheckpoint lists every problem and handles non-checkpoints", async () => {
    const path = await save(3);
    await rm(modelOf(path));
    await writeFile(join(path, "rng.json"), "x");
    const result = await verifyCheckpoint(path);
    assert.deepEqual(result.problems.sort(), [
      "model.safetensors: missing",
      "rng.json: 1 bytes, expected 33",
    ]);
    assert.deepEqual((await verifyCheckpoint(join(ckpt, "nope"))).problems, [
      "nope: not a step_NNNNNNNN name",
    ]);
    assert.match((await verifyCheckpoint(join(ckpt, "step_00000009"))).problems[0] ?? "", /no such file/);
  });

  test("no valid checkpoint at all gives null", async () => {
    const path = await save(1);
    await flipLastByte(modelOf(path));
    assert.equal(await loadLatestCheckpoint(ckpt), null);
    assert.equal(await loadLatestCheckpoint(join(root, "missing")), null);
  });
});

describe("a checkpoint named on the command line", () => {
  test("a step dir is verified as it is; a folder gives its latest verified one; errors name the flag", async () => {
    const older = await save(1);
    const newer = await save(2);
    assert.equal((await loadNamedCheckpoint(older, "--resume")).step, 1);
    assert.equal((await loadNamedCheckpoint(root, "--resume")).path, newer, "a stage folder");
    assert.equal((await loadNamedCheckpoint(ckpt, "--resume")).path, newer, "a checkpoints folder");

    await flipLastByte(modelOf(newer));
    const fail = (path: string, pattern: RegExp) =>
      assert.rejects(
        loadNamedCheckpoint(path, "--init_from"),
        (error: unknown) => error instanceof UserError && pattern.test(error.message),
      );
    await fail(
      newer,
      /^--init_from .*step_00000002: not a valid checkpoint \(model\.safetensors: SHA-256 mismatch/,
    );
    assert.equal((await loadNamedCheckpoint(root, "--resume")).path, older, "falls back past the bad one");
    await fail(join(root, "missing"), /^--init_from .*missing: no such file or directory$/);
    await flipLastByte(modelOf(older));
    await fail(root, /^--init_from .*: no valid checkpoint in .*checkpoints$/);
  });
});

describe("listing and latest", () => {
  test("latest is chosen by step number, never by modification time", async () => {
    const paths = [await save(1), await save(9), await save(5)];
    // Make the lowest step the most recently touched.
    const now = Date.now() / 1000;
    await utimes(paths[0] as string, now + 1000, now + 1000);
    await utimes(paths[1] as string, now - 100_000, now - 100_000);
    await utimes(join(paths[1] as string, "state.json"), now - 100_000, now - 100_000);
    assert.equal((await latestValidCheckpoint(ckpt))?.step, 9);
    assert.equal((await loadLatestCheckpoint(ckpt))?.step, 9);
  });

  test("listCheckpoints: lowest step first, staging and foreign entries ignored, missing dir empty", async () => {
    await save(10);
    await save(2);
    await writeFile(join(ckpt, "README"), "foreign");
    await saveCheckpoint(join(root, "x"), { step: 50, files: {}, state: stateFor(50), keepLast: 1 });
    await rename(join(root, "x", "step_00000050"), join(ckpt, ".tmp-step_00000050-1-00"));
    const list = await listCheckpoints(ckpt);
    assert.deepEqual(
      list.map((c) => [c.name, c.valid]),
      [
        ["step_00000002", true],
        ["step_00000010", true],
      ],
    );
    assert.deepEqual(await listCheckpoints(join(root, "missing")), []);
    assert.equal(await latestValidCheckpoint(join(root, "missing")), null);
    await assert.rejects(listCheckpoints(join(ckpt, "README")), /not a directory/);
  });
});
