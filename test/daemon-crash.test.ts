/**
 * What survives what, with real daemon processes and their real SQLite registry:
 *  - the daemon SIGKILLed mid-run, its child kept running → the next daemon adopts it; it finishes
 *    with its whole log and every line in its events once, in order;
 *  - the daemon down while a run ends → the next daemon reads its exit status: finished, not lost;
 *  - the daemon and every process of a real (tiny) pipeline SIGKILLed → the run comes back
 *    `interrupted`, is queued again, resumes from its checkpoint and ends with the same final
 *    weights, bit for bit, as an uninterrupted run.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, type TestContext, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { groupAlive, processAlive, signalGroup } from "../lib/process/index.ts";
import { readRunEvents, scalarSeries } from "../lib/tensorboard/index.ts";
import type { RunDetails } from "../pipelines/daemon/details.ts";
import type { RunView } from "../pipelines/daemon/view.ts";
import { stepDir } from "./support/crash-resume.ts";
import {
  allEvents,
  readStandInRecord,
  type StoredEvent,
  standInScript,
  startDaemon,
  stopDaemon,
  submit,
  waitForStatus,
} from "./support/daemon-process.ts";
import {
  killMentioning,
  pipelineTestRoot,
  processesMentioning,
  runPipeline,
  TINY_TRAINER_FLAGS,
  tinyPipelineEnv,
} from "./support/pipeline-process.ts";
import { sha256 } from "./support/trainer-process.ts";

const root = pipelineTestRoot("daemon-crash");

async function waitForFile(path: string, pattern: RegExp, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(existsSync(path) && pattern.test(readFileSync(path, "utf8")))) {
    if (Date.now() > deadline) throw new Error(`${path} never matched ${pattern}`);
    await sleep(20);
  }
}

/**
 * A daemon on `outRoot` runs a stand-in (`script`, into `<outRoot>/run`), and is SIGKILLed once the
 * run's log matches `until`. The run as that daemon last showed it (running: `pid` is its launcher),
 * and the stand-in's own pid.
 */
async function runThenKillDaemon(
  t: TestContext,
  outRoot: string,
  script: Record<string, unknown>,
  until: RegExp,
): Promise<{ run: RunView; standIn: number }> {
  const out = join(outRoot, "run");
  const record = join(outRoot, "stand-in.json");
  await standInScript(out, { ...script, record });
  const daemon = startDaemon(outRoot);
  t.after(() => stopDaemon(daemon));
  await daemon.ready();
  const submitted = await submit(daemon.client, { env: { OUT_DIR: out } });
  await waitForFile(submitted.log_path, until);
  const run = await daemon.client.json<RunView>("GET", `/api/v1/runs/${submitted.id}`);
  daemon.process.child.kill("SIGKILL");
  await daemon.process.done;
  return { run, standIn: readStandInRecord(record).pid };
}

async function waitUntil(what: string, done: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(50);
  }
}

function numberedLines(events: StoredEvent[], total: number): number[] {
  return events
    .filter((event) => event.type === "line")
    .map((event) => new RegExp(`^\\[stand-in\\] line (\\d+)/${total}$`).exec(String(event.data.text))?.[1])
    .filter((n): n is string => n !== undefined)
    .map(Number);
}

describe("the daemon dies, the runs do not", { timeout: 240_000 }, () => {
  test("SIGKILL the daemon mid-run: the next one adopts the run, which finishes with its full log and events", async (t) => {
    const outRoot = join(root, "adopt");
    const { run, standIn: pid } = await runThenKillDaemon(
      t,
      outRoot,
      { lines: 600, intervalMs: 15, heartbeatEvery: 20, checkpointEvery: 100 },
      /line 100\/600/,
    );
    assert.ok(processAlive(pid), "the run's process outlives its daemon");

    await sleep(500); // it goes on printing while no daemon listens
    const second = startDaemon(outRoot);
    t.after(() => stopDaemon(second));
    await second.ready();
    assert.ok(
      processAlive(pid),
      "still running when the new daemon took over (else this test shows nothing)",
    );
    const ended = await waitForStatus(second.client, run.id, ["finished", "failed", "interrupted"]);
    assert.equal(ended.status, "finished", JSON.stringify(ended));
    assert.equal(ended.attempts, 1, "adopted, not started again");
    assert.equal(ended.exit_code, 0);
    const events = await allEvents(second.client, run.id);
    assert.deepEqual(
      events.map((event) => event.seq),
      Array.from({ length: events.length }, (_, i) => i + 1),
    );
    assert.ok(events.some((event) => event.type === "adopted"));
    assert.deepEqual(
      numberedLines(events, 600),
      Array.from({ length: 600 }, (_, i) => i + 1),
      "every line once, in order",
    );
    assert.equal(events.filter((event) => event.type === "heartbeat").length, 30);
    assert.equal(events.filter((event) => event.type === "checkpoint").length, 6);
    const log = readFileSync(ended.log_path, "utf8");
    for (let i = 1; i <= 600; i++)
      assert.ok(log.includes(`[stand-in] line ${i}/600\n`), `line ${i} in the log`);
  });

  test("a run that ends while no daemon runs is recorded as it ended, not as lost", async (t) => {
    const outRoot = join(root, "meanwhile");
    const { run, standIn } = await runThenKillDaemon(
      t,
      outRoot,
      { lines: 40, intervalMs: 20, exitCode: 3 },
      /line 5\/40/,
    );
    assert.ok(run.pid !== null, "running, with its launcher's pid");
    // The whole process group: its launcher writes the exit status after the stand-in ends.
    await waitUntil("the run ended", () => !processAlive(standIn) && !groupAlive(run.pid as number));
    const second = startDaemon(outRoot);
    t.after(() => stopDaemon(second));
    await second.ready();
    const ended = await waitForStatus(second.client, run.id, ["finished", "failed", "interrupted"]);
    assert.equal(ended.status, "failed");
    assert.equal(ended.exit_code, 3, "its exit status, from the file its launcher left");
    const events = await allEvents(second.client, run.id);
    assert.ok(!events.some((event) => event.type === "adopted"), "ended meanwhile: nothing to adopt");
    assert.deepEqual(
      numberedLines(events, 40),
      Array.from({ length: 40 }, (_, i) => i + 1),
    );
  });

  test("SIGKILL the daemon and the pipeline's processes: interrupted, resumed, the same final weights", async (t) => {
    const steps = 60;
    const envFor = (out: string) => tinyPipelineEnv(out, { pretrain: steps }, { TB_AUTO: "0" });
    const args = ["--stages", "pretrain", "--", ...TINY_TRAINER_FLAGS];
    const reference = join(root, "reference");
    const uninterrupted = await runPipeline(args, { env: envFor(reference) });
    assert.equal(uninterrupted.code, 0, uninterrupted.stderr);
    const finalOf = (out: string) =>
      join(out, "pretrain", "checkpoints", stepDir(steps), "model.safetensors");

    const outRoot = join(root, "killed");
    const out = join(outRoot, "run");
    const first = startDaemon(outRoot, { standIn: false });
    t.after(() => stopDaemon(first));
    await first.ready();
    const run = await submit(first.client, { args, env: envFor(out) });
    const log = run.log_path;
    await waitForFile(log, new RegExp(`CHECKPOINT:.*/${stepDir(10)}\\n`));
    const { pid } = await first.client.json<{ pid: number }>("GET", `/api/v1/runs/${run.id}`);
    first.process.child.kill("SIGKILL");
    signalGroup(pid, "SIGKILL"); // the launcher and the pipeline
    killMentioning(out); // the trainer, in a group of its own
    await first.process.done;
    for (let i = 0; i < 100 && processesMentioning(out).length > 0; i++) await sleep(50);
    assert.deepEqual(processesMentioning(out), [], "nothing of the run survives");
    assert.ok(!existsSync(finalOf(out)), "killed before it finished");

    const second = startDaemon(outRoot, { standIn: false });
    t.after(() => stopDaemon(second));
    await second.ready();
    const ended = await waitForStatus(second.client, run.id, ["finished", "failed"], 120_000);
    assert.equal(ended.status, "finished", ended.failure_reason ?? "");
    assert.equal(ended.attempts, 2);
    const events = await allEvents(second.client, run.id);
    const states = events.filter((event) => event.type === "state").map((event) => event.data.status);
    const beats = events.filter((event) => event.type === "heartbeat");
    assert.ok(
      beats.length >= 2,
      "the trainer's heartbeats, passed on by the pipeline, one session each at least",
    );
    assert.ok(beats.every((event) => event.data.stage === "pretrain"));
    assert.ok(ended.last_heartbeat !== null);
    assert.ok(
      !readFileSync(ended.log_path, "utf8").includes("\nHEARTBEAT:"),
      "only labelled, by the pipeline",
    );
    assert.deepEqual(states, ["queued", "running", "interrupted", "queued", "running", "finished"]);
    // Metric points: the scalars each log interval, as the trainer wrote them to TensorBoard.
    const points = events.filter((event) => event.type === "metric");
    assert.ok(points.every((event) => event.data.stage === "pretrain"));
    const lossAt = new Map(
      points.map((event) => [event.data.step as number, (event.data.values as Record<string, number>).loss]),
    );
    const { events: written } = await readRunEvents(join(reference, "tensorboard", "pretrain"));
    const logged = scalarSeries(written, "pretrain/loss");
    assert.equal(logged.length, steps / 5);
    for (const [step, loss] of logged.filter(([step]) => step > 20)) {
      // Every step after the resume, whatever step the kill came after; TensorBoard keeps float32.
      assert.equal(Math.fround(lossAt.get(step) ?? Number.NaN), loss, `the metric point of step ${step}`);
    }
    assert.ok(!readFileSync(ended.log_path, "utf8").includes("\nMETRICS:"), "only labelled, by the pipeline");
    assert.match(
      readFileSync(log, "utf8"),
      /resuming from .*step_000000(1[05]|20)/,
      "it resumed from its checkpoint",
    );
    assert.equal(
      sha256(finalOf(out)),
      sha256(finalOf(reference)),
      "the same final weights as the uninterrupted run",
    );
    // The dashboard's run page: one trainer session per attempt, the second resumed; the checkpoints.
    const details = await second.client.json<RunDetails>("GET", `/api/v1/runs/${run.id}/details`);
    const sessions = details.timeline.filter((event) => event.type === "start");
    assert.deepEqual(
      sessions.map((event) => [event.stage, event.attempt, event.resumed]),
      [
        ["pretrain", 1, false],
        ["pretrain", 2, true],
      ],
      "the pipeline passes its trainers' START lines on",
    );
    assert.equal(sessions[0]?.from, null);
    assert.match(String(sessions[1]?.from), /pretrain\/checkpoints\/step_000000(1[05]|20)$/);
    const pretrain = details.checkpoints.find((group) => group.stage === "pretrain");
    assert.equal(pretrain?.checkpoints.at(-1)?.step, steps);
    assert.ok(pretrain?.checkpoints.every((c) => c.valid));
    assert.equal(details.stages.find((stage) => stage.stage === "pretrain")?.state, "finished");
  });
});
