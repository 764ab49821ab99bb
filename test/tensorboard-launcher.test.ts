import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, afterEach, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { UserError } from "../lib/cli/errors.ts";
import { groupAlive, processAlive as pidAlive } from "../lib/process/index.ts";
import { tensorBoardSettingsFromEnv } from "../lib/tensorboard/config.ts";
import { probeTensorBoard } from "../lib/tensorboard/http-probe.ts";
import type { TensorBoardRecord } from "../lib/tensorboard/instance-record.ts";
import {
  ensureTensorBoard,
  inspectTensorBoard,
  stopTensorBoard,
  type TensorBoardOptions,
} from "../lib/tensorboard/launcher.ts";
import { assertOneLineError } from "./support/one-line-error.ts";

const FAKE = resolve("test/fixtures/fake-tensorboard");
const execFileAsync = promisify(execFile);

/** A port free right now, found without get-port (whose in-process lock would hide it from the launcher). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  const address = server.address();
  await new Promise((ok) => server.close(ok));
  assert.ok(address && typeof address === "object");
  return address.port;
}

async function waitUntilGone(pid: number, ms = 5000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (pidAlive(pid) || groupAlive(pid)) {
    if (Date.now() > deadline) return false;
    await sleep(25);
  }
  return true;
}

async function httpStatus(url: string): Promise<number> {
  const response = await fetch(url, { headers: { connection: "close" } });
  await response.arrayBuffer();
  return response.status;
}

describe("TensorBoard launcher", () => {
  let root: string;
  let caseNo = 0;
  /** Every pid a test started, killed in afterEach whatever the test did. */
  const started = new Set<number>();
  const recordFiles = new Set<string>();

  before(async () => {
    root = await mkdtemp(join(tmpdir(), "baton-tb-launch-"));
  });
  afterEach(async () => {
    for (const file of recordFiles) await stopTensorBoard(file, { graceMs: 500 });
    recordFiles.clear();
    for (const pid of started) {
      for (const target of [-pid, pid]) {
        try {
          process.kill(target, "SIGKILL");
        } catch {
          // already gone
        }
      }
      await waitUntilGone(pid);
    }
    started.clear();
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  async function setup(overrides: Partial<TensorBoardOptions> = {}) {
    const dir = join(root, `case-${++caseNo}`);
    const lines: string[] = [];
    const options: TensorBoardOptions = {
      logdir: join(dir, "tensorboard"),
      recordFile: join(dir, "tensorboard.json"),
      logFile: join(dir, "tensorboard.log"),
      port: await freePort(),
      binary: FAKE,
      startupTimeoutMs: 10_000,
      log: (line) => lines.push(line),
      ...overrides,
    };
    recordFiles.add(options.recordFile);
    const ensure = async (more: Partial<TensorBoardOptions> = {}) => {
      const result = await ensureTensorBoard({ ...options, ...more });
      if (result.pid !== undefined) started.add(result.pid);
      return result;
    };
    return { dir, options, lines, ensure };
  }

  it("starts TensorBoard on the preferred port, records it, and leaves it serving", async () => {
    const { options, lines, ensure } = await setup();
    const result = await ensure();
    assert.equal(result.status, "started");
    assert.equal(result.port, options.port);
    assert.equal(result.url, `http://127.0.0.1:${options.port}/`);
    assert.ok(result.pid && pidAlive(result.pid));
    assert.equal(await httpStatus(result.url), 200);
    assert.deepEqual(await probeTensorBoard("127.0.0.1", options.port ?? 0), {
      answers: true,
      logdir: resolve(options.logdir),
    });

    const record = JSON.parse(await readFile(options.recordFile, "utf8")) as TensorBoardRecord;
    assert.equal(record.pid, result.pid);
    assert.equal(record.port, options.port);
    assert.equal(record.host, "127.0.0.1");
    assert.equal(record.logdir, resolve(options.logdir));
    assert.equal(record.url, result.url);
    assert.equal(record.binary, FAKE);
    assert.ok(!Number.isNaN(Date.parse(record.started_at)));
    assert.match(
      await readFile(options.logFile, "utf8"),
      /TensorBoard .* at http:\/\/127\.0\.0\.1:\d+\/ \(Press CTRL\+C to quit\)/,
    );
    assert.ok(lines.some((line) => line.includes(`pid ${result.pid}`) && line.includes(result.url ?? "?")));
  });

  it("takes another port when the preferred one is busy", async () => {
    const { options, lines, ensure } = await setup();
    const blocker: Server = createServer();
    await new Promise<void>((ok) => blocker.listen(options.port, "127.0.0.1", ok));
    try {
      const result = await ensure();
      assert.equal(result.status, "started");
      assert.notEqual(result.port, options.port);
      assert.equal(await httpStatus(result.url ?? ""), 200);
      assert.ok(lines.some((line) => line.includes(`port ${options.port} is in use`)));
    } finally {
      await new Promise((ok) => blocker.close(ok));
    }
  });

  it("reuses a live instance serving the same logdir", async () => {
    const { lines, ensure } = await setup();
    const first = await ensure();
    const second = await ensure();
    assert.equal(second.status, "reused");
    assert.equal(second.pid, first.pid);
    assert.equal(second.url, first.url);
    assert.ok(lines.includes(`TensorBoard already running (pid ${first.pid}) at ${first.url}`));
  });

  it("starts a new instance when the recorded one died", async () => {
    const { options, ensure } = await setup();
    const first = await ensure();
    assert.ok(first.pid);
    process.kill(-first.pid, "SIGKILL");
    assert.ok(await waitUntilGone(first.pid));
    const second = await ensure();
    assert.equal(second.status, "started");
    assert.notEqual(second.pid, first.pid);
    const record = JSON.parse(await readFile(options.recordFile, "utf8")) as TensorBoardRecord;
    assert.equal(record.pid, second.pid);
  });

  it("replaces an instance serving a different logdir", async () => {
    const { dir, ensure } = await setup();
    const first = await ensure();
    const second = await ensure({ logdir: join(dir, "other-logdir") });
    assert.equal(second.status, "started");
    assert.notEqual(second.pid, first.pid);
    assert.ok(await waitUntilGone(first.pid ?? 0), "the replaced instance is stopped, not orphaned");
    assert.equal((await probeTensorBoard("127.0.0.1", second.port ?? 0)).logdir, join(dir, "other-logdir"));
  });

  it("replaces an instance bound to a different host", async () => {
    const { ensure } = await setup({ host: "127.0.0.1" });
    const first = await ensure();
    const second = await ensure({ host: "0.0.0.0" });
    assert.equal(second.status, "started");
    assert.notEqual(second.pid, first.pid);
    assert.ok(await waitUntilGone(first.pid ?? 0));
    assert.equal(await httpStatus(`http://127.0.0.1:${second.port}/`), 200);
  });

  it("never signals a recorded PID that now belongs to another program", async () => {
    const { dir, options, ensure } = await setup();
    const stale: TensorBoardRecord = {
      pid: process.pid, // alive, but it is this test runner, not TensorBoard
      port: options.port ?? 0,
      host: "127.0.0.1",
      logdir: resolve(options.logdir),
      url: "http://127.0.0.1:1/",
      started_at: new Date().toISOString(),
      binary: FAKE,
      log_file: join(dir, "tensorboard.log"),
    };
    await mkdir(dir, { recursive: true });
    await writeFile(options.recordFile, JSON.stringify(stale));
    assert.equal((await inspectTensorBoard(options.recordFile)).running, false);
    const result = await ensure();
    assert.equal(result.status, "started");
    assert.notEqual(result.pid, process.pid);
  });

  it("ignores a corrupt record file with a warning", async () => {
    const { dir, options, lines, ensure } = await setup();
    await mkdir(dir, { recursive: true });
    await writeFile(options.recordFile, "{ not json");
    const result = await ensure();
    assert.equal(result.status, "started");
    assert.ok(lines.some((line) => line.startsWith("warning:") && line.includes("not valid JSON")));
  });

  it("reports a missing binary with an install hint, without throwing", async () => {
    const { dir, options, lines, ensure } = await setup();
    for (const binary of [join(dir, "no-such-tensorboard"), "baton-test-no-such-tensorboard"]) {
      const result = await ensure({ binary });
      assert.equal(result.status, "missing");
      assert.equal(result.pid, undefined);
    }
    assert.ok(lines.some((line) => line.startsWith("warning:") && line.includes("pip install tensorboard")));
    assert.ok(lines.some((line) => line.includes("TENSORBOARD_BINARY")));
    assert.equal((await inspectTensorBoard(options.recordFile)).record, null);
  });

  it("reports a TensorBoard that exits at once, with the tail of its log", async () => {
    const { options, lines, ensure } = await setup({ env: { ...process.env, FAKE_TB_MODE: "exit" } });
    const result = await ensure();
    assert.equal(result.status, "failed");
    assert.match(result.message, /exited \(code 1\) before serving/);
    assert.ok(result.logTail?.some((line) => line.includes("ImportError")));
    assert.ok(lines.some((line) => line.includes("ImportError")));
    assert.equal((await inspectTensorBoard(options.recordFile)).record, null);
  });

  it("gives up on a TensorBoard that never answers, and kills its whole process group", async () => {
    const { options, ensure } = await setup({
      startupTimeoutMs: 800,
      env: { ...process.env, FAKE_TB_MODE: "hang", FAKE_TB_HELPER: "1" },
    });
    const result = await ensure();
    assert.equal(result.status, "failed");
    assert.match(result.message, /did not answer/);
    const helperPid = Number(/helper pid (\d+)/.exec(await readFile(options.logFile, "utf8"))?.[1]);
    assert.ok(helperPid > 0);
    started.add(helperPid);
    assert.ok(await waitUntilGone(helperPid), "no process of the group survives");
  });

  it("stops the instance and its whole process group, and forgets it", async () => {
    const { options, ensure } = await setup({ env: { ...process.env, FAKE_TB_HELPER: "1" } });
    const result = await ensure();
    assert.ok(result.pid);
    const helperPid = Number(/helper pid (\d+)/.exec(await readFile(options.logFile, "utf8"))?.[1]);
    assert.ok(helperPid > 0 && pidAlive(helperPid));
    started.add(helperPid);
    const stopped = await stopTensorBoard(options.recordFile);
    assert.equal(stopped.status, "stopped");
    assert.equal(stopped.pid, result.pid);
    assert.ok(await waitUntilGone(result.pid, 1000));
    assert.ok(await waitUntilGone(helperPid, 1000));
    assert.equal((await inspectTensorBoard(options.recordFile)).record, null);
    assert.equal((await stopTensorBoard(options.recordFile)).status, "not-running");
  });

  it("kills an instance that ignores SIGTERM once the grace period ends", async () => {
    const { options, ensure } = await setup({ env: { ...process.env, FAKE_TB_IGNORE_TERM: "1" } });
    const result = await ensure();
    const began = Date.now();
    const stopped = await stopTensorBoard(options.recordFile, { graceMs: 300 });
    assert.equal(stopped.status, "stopped");
    assert.ok(Date.now() - began >= 300);
    assert.ok(await waitUntilGone(result.pid ?? 0, 1000));
  });
});

describe("TensorBoard settings from the environment", () => {
  it("applies the documented defaults (docs/pipeline.md) and OUT_DIR", () => {
    assert.deepEqual(tensorBoardSettingsFromEnv({}), {
      logdir: join("out", "tensorboard"),
      recordFile: join("out", "tensorboard.json"),
      logFile: join("out", "tensorboard.log"),
      port: 6006,
      host: "127.0.0.1",
      binary: "tensorboard",
      board: "auto",
    });
    const custom = tensorBoardSettingsFromEnv({
      OUT_DIR: "/r",
      TF_DIR: "/tb",
      TB_PORT: "7007",
      TB_HOST: "0.0.0.0",
      TENSORBOARD_BINARY: "/opt/tb",
    });
    assert.deepEqual(custom, {
      logdir: "/tb",
      recordFile: "/r/tensorboard.json",
      logFile: "/r/tensorboard.log",
      port: 7007,
      host: "0.0.0.0",
      binary: "/opt/tb",
      board: "auto",
    });
  });

  it("rejects a bad TB_PORT naming the variable", () => {
    for (const bad of ["abc", "70000", "-1", "60.5"]) {
      assert.throws(
        () => tensorBoardSettingsFromEnv({ TB_PORT: bad }),
        (error: unknown) => {
          return error instanceof UserError && error.message.startsWith(`TB_PORT=${bad}:`);
        },
      );
    }
  });
});

describe("npm run tensorboard", () => {
  let outDir: string;
  const cli = async (args: string[], env: NodeJS.ProcessEnv = {}) => {
    try {
      const { stdout, stderr } = await execFileAsync(
        process.execPath,
        ["--import", "tsx", "pipelines/tensorboard.ts", ...args],
        {
          env: { ...process.env, OUT_DIR: outDir, TENSORBOARD_BINARY: FAKE, TB_PORT: "0", ...env },
        },
      );
      return { code: 0, stdout, stderr };
    } catch (error) {
      const failure = error as { code: number; stdout: string; stderr: string };
      return { code: failure.code, stdout: failure.stdout, stderr: failure.stderr };
    }
  };

  before(async () => {
    outDir = await mkdtemp(join(tmpdir(), "baton-tb-cli-"));
  });
  after(async () => {
    await stopTensorBoard(join(outDir, "tensorboard.json"), { graceMs: 500 });
    await rm(outDir, { recursive: true, force: true });
  });

  it("starts a TensorBoard that outlives the command, reports it, and stops it", async () => {
    const start = await cli([]);
    assert.equal(start.code, 0, start.stderr);
    assert.match(start.stdout, /TensorBoard started \(pid \d+\) at http:\/\/127\.0\.0\.1:\d+\//);
    const record = JSON.parse(await readFile(join(outDir, "tensorboard.json"), "utf8")) as TensorBoardRecord;
    assert.equal(record.logdir, join(outDir, "tensorboard"));
    assert.equal(await httpStatus(record.url), 200, "still serving after the command exited");

    const status = await cli(["--status"]);
    assert.equal(status.code, 0);
    assert.match(status.stdout, new RegExp(`TensorBoard \\(pid ${record.pid}\\) is running at`));

    const stop = await cli(["--stop"]);
    assert.equal(stop.code, 0);
    assert.match(stop.stdout, new RegExp(`stopped TensorBoard \\(pid ${record.pid}\\)`));
    assert.ok(await waitUntilGone(record.pid, 1000));

    const after = await cli(["--status"]);
    assert.equal(after.code, 1);
    assert.match(after.stdout, /not running/);
  });

  it("exits 1 with a warning when TensorBoard is missing, 2 on a bad flag", async () => {
    const missing = await cli([], {
      TENSORBOARD_BINARY: "baton-test-no-such-tensorboard",
      TB_BOARD: "tensorboard",
    });
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^tensorboard: warning: TensorBoard not found .*pip install tensorboard/m);
    const bad = await cli(["--bogus"]);
    assertOneLineError(bad, "tensorboard: error: Unknown argument: bogus");
  });
});
