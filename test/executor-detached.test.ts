/**
 * The detached executor (pipelines/executor/detached.ts) on its own, with real processes: a
 * command's lines reach the follower as plain line events; a run adopted after a restart whose pid
 * now belongs to somebody else's process group leaves that group alone and ends with a reason; a
 * group that turned into another user's processes (EPERM) is left alone and the follower does not
 * crash; a launcher that cannot write the exit status says why in the log; a missing working
 * directory is named with the reason.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { chmod, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { processAlive, processStartTime, StopController, signalGroup } from "../lib/process/index.ts";
import { type DetachedHandle, detachedExecutor } from "../pipelines/executor/detached.ts";
import { statusFileOf } from "../pipelines/executor/detached-status.ts";
import type { StageEvent, StartOptions } from "../pipelines/executor/types.ts";
import { fixture, NODE } from "./fixtures/child-kit.ts";
import { REPO } from "./support/trainer-process.ts";

async function tempDir(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "baton-detached-"));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function options(events: StageEvent[] = []): StartOptions {
  return { stop: new StopController(), graceMs: 1_000, echo: false, onEvent: (event) => events.push(event) };
}

/**
 * A process leading a group of its own that is none of ours: it notes every catchable signal in
 * `signals` and is ready once that file exists (the pid a reboot gave to somebody else's program).
 */
async function bystander(
  t: { after(fn: () => void): void },
  dir: string,
): Promise<{ pid: number; signals: string }> {
  const signals = join(dir, "bystander-signals");
  const script = `
    const { appendFileSync, writeFileSync } = require("node:fs");
    for (const s of ["SIGTERM", "SIGINT", "SIGHUP"]) process.on(s, () => appendFileSync(process.argv[1], s + "\\n"));
    writeFileSync(process.argv[1], "");
    setInterval(() => {}, 1000);`;
  const child = spawn(NODE, ["-e", script, signals], { detached: true, stdio: "ignore" });
  child.unref();
  const pid = child.pid as number;
  t.after(() => {
    signalGroup(pid, "SIGKILL");
  });
  while (!existsSync(signals)) await sleep(10);
  return { pid, signals };
}

test("a started command's lines come as plain line events, labelled or not; the offset is the log's end", async (t) => {
  const dir = await tempDir(t);
  const logFile = join(dir, "run.log");
  const events: StageEvent[] = [];
  const execution = detachedExecutor.start(
    {
      label: "run 1",
      file: "/bin/sh",
      args: ["-c", "echo '[sft] HEARTBEAT:3'; echo 'CHECKPOINT:/tmp/x'; echo plain; exit 3"],
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
      logFile,
    },
    options(events),
  );
  const exit = await execution.done;
  assert.equal(exit.state, "failed");
  assert.equal(exit.exitCode, 3);
  assert.equal(exit.message, "[run 1] exited with code 3");
  const lines = events.filter((event) => event.kind !== "started");
  assert.ok(
    lines.every((event) => event.kind === "line"),
    `only line events (the follower parses): ${JSON.stringify(lines)}`,
  );
  const texts = lines.map((event) => (event.kind === "line" ? event.line : ""));
  for (const line of ["[sft] HEARTBEAT:3", "CHECKPOINT:/tmp/x", "plain"])
    assert.ok(texts.includes(line), line);
  assert.equal(execution.logOffset, readFileSync(logFile).byteLength, "every line delivered");
});

for (const recorded of [null, 3] as const) {
  test(`adopted after a reboot, its pid now leads somebody else's group${recorded === null ? "" : ", with the exit status its launcher left"}: that group is not signalled, the run ends with a reason`, async (t) => {
    const dir = await tempDir(t);
    const other = await bystander(t, dir);
    const logFile = join(dir, "run.log");
    writeFileSync(logFile, "[sft] a line before the restart\n");
    if (recorded !== null)
      writeFileSync(
        statusFileOf(logFile, other.pid),
        JSON.stringify({ exitCode: recorded, signal: null, endedAt: new Date().toISOString() }),
      );
    const realStart = processStartTime(other.pid);
    assert.ok(realStart !== null, "needs /proc");
    const handle: DetachedHandle = {
      label: "run 7",
      pid: other.pid,
      startTime: String(Number(realStart) - 1000), // the launcher's, from before the reboot
      logFile,
      offset: 0,
    };
    assert.equal(detachedExecutor.alive(handle), false, "not taken for the launcher");
    const events: StageEvent[] = [];
    const execution = detachedExecutor.adopt(handle, options(events));
    const exit = await execution.done;
    await sleep(300); // a signal sent on the way out would have arrived by now
    assert.equal(readFileSync(other.signals, "utf8"), "", "the unrelated group got no signal");
    assert.ok(processAlive(other.pid), "the unrelated group was not killed");
    assert.equal(exit.state, "failed");
    if (recorded === null) {
      assert.equal(exit.exitCode, null);
      assert.equal(
        exit.message,
        `[run 7] ended without an exit status in ${statusFileOf(logFile, other.pid)} (its launcher was killed, or could not write it: see the log)`,
      );
    } else {
      assert.equal(exit.exitCode, recorded);
      assert.equal(exit.message, `[run 7] exited with code ${recorded}`);
    }
    assert.match(
      readFileSync(logFile, "utf8"),
      new RegExp(
        ` pid ${other.pid} is now another process \\(not the launcher's start time\\): not ours, not signalled\\n`,
      ),
    );
    assert.ok(
      events.some((event) => event.kind === "line" && event.line === "[sft] a line before the restart"),
    );
  });
}

test("a group that now holds only another user's processes (EPERM) is left alone; the follower ends, it does not crash", async (t) => {
  if (process.getuid?.() !== 0) {
    t.skip("needs root, to run the follower as another user");
    return;
  }
  const dir = await tempDir(t);
  await chmod(dir, 0o777);
  const logFile = join(dir, "run.log");
  await writeFile(logFile, "");
  await chmod(logFile, 0o666);
  // Root's group: a leader and a member; the follower (nobody) sees the leader alive, then it dies.
  const leader = spawn("/bin/sh", ["-c", "sleep 60 & echo $!; wait"], {
    detached: true,
    stdio: ["ignore", "pipe", "ignore"],
  });
  const pgid = leader.pid as number;
  t.after(() => {
    signalGroup(pgid, "SIGKILL");
  });
  const member = await new Promise<number>((resolve) =>
    leader.stdout?.once("data", (chunk: Buffer) => resolve(Number(String(chunk).trim()))),
  );
  const handle: DetachedHandle = {
    label: "run 9",
    pid: pgid,
    startTime: processStartTime(pgid),
    logFile,
    offset: 0,
  };
  const follower: ChildProcess = spawn(
    NODE,
    ["--import", "tsx", fixture("detached-follower.ts"), JSON.stringify(handle)],
    {
      cwd: REPO,
      uid: 65534,
      gid: 65534,
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: dir },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let stdout = "";
  let stderr = "";
  follower.stdout?.on("data", (chunk) => {
    stdout += chunk;
  });
  follower.stderr?.on("data", (chunk) => {
    stderr += chunk;
  });
  const ended = new Promise<number | null>((resolve) => follower.once("exit", (code) => resolve(code)));
  while (!stdout.includes("FOLLOWING\n")) {
    if (follower.exitCode !== null) assert.fail(`the follower exited: ${stderr}`);
    await sleep(20);
  }
  process.kill(pgid, "SIGKILL"); // the leader only: its member stays, in its group
  assert.equal(await ended, 0, `the follower ends normally: ${stderr}`);
  const exit = JSON.parse(stdout.split("\n").filter(Boolean).at(-1) as string) as {
    state: string;
    message: string;
  };
  assert.equal(exit.state, "failed");
  assert.match(exit.message, /^\[run 9\] ended without an exit status in /);
  assert.ok(processAlive(member), "another user's process was not signalled (it could not be)");
  assert.match(
    readFileSync(logFile, "utf8"),
    new RegExp(
      `cannot reap process group ${pgid}: its processes are not ours to signal \\(EPERM\\), left alone\\n`,
    ),
  );
});

test("a launcher that cannot write the exit status says why in the log, one line; the exit names the status file", async (t) => {
  const dir = await tempDir(t);
  const logFile = join(dir, "run.log");
  const execution = detachedExecutor.start(
    { label: "run 2", file: "/bin/sh", args: ["-c", "sleep 0.5; exit 3"], env: {}, logFile },
    options(),
  );
  const pid = execution.handle?.pid as number;
  const statusFile = statusFileOf(logFile, pid);
  await mkdir(join(statusFile, "in-the-way"), { recursive: true }); // the status file cannot be renamed into place
  const exit = await execution.done;
  const log = readFileSync(logFile, "utf8");
  assert.match(
    log,
    new RegExp(
      `^\\[baton\\] cannot write the exit status \\(code 3\\) to ${statusFile}: is a directory, expected a file$`,
      "m",
    ),
  );
  assert.doesNotMatch(log, /\n\s+at /, "no stack trace");
  assert.equal(exit.exitCode, null);
  assert.equal(
    exit.message,
    `[run 2] ended without an exit status in ${statusFile} (its launcher was killed, or could not write it: see the log)`,
  );
});

test("a missing working directory: the command is not started, and the message says where and why", async (t) => {
  const dir = await tempDir(t);
  const cwd = join(dir, "no-such-folder");
  const execution = detachedExecutor.start(
    { label: "run 3", file: "/bin/true", args: [], env: {}, cwd, logFile: join(dir, "run.log") },
    options(),
  );
  assert.equal(execution.handle, null);
  const exit = await execution.done;
  assert.equal(exit.state, "failed");
  assert.equal(exit.message, `[run 3] cannot start /bin/true in ${cwd}: no such file or directory`);
});
