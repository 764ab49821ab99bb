/**
 * The built-in board under load: `npm run bench:board`. For 1, 10 and 100 runs × 10k points per
 * tag (4 tags a run, like a trainer's loss, lr, grad_norm and tokens/s; written with
 * lib/tensorboard's EventWriter), plus 1 run × 100k points, it starts `pipelines/board.ts` as its
 * own process and measures:
 *   load        spawn → the board has read every event file (/baton/status says loaded)
 *   firstChart  page navigation start → the first chart drawn, in headless Chromium (median of 3 loads)
 *   rss         the board process's resident memory after loading, and its peak (VmHWM) after the page loads
 * Goals: first chart < 1 s and memory < 300 MB at 100 runs. Prints one JSON object per case and a
 * table; writes out/bench-board.json. BENCH_BOARD_CASES=1x10000,10x10000 picks cases.
 */
import { readFileSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EventWriter } from "../lib/tensorboard/event-writer.ts";
import { launchChromium } from "../test/support/browser.ts";
import { startWatched } from "../test/support/watched-process.ts";

const REPO = join(import.meta.dirname, "..");
const TAGS = ["loss", "lr", "grad_norm", "tokens_per_sec"];
const CASES = (process.env.BENCH_BOARD_CASES ?? "1x10000,10x10000,100x10000,1x100000")
  .split(",")
  .map((text) => {
    const [runs, points] = text.split("x").map(Number);
    return { runs: runs ?? 1, points: points ?? 10_000 };
  });
const LOADS = 3;

const print = (record: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(record)}\n`);
const mb = (kb: number) => Math.round(kb / 1024);

function procStatus(pid: number): { rssKb: number; hwmKb: number } {
  const text = readFileSync(`/proc/${pid}/status`, "utf8");
  const field = (name: string) =>
    Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? Number.NaN);
  return { rssKb: field("VmRSS"), hwmKb: field("VmHWM") };
}

async function writeLogdir(dir: string, runs: number, points: number): Promise<void> {
  for (let r = 0; r < runs; r++) {
    const writer = await EventWriter.open(join(dir, "sweep", `run_${String(r).padStart(3, "0")}`), {
      startStep: 1,
      now: () => 1.7e12 + r * 1000,
    });
    const phase = r / Math.max(1, runs);
    for (let step = 1; step <= points; step++) {
      const noise = Math.sin(step * 12.9898 + r * 78.233) * 0.05;
      writer.scalars(
        {
          [`bench/${TAGS[0]}`]: 4 * Math.exp(-step / (points / 3)) + 0.5 + phase + noise,
          [`bench/${TAGS[1]}`]: 1e-3 * (1 - step / points) + 1e-5,
          [`bench/${TAGS[2]}`]: 1.5 + noise * 4,
          [`bench/${TAGS[3]}`]: 900 + 100 * Math.sin(step / 50) + r,
        },
        step,
        1.7e9 + r * 10 + step * 0.5,
      );
      if (step % 5000 === 0) await writer.flush();
    }
    await writer.close();
  }
}

async function waitLoaded(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const status = (await (await fetch(`${url}baton/status`)).json()) as { loaded: boolean };
      if (status.loaded) return;
    } catch {
      // not answering yet
    }
    if (Date.now() > deadline)
      throw new Error(`the board at ${url} did not finish loading in ${timeoutMs / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const root = await mkdtemp(join(tmpdir(), "baton-bench-board-"));
const browser = await launchChromium({ width: 1400, height: 900 });
const results: Array<Record<string, unknown>> = [];
try {
  for (const { runs, points } of CASES) {
    const logdir = join(root, `${runs}x${points}`);
    await mkdir(logdir, { recursive: true });
    const writeStart = performance.now();
    await writeLogdir(logdir, runs, points);
    const writeSeconds = (performance.now() - writeStart) / 1000;

    const spawned = performance.now();
    const board = startWatched(join(REPO, "pipelines", "board.ts"), ["--logdir", logdir, "--port", "0"], {
      label: "board",
      cwd: REPO,
    });
    try {
      const line = await board.waitForLine(/serving .* at (http:\/\/\S+\/)/);
      const url = /at (http:\/\/\S+\/)/.exec(line)?.[1] ?? "";
      await waitLoaded(url, 300_000);
      const loadSeconds = (performance.now() - spawned) / 1000;
      const pid = board.child.pid as number;
      const loaded = procStatus(pid);

      const firstCharts: number[] = [];
      for (let i = 0; i < LOADS; i++) {
        const page = await browser.context.newPage();
        await page.goto(url);
        await page.waitForFunction(
          () =>
            (
              window as never as { batonBoard: { debug: { firstChartAt(): number | null } } }
            ).batonBoard.debug.firstChartAt() !== null,
          undefined,
          { timeout: 120_000 },
        );
        firstCharts.push(
          await page.evaluate(() =>
            (
              window as never as { batonBoard: { debug: { firstChartAt(): number } } }
            ).batonBoard.debug.firstChartAt(),
          ),
        );
        await page.close();
      }
      firstCharts.sort((a, b) => a - b);
      const afterPages = procStatus(pid);
      const result = {
        bench: "board",
        runs,
        pointsPerTag: points,
        tags: TAGS.length,
        totalPoints: runs * points * TAGS.length,
        writeSeconds: Math.round(writeSeconds * 10) / 10,
        loadSeconds: Math.round(loadSeconds * 10) / 10,
        firstChartMs: Math.round(firstCharts[Math.floor(LOADS / 2)] ?? Number.NaN),
        firstChartMaxMs: Math.round(firstCharts[LOADS - 1] ?? Number.NaN),
        rssLoadedMb: mb(loaded.rssKb),
        rssPeakMb: mb(afterPages.hwmKb),
      };
      results.push(result);
      print(result);
    } finally {
      board.child.kill("SIGTERM");
      await board.done;
    }
    await rm(logdir, { recursive: true, force: true });
  }
} finally {
  await browser.close();
  await rm(root, { recursive: true, force: true });
}

const lines = [
  "| runs × points per tag | points in all | load | first chart (median / max of 3) | board RSS loaded / peak |",
  "|---|---|---|---|---|",
  ...results.map(
    (r) =>
      `| ${r.runs} × ${Number(r.pointsPerTag).toLocaleString("en-US")} | ${Number(r.totalPoints).toLocaleString("en-US")} | ${r.loadSeconds} s | ${r.firstChartMs} / ${r.firstChartMaxMs} ms | ${r.rssLoadedMb} / ${r.rssPeakMb} MB |`,
  ),
];
process.stdout.write(`\n${lines.join("\n")}\n`);
await mkdir(join(REPO, "out"), { recursive: true });
await writeFile(join(REPO, "out", "bench-board.json"), `${JSON.stringify(results, null, 2)}\n`);
