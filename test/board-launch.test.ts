/*
 * The built-in board as a process: `npm run board` in the foreground (clean exit on SIGTERM, bad
 * records said once, one-line errors), and in the background through the launcher the pipeline
 * and `npm run tensorboard` use — chosen when TensorBoard is not installed or TB_BOARD=builtin,
 * recorded with its kind, reused while alive, replaced when the other board is asked for, stopped
 * by `--stop`; and a real pipeline run that starts it.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { groupAlive, processAlive as pidAlive } from "../lib/process/index.ts";
import { EventWriter } from "../lib/tensorboard/event-writer.ts";
import { probeTensorBoard } from "../lib/tensorboard/http-probe.ts";
import type { TensorBoardRecord } from "../lib/tensorboard/instance-record.ts";
import { ensureTensorBoard, stopTensorBoard, type TensorBoardOptions } from "../lib/tensorboard/launcher.ts";
import { BUILTIN_BOARD } from "../pipelines/board/launch.ts";
import { getJson, openFeed } from "./support/board-client.ts";
import { killMentioning, readRecord, runPipeline, TINY_TRAINER_FLAGS } from "./support/pipeline-process.ts";
import { referenceScalars } from "./support/tensorboard-reference.ts";
import { REPO } from "./support/trainer-process.ts";
import { startWatched } from "./support/watched-process.ts";

const FAKE = join(REPO, "test", "fixtures", "fake-tensorboard");
const execFileAsync = promisify(execFile);

async function gone(pid: number, ms = 5000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (pidAlive(pid) || groupAlive(pid)) {
    if (Date.now() > deadline) return false;
    await sleep(25);
  }
  return true;
}

describe("the built-in board as a process", () => {
  let root: string;
  const records = new Set<string>();
  before(async () => {
    root = await mkdtemp(join(tmpdir(), "baton-board-proc-"));
  });
  after(async () => {
    for (const file of records) await stopTensorBoard(file, { graceMs: 500 });
    killMentioning(root);
    await rm(root, { recursive: true, force: true });
  });

  it("npm run board: says a bad record once, and exits 0 on SIGTERM with a page connected", async () => {
    const logdir = join(root, "fg");
    const writer = await EventWriter.open(join(logdir, "pretrain"), { startStep: 1 });
    for (let step = 1; step <= 5; step++) writer.scalar("pretrain/loss", 1 / step, step);
    await writer.close();
    const bytes = await readFile(writer.path);
    bytes[bytes.byteLength - 6] = (bytes[bytes.byteLength - 6] as number) ^ 0x55; // the last record's payload
    await writeFile(writer.path, bytes);

    const board = startWatched(
      join(REPO, "pipelines", "board.ts"),
      ["--logdir", logdir, "--port", "0", "--reload-interval", "0.1"],
      {
        label: "board",
        cwd: REPO,
        detached: true,
      },
    );
    const line = await board.waitForLine(/serving .* at (http:\/\/127\.0\.0\.1:\d+\/)/);
    const url = /at (http:\/\/127\.0\.0\.1:\d+\/)/.exec(line)?.[1] ?? "";
    await sleep(800); // several re-scans
    const runs = await getJson<{
      runs: Array<{ name: string; problems: string[]; tags: Array<{ points: number }> }>;
    }>(`${url}baton/runs`);
    const run = runs.runs.find((r) => r.name === "pretrain");
    assert.equal(run?.tags[0]?.points, 4, "the points before the bad record");
    assert.equal(run?.problems.length, 1);
    assert.match(run?.problems[0] ?? "", /record at byte \d+: data checksum mismatch/);
    const feed = await openFeed(url);
    board.child.kill("SIGTERM");
    const started = Date.now();
    const exit = await board.done;
    feed.close();
    assert.equal(exit.code, 0, exit.stderr);
    assert.ok(Date.now() - started < 3000, "stops promptly though a stream is open");
    assert.match(exit.stdout, /SIGTERM: stopping[\s\S]*stopped/);
    const warnings = exit.stderr.split("\n").filter((l) => l.includes("checksum mismatch"));
    assert.equal(warnings.length, 1, exit.stderr);
    assert.match(warnings[0] ?? "", /warning: .*events\.out\.tfevents.* the rest of this file is not read/);
  });

  it("npm run board: one-line errors for a bad flag and a busy port", async () => {
    const run = async (args: string[]) => {
      try {
        await execFileAsync(process.execPath, ["--import", "tsx", "pipelines/board.ts", ...args], {
          cwd: REPO,
        });
        return { code: 0, stderr: "" };
      } catch (error) {
        return error as { code: number; stderr: string };
      }
    };
    const bad = await run(["--port", "nope"]);
    assert.equal(bad.code, 2);
    assert.equal(
      bad.stderr.trim(),
      "board: error: --port=nope: expected a port number from 0 to 65535 (0 picks any free port)",
    );
    const { createServer } = await import("node:net");
    const blocker = createServer();
    await new Promise<void>((ok) => blocker.listen(0, "127.0.0.1", ok));
    const port = (blocker.address() as { port: number }).port;
    const busy = await run(["--port", String(port), "--logdir", join(root, "busy")]);
    blocker.close();
    assert.equal(busy.code, 1);
    assert.equal(busy.stderr.trim(), `board: error: --port ${port} on 127.0.0.1 is already in use`);
  });

  it("is what the launcher starts without TensorBoard, reuses, swaps for TB_BOARD=tensorboard, and stops", async () => {
    const dir = join(root, "launch");
    const options: TensorBoardOptions = {
      logdir: join(dir, "tb"),
      recordFile: join(dir, "tensorboard.json"),
      logFile: join(dir, "tensorboard.log"),
      port: 0,
      binary: join(dir, "no", "tensorboard"),
      builtin: BUILTIN_BOARD,
    };
    records.add(options.recordFile);
    const lines: string[] = [];
    const log = (line: string) => void lines.push(line);
    const first = await ensureTensorBoard({ ...options, log });
    assert.equal(first.status, "started", lines.join("\n"));
    assert.equal(first.board, "builtin");
    assert.ok(
      lines.some((l) => /TensorBoard is not installed .*starting Baton's built-in board/.test(l)),
      lines.join("\n"),
    );
    assert.ok(lines.some((l) => l.startsWith(`Built-in board started (pid ${first.pid}) at ${first.url}`)));
    const record = JSON.parse(await readFile(options.recordFile, "utf8")) as TensorBoardRecord;
    assert.equal(record.board, "builtin");
    assert.equal(record.pid, first.pid);
    assert.deepEqual(await probeTensorBoard("127.0.0.1", first.port ?? 0), {
      answers: true,
      logdir: options.logdir,
    });
    assert.match(
      await readFile(options.logFile, "utf8"),
      /board: serving .* \(pid \d+\)/,
      "its log goes to the same file",
    );

    const again = await ensureTensorBoard({ ...options, log });
    assert.equal(again.status, "reused");
    assert.equal(again.pid, first.pid);

    const real = await ensureTensorBoard({ ...options, binary: FAKE, board: "tensorboard", log });
    assert.equal(real.status, "started");
    assert.equal(real.board, "tensorboard");
    assert.ok(await gone(first.pid ?? 0), "the built-in board was stopped for the real one");
    assert.ok(
      lines.some((l) => /stopping the previous built-in board .*TB_BOARD=tensorboard/.test(l)),
      lines.join("\n"),
    );

    const builtin = await ensureTensorBoard({ ...options, binary: FAKE, board: "builtin", log });
    assert.equal(builtin.board, "builtin", "TB_BOARD=builtin even with TensorBoard installed");
    assert.ok(await gone(real.pid ?? 0));
    const stopped = await stopTensorBoard(options.recordFile);
    assert.equal(stopped.status, "stopped");
    assert.equal(stopped.message, `stopped built-in board (pid ${builtin.pid})`);
    assert.ok(await gone(builtin.pid ?? 0), "SIGTERM ends it");
  });

  it("starts with a pipeline on a machine without TensorBoard, and serves its run", async () => {
    const out = join(root, "pipeline", "out");
    const env = {
      OUT_DIR: out,
      TB_AUTO: "1",
      TB_PORT: "0",
      TENSORBOARD_BINARY: join(root, "no", "tensorboard"),
      MODEL_HIDDEN_SIZE: "32",
      MODEL_NUM_LAYERS: "1",
      PRETRAIN_MAX_STEPS: "4",
      SAVE_INTERVAL: "2",
    };
    records.add(join(out, "tensorboard.json"));
    const run = await runPipeline(
      ["--stages", "pretrain", "--", ...TINY_TRAINER_FLAGS, "--log_interval", "1"],
      { env },
    );
    assert.equal(run.code, 0, run.stderr);
    const started =
      /\[tensorboard\] Built-in board started \(pid (\d+)\) at (http:\/\/127\.0\.0\.1:\d+\/)/.exec(
        run.stdout,
      );
    assert.ok(started, run.stdout);
    assert.doesNotMatch(run.stderr, /not found/);
    assert.ok(run.stdout.includes(`[pipeline] built-in board: ${started[2]}`), run.stdout);
    assert.equal(readRecord(out).tensorboard?.board, "builtin");
    const url = started[2] as string;
    const reference = await referenceScalars(join(out, "tensorboard"));
    const loss = reference.get("pretrain")?.get("pretrain/loss");
    assert.equal(loss?.length, 4);
    assert.deepEqual(
      await getJson(`${url}data/plugin/scalars/scalars?run=pretrain&tag=pretrain%2Floss`),
      loss,
    );

    const stop = await execFileAsync(
      process.execPath,
      ["--import", "tsx", "pipelines/tensorboard.ts", "--stop"],
      {
        cwd: REPO,
        env: { ...process.env, OUT_DIR: out },
      },
    );
    assert.match(stop.stdout, new RegExp(`stopped built-in board \\(pid ${started[1]}\\)`));
    assert.ok(await gone(Number(started[1])));
  });
});
