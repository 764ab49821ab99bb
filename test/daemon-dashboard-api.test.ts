/**
 * The daemon's dashboard endpoints with a real daemon and stand-in runs that leave a trainer's files
 * (test/fixtures/daemon-stand-in.ts): a run's details — the stage timeline with each attempt and
 * resume, its checkpoints (step, valid, size, pinned by the sweep queue), its evaluation, the sweep
 * table; the runs list's stage and newest event id; resubmit (a new run from the stored config,
 * JSON only, refused while the run goes on); the board page and its assets on the daemon's port;
 * and with BATON_TOKEN, nothing of it without the token (bearer, or the cookie `/?token=` sets).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type { RunDetails } from "../pipelines/daemon/details.ts";
import {
  standInScript,
  startDaemon,
  stopDaemon,
  submit,
  type TestDaemon,
  waitForStatus,
} from "./support/daemon-process.ts";
import { pipelineTestRoot } from "./support/pipeline-process.ts";

const root = pipelineTestRoot("dashboard-api");
let daemon: TestDaemon;
let url: string;

const SCRIPT = {
  lines: 40,
  intervalMs: 5,
  heartbeatEvery: 10,
  checkpointEvery: 10,
  stage: "sft",
  start: true,
  saveCheckpoints: true,
  queueCheckpoints: true,
  sweepResults: [
    { step: 10, metrics: { preference_accuracy: 0.5 } },
    { step: 20, metrics: { preference_accuracy: 0.75 } },
  ],
  evaluation: { loss: 1.25, perplexity: 3.5 },
};

function tcp(path: string, init: RequestInit & { token?: string } = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  if (init.token) headers.set("authorization", `Bearer ${init.token}`);
  return fetch(new URL(path, url), { ...init, headers, redirect: "manual" });
}

describe("the dashboard's endpoints", { timeout: 120_000 }, () => {
  // Inside the suite: its after hook runs before pipelineTestRoot's, which removes the folder.
  before(async () => {
    daemon = startDaemon(join(root, "out"), {
      env: { BATON_TOKEN: "s3cret" },
      flags: ["--logdir", join(root, "out", "tensorboard")],
    });
    url = String((await daemon.ready()).url);
  });
  after(() => stopDaemon(daemon));

  test("a run's details: timeline with resumes, checkpoints with pins, evaluation, sweep table", async () => {
    const outDir = join(root, "out", "a");
    await standInScript(outDir, SCRIPT);
    const first = await submit(daemon.client, { name: "details", env: { OUT_DIR: outDir } });
    await waitForStatus(daemon.client, first.id, ["finished"]);
    // The same command again resumes from its checkpoints: a second attempt, a resumed session.
    const again = await daemon.client.json<{ id: number; config: unknown }>(
      "POST",
      `/api/v1/runs/${first.id}/resubmit`,
      {},
    );
    assert.notEqual(again.id, first.id);
    assert.deepEqual(again.config, first.config);
    await waitForStatus(daemon.client, again.id, ["finished"]);

    const details = await daemon.client.json<RunDetails>("GET", `/api/v1/runs/${again.id}/details`);
    assert.deepEqual(details.problems, []);
    const states = details.timeline.filter((e) => e.type === "state").map((e) => e.status);
    assert.deepEqual(states, ["queued", "running", "finished"]);
    const starts = details.timeline.filter((e) => e.type === "start");
    assert.equal(starts.length, 1);
    assert.equal(starts[0]?.stage, "sft");
    assert.equal(starts[0]?.resumed, true);
    assert.match(String(starts[0]?.from), /sft\/checkpoints\/step_00000040$/);
    const firstDetails = await daemon.client.json<RunDetails>("GET", `/api/v1/runs/${first.id}/details`);
    assert.equal(firstDetails.timeline.find((e) => e.type === "start")?.from, null);
    assert.equal(firstDetails.timeline.find((e) => e.type === "start")?.resumed, false);

    const sft = details.stages.find((s) => s.stage === "sft");
    assert.equal(sft?.last_step, 40);
    assert.equal(sft?.heartbeats, 4);
    assert.equal(sft?.sessions, 1);

    assert.equal(details.checkpoints.length, 1);
    const group = details.checkpoints[0];
    assert.equal(group?.stage, "sft");
    assert.deepEqual(
      group?.checkpoints.map((c) => [c.step, c.valid, c.latest, c.pinned !== null]),
      [
        [10, true, false, false],
        [20, true, false, false],
        [30, true, false, true],
        [40, true, true, true],
      ],
    );
    assert.ok((group?.checkpoints[0]?.bytes ?? 0) > 2048);
    assert.match(String(group?.checkpoints[2]?.pinned), /pending in .*sft\/checkpoints\.jsonl/);

    assert.deepEqual(
      details.evaluations.map((e) => [e.stage, e.state, e.evaluation]),
      [["sft", "finished", { loss: 1.25, perplexity: 3.5 }]],
    );
    assert.deepEqual(details.sweep?.metrics, ["preference_accuracy"]);
    assert.deepEqual(
      details.sweep?.rows.map((r) => [r.step, r.status, r.metrics?.preference_accuracy ?? null]),
      [
        [10, "completed", 0.5],
        [20, "completed", 0.75],
        [30, "pending", null],
        [40, "pending", null],
      ],
    );

    const list = await daemon.client.json<{ runs: Array<{ id: number; stage: string }>; last_event: number }>(
      "GET",
      "/api/v1/runs",
    );
    assert.equal(list.runs.find((r) => r.id === again.id)?.stage, "sft");
    assert.ok(list.last_event > 0);
  });

  test("resubmit wants JSON, and a run that still runs cannot be resubmitted", async () => {
    const outDir = join(root, "out", "b");
    await standInScript(outDir, { lines: 2000, intervalMs: 20 });
    const run = await submit(daemon.client, { env: { OUT_DIR: outDir, STALL_TIMEOUT: "0" } });
    await waitForStatus(daemon.client, run.id, ["running"]);
    const busy = await daemon.client.call("POST", `/api/v1/runs/${run.id}/resubmit`, {});
    assert.equal(busy.status, 409);
    assert.match(busy.body, /^run \d+ is running: stop it first\n$/);
    const plain = await tcp(`/api/v1/runs/${run.id}/resubmit`, { method: "POST", token: "s3cret" });
    assert.equal(plain.status, 415);
    const form = await tcp(`/api/v1/runs/${run.id}/resubmit`, {
      method: "POST",
      token: "s3cret",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: "a=1",
    });
    assert.equal(form.status, 415);
    assert.equal((await daemon.client.call("GET", "/api/v1/runs/9999/details")).status, 404);
    await daemon.client.json("POST", `/api/v1/runs/${run.id}/stop`, { reason: "test over" });
    await waitForStatus(daemon.client, run.id, ["stopped"]);
  });

  test("the page, its assets and the API need the token: bearer, or the cookie /?token= sets", async () => {
    for (const path of [
      "/",
      "/assets/dashboard.js",
      "/api/v1/runs",
      "/api/v1/runs/1/details",
      "/baton/runs",
    ]) {
      assert.equal((await tcp(path)).status, 401, path);
      assert.equal((await tcp(path, { token: "guess" })).status, 401, path);
      assert.equal((await tcp(path, { token: "s3cret" })).status, 200, path);
    }
    const board = (await (await tcp("/baton/runs", { token: "s3cret" })).json()) as { logdir: string };
    assert.equal(board.logdir, join(root, "out", "tensorboard"), "--logdir");
    const redirect = await tcp("/?token=s3cret");
    assert.equal(redirect.status, 303);
    assert.equal(redirect.headers.get("location"), "/");
    const cookie = String(redirect.headers.get("set-cookie")).split(";")[0] as string;
    assert.match(String(redirect.headers.get("set-cookie")), /HttpOnly; SameSite=Strict/);
    const page = await tcp("/", { headers: { cookie } });
    assert.equal(page.status, 200);
    const html = await page.text();
    assert.match(html, /\/assets\/dashboard\.js/);
    assert.match(String(page.headers.get("content-security-policy")), /default-src 'self'/);
    const script = await tcp("/assets/dashboard.js", { headers: { cookie } });
    assert.equal(script.status, 200);
    assert.match(String(script.headers.get("content-type")), /javascript/);
    const css = await tcp("/assets/dashboard.css", { headers: { cookie } });
    assert.equal(css.status, 200);
    // A page elsewhere may not stop or resubmit anything, even with the cookie.
    const foreign = await tcp("/api/v1/runs/1/resubmit", {
      method: "POST",
      headers: { cookie, origin: "http://evil.example", "content-type": "application/json" },
      body: "{}",
    });
    assert.equal(foreign.status, 403);
  });
});
