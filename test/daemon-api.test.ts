/**
 * The daemon's API with a real daemon process and its real SQLite registry, stand-in children
 * (test/fixtures/daemon-stand-in.ts): malformed submissions refused naming the field; two runs
 * wanting the only GPU slot run one after the other, each seeing exactly that GPU; a late
 * subscriber gets the replay then live events without a gap or a duplicate; a run without
 * heartbeats is stopped as stalled; a stop goes TERM → grace → KILL; the CLI client end to end.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { processAlive } from "../lib/process/index.ts";
import {
  allEvents,
  readStandInRecord,
  standInScript,
  startDaemon,
  stopDaemon,
  submit,
  type TestDaemon,
  waitForStatus,
} from "./support/daemon-process.ts";
import { pipelineTestRoot, REPO } from "./support/pipeline-process.ts";
import { startWatched } from "./support/watched-process.ts";

const root = pipelineTestRoot("daemon-api");
const outRoot = join(root, "out");
let daemon: TestDaemon;

async function post(body: string, type = "application/json") {
  return new Promise<{ status: number; text: string }>((resolve, reject) => {
    import("node:http").then(({ request }) => {
      const req = request(
        {
          socketPath: daemon.socket,
          path: "/api/v1/runs",
          method: "POST",
          headers: { "content-type": type },
        },
        (res) => {
          let text = "";
          res.on("data", (chunk) => {
            text += chunk;
          });
          res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
        },
      );
      req.on("error", reject);
      req.end(body);
    }, reject);
  });
}

describe("the daemon's API", { timeout: 120_000 }, () => {
  // Inside the suite: its after hook runs before pipelineTestRoot's, which removes the folder.
  before(async () => {
    daemon = startDaemon(outRoot, { flags: ["--gpus", "7", "--kill-margin-sec", "1"] });
    await daemon.ready();
  });
  after(() => stopDaemon(daemon));

  test("a malformed submission gets a 400 naming the field, and nothing is queued", async () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ version: 1, kind: "pipeline", bogus: true }, /^bogus: unknown field/],
      [
        { version: 1, kind: "pipeline", env: { PRETRAN_MAX_STEPS: "3" } },
        /env\.PRETRAN_MAX_STEPS.*did you mean PRETRAIN_MAX_STEPS/,
      ],
      [{ version: 1, kind: "pipeline", slots: "one" }, /^slots: must be integer/],
      [
        { version: 1, kind: "pipeline", slots: 2 },
        /^slots: asks for 2, but this daemon has 1 GPU slot \(7\)/,
      ],
      [
        { version: 1, kind: "pipeline", args: ["--stages", "pretrian"] },
        /^args: --stages: unknown stage "pretrian"/,
      ],
      [
        { version: 1, kind: "pipeline", env: { SAVE_INTERVAL: "often" } },
        /SAVE_INTERVAL=often: expected a whole number/,
      ],
      [
        { version: 1, kind: "pipeline", env: { OUT_DIR: "/etc/baton" } },
        /^env\.OUT_DIR: \/etc\/baton is outside the out root/,
      ],
      [
        { version: 1, kind: "pipeline", args: ["--", "--init_from", "/etc/w"] },
        /^args --init_from: \/etc\/w is outside the out root/,
      ],
      [
        { version: 1, kind: "pipeline", env: { CUDA_VISIBLE_DEVICES: "0" } },
        /^env\.CUDA_VISIBLE_DEVICES: set by the daemon/,
      ],
      [{ version: 2, kind: "pipeline" }, /^version: must be 1/],
      [{ kind: "sweep" }, /^version: missing/],
    ];
    for (const [body, expected] of cases) {
      const answer = await post(JSON.stringify(body));
      assert.equal(answer.status, 400, `${JSON.stringify(body)} → ${answer.text}`);
      assert.match(answer.text.trim(), expected);
      assert.equal(answer.text.trim().split("\n").length, 1, "one line");
    }
    assert.equal((await post("{not json")).status, 400);
    assert.equal((await post(JSON.stringify({ version: 1, kind: "pipeline" }), "text/plain")).status, 415);
    const { runs } = await daemon.client.json<{ runs: unknown[] }>("GET", "/api/v1/runs");
    assert.equal(runs.length, 0, "a refused submission leaves no run behind");
  });

  test("two runs asking for the only GPU slot run one after the other, each with exactly that GPU", async () => {
    const ids: number[] = [];
    for (const name of ["a", "b"]) {
      const out = join(outRoot, `slot-${name}`);
      // a holds the slot for 5 s: b's submission (up to a second on a loaded machine) comes well before it ends.
      const lines = name === "a" ? 200 : 20;
      await standInScript(out, { lines, intervalMs: 25, record: join(root, `slot-${name}.json`) });
      ids.push((await submit(daemon.client, { name, env: { OUT_DIR: out } })).id);
    }
    const queued = await daemon.client.json<{ status: string }>("GET", `/api/v1/runs/${ids[1]}`);
    assert.equal(queued.status, "queued", "the second waits for the slot");
    const [first, second] = await Promise.all(
      ids.map((id) => waitForStatus(daemon.client, id, ["finished"])),
    );
    assert.ok(first && second);
    assert.ok(
      Date.parse(second.started_at as string) >= Date.parse(first.finished_at as string),
      "never both at once",
    );
    for (const name of ["a", "b"]) {
      const record = readStandInRecord(join(root, `slot-${name}.json`));
      assert.equal(record.cuda, "7", "CUDA_VISIBLE_DEVICES is the slot's device");
      assert.equal(record.forward, "1", "the pipeline is asked to pass heartbeats on");
    }
  });

  test("a late subscriber gets the replay, then live events: no gap, no duplicate", async () => {
    const out = join(outRoot, "stream");
    await standInScript(out, { lines: 120, intervalMs: 15, heartbeatEvery: 10, checkpointEvery: 40 });
    const run = await submit(daemon.client, { env: { OUT_DIR: out } });
    const early: number[] = [];
    const earlyDone = daemon.client.stream(`/api/v1/runs/${run.id}/events/stream`, (id, message) => {
      early.push(id);
      return !isEnd(message);
    });
    // Join halfway, and again with a Last-Event-ID as a reconnecting browser would.
    await waitForLine(run.id, /line 60\/120/);
    const late: Array<{ id: number; type: string }> = [];
    const resumed: number[] = [];
    await Promise.all([
      daemon.client.stream(`/api/v1/runs/${run.id}/events/stream`, (id, message) => {
        late.push({ id, type: (message as { type: string }).type });
        return !isEnd(message);
      }),
      daemon.client.stream(
        `/api/v1/runs/${run.id}/events/stream`,
        (id, message) => {
          resumed.push(id);
          return !isEnd(message);
        },
        25,
      ),
      earlyDone,
    ]);
    const stored = await allEvents(daemon.client, run.id);
    const all = stored.map((event) => event.seq);
    assert.deepEqual(
      all,
      Array.from({ length: all.length }, (_, i) => i + 1),
      "stored seqs are 1..n",
    );
    assert.deepEqual(
      late.map((event) => event.id),
      all,
      "the late subscriber saw every event once, in order",
    );
    assert.deepEqual(early, all);
    assert.deepEqual(resumed, all.slice(25), "Last-Event-ID 25: from 26 on");
    const lines = stored.filter((event) => event.type === "line").map((event) => event.data.text as string);
    const numbered = lines.filter((text) => /^\[stand-in\] line \d+\/120$/.test(text));
    assert.equal(numbered.length, 120);
    assert.ok(stored.some((event) => event.type === "checkpoint"));
    assert.equal(stored.filter((event) => event.type === "heartbeat").length, 12);
    assert.ok(!lines.some((text) => text.includes("HEARTBEAT:")), "heartbeats are events, not lines");
    const metrics = stored.filter((event) => event.type === "metric");
    assert.deepEqual(
      metrics.map((event) => event.data.step),
      Array.from({ length: 12 }, (_, i) => (i + 1) * 10),
    );
    assert.ok(!lines.some((text) => text.includes("METRICS:")), "metrics are events, not lines");
  });

  test("a run without heartbeats for STALL_TIMEOUT is flagged stalled and stopped", async () => {
    const out = join(outRoot, "stall");
    await standInScript(out, { lines: 2, heartbeatEvery: 1, hangMs: 60_000 });
    // 5 s: counted from the start, so the stand-in must beat once before it (its start alone can take
    // seconds when two test files share the two cores).
    const run = await submit(daemon.client, { env: { OUT_DIR: out, STALL_TIMEOUT: "5" } });
    const ended = await waitForStatus(daemon.client, run.id, ["failed", "finished"], 40_000);
    assert.equal(ended.status, "failed");
    assert.match(ended.failure_reason ?? "", /stalled: no heartbeat for 5 s \(STALL_TIMEOUT\)/);
    const events = await allEvents(daemon.client, run.id);
    assert.ok(events.some((event) => event.type === "stalled"));
    assert.ok(ended.last_heartbeat !== null, "the heartbeats it sent were recorded");
  });

  test("stop: TERM, then KILL to its process group once STOP_GRACE_SEC and the margin have passed", async () => {
    const out = join(outRoot, "stubborn");
    await standInScript(out, {
      lines: 1,
      ignoreTerm: true,
      hangMs: 60_000,
      record: join(root, "stubborn.json"),
    });
    const run = await submit(daemon.client, { env: { OUT_DIR: out, STOP_GRACE_SEC: "0" } });
    await waitForLine(run.id, /line 1\/1/);
    const started = Date.now();
    const stopped = await daemon.client.json<{ status: string }>("POST", `/api/v1/runs/${run.id}/stop`, {
      reason: "test",
    });
    assert.equal(stopped.status, "running", "stopping takes the grace period");
    const ended = await waitForStatus(daemon.client, run.id, ["stopped", "failed", "finished"], 20_000);
    assert.equal(ended.status, "stopped");
    assert.equal(ended.failure_reason, "stopped: test");
    assert.ok(Date.now() - started >= 900, "it got its grace (0 s + the 1 s margin) first");
    const log = readFileSync(ended.log_path, "utf8");
    assert.match(log, /SIGTERM ignored/);
    assert.match(log, /SIGKILL to process group/);
    const { pid } = readStandInRecord(join(root, "stubborn.json"));
    assert.equal(processAlive(pid), false, "the child is gone");
    // A finished run cannot be stopped again.
    assert.equal((await daemon.client.call("POST", `/api/v1/runs/${run.id}/stop`, {})).status, 409);
  });

  test("npm run baton: submit, ls, show, logs, stop (a queued run is cancelled), health", async () => {
    const out = join(outRoot, "cli");
    await standInScript(out, { lines: 5, intervalMs: 10, heartbeatEvery: 1, start: true });
    const baton = (args: string[], env: NodeJS.ProcessEnv = {}) =>
      startWatched(join(REPO, "pipelines", "baton.ts"), ["--out", outRoot, ...args], {
        label: "baton",
        cwd: root,
        env,
      }).done;
    const submitted = await baton(["submit", "--name", "cli run", "--stages", "pretrain"], {
      OUT_DIR: "out/cli",
    });
    assert.equal(submitted.code, 0, submitted.stderr);
    const id = Number(/submitted run (\d+)/.exec(submitted.stdout)?.[1]);
    const run = await waitForStatus(daemon.client, id, ["finished"]);
    assert.equal(
      (run.config as { env: Record<string, string> }).env.OUT_DIR,
      out,
      "a relative path is the client's",
    );
    const ls = await baton(["ls"]);
    assert.match(ls.stdout, new RegExp(`^${id}\\s+finished\\s+pipeline\\s+7\\s+.*cli run$`, "m"));
    const show = await baton(["show", String(id)]);
    assert.match(show.stdout, /OUT_DIR=.*cli/);
    const logs = await baton(["logs", String(id)]);
    assert.match(logs.stdout, /\[stand-in\] line 5\/5\n/);
    // The log file has the trainer's lines for programs; `logs` shows what a person reads.
    assert.match(readFileSync(run.log_path, "utf8"), /^\[pretrain\] METRICS:5 /m);
    assert.doesNotMatch(logs.stdout, /HEARTBEAT:|METRICS:|START:/);
    const health = await baton(["health", "--json"]);
    assert.equal((JSON.parse(health.stdout) as { slots: { total: number } }).slots.total, 1);
    const bad = await baton(["submit", "--stages", "nope"]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^baton: error: args: --stages: unknown stage "nope"/);

    // A long run holds the slot; the next one is cancelled while it waits.
    await standInScript(join(outRoot, "cli-long"), { lines: 1, hangMs: 60_000 });
    const long = await submit(daemon.client, {
      env: { OUT_DIR: join(outRoot, "cli-long"), STOP_GRACE_SEC: "0" },
    });
    const waiting = await submit(daemon.client, { env: { OUT_DIR: out } });
    assert.equal(waiting.status, "queued");
    const cancel = await baton(["stop", String(waiting.id), "--reason", "changed my mind"]);
    assert.equal(cancel.code, 0, cancel.stderr);
    assert.equal(
      (await waitForStatus(daemon.client, waiting.id, ["cancelled"])).failure_reason,
      "cancelled: changed my mind",
    );
    const follow = startWatched(
      join(REPO, "pipelines", "baton.ts"),
      ["--out", outRoot, "logs", String(long.id), "-f"],
      { label: "baton", cwd: root },
    );
    await follow.waitForLine(/line 1\/1/);
    assert.equal((await baton(["stop", String(long.id)])).code, 0);
    const followed = await follow.done;
    assert.equal(followed.code, 0, "logs -f ends with the run");
    assert.match(followed.stdout, /SIGTERM: exiting/);
    assert.equal((await waitForStatus(daemon.client, long.id, ["stopped"])).status, "stopped");
  });
});

function isEnd(message: unknown): boolean {
  const { type, data } = message as { type: string; data: { status?: string } };
  return type === "state" && ["finished", "failed", "stopped"].includes(data.status ?? "");
}

async function waitForLine(id: number, pattern: RegExp): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const events = await allEvents(daemon.client, id);
    if (events.some((event) => event.type === "line" && pattern.test(String(event.data.text)))) return;
    await sleep(50);
  }
  throw new Error(`run ${id} never printed ${pattern}`);
}
