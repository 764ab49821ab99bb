/*
 * The built-in board's HTTP side: TensorBoard's scalar endpoints answering as TensorBoard does
 * (against TensorBoard's own output for its own writers' files, and after a real SIGKILL and
 * resume of a Baton trainer), the page's binary series and change stream, and who may connect.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import { EventWriter } from "../lib/tensorboard/event-writer.ts";
import { type BoardServer, createBoardServer } from "../pipelines/board/server.ts";
import { getJson, getSeries, getText, getWithHost, openFeed } from "./support/board-client.ts";
import { type Point, referenceScalars } from "./support/tensorboard-reference.ts";
import { runDirs, runTrainerToEnd, startTrainer, TINY_MODEL } from "./support/trainer-process.ts";

const FIXTURES = join(import.meta.dirname, "fixtures", "tensorboard");

/** TensorBoard's expected rows of one fixture folder: run → tag → [step, value, wall_time] as Python printed them. */
async function expectedRows(folder: string): Promise<Map<string, Map<string, string[][]>>> {
  const [, ...rows] = (await readFile(join(FIXTURES, `${folder}.provider.tsv`), "utf8")).trim().split("\n");
  const runs = new Map<string, Map<string, string[][]>>();
  for (const row of rows) {
    const [run = "", tag = "", step = "", value = "", wall = ""] = row.split("\t");
    const tags = runs.get(run) ?? new Map<string, string[][]>();
    runs.set(run, tags);
    tags.set(tag, [...(tags.get(tag) ?? []), [step, value, wall]]);
  }
  return runs;
}

describe("board endpoints", () => {
  const boards: BoardServer[] = [];
  let root: string;
  const serve = async (logdir: string, more: Partial<Parameters<typeof createBoardServer>[0]> = {}) => {
    const board = await createBoardServer({ logdir, port: 0, reloadIntervalMs: 0, ...more });
    boards.push(board);
    await board.loaded;
    return board;
  };
  before(async () => {
    root = await mkdtemp(join(tmpdir(), "baton-board-"));
  });
  after(async () => {
    for (const board of boards) await board.close();
    await rm(root, { recursive: true, force: true });
  });

  for (const folder of ["resume", "writers"]) {
    it(`answers /data/plugin/scalars/* for ${folder}/ with TensorBoard's own bytes`, async () => {
      const board = await serve(join(FIXTURES, folder), { watch: false });
      const expected = await expectedRows(folder);
      const tags = await getJson<
        Record<string, Record<string, { displayName: string; description: string }>>
      >(`${board.url}data/plugin/scalars/tags`);
      assert.deepEqual(Object.keys(tags).sort(), [...expected.keys()].sort());
      for (const [run, runTags] of expected) {
        assert.deepEqual(Object.keys(tags[run] ?? {}).sort(), [...runTags.keys()].sort());
        for (const [tag, rows] of runTags) {
          const query = `run=${encodeURIComponent(run)}&tag=${encodeURIComponent(tag)}`;
          // Python's json.dumps of [(wall_time, step, value), …] with its float repr.
          const json = `[${rows.map(([step, value, wall]) => `[${wall}, ${step}, ${value}]`).join(", ")}]`;
          assert.equal((await getText(`${board.url}data/plugin/scalars/scalars?${query}`)).text, json);
          const csv = [
            "Wall time,Step,Value",
            ...rows.map(([step, value, wall]) => `${wall},${step},${value}`),
          ];
          assert.equal(
            (await getText(`${board.url}data/plugin/scalars/scalars?${query}&format=csv`)).text,
            `${csv.join("\r\n")}\r\n`,
          );
        }
      }
    });
  }

  it("names runs, tags and errors as TensorBoard does", async () => {
    const board = await serve(join(FIXTURES, "writers"), { watch: false });
    assert.equal((await getText(`${board.url}data/runs`)).text, '["torch_old", "torch_new", "tb_writer"]');
    assert.deepEqual(await getJson(`${board.url}data/logdir`), { logdir: resolve(FIXTURES, "writers") });
    const tags = await getJson<Record<string, Record<string, { displayName: string }>>>(
      `${board.url}data/plugin/scalars/tags`,
    );
    assert.equal(tags.torch_old?.["train/loss"]?.displayName, "train/loss", "simple_value: the tag");
    assert.equal(tags.torch_new?.["train/loss"]?.displayName, "", "a tensor's own (empty) display name");
    const missing = await getText(`${board.url}data/plugin/scalars/scalars?run=torch_old`);
    assert.equal(missing.status, 400);
    assert.equal(
      missing.text.trim(),
      "Invalid argument: Both run and tag must be specified: tag=None, run='torch_old'",
    );
    const unknown = await getText(`${board.url}data/plugin/scalars/scalars?run=torch_old&tag=nope`);
    assert.equal(unknown.status, 404);
    assert.match(unknown.text, /^Not found: No scalar data for run='torch_old', tag='nope'/);
    const multi = await fetch(`${board.url}data/plugin/scalars/scalars_multirun`, {
      method: "POST",
      body: new URLSearchParams([
        ["tag", "train/lr"],
        ["runs", "torch_old"],
        ["runs", "nope"],
      ]),
    });
    const byRun = (await multi.json()) as Record<string, unknown[]>;
    assert.deepEqual(Object.keys(byRun), ["torch_old"]);
    assert.equal(byRun.torch_old?.length, 10);
    assert.equal((await getText(`${board.url}nope`)).status, 404);
  });

  it("serves the same points after a real SIGKILL and resume of a trainer", async () => {
    const base = join(root, "crash");
    const args = [
      ...runDirs(base, "pretrain"),
      ...TINY_MODEL,
      ...[
        "--backend",
        "cpu",
        "--max_steps",
        "14",
        "--save_interval",
        "4",
        "--log_interval",
        "1",
        "--eval",
        "false",
      ],
    ];
    const crashed = startTrainer("train_pretrain.ts", args);
    await crashed.waitForLine(/step 11\/14 /);
    crashed.child.kill("SIGKILL");
    await crashed.done;
    const resumed = await runTrainerToEnd("train_pretrain.ts", args);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stdout, /resuming from .*step_\d{8}/);

    const logdir = join(base, "tb");
    const board = await serve(logdir);
    const runs = await getJson<{
      runs: Array<{ name: string; sessionStarts: Array<{ step: number; purged: number }> }>;
    }>(`${board.url}baton/runs`);
    const run = runs.runs.find((r) => r.name === "pretrain");
    assert.ok(run, JSON.stringify(runs));
    const [first, resume] = run.sessionStarts;
    assert.equal(first?.step, 1);
    assert.ok(resume && resume.step > 1 && resume.step <= 12 && resume.purged > 0, JSON.stringify(run));

    const reference = await referenceScalars(logdir);
    const referenceTags = reference.get("pretrain");
    assert.ok(referenceTags && referenceTags.size >= 4);
    for (const [tag, points] of referenceTags) {
      const query = `run=pretrain&tag=${encodeURIComponent(tag)}`;
      const served = await getJson<Array<[number, number, number]>>(
        `${board.url}data/plugin/scalars/scalars?${query}`,
      );
      assert.deepEqual(served, points, tag);
      // One curve: every step once, the orphaned ones replaced by the resumed session's.
      assert.deepEqual(
        served.map((p) => p[1]),
        Array.from({ length: 14 }, (_, i) => i + 1),
        tag,
      );
      const binary = (await getSeries(board.url, tag)).runs.get("pretrain");
      assert.deepEqual(binary, points, `${tag} (binary)`);
    }
  });

  it("streams new points, resumes and runs in order, each after the state a fetch returned", async () => {
    const logdir = join(root, "live");
    // Changes wait 5 s before they are sent by themselves: only a fetch sends them sooner.
    const board = await serve(logdir, { reloadIntervalMs: 0, feedFlushMs: 5000 });
    const feed = await openFeed(board.url);
    const replay = (from: Point[], after: number, upTo: number): Point[] => {
      let points = from.map(([w, s, v]): Point => [w, s, v]);
      for (const m of feed.messages) {
        if (typeof m.seq !== "number" || m.seq <= after || m.seq > upTo || m.run !== "pretrain") continue;
        if (m.type === "purge") points = points.filter((p) => p[1] < (m.fromStep as number));
        if (m.type === "points" && m.tag === "pretrain/loss") {
          const { wallTime, step, value } = m as unknown as Record<string, number[]>;
          for (const [i, s] of (step ?? []).entries())
            points.push([wallTime?.[i] as number, s, value?.[i] as number]);
        }
      }
      return points;
    };

    const writer = await EventWriter.open(join(logdir, "pretrain"), { startStep: 1 });
    for (let step = 1; step <= 6; step++) writer.scalars({ "pretrain/loss": 1 / step }, step);
    await writer.flush();
    await board.scalars.refresh(); // read now: the changes are noted, not yet sent
    const first = await getSeries(board.url, "pretrain/loss");
    assert.deepEqual(
      first.runs.get("pretrain")?.map((p) => p[1]),
      [1, 2, 3, 4, 5, 6],
    );
    await feed.waitFor((m) => m.seq === first.seq, 2000);
    assert.ok(
      feed.messages.some((m) => m.type === "runs" && (m.seq as number) <= first.seq),
      "the new run was announced",
    );

    // A resume in a new file: its START purges steps 4..6, then 4..8 arrive again.
    await writer.close();
    const resumed = await EventWriter.open(join(logdir, "pretrain"), { startStep: 4 });
    for (let step = 4; step <= 8; step++) resumed.scalars({ "pretrain/loss": 2 / step }, step);
    await resumed.close();
    await board.scalars.refresh();
    const second = await getSeries(board.url, "pretrain/loss");
    assert.deepEqual(
      second.runs.get("pretrain")?.map((p) => p[1]),
      [1, 2, 3, 4, 5, 6, 7, 8],
    );
    await feed.waitFor((m) => m.seq === second.seq, 2000);
    assert.ok(feed.messages.some((m) => m.type === "purge" && m.fromStep === 4));
    // Replaying the stream after a fetch's stamp gives exactly what a later fetch gives.
    assert.deepEqual(
      replay(first.runs.get("pretrain") ?? [], first.seq, second.seq),
      second.runs.get("pretrain"),
    );
    assert.deepEqual(replay([], 0, second.seq), second.runs.get("pretrain"), "from nothing, too");

    // Points, then a purge, then points again, all in one batch: the order must survive the batching.
    const crashed = await EventWriter.open(join(logdir, "sft"), { startStep: 1 });
    for (let step = 1; step <= 5; step++) crashed.scalars({ "pretrain/loss": step }, step);
    await crashed.close();
    const again = await EventWriter.open(join(logdir, "sft"), { startStep: 3 });
    for (let step = 3; step <= 6; step++) again.scalars({ "pretrain/loss": 10 * step }, step);
    await again.close();
    await board.scalars.refresh();
    const third = await getSeries(board.url, "pretrain/loss");
    await feed.waitFor((m) => m.seq === third.seq, 2000);
    const sftOnly = (m: Record<string, unknown>) => m.run === "sft";
    const sftMessages = feed.messages.filter(sftOnly);
    assert.deepEqual(
      sftMessages.map((m) => m.type),
      ["points", "purge", "points"],
    );
    let sft: Point[] = [];
    for (const m of sftMessages) {
      if (m.type === "purge") sft = sft.filter((p) => p[1] < (m.fromStep as number));
      const { wallTime, step, value } = m as unknown as Record<string, number[]>;
      if (m.type === "points")
        for (const [i, st] of (step ?? []).entries())
          sft.push([wallTime?.[i] as number, st, value?.[i] as number]);
    }
    assert.deepEqual(sft, third.runs.get("sft"));
    assert.deepEqual(
      sft.map((p) => p[2]),
      [1, 2, 30, 40, 50, 60],
    );
    feed.close();
  });

  it("serves only loopback names by default, and only with the token when one is set", async () => {
    const open = await serve(join(FIXTURES, "resume"), { watch: false });
    assert.equal(await getWithHost(`${open.url}data/runs`, `127.0.0.1:${open.port}`), 200);
    assert.equal(await getWithHost(`${open.url}data/runs`, `localhost:${open.port}`), 200);
    assert.equal(await getWithHost(`${open.url}data/runs`, `attacker.example:${open.port}`), 403);

    const locked = await serve(join(FIXTURES, "resume"), { watch: false, token: "s3cret" });
    assert.equal((await getText(`${locked.url}data/runs`)).status, 401);
    assert.equal((await getText(`${locked.url}data/runs`, { authorization: "Bearer wrong" })).status, 401);
    assert.equal((await getText(`${locked.url}data/runs`, { authorization: "Bearer s3cret" })).status, 200);
    const entry = await getText(`${locked.url}?token=s3cret`);
    assert.equal(entry.status, 303);
    assert.equal(entry.headers.get("location"), "/");
    const cookie = (entry.headers.get("set-cookie") ?? "").split(";")[0] ?? "";
    assert.equal((await getText(`${locked.url}baton/runs`, { cookie })).status, 200);
    assert.equal((await getText(`${locked.url}?token=nope`)).status, 401);
  });

  it("serves the page and its assets itself, loading nothing from elsewhere", async () => {
    const board = await serve(join(FIXTURES, "resume"), { watch: false });
    const page = await getText(board.url);
    assert.equal(page.status, 200);
    const sources = [...page.text.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1] ?? "");
    assert.ok(sources.length >= 3, page.text);
    for (const source of sources) {
      assert.ok(source.startsWith("/") || source.startsWith("data:"), `${source} is not served by the board`);
      if (source.startsWith("/"))
        assert.equal((await getText(new URL(source, board.url).href)).status, 200, source);
    }
    assert.match(page.headers.get("content-security-policy") ?? "", /default-src 'self'/);
  });
});
