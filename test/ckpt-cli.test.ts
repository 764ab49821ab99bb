import assert from "node:assert/strict";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { saveCheckpoint } from "../lib/checkpoint/index.ts";
import { addCheckpoints, queueFileFor } from "../lib/queue/index.ts";
import { stateFor, tempDir } from "./fixtures/checkpoint-helpers.ts";
import { assertOneLineError } from "./support/one-line-error.ts";

const CLI = fileURLToPath(new URL("../pipelines/ckpt.ts", import.meta.url));

async function ckpt(...args: string[]) {
  // stderr whole: the one-line check needs to see its final newline (and nothing after it).
  const result = await execa(process.execPath, ["--import", "tsx", CLI, ...args], {
    reject: false,
    stripFinalNewline: { stderr: false },
  });
  return { code: result.exitCode, stdout: result.stdout, stderr: result.stderr };
}

let root: string;
let stage: string;
let ckptDir: string;
let cleanup: () => Promise<void>;

before(async () => {
  ({ path: root, cleanup } = await tempDir("ckpt-cli"));
  stage = join(root, "sft");
  ckptDir = join(stage, "checkpoints");
  for (const step of [1, 2, 3]) {
    await saveCheckpoint(ckptDir, {
      step,
      files: { "model.safetensors": new Uint8Array(100).fill(step), "rng.json": "{}" },
      state: stateFor(step, { finished: step === 2 }),
      keepLast: 10,
    });
  }
  // step 3 damaged beyond the cheap rules (wrong size), step 2 is the latest valid one.
  await writeFile(join(ckptDir, "step_00000003", "model.safetensors"), "short");
  await mkdir(join(ckptDir, ".tmp-step_00000004-1-abcd"));
});
after(() => cleanup());

describe("ckpt ls", () => {
  test("lists each checkpoint with status, reason, size, age, finished and the latest", async () => {
    const { code, stdout } = await ckpt("ls", stage);
    assert.equal(code, 0);
    const lines = stdout.split("\n");
    assert.match(lines[0] ?? "", /checkpoints: 2 valid, 1 invalid$/);
    const row = (name: string) => lines.find((l) => l.startsWith(name)) ?? "";
    assert.match(row("step_00000001"), /^step_00000001\s+valid\s+\d+ B\s+(just now|\d+ seconds? ago)\s*$/);
    assert.match(row("step_00000002"), /valid .*finished\s+<- latest/);
    assert.match(row("step_00000003"), /INVALID .*model\.safetensors: 5 bytes, expected 100/);
    assert.doesNotMatch(stdout, /\.tmp-/);
  });

  test("--json gives the same facts to scripts, and a checkpoints folder works too", async () => {
    const { code, stdout } = await ckpt("ls", "--json", ckptDir);
    assert.equal(code, 0);
    const rows = JSON.parse(stdout);
    assert.deepEqual(
      rows.map((r: { step: number; valid: boolean; finished: boolean; latest: boolean }) => [
        r.step,
        r.valid,
        r.finished,
        r.latest,
      ]),
      [
        [1, true, false, false],
        [2, true, true, true],
        [3, false, false, false],
      ],
    );
  });

  test("an empty checkpoints folder", async () => {
    const empty = join(root, "empty", "checkpoints");
    await mkdir(empty, { recursive: true });
    const { code, stdout } = await ckpt("ls", empty);
    assert.equal(code, 0);
    assert.match(stdout, /no checkpoints in/);
  });
});

describe("ckpt latest", () => {
  test("prints the latest valid checkpoint's path", async () => {
    const { code, stdout } = await ckpt("latest", stage);
    assert.equal(code, 0);
    assert.equal(stdout, join(ckptDir, "step_00000002"));
  });

  test("exits 1 when there is none", async () => {
    const empty = join(root, "none", "checkpoints");
    await mkdir(empty, { recursive: true });
    const run = await ckpt("latest", empty);
    assert.equal(run.stdout, "");
    assertOneLineError(run, /^ckpt: error: no valid checkpoint in /, 1);
  });
});

describe("ckpt verify", () => {
  test("a folder: every checkpoint hashed, exit 1 when any fails", async () => {
    const { code, stdout } = await ckpt("verify", stage);
    assert.equal(code, 1);
    assert.match(stdout, /step_00000001: ok \(2 files, 102 B hashed\)/);
    assert.match(stdout, /step_00000003: FAILED\n\s+model\.safetensors: 5 bytes, expected 100/);
    assert.match(stdout, /2 of 3 checkpoints verified/);
  });

  test("one step folder: exit 0 when it verifies, 1 on a flipped byte", async () => {
    const good = join(ckptDir, "step_00000001");
    assert.equal((await ckpt("verify", good)).code, 0);
    const file = join(good, "model.safetensors");
    const bytes = await readFile(file);
    bytes[0] = 0xee;
    await writeFile(file, bytes);
    const { code, stdout } = await ckpt("verify", good);
    assert.equal(code, 1);
    assert.match(stdout, /model\.safetensors: SHA-256 mismatch/);
  });
});

describe("ckpt bad input: one line, no stack, exit 2", () => {
  test("a missing folder", async () => {
    assertOneLineError(
      await ckpt("ls", join(root, "nope")),
      /^ckpt: error: .*nope: no such file or directory$/,
    );
  });

  test("a folder that holds no checkpoints", async () => {
    const plain = join(root, "plain");
    await mkdir(plain);
    assertOneLineError(await ckpt("latest", plain), /not a stage folder .* nor a checkpoints folder/);
  });

  test("a file, a step folder given to ls, an unknown command, no command", async () => {
    const file = join(root, "file.txt");
    await writeFile(file, "x");
    for (const [args, pattern] of [
      [["ls", file], /not a directory/],
      [["ls", join(ckptDir, "step_00000001")], /is a single checkpoint/],
      [["frobnicate", stage], /Unknown argument/],
      [[], /say which command/],
    ] as Array<[string[], RegExp]>) {
      assertOneLineError(await ckpt(...args), pattern);
    }
  });

  test("--help describes the commands", async () => {
    const { code, stdout } = await ckpt("--help");
    assert.equal(code, 0);
    for (const command of ["ls <dir>", "verify <dir>", "latest <dir>"])
      assert.ok(stdout.includes(command), command);
  });
});

describe("pinned and hash-checked", () => {
  test("ls says which checkpoints a pending queue line pins; ls --verify and latest --verify check SHA-256s", async (t) => {
    const dir = await tempDir("ckpt-pinned");
    t.after(dir.cleanup);
    const sft = join(dir.path, "sft");
    const ckpts = join(sft, "checkpoints");
    for (const step of [1, 2]) {
      await saveCheckpoint(ckpts, {
        step,
        files: { "model.safetensors": new Uint8Array(64).fill(step) },
        state: stateFor(step),
        keepLast: 10,
      });
    }
    await addCheckpoints(queueFileFor(sft), [{ checkpoint: join(ckpts, "step_00000001"), step: 1 }]);
    const listed = await ckpt("ls", sft);
    assert.equal(listed.code, 0, listed.stderr);
    const row = (name: string) => listed.stdout.split("\n").find((l) => l.startsWith(name)) ?? "";
    assert.match(
      row("step_00000001"),
      /pinned: pending in .*checkpoints\.jsonl \(a DPO sweep has not trained from it yet\)/,
    );
    assert.doesNotMatch(row("step_00000002"), /pinned/);

    // An unreadable queue is said, not shown as "nothing pinned".
    const queue = queueFileFor(sft);
    const queueText = await readFile(queue, "utf8");
    await writeFile(queue, "{not json\n");
    const unread = await ckpt("ls", sft);
    assert.equal(unread.code, 0, unread.stderr);
    assert.match(
      unread.stderr,
      /^ckpt: warning: .*checkpoints\.jsonl.*; which checkpoints it pins is unknown\n$/,
    );
    await writeFile(queue, queueText);

    // One flipped byte, same size: the cheap rules pass, the hashes do not.
    const model = join(ckpts, "step_00000002", "model.safetensors");
    const bytes = await readFile(model);
    bytes[0] = 0xee;
    await writeFile(model, bytes);
    assert.match((await ckpt("ls", sft)).stdout, /step_00000002\s+valid/);
    const verified = await ckpt("ls", "--verify", sft);
    assert.match(verified.stdout, /1 valid, 1 invalid \(SHA-256s checked\)/);
    assert.match(verified.stdout, /step_00000002\s+INVALID .*model\.safetensors: SHA-256 mismatch/);
    assert.equal((await ckpt("latest", sft)).stdout.trim(), join(ckpts, "step_00000002"));
    const latest = await ckpt("latest", "--verify", sft);
    assert.equal(latest.code, 0);
    assert.equal(latest.stdout.trim(), join(ckpts, "step_00000001"));
    assert.match(latest.stderr, /step_00000002: failed verification: model\.safetensors: SHA-256 mismatch/);
  });
});
