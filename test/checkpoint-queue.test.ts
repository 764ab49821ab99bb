/**
 * The checkpoint work queue (docs/formats.md#the-checkpoint-queue-checkpointsjsonl): its line format and errors; one line per step; concurrent
 * writers under the lock lose nothing; a SIGKILLed writer never leaves the file half-written, nor
 * its lock stuck; claims; and the SFT trainer's side — every save listed, METADATA_FILE at the end,
 * and keep-last pruning that never deletes a checkpoint a pending line names.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { saveCheckpoint } from "../lib/checkpoint/index.ts";
import { UserError } from "../lib/cli/errors.ts";
import { readRunMetadata } from "../lib/metadata/run-metadata.ts";
import {
  addCheckpoints,
  completeEntry,
  parseQueue,
  queueFileFor,
  readQueue,
  serializeQueue,
} from "../lib/queue/index.ts";
import type { TrainerArgs } from "../lib/stages/args.ts";
import { claimNextLine, runDirName } from "../pipelines/sweep/claims.ts";
import { openCheckpointQueue } from "../trainer/stages/checkpoint-queue.ts";
import { stateFor } from "./fixtures/checkpoint-helpers.ts";
import { REPO, runDirs, runTrainerToEnd, TINY_MODEL } from "./support/trainer-process.ts";

const root = mkdtempSync(join(tmpdir(), "baton-queue-"));
after(() => rmSync(root, { recursive: true, force: true }));
let folders = 0;
const fresh = (name: string): string => {
  const dir = join(root, `${name}-${++folders}`);
  mkdirSync(dir, { recursive: true });
  return dir;
};

const WRITER = join(REPO, "test", "fixtures", "queue-writer.ts");
function startWriter(args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  return spawn(process.execPath, ["--import", "tsx", WRITER, ...args], {
    cwd: REPO,
    env: { ...process.env, NODE_OPTIONS: "", ...env },
    stdio: ["ignore", "pipe", "inherit"],
  });
}
const exited = (child: ChildProcess) =>
  new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));

function expectUserError(run: () => unknown, message: string): void {
  assert.throws(run, (error: unknown) => error instanceof UserError && error.message === message);
}

/** A claim on `step` as a crashed sweep leaves it: lock dir held, owner `pid`, DPO child `childPid`. */
function leaveClaim(claims: string, step: number, pid: number, childPid: number | null | undefined): void {
  mkdirSync(join(claims, `${runDirName(step)}.lock`));
  const owner = {
    pid,
    host: hostname(),
    process_started: null,
    step,
    claimed_at: "",
    child_pid: childPid ?? null,
  };
  writeFileSync(join(claims, `${runDirName(step)}.json`), JSON.stringify(owner));
}

describe("queue lines", () => {
  test("each malformed line is one error naming file:line", () => {
    assert.throws(
      () => parseQueue('{"checkpoint": "a", "step": 1}\n{"checkpoint": "b", "step": 2\n', "q.jsonl"),
      (error: unknown) =>
        error instanceof UserError &&
        /^q\.jsonl:2: not valid JSON \(.+\); expected \{"checkpoint": "<path>", "step": N, "completed": false\}$/.test(
          error.message,
        ),
    );
    const cases: Array<[text: string, message: string]> = [
      [
        "\n[1, 2]\n",
        'q.jsonl:2: expected a JSON object {"checkpoint": "<path>", "step": N, "completed": false}, got [1, 2]',
      ],
      ['{"checkpoint": "a", "step": -1}', 'q.jsonl:1: "step" must be a whole number ≥ 0, got -1'],
      ['{"checkpoint": "", "step": 1}', 'q.jsonl:1: "checkpoint" must be a non-empty path, got ""'],
      [
        '{"checkpoint": "a", "step": 1, "completed": "yes"}',
        'q.jsonl:1: "completed" must be true or false, got "yes"',
      ],
      [
        '{"checkpoint": "a", "step": 1}\n\n{"checkpoint": "b", "step": 1}\n',
        "q.jsonl:3: step 1 is already listed on line 1",
      ],
    ];
    for (const [text, message] of cases) expectUserError(() => parseQueue(text, "q.jsonl"), message);
  });

  test("a line without completed is pending; unknown fields survive a rewrite", () => {
    const text =
      '{"checkpoint": "a", "step": 1, "note": {"x": 1}}\n{"completed": true, "step": 2, "checkpoint": "b"}\n';
    const entries = parseQueue(text, "q.jsonl");
    assert.deepEqual(
      entries.map((e) => [e.step, e.completed]),
      [
        [1, false],
        [2, true],
      ],
    );
    assert.equal(
      serializeQueue(entries),
      '{"checkpoint":"a","step":1,"completed":false,"note":{"x":1}}\n{"checkpoint":"b","step":2,"completed":true}\n',
    );
  });

  test("one line per step, in step order, absolute paths; a step offered again keeps its line", async () => {
    const queue = join(fresh("order"), "sft", "checkpoints.jsonl");
    await addCheckpoints(queue, [{ checkpoint: "out/sft/checkpoints/step_00000020", step: 20 }]);
    await addCheckpoints(queue, [{ checkpoint: "/abs/step_00000010", step: 10 }]);
    await completeEntry(queue, 20, { metrics: { preference_accuracy: 0.5 } });
    const again = await addCheckpoints(queue, [{ checkpoint: "/elsewhere/step_00000020", step: 20 }]);
    assert.equal(again.added.length, 0);
    assert.equal(again.existing[0]?.completed, true);
    const entries = await readQueue(queue);
    assert.deepEqual(
      entries.map((e) => [e.step, e.checkpoint, e.completed]),
      [
        [10, "/abs/step_00000010", false],
        [20, join(process.cwd(), "out/sft/checkpoints/step_00000020"), true],
      ],
    );
  });

  test("four processes adding lines at once lose none (the lock)", async () => {
    const queue = join(fresh("concurrent"), "checkpoints.jsonl");
    const writers = [0, 1, 2, 3].map((k) => startWriter([queue, String(k), "25", "4"]));
    assert.deepEqual(await Promise.all(writers.map(exited)), [0, 0, 0, 0]);
    assert.deepEqual(
      (await readQueue(queue)).map((e) => e.step),
      Array.from({ length: 100 }, (_, i) => i),
    );
  });

  test("a writer SIGKILLed mid-rewrite never leaves the file half-written, nor its lock stuck", async () => {
    const queue = join(fresh("killed"), "checkpoints.jsonl");
    // Long lines make each rewrite big, so kills land inside writes.
    const env = { QUEUE_WRITER_PADDING: "2000" };
    let expected = 0;
    // Each round after the first waits out the killed holder's stale lock (LOCK_STALE_MS): two rounds.
    for (let round = 0; round < 2; round++) {
      const writer = startWriter([queue, String(expected), "0", "1"], env);
      await new Promise<void>((started) => writer.stdout?.once("data", () => started()));
      await new Promise((wait) => setTimeout(wait, 100 + Math.random() * 300));
      writer.kill("SIGKILL");
      await exited(writer);
      const steps = (await readQueue(queue)).map((e) => e.step);
      assert.ok(steps.length > expected, `round ${round}: nothing was added`);
      assert.deepEqual(
        steps,
        Array.from({ length: steps.length }, (_, i) => i),
      );
      expected = steps.length;
    }
    // The last holder may have died holding the lock: the next writer must still get through.
    const started = Date.now();
    await addCheckpoints(queue, [{ checkpoint: "/ckpt/last", step: expected }]);
    assert.ok(Date.now() - started < 15_000);
    // …and the staging files of writers killed mid-write are gone.
    assert.deepEqual(readdirSync(join(queue, "..")).sort(), ["checkpoints.jsonl"]);
  });

  test("a lock left by a crashed holder is taken over once stale", async () => {
    const queue = join(fresh("stale"), "checkpoints.jsonl");
    mkdirSync(`${queue}.lock`);
    const longAgo = new Date(Date.now() - 60_000);
    utimesSync(`${queue}.lock`, longAgo, longAgo);
    const started = Date.now();
    await addCheckpoints(queue, [{ checkpoint: "/ckpt/1", step: 1 }]);
    assert.ok(Date.now() - started < 2_000, `took ${Date.now() - started} ms`);
    assert.equal(existsSync(`${queue}.lock`), false);
  });
});

describe("line claims", () => {
  test("a claimed line is not claimed again; a dead holder's claim is taken over at once", async () => {
    const dir = fresh("claims");
    const queue = join(dir, "checkpoints.jsonl");
    const claims = join(dir, ".sweep");
    await addCheckpoints(
      queue,
      [1, 2].map((step) => ({ checkpoint: `/c/${step}`, step })),
    );
    const first = await claimNextLine(queue, claims, new Set());
    assert.equal(first.claim?.entry.step, 1);
    // Line 1 is held (by this very process, alive): the next search passes it over.
    const second = await claimNextLine(queue, claims, new Set());
    assert.equal(second.claim?.entry.step, 2);
    assert.deepEqual(
      second.busy.map((b) => [b.step, b.why, b.holder?.pid]),
      [[1, "claimed", process.pid]],
    );
    await second.claim?.release();
    await first.claim?.complete({ metrics: null });
    assert.deepEqual(
      (await readQueue(queue)).map((e) => e.completed),
      [true, false],
    );
    assert.deepEqual(readdirSync(claims), []);

    // A claim whose holder died (its lock never released): taken over without waiting for staleness.
    const dead = spawn(process.execPath, ["-e", ""]);
    const deadPid = dead.pid as number;
    await exited(dead);
    leaveClaim(claims, 2, deadPid, null);
    const taken = await claimNextLine(queue, claims, new Set());
    assert.equal(taken.claim?.entry.step, 2);
    await taken.claim?.release();

    // …unless its DPO child is still running: then the line waits for it.
    const orphan = spawn(process.execPath, ["-e", "setTimeout(() => {}, 30000)"], { detached: true });
    try {
      leaveClaim(claims, 2, deadPid, orphan.pid);
      const waiting = await claimNextLine(queue, claims, new Set());
      assert.equal(waiting.claim, null);
      assert.deepEqual(
        waiting.busy.map((b) => [b.step, b.why]),
        [[2, "orphan"]],
      );
    } finally {
      process.kill(-(orphan.pid as number), "SIGKILL");
    }
  });
});

/** What openCheckpointQueue needs of a session. */
function fakeSession(outDir: string, warnings: string[] = []) {
  const args = { out_dir: outDir, ckpt_dir: join(outDir, "checkpoints"), extra: { checkpoint_queue: true } };
  return {
    args: args as unknown as TrainerArgs,
    log: () => {},
    warn: (message: string) => warnings.push(message),
  };
}

describe("SFT pruning and the queue", () => {
  test("keep-last pruning never deletes a checkpoint a pending line names", async () => {
    const outDir = fresh("protect");
    const ckptDir = join(outDir, "checkpoints");
    const save = (step: number, protect?: Parameters<typeof saveCheckpoint>[1]["protect"]) =>
      saveCheckpoint(ckptDir, {
        step,
        files: { "model.safetensors": `w${step}` },
        state: stateFor(step),
        keepLast: 1,
        ...(protect ? { protect } : {}),
      });
    for (const step of [1, 2, 3, 4]) await save(step);
    assert.deepEqual(readdirSync(ckptDir), ["step_00000004"], "without the hook keep-last 1 keeps one");

    for (const step of [1, 2, 3]) {
      await saveCheckpoint(ckptDir, {
        step,
        files: { "model.safetensors": `w${step}` },
        state: stateFor(step),
        keepLast: 99,
      });
    }
    const warnings: string[] = [];
    const hooks = await openCheckpointQueue(fakeSession(outDir, warnings)); // lists the four saved checkpoints, which had no lines yet
    const queue = queueFileFor(outDir);
    assert.deepEqual(
      (await readQueue(queue)).map((e) => [e.step, e.completed]),
      [
        [1, false],
        [2, false],
        [3, false],
        [4, false],
      ],
    );
    await completeEntry(queue, 2, {});
    await completeEntry(queue, 4, {});
    const result = await save(5, hooks.pinned);
    await hooks.add(result.path, 5);
    assert.deepEqual(readdirSync(ckptDir).sort(), ["step_00000001", "step_00000003", "step_00000005"]);
    assert.deepEqual(result.pruned.sort(), [join(ckptDir, "step_00000002"), join(ckptDir, "step_00000004")]);

    // Step 5 saved again: still one line. A completed line's step saved again is kept and warned about.
    await hooks.add(result.path, 5);
    await completeEntry(queue, 5, {});
    await hooks.add(result.path, 5);
    assert.deepEqual(
      (await readQueue(queue)).map((e) => e.step),
      [1, 2, 3, 4, 5],
    );
    assert.equal(warnings.length, 1);
    assert.match(warnings[0] ?? "", /step 5 was saved again, but its line .* is already completed/);
  });

  test("the SFT trainer lists every save, resumes without duplicates, spares pending lines, prints METADATA_FILE", async () => {
    const dir = fresh("sft");
    const queue = join(dir, "sft", "checkpoints.jsonl");
    const args = (steps: number, extra: string[] = []) => [
      ...runDirs(dir, "sft"),
      ...TINY_MODEL,
      ...["--max_steps", String(steps), "--save_interval", "1", "--keep_last_checkpoints", "1"],
      ...[
        "--backend",
        "wasm",
        "--eval",
        "false",
        "--data_parallel",
        "1",
        "--checkpoint_queue",
        "true",
        "--init_from",
        "none",
        ...extra,
      ],
    ];
    const first = await runTrainerToEnd("train_full_sft.ts", args(3));
    assert.equal(first.code, 0, first.stderr);
    const ckptDir = join(dir, "sft", "checkpoints");
    assert.deepEqual(readdirSync(ckptDir), ["step_00000001", "step_00000002", "step_00000003"]);
    assert.deepEqual(
      (await readQueue(queue)).map((e) => [e.step, e.checkpoint, e.completed]),
      [1, 2, 3].map((step) => [step, join(ckptDir, `step_0000000${step}`), false]),
    );
    const metadataLine = first.stdout.split("\n").find((line) => line.startsWith("METADATA_FILE:"));
    assert.equal(metadataLine, `METADATA_FILE:${join(dir, "sft", "metadata.json")}`);
    const metadata = await readRunMetadata(join(dir, "sft", "metadata.json"));
    assert.equal(metadata?.state, "finished");
    assert.equal(metadata?.last_checkpoint, join(ckptDir, "step_00000003"));

    // Step 1 swept; the finished step 3 gone, so the run resumes from step 2, saves 3 again, then 4 and 5.
    await completeEntry(queue, 1, {});
    rmSync(join(ckptDir, "step_00000003"), { recursive: true });
    const second = await runTrainerToEnd("train_full_sft.ts", args(5));
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /resuming from .*step_00000002/);
    assert.deepEqual(readdirSync(ckptDir).sort(), [
      "step_00000002",
      "step_00000003",
      "step_00000004",
      "step_00000005",
    ]);
    assert.deepEqual(
      (await readQueue(queue)).map((e) => [e.step, e.completed]),
      [
        [1, true],
        [2, false],
        [3, false],
        [4, false],
        [5, false],
      ],
    );

    // --checkpoint_queue false: no queue, plain keep-last pruning.
    const plain = fresh("plain");
    const off = await runTrainerToEnd("train_full_sft.ts", [
      ...runDirs(plain, "sft"),
      ...TINY_MODEL,
      ...["--max_steps", "3", "--save_interval", "1", "--keep_last_checkpoints", "1"],
      ...[
        "--backend",
        "wasm",
        "--eval",
        "false",
        "--data_parallel",
        "1",
        "--checkpoint_queue",
        "false",
        "--init_from",
        "none",
      ],
    ]);
    assert.equal(off.code, 0, off.stderr);
    assert.equal(existsSync(join(plain, "sft", "checkpoints.jsonl")), false);
    assert.deepEqual(readdirSync(join(plain, "sft", "checkpoints")), ["step_00000003"]);
    assert.ok(readFileSync(join(plain, "sft", "metadata.json"), "utf8").includes('"state": "finished"'));
  });
});
