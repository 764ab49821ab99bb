/**
 * Crash consistency: a child saves checkpoints in a loop and is SIGKILLed at random instants,
 * CRASH_CYCLES times (default 50). After every kill: the checkpoint a resume would load exists,
 * fully verifies and holds the content written for its step; no committed step is ever lost;
 * every step dir left behind is complete; and at most keepLast + 1 are valid.
 * The kill timing comes from a seeded Rng: CRASH_SEED=<n> replays a failing run.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { listCheckpoints, loadLatestCheckpoint, verifyCheckpoint } from "../lib/checkpoint/index.ts";
import { Rng } from "../lib/rng/index.ts";
import { crashFiles } from "./fixtures/checkpoint-crash-child.ts";
import { tempDir } from "./fixtures/checkpoint-helpers.ts";

const CHILD = fileURLToPath(new URL("./fixtures/checkpoint-crash-child.ts", import.meta.url));
const CYCLES = Number(process.env.CRASH_CYCLES ?? 50);
const SEED = Number(process.env.CRASH_SEED ?? Math.floor(Math.random() * 1e9));
const KEEP_LAST = 2;

let root: string;
let cleanup: () => Promise<void>;
before(async () => {
  ({ path: root, cleanup } = await tempDir("checkpoint-crash"));
});
after(() => cleanup());

interface Child {
  process: ChildProcess;
  ready: Promise<number>;
  /** Steps the child reported as committed. */
  saved: number[];
  stderr: string[];
}

function startChild(ckptDir: string): Child {
  const child = spawn(process.execPath, ["--import", "tsx", CHILD, ckptDir, String(KEEP_LAST)], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  const saved: number[] = [];
  const stderr: string[] = [];
  let markReady: (step: number) => void = () => {};
  const ready = new Promise<number>((resolve) => {
    markReady = resolve;
  });
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
    const [word, value] = line.split(" ");
    if (word === "READY") markReady(Number(value));
    if (word === "SAVED") saved.push(Number(value));
  });
  createInterface({ input: child.stderr as NodeJS.ReadableStream }).on("line", (line) => stderr.push(line));
  return { process: child, ready, saved, stderr };
}

async function expectedContent(step: number, generation: number, file: string): Promise<Buffer> {
  const content = crashFiles(step, generation)[file];
  return Buffer.from(content as Uint8Array | string);
}

test(`checkpoints survive ${CYCLES} SIGKILLs at random instants`, { timeout: 180_000 }, async (t) => {
  t.diagnostic(`CRASH_SEED=${SEED} (set it to replay this run's kill timing)`);
  const timing = Rng.fromSeed(SEED, "kill-timing");
  const ckptDir = join(root, "checkpoints");
  let committed = 0; // highest step any child reported saved
  let killedMidSave = 0; // kills that left a staging dir behind: the save in flight was cut

  for (let cycle = 0; cycle < CYCLES; cycle++) {
    const where = `cycle ${cycle} (CRASH_SEED=${SEED})`;
    const child = startChild(ckptDir);
    const exited = once(child.process, "close");
    // Mostly kill while saving; sometimes during start-up and resume instead.
    if (timing.nextFloat() < 0.1) {
      await sleep(timing.nextFloat() * 700);
    } else {
      const resumedAt = await Promise.race([child.ready, exited.then(() => -1)]);
      assert.notEqual(resumedAt, -1, `${where}: child exited early: ${child.stderr.join("\n")}`);
      assert.equal(resumedAt, committed, `${where}: child resumed from ${resumedAt}, expected ${committed}`);
      await sleep(timing.nextFloat() * 150);
    }
    child.process.kill("SIGKILL");
    await exited;
    if ((await readdir(ckptDir).catch(() => [])).some((name) => name.startsWith(".tmp-"))) killedMidSave++;
    assert.deepEqual(child.stderr, [], `${where}: child complained`);
    committed = Math.max(committed, ...child.saved);

    const warnings: string[] = [];
    const loaded = await loadLatestCheckpoint(ckptDir, { onWarning: (m) => warnings.push(m) });
    assert.deepEqual(warnings, [], `${where}: a checkpoint failed to load`);
    if (!loaded) {
      assert.equal(committed, 0, `${where}: no checkpoint loads after step ${committed} was committed`);
      continue;
    }
    assert.ok(
      loaded.step >= committed,
      `${where}: lost committed step ${committed}, latest is ${loaded.step}`,
    );
    committed = loaded.step; // a save may have committed just before the kill, unreported

    const generation = loaded.state.generation as number;
    for (const file of ["model.safetensors", "optimizer.safetensors", "rng.json"]) {
      const actual = await readFile(join(loaded.path, file));
      assert.ok(
        actual.equals(await expectedContent(loaded.step, generation, file)),
        `${where}: ${file} content`,
      );
    }

    const checkpoints = await listCheckpoints(ckptDir);
    for (const c of checkpoints) {
      const result = await verifyCheckpoint(c.path);
      assert.ok(result.valid, `${where}: ${c.name} left incomplete: ${result.problems.join("; ")}`);
    }
    const valid = checkpoints.filter((c) => c.valid).length;
    assert.ok(valid <= KEEP_LAST + 1, `${where}: ${valid} valid checkpoints, keepLast is ${KEEP_LAST}`);
  }
  t.diagnostic(`final step ${committed}; ${killedMidSave} of ${CYCLES} kills cut a save in flight`);
  // The children do nothing but save, so most kills should cut one; if not, the test tests little.
  assert.ok(killedMidSave >= CYCLES / 5, `only ${killedMidSave} kills landed inside a save`);
  assert.ok(committed >= 1, "no child ever committed a checkpoint");
});
