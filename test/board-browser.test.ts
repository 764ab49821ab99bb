/*
 * The board page in a real headless Chromium (Debian's, driven by playwright-core): on the logdir
 * of a finished smoke pipeline every chart holds and draws exactly the event files' points; the
 * smoothing slider, axes, log scale, hover read-out and downloads work; and a trainer that starts,
 * is SIGKILLed and resumes while the page is open adds its points to the page without a reload,
 * its resume marked on the curve. Screenshots go to out/board-*.png.
 */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, before, describe, it } from "node:test";
import type { Page } from "playwright-core";
import { type BoardServer, createBoardServer } from "../pipelines/board/server.ts";
import { type Browser, launchChromium } from "./support/browser.ts";
import { killMentioning, runPipeline } from "./support/pipeline-process.ts";
import { type Point, type Reference, referenceScalars } from "./support/tensorboard-reference.ts";
import { REPO, runTrainerToEnd, startTrainer, TINY_MODEL } from "./support/trainer-process.ts";

const SHOTS = join(REPO, "out");

interface Drawn {
  run: string;
  x: number[];
  raw: Array<number | null>;
  smoothed: Array<number | null>;
  markers: Array<{ step: number; x: number; y: number | null }>;
}

/** TensorBoard's debiased EMA in closed form: Σ w^(i-j)(1-w)v_j / (1 - w^(i+1)). */
function expectedSmoothing(values: number[], w: number): number[] {
  if (values.every((v) => v === values[0])) return values;
  return values.map((_, i) => {
    let sum = 0;
    for (let j = 0; j <= i; j++) sum += w ** (i - j) * (1 - w) * (values[j] as number);
    return sum / (1 - w ** (i + 1));
  });
}

function assertClose(actual: Array<number | null>, expected: number[], what: string): void {
  assert.equal(actual.length, expected.length, what);
  for (const [i, e] of expected.entries()) {
    const a = actual[i] as number;
    assert.ok(Math.abs(a - e) <= 1e-9 * Math.max(1, Math.abs(e)), `${what}[${i}]: ${a} vs ${e}`);
  }
}

describe("the board page in Chromium", () => {
  let root: string;
  let logdir: string;
  let board: BoardServer;
  let browser: Browser;
  let page: Page;
  let reference: Reference;
  const requests: string[] = [];
  const pageErrors: string[] = [];
  const debug = <T>(call: string): Promise<T> =>
    page.evaluate(`window.batonBoard.debug.${call}`) as Promise<T>;

  /** Scroll a tag's chart into view (charts load lazily) and wait until it is drawn. */
  async function chart(tag: string): Promise<Drawn[]> {
    const card = page.locator(`article.card[data-tag="${tag}"]`);
    await card.scrollIntoViewIfNeeded();
    await page.waitForFunction(
      (t) =>
        (window as never as { batonBoard: { debug: { drawn(t: string): unknown } } }).batonBoard.debug.drawn(
          t,
        ) !== null,
      tag,
    );
    return debug<Drawn[]>(`drawn(${JSON.stringify(tag)})`);
  }

  before(async () => {
    root = await mkdtemp(join(tmpdir(), "baton-board-page-"));
    const out = join(root, "smoke");
    // The smoke test's model (hidden 64 × 2 layers) on the default wasm backend: about 20 s.
    const smoke = await runPipeline(["--smoke-test", "--skip-infer"], {
      env: { OUT_DIR: out, TB_AUTO: "0" },
    });
    assert.equal(smoke.code, 0, smoke.stderr);
    logdir = join(out, "tensorboard");
    reference = await referenceScalars(logdir);
    board = await createBoardServer({ logdir, port: 0 });
    await board.loaded;
    browser = await launchChromium();
    page = await browser.context.newPage();
    page.on("request", (request) => requests.push(request.url()));
    page.on("pageerror", (error) => pageErrors.push(error.message));
    await page.goto(board.url);
    await mkdir(SHOTS, { recursive: true });
  });
  afterEach(() => {
    assert.deepEqual(pageErrors.splice(0), [], "the page threw");
  });
  after(async () => {
    await browser?.close();
    await board?.close();
    killMentioning(root);
    await rm(root, { recursive: true, force: true });
  });

  it("shows every tag of the smoke pipeline with exactly its event files' points", async () => {
    const tags = new Set<string>();
    for (const runTags of reference.values()) for (const tag of runTags.keys()) tags.add(tag);
    assert.ok(tags.size >= 12, [...tags].join(", "));
    await page.waitForFunction(
      (n) =>
        (window as never as { batonBoard: { debug: { tags(): string[] } } }).batonBoard.debug.tags().length >=
        n,
      tags.size,
    );
    assert.deepEqual((await debug<string[]>("tags()")).sort(), [...tags].sort());
    for (const tag of tags) {
      const drawn = await chart(tag);
      const expected = new Map<string, Point[]>();
      for (const [run, runTags] of reference)
        if (runTags.has(tag)) expected.set(run, runTags.get(tag) as Point[]);
      const held = await debug<Record<string, Point[]>>(`points(${JSON.stringify(tag)})`);
      assert.deepEqual(new Map(Object.entries(held)), expected, tag);
      // What uPlot was given to draw: per run the steps against the raw values, then the smoothed curve.
      const data = await debug<Array<[number[], Array<number | null>]>>(`uplotData(${JSON.stringify(tag)})`);
      assert.equal(data.length, 2 * expected.size, tag);
      for (const [i, points] of [...expected.values()].entries()) {
        assert.deepEqual(
          data[2 * i]?.[0],
          points.map((p) => p[1]),
          `${tag}: x`,
        );
        assert.deepEqual(
          data[2 * i]?.[1],
          points.map((p) => (Number.isFinite(p[2]) ? p[2] : null)),
          `${tag}: raw`,
        );
        assert.deepEqual(data[2 * i + 1]?.[1], drawn[i]?.smoothed, `${tag}: smoothed`);
      }
    }
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: join(SHOTS, "board-smoke.png"), fullPage: true });
    const origin = new URL(board.url).origin;
    const elsewhere = requests.filter(
      (url) => !url.startsWith(origin) && !url.startsWith("data:") && !url.startsWith("blob:"),
    );
    assert.deepEqual(elsewhere, [], "the page loads nothing from outside the board");
  });

  it("redraws the smoothed curve when the slider moves, as TensorBoard smooths", async () => {
    const tag = "pretrain/loss";
    const values = (reference.get("pretrain")?.get(tag) ?? []).map((p) => p[2]);
    const before = await chart(tag);
    assertClose(before[0]?.smoothed ?? [], expectedSmoothing(values, 0.6), "smoothing 0.6");
    const element = page.locator(`article.card[data-tag="${tag}"] .chart`);
    const shotBefore = await element.screenshot();

    const slider = page.locator("#smoothing");
    const box = await slider.boundingBox();
    assert.ok(box);
    await page.mouse.click(box.x + box.width * 0.97, box.y + box.height / 2);
    const weight = Number(await page.locator("#smoothing-value").inputValue());
    assert.ok(weight > 0.9, `slider at ${weight}`);
    await page.waitForFunction(
      ([t, first]) => {
        const drawn = (
          window as never as { batonBoard: { debug: { drawn(t: string): Array<{ smoothed: number[] }> } } }
        ).batonBoard.debug.drawn(t);
        return drawn[0]?.smoothed[drawn[0].smoothed.length - 1] !== first;
      },
      [tag, before[0]?.smoothed.at(-1)] as const,
    );
    const afterMove = await debug<Drawn[]>(`drawn(${JSON.stringify(tag)})`);
    assertClose(afterMove[0]?.smoothed ?? [], expectedSmoothing(values, weight), `smoothing ${weight}`);
    assert.deepEqual(afterMove[0]?.raw, before[0]?.raw, "the raw curve stays");
    const shotAfter = await element.screenshot();
    assert.notDeepEqual(shotAfter, shotBefore, "the drawn pixels changed");
    await page.screenshot({ path: join(SHOTS, "board-smoothing.png") });
  });

  it("switches the x axis and the y scale, reads out the hovered points, and downloads them", async () => {
    const tag = "sft/loss";
    const points = reference.get("sft")?.get(tag) ?? [];
    await chart(tag);
    await page.locator('input[name="x-axis"][value="wall"]').check();
    await page.waitForFunction(
      (t) =>
        (
          window as never as { batonBoard: { debug: { scales(t: string): { xTime: boolean } } } }
        ).batonBoard.debug.scales(t)?.xTime === true,
      tag,
    );
    assert.deepEqual(
      (await chart(tag))[0]?.x,
      points.map((p) => p[0]),
      "wall time",
    );
    await page.locator('input[name="x-axis"][value="relative"]').check();
    await page.waitForFunction(
      (t) =>
        (
          window as never as { batonBoard: { debug: { scales(t: string): { xTime: boolean } } } }
        ).batonBoard.debug.scales(t)?.xTime === false,
      tag,
    );
    assert.deepEqual(
      (await chart(tag))[0]?.x,
      points.map((p) => p[0] - (points[0]?.[0] ?? 0)),
      "relative time",
    );
    await page.locator('input[name="x-axis"][value="step"]').check();
    await page.locator("#log-y").check();
    await page.waitForFunction(
      (t) =>
        (
          window as never as { batonBoard: { debug: { scales(t: string): { yDistr: number } } } }
        ).batonBoard.debug.scales(t)?.yDistr === 3,
      tag,
    );

    const plot = page.locator(`article.card[data-tag="${tag}"] .u-over`);
    const box = await plot.boundingBox();
    assert.ok(box);
    await page.mouse.move(box.x + box.width - 2, box.y + box.height / 2);
    const readout = page.locator(`article.card[data-tag="${tag}"] .readout`);
    await readout.waitFor({ state: "visible" });
    const last = points.at(-1) as Point;
    assert.match(
      await readout.innerText(),
      new RegExp(`sft\\s[\\s\\S]*\\b${last[1]}\\b`),
      "the last step is read out",
    );
    await page.locator("#log-y").uncheck();

    const download = page.waitForEvent("download");
    await page.locator(`article.card[data-tag="${tag}"] [data-download="csv"]`).click();
    const csv = await readFile(await (await download).path(), "utf8");
    const rows = csv.trim().split("\n");
    assert.equal(rows[0], "run,tag,wall_time,step,value");
    assert.deepEqual(
      rows.slice(1).map((r) => r.split(",").slice(2).map(Number)),
      points,
    );
    const json = page.waitForEvent("download");
    await page.locator(`article.card[data-tag="${tag}"] [data-download="json"]`).click();
    const body = JSON.parse(await readFile(await (await json).path(), "utf8")) as {
      runs: Record<string, Point[]>;
    };
    assert.deepEqual(body.runs.sft, points);
  });

  it("adds a training run's points to the open page, through a SIGKILL and resume, without a reload", async () => {
    await page.evaluate(() => {
      (window as never as { stayed: boolean }).stayed = true;
    });
    const args = [
      ...["--out_dir", join(root, "live-out"), "--tensorboard_dir", join(logdir, "live")],
      ...TINY_MODEL,
      ...[
        "--backend",
        "cpu",
        "--max_steps",
        "16",
        "--save_interval",
        "6",
        "--log_interval",
        "1",
        "--eval",
        "false",
      ],
    ];
    const counts = new Set<number>();
    let polling = true;
    const poll = (async () => {
      while (polling) {
        const held = await debug<Record<string, Point[]>>('points("pretrain/loss")').catch(
          () => ({}) as Record<string, Point[]>,
        );
        counts.add(held.live?.length ?? 0);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    await chart("pretrain/loss");
    const crashed = startTrainer("train_pretrain.ts", args);
    await crashed.waitForLine(/step 10\/16 /);
    crashed.child.kill("SIGKILL");
    await crashed.done;
    const resumed = await runTrainerToEnd("train_pretrain.ts", args);
    assert.equal(resumed.code, 0, resumed.stderr);
    await page.waitForFunction(
      () => {
        const held = (
          window as never as { batonBoard: { debug: { points(t: string): Record<string, unknown[]> } } }
        ).batonBoard.debug.points("pretrain/loss");
        return held.live?.length === 16;
      },
      undefined,
      { timeout: 15_000 },
    );
    polling = false;
    await poll;

    const expected = (await referenceScalars(join(logdir, "live"))).get(".")?.get("pretrain/loss");
    const held = await debug<Record<string, Point[]>>('points("pretrain/loss")');
    assert.deepEqual(held.live, expected);
    assert.deepEqual(
      held.live?.map((p) => p[1]),
      Array.from({ length: 16 }, (_, i) => i + 1),
      "one curve across the crash",
    );
    const growing = [...counts].filter((n) => n > 0 && n < 16);
    assert.ok(growing.length >= 3, `the page grew while training: saw ${[...counts].join(", ")} points`);
    assert.equal(
      await page.evaluate(() => (window as never as { stayed?: boolean }).stayed),
      true,
      "not reloaded",
    );
    assert.equal(await page.evaluate(() => performance.getEntriesByType("navigation").length), 1);

    const drawn = (await chart("pretrain/loss")).find((d) => d.run === "live");
    assert.deepEqual(
      drawn?.markers.map((m) => m.step),
      [7],
      "the resume (START at step 7) is marked",
    );
    await page.locator('article.card[data-tag="pretrain/loss"]').scrollIntoViewIfNeeded();
    await page.screenshot({ path: join(SHOTS, "board-live.png") });
  });

  it("takes more panels and routes from whoever mounts it (the daemon's dashboard will)", async () => {
    const panel = `window.batonBoard.registerPanel({
      id: "runs", title: "Runs",
      mount(el, ctx) {
        const show = (answer) => { el.textContent = "runs: " + answer.runs.map((r) => r.name).join(" "); };
        ctx.onRuns(show);
        fetch("/api/ping").then((r) => r.json()).then((j) => { el.dataset.ping = j.pong; });
      },
    });`;
    const host = await createBoardServer({
      logdir: join(REPO, "test", "fixtures", "tensorboard", "resume"),
      port: 0,
      watch: false,
      panelScripts: ["/panels/runs.js"],
      extraRoutes: [
        {
          path: "/panels/runs.js",
          handle: (_req, res) => {
            res.writeHead(200, { "content-type": "text/javascript" });
            res.end(panel);
          },
        },
        {
          path: "/api/ping",
          handle: (_req, res) => {
            res.writeHead(200, { "content-type": "application/json" });
            res.end('{"pong":"yes"}');
          },
        },
      ],
    });
    try {
      const other = await browser.context.newPage();
      other.on("pageerror", (error) => pageErrors.push(error.message));
      await other.goto(host.url);
      await other.locator("#panel-tabs button", { hasText: "Runs" }).click();
      const section = other.locator("#panel-runs");
      await section.waitFor({ state: "visible" });
      await other.waitForFunction(
        () => document.querySelector<HTMLElement>("#panel-runs")?.dataset.ping === "yes",
      );
      assert.equal(await section.innerText(), "runs: with_start no_start");
      assert.equal(await other.locator("#panel-scalars").isVisible(), false, "one panel at a time");
      await other.close();
    } finally {
      await host.close();
    }
  });
});
