/**
 * A daemon start that fails after its socket is bound and its registry open closes everything it
 * had opened: the error names what failed, the socket file is gone, the registry is closed (its
 * queued events written), runs it had adopted go on — and the process, left to itself, ends
 * promptly: no server, timer or handle is left behind.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { processAlive, processStartTime } from "../lib/process/index.ts";
import { RunRegistry } from "../lib/registry/index.ts";
import { daemonPaths } from "../pipelines/daemon/paths.ts";
import { pipelineTestRoot, REPO } from "./support/pipeline-process.ts";
import { type ProcessExit, startWatched } from "./support/watched-process.ts";

const root = pipelineTestRoot("daemon-startup");
const CHILD = join(REPO, "test", "fixtures", "daemon-start-child.ts");
const EXIT_WITHIN_MS = 20_000;

/** Start the daemon in a child and wait for it to end by itself. */
async function failedStart(outRoot: string, flags: string[] = []): Promise<ProcessExit> {
  const child = startWatched(CHILD, ["--out", outRoot, ...(flags.length > 0 ? flags : ["--port", "0"])], {
    label: "daemon start",
    cwd: REPO,
    env: { CUDA_VISIBLE_DEVICES: "", TB_AUTO: "0", FORCE_COLOR: "0" },
  });
  const ended = await Promise.race([child.done, sleep(EXIT_WITHIN_MS).then(() => null)]);
  if (ended === null) {
    child.child.kill("SIGKILL");
    const { stdout, stderr } = await child.done;
    assert.fail(
      `the process did not end within ${EXIT_WITHIN_MS} ms of a failed start (handles left open)\n${stdout}${stderr}`,
    );
  }
  assert.equal(ended.code, 0, ended.stderr);
  return ended;
}

/** A registry with one run marked running, as a daemon that died would leave it. */
function registryWithRunning(
  outRoot: string,
  run: { pid: number; pidStart: string | null; config?: string },
) {
  const paths = daemonPaths(outRoot);
  mkdirSync(paths.runsDir, { recursive: true });
  const logFile = paths.runLog(1);
  mkdirSync(join(paths.runsDir, "1"), { recursive: true });
  writeFileSync(logFile, "");
  const registry = RunRegistry.open(paths.registry);
  const config = { version: 1, kind: "pipeline", name: "adopt-me", slots: 1, args: [], env: {} };
  registry.write(() => {
    const row = registry.insertRun({
      status: "running",
      kind: "pipeline",
      name: "adopt-me",
      config: run.config ?? JSON.stringify(config),
      config_digest: "digest",
      slots_requested: 1,
      submitted_at: new Date().toISOString(),
      log_path: () => logFile,
    });
    registry.updateRun(row.id, { pid: run.pid, pid_start: run.pidStart, attempts: 1 });
  });
  registry.close();
  return paths;
}

describe("a daemon whose start fails late leaves nothing open", { timeout: 120_000 }, () => {
  test("its lock file cannot be written, with a run adopted: the error names the file, the run goes on", async () => {
    const outRoot = join(root, "lock");
    const sleeper = spawn("sleep", ["60"], { detached: true, stdio: "ignore" });
    const pid = sleeper.pid as number;
    try {
      const paths = registryWithRunning(outRoot, { pid, pidStart: processStartTime(pid) });
      mkdirSync(paths.lockFile); // a folder where daemon.json goes: the rename onto it fails
      const ended = await failedStart(outRoot);
      assert.equal(ended.stdout, `failed: cannot write ${paths.lockFile}: is a directory, expected a file\n`);
      assert.match(ended.stderr, /run 1: adopted/);
      assert.ok(!existsSync(paths.socket), "the socket file is removed");
      assert.ok(!existsSync(`${paths.registry}-wal`), "the registry was closed (its WAL folded back)");
      assert.ok(processAlive(pid), "the adopted run goes on");
      const registry = RunRegistry.open(paths.registry);
      try {
        assert.equal(registry.getRun(1)?.status, "running");
        assert.deepEqual(
          registry.eventsAfter(1, 0).map((event) => event.type),
          ["adopted"],
          "the adoption queued before the failure is written at close",
        );
      } finally {
        registry.close();
      }
    } finally {
      process.kill(-pid, "SIGKILL");
    }
  });

  test("reconciling fails (a run's stored config is not JSON): the error names the registry", async () => {
    const outRoot = join(root, "reconcile");
    const paths = registryWithRunning(outRoot, {
      pid: 2 ** 22 + 12_345,
      pidStart: null,
      config: "{not json",
    });
    const ended = await failedStart(outRoot);
    assert.match(
      ended.stdout,
      new RegExp(`^failed: cannot reconcile the runs of the run registry ${paths.registry}: .*JSON`),
    );
    assert.ok(!existsSync(paths.socket));
    assert.ok(!existsSync(`${paths.registry}-wal`));
  });

  test("the port is taken once the socket is bound: the error names --port", async () => {
    const outRoot = join(root, "port");
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    const port = (blocker.address() as { port: number }).port;
    try {
      const ended = await failedStart(outRoot, ["--port", String(port)]);
      assert.equal(
        ended.stdout,
        `failed: --port ${port}: 127.0.0.1:${port} is already in use (choose another with --port)\n`,
      );
      assert.ok(!existsSync(daemonPaths(outRoot).socket));
    } finally {
      blocker.close();
    }
  });
});
