/**
 * Determinism by thread count (README "Data parallelism"): a run is exactly reproducible for a given
 * thread count, so a resume must keep the count. Pinned with --data_parallel, these run the same
 * threads on any machine (auto on a 1-core machine would test only one): a resume at 2 threads
 * matches an uninterrupted 2-thread run bit for bit; `auto` resuming a checkpoint trained with
 * another count than auto's own uses the recorded count; an explicit different count warns.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { finalModelPath, stepDir } from "./support/crash-resume.ts";
import { runDirs, runTrainerToEnd, sha256, startTrainer, TINY_MODEL } from "./support/trainer-process.ts";
import type { ProcessExit } from "./support/watched-process.ts";

const root = mkdtempSync(join(tmpdir(), "baton-threads-"));
after(() => rmSync(root, { recursive: true, force: true }));

const STEPS = 8;
const SCRIPT = "train_pretrain.ts";
/** What --data_parallel auto picks on this machine for a fresh run (trainer/loop/run.ts). */
const AUTO = Math.max(1, Math.min(4, availableParallelism()));
/** A count auto would not pick here, so following the checkpoint is observable. */
const RECORDED = AUTO === 3 ? 2 : 3;

const args = (name: string, threads: string) => [
  ...runDirs(join(root, name), "pretrain"),
  ...TINY_MODEL,
  ...["--backend", "wasm", "--max_steps", String(STEPS), "--save_interval", "4", "--log_interval", "1"],
  ...["--eval", "false", "--data_parallel", threads],
];

const finalHash = (name: string) => sha256(finalModelPath(join(root, name), "pretrain", STEPS));

function threadsLine(run: ProcessExit): number {
  const match = run.stdout.match(/\] data parallel: (\d+) threads share each update/);
  return match ? Number(match[1]) : 1;
}

function recordedThreads(name: string, step: number): unknown {
  const state = join(root, name, "pretrain", "checkpoints", stepDir(step), "state.json");
  return JSON.parse(readFileSync(state, "utf8")).data_parallel;
}

/** A session SIGTERMed once it logs step 3: it saves step 3 (or the next) and exits 143. */
async function interrupted(name: string, threads: string): Promise<ProcessExit> {
  const run = startTrainer(SCRIPT, args(name, threads));
  await run.waitForLine(new RegExp(`\\] step 3/${STEPS} `));
  run.child.kill("SIGTERM");
  const exit = await run.done;
  assert.equal(exit.code, 143, exit.stderr);
  return exit;
}

const uninterrupted = new Map<number, Promise<string>>();
/** The final weights of an uninterrupted run at `threads` (each count run once). */
function wholeRun(threads: number): Promise<string> {
  let hash = uninterrupted.get(threads);
  if (!hash) {
    hash = runTrainerToEnd(SCRIPT, args(`whole-${threads}`, String(threads))).then((run) => {
      assert.equal(run.code, 0, run.stderr);
      assert.equal(threadsLine(run), threads);
      return finalHash(`whole-${threads}`);
    });
    uninterrupted.set(threads, hash);
  }
  return hash;
}

test("--data_parallel 2: stopped and resumed, the same weights as an uninterrupted 2-thread run", async () => {
  const first = await interrupted("pinned", "2");
  assert.equal(threadsLine(first), 2);
  const resumed = await runTrainerToEnd(SCRIPT, args("pinned", "2"));
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.equal(threadsLine(resumed), 2);
  assert.doesNotMatch(resumed.stderr, /data_parallel/);
  assert.equal(recordedThreads("pinned", STEPS), 2);
  assert.equal(finalHash("pinned"), await wholeRun(2));
});

test(`auto resumes a checkpoint trained with ${RECORDED} threads (auto alone picks ${AUTO}) with ${RECORDED}`, async () => {
  await interrupted("recorded", String(RECORDED));
  const resumed = await runTrainerToEnd(SCRIPT, args("recorded", "auto"));
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.match(resumed.stdout, /resuming from /);
  assert.equal(threadsLine(resumed), RECORDED);
  assert.doesNotMatch(resumed.stderr, /warning/);
  assert.equal(recordedThreads("recorded", STEPS), RECORDED);
  assert.equal(finalHash("recorded"), await wholeRun(RECORDED));
  // The count matters to the arithmetic: auto's own count would not have matched.
  assert.notEqual(await wholeRun(RECORDED), await wholeRun(RECORDED === 2 ? 1 : 2));
});

test("an explicit different count on resume warns, and trains with the count given", async () => {
  await interrupted("explicit", String(RECORDED));
  const resumed = await runTrainerToEnd(SCRIPT, args("explicit", "1"));
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.match(resumed.stdout, /resuming from /);
  assert.match(
    resumed.stderr,
    new RegExp(`warning: resuming with --data_parallel 1, the checkpoint was trained with ${RECORDED}: `),
  );
  assert.equal(threadsLine(resumed), 1);
  assert.equal(recordedThreads("explicit", STEPS), 1);
  assert.notEqual(finalHash("explicit"), await wholeRun(RECORDED));
});
