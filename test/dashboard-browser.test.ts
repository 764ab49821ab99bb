/*
 * The daemon's dashboard in a real headless Chromium (Debian's, driven by playwright-core), on a
 * real daemon with BATON_TOKEN and stand-in runs (test/fixtures/daemon-stand-in.ts): the page gets
 * in with `/?token=` once; a queued run's status changes on the page without a reload until it
 * finishes; a running run's page shows the log lines logged before it opened (the stream's replay)
 * and then new ones live, its stage timeline and checkpoints; the Stop button stops it through the
 * API (the registry says stopped); Resubmit starts a new run that resumes from its checkpoints; a
 * finished run's page shows its pinned checkpoints, evaluation and sweep table. Every request the
 * page makes goes to the daemon. Screenshots go to out/dashboard-*.png; with
 * BATON_UPDATE_SCREENSHOTS=1 the finished run's page is also written to docs/dashboard.png (README).
 */
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, afterEach, before, describe, it } from "node:test";
import type { Page } from "playwright-core";
import { type Browser, launchChromium } from "./support/browser.ts";
import {
  allEvents,
  standInScript,
  startDaemon,
  stopDaemon,
  submit,
  type TestDaemon,
  waitForStatus,
} from "./support/daemon-process.ts";
import { eventFile, scalar, start, version } from "./support/event-files.ts";
import { pipelineTestRoot } from "./support/pipeline-process.ts";
import { REPO } from "./support/trainer-process.ts";

const TOKEN = "dashboard-s3cret";
// Out here: its after hook (remove the folder) runs after the suite's (stop the daemon).
const root = pipelineTestRoot("dashboard-page");

describe("the daemon's dashboard in Chromium", { timeout: 180_000 }, () => {
  const outRoot = join(root, "out");
  let daemon: TestDaemon;
  let url: string;
  let browser: Browser;
  let page: Page;
  const requests: string[] = [];
  const pageErrors: string[] = [];
  let long: number;
  let short: number;

  const rowStatus = (id: number) =>
    page.locator(`#runs-table tr[data-run="${id}"] .run-status .status`).getAttribute("data-status");
  const waitFor = async (what: string, check: () => Promise<boolean>, timeoutMs = 30_000) => {
    const deadline = Date.now() + timeoutMs;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const logText = () => page.locator("#run-log").innerText();
  const headStatus = () => page.locator(".run-head .status").getAttribute("data-status");

  before(async () => {
    // A scalar chart or two for the board's own panel (the out root is the dashboard's logdir).
    const tb = join(outRoot, "tensorboard", "sft");
    mkdirSync(tb, { recursive: true });
    writeFileSync(
      join(tb, "events.out.tfevents.1.host"),
      eventFile([
        version(),
        start(1),
        ...Array.from({ length: 40 }, (_, i) => scalar("train/loss", i + 1, 4 / (i + 2))),
      ]),
    );
    daemon = startDaemon(outRoot, { env: { BATON_TOKEN: TOKEN } });
    url = String((await daemon.ready()).url);
    browser = await launchChromium({ width: 1400, height: 1000 });
    page = await browser.context.newPage();
    page.on("request", (request) => requests.push(request.url()));
    page.on("pageerror", (error) => pageErrors.push(error.message));
  });
  afterEach(() => {
    assert.deepEqual(pageErrors.splice(0), [], "the page threw");
  });
  after(async () => {
    try {
      await browser?.close();
    } finally {
      await stopDaemon(daemon); // and its runs: `long` and `live` would print for minutes yet
    }
  });

  it("shows a queued run's status change to finished without a reload", async () => {
    // The long run holds the only slot, so the short one waits behind it.
    const longDir = join(outRoot, "long");
    await standInScript(longDir, {
      lines: 3000,
      intervalMs: 40,
      heartbeatEvery: 10,
      checkpointEvery: 20,
      saveCheckpoints: true,
      start: true,
    });
    long = (await submit(daemon.client, { name: "long", env: { OUT_DIR: longDir, STALL_TIMEOUT: "0" } })).id;
    await waitForStatus(daemon.client, long, ["running"]);
    const shortDir = join(outRoot, "short");
    await standInScript(shortDir, {
      lines: 40,
      intervalMs: 50,
      heartbeatEvery: 10,
      checkpointEvery: 10,
      stage: "sft",
      start: true,
      saveCheckpoints: true,
      queueCheckpoints: true,
      sweepResults: [
        { step: 10, metrics: { preference_accuracy: 0.55, reward_margin: 0.12 } },
        { step: 20, metrics: { preference_accuracy: 0.7, reward_margin: 0.31 } },
      ],
      evaluation: { loss: 1.84, perplexity: 6.3 },
    });
    short = (await submit(daemon.client, { name: "short sft", env: { OUT_DIR: shortDir } })).id;

    await page.goto(new URL(`/?token=${TOKEN}`, url).href);
    assert.equal(new URL(page.url()).search, "", "the token left the address bar");
    await page.evaluate(() => {
      (window as never as { stayed: boolean }).stayed = true;
    });
    await waitFor("both runs listed", async () => (await rowStatus(short)) === "queued");
    assert.equal(await rowStatus(long), "running");
    assert.equal(await page.locator("#panel-runs").isVisible(), true);
    // Record every status the page shows for the short run from here on.
    await page.evaluate((id) => {
      const seen: string[] = [];
      (window as never as { seen: string[] }).seen = seen;
      new MutationObserver(() => {
        const status = document.querySelector(`#runs-table tr[data-run="${id}"] .status`)?.textContent;
        if (status && seen.at(-1) !== status) seen.push(status);
      }).observe(document.body, { subtree: true, childList: true, characterData: true });
    }, short);
    // Its turn comes when the long run stops: stopped through the API here (the Stop button is a later test's).
    await daemon.client.json("POST", `/api/v1/runs/${long}/stop`, { reason: "make room" });
    await waitFor(
      "the short run finished on the page",
      async () => (await rowStatus(short)) === "finished",
      60_000,
    );
    assert.equal(await rowStatus(long), "stopped");
    const seen = await page.evaluate(() => (window as never as { seen: string[] }).seen);
    assert.equal(seen.at(-1), "finished");
    assert.ok(seen.includes("running"), seen.join(" → "));
    assert.equal(
      await page.evaluate(() => (window as never as { stayed?: boolean }).stayed),
      true,
      "no reload",
    );
    const step = await page.locator(`#runs-table tr[data-run="${short}"] .run-step`).innerText();
    assert.equal(step, "40");
    assert.equal(await page.locator(`#runs-table tr[data-run="${short}"] .run-stage`).innerText(), "sft");
    mkdirSync(join(REPO, "out"), { recursive: true });
    await page.screenshot({ path: join(REPO, "out", "dashboard-runs.png") });
  });

  it("a finished run's page: timeline, checkpoints pinned by the sweep queue, evaluation, sweep table", async () => {
    await page.locator(`#runs-table tr[data-run="${short}"] td`).nth(1).click();
    await page.waitForSelector(`#run-checkpoints table[data-stage="sft"]`);
    const checkpoints = await page
      .locator(`#run-checkpoints table[data-stage="sft"] tbody tr`)
      .allInnerTexts();
    assert.equal(checkpoints.length, 4);
    assert.match(checkpoints[0] as string, /^step_00000010\t10\tvalid\t/);
    assert.match(checkpoints[3] as string, /latest · pinned: pending in /);
    assert.doesNotMatch(checkpoints[0] as string, /pinned/);
    assert.match(await page.locator("#run-evaluations").innerText(), /sft\tfinished\t40\t1\.84\t6\.3/);
    const sweep = await page.locator("#sweep-table tbody tr").allInnerTexts();
    assert.deepEqual(
      sweep.map((row) => row.split("\t").slice(0, 4)),
      [
        ["10", "completed", "0.55", "0.12"],
        ["20", "completed", "0.7", "0.31"],
        ["30", "pending", "—", "—"],
        ["40", "pending", "—", "—"],
      ],
    );
    const stage = await page.locator('#run-timeline .stage[data-stage="sft"]').innerText();
    assert.match(stage, /attempt 1: started from random weights/);
    assert.match(await page.locator('#run-timeline .stage[data-stage="pretrain"]').innerText(), /not run/);
    await waitFor("the replayed log", async () => (await logText()).includes("[stand-in] done"));
    assert.match(await logText(), /line 1\/40/);
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: join(REPO, "out", "dashboard-run.png"), fullPage: true });
    if (process.env.BATON_UPDATE_SCREENSHOTS === "1")
      await page.screenshot({ path: join(REPO, "docs", "dashboard.png"), fullPage: true });
  });

  it("a running run's page: replayed then live log lines, Stop stops it, Resubmit resumes it", async () => {
    const dir = join(outRoot, "live");
    await standInScript(dir, {
      lines: 3000,
      intervalMs: 50,
      heartbeatEvery: 5,
      checkpointEvery: 20,
      saveCheckpoints: true,
      start: true,
    });
    const id = (await submit(daemon.client, { name: "live", env: { OUT_DIR: dir, STALL_TIMEOUT: "0" } })).id;
    await waitForStatus(daemon.client, id, ["running"]);
    // Lines logged before the page opens come from the stream's replay.
    await waitFor("25 lines logged", async () =>
      (await allEvents(daemon.client, id)).some(
        (e) => e.type === "line" && e.data.text === "[stand-in] line 25/3000",
      ),
    );
    await page.evaluate((run) => {
      location.hash = `#run/${run}`;
    }, id);
    await waitFor("the replay", async () => (await logText()).includes("line 25/3000"));
    assert.match(await logText(), /^\[stand-in\] line 1\/3000$/m);
    const highest = async () =>
      Math.max(...[...(await logText()).matchAll(/line (\d+)\/3000/g)].map((m) => Number(m[1])));
    const atOpen = await highest();
    await waitFor("live lines", async () => (await highest()) >= atOpen + 10);
    assert.equal(await headStatus(), "running");
    await waitFor(
      "a checkpoint on the page",
      async () => (await page.locator('#run-checkpoints table[data-stage="pretrain"] tbody tr').count()) >= 1,
    );
    assert.match(
      await page.locator('#run-timeline .stage[data-stage="pretrain"]').innerText(),
      /started from random weights/,
    );
    assert.notEqual(await page.locator('[data-fact="heartbeat"]').innerText(), "—");

    // Heartbeats re-render the head several times a second; a reason being typed must survive them.
    const steps = async () => Number(await page.locator('[data-fact="step"]').innerText());
    await page.locator("#stop-reason").fill("enough from the browser");
    const stepAtTyping = await steps();
    await waitFor("two heartbeats re-rendering the head", async () => (await steps()) >= stepAtTyping + 10);
    assert.equal(
      await page.evaluate(() => document.activeElement?.id),
      "stop-reason",
      "the reason keeps focus",
    );
    assert.equal(
      await page.locator("#stop-reason").inputValue(),
      "enough from the browser",
      "and what was typed",
    );
    await page.click("#stop-run");
    const stopped = await waitForStatus(daemon.client, id, ["stopped"]);
    assert.equal(stopped.stop_reason, "enough from the browser");
    await waitFor("stopped on the page", async () => (await headStatus()) === "stopped");
    await waitFor("the stop in the log", async () => /SIGTERM: exiting/.test(await logText()));
    assert.match(await logText(), /── stop asked: enough from the browser/);
    assert.equal(await page.locator("#stop-run").isDisabled(), true);

    await page.click("#resubmit-run");
    await page.waitForFunction((old) => /^#run\/(\d+)$/.exec(location.hash)?.[1] !== String(old), id);
    const next = Number(/^#run\/(\d+)$/.exec(new URL(page.url()).hash)?.[1]);
    assert.ok(next > id);
    await waitFor("the resumed session on the page", async () =>
      /attempt 1: resumed from step_\d{8}/.test(
        await page.locator('#run-timeline .stage[data-stage="pretrain"]').innerText(),
      ),
    );
    await page.click("#stop-run");
    await waitForStatus(daemon.client, next, ["stopped"]);
    await waitFor("stopped on the page", async () => (await headStatus()) === "stopped");
    assert.equal(
      await page.evaluate(() => (window as never as { stayed?: boolean }).stayed),
      true,
      "no reload",
    );
  });

  it("loads nothing from outside the daemon, and the scalar board is the other tab", async () => {
    await page.evaluate(() => {
      location.hash = "#scalars";
    });
    await page.waitForSelector('article.card[data-tag="train/loss"]');
    const origin = new URL(url).origin;
    const foreign = requests.filter((r) => new URL(r).origin !== origin && !r.startsWith("data:"));
    assert.deepEqual(foreign, []);
    assert.ok(requests.some((r) => r.endsWith("/assets/dashboard.js")));
  });
});
