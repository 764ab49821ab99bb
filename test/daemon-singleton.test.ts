/**
 * One daemon per out root, by binding its socket: two started at once → one serves and the other
 * exits 2 naming it; a socket left by a SIGKILLed daemon is taken over; the socket is owner-only;
 * an address other than loopback needs BATON_TOKEN, then carried by every request; --detach
 * returns once the daemon serves.
 */
import assert from "node:assert/strict";
import { existsSync, readFileSync, statSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { DaemonClient } from "../pipelines/daemon/client.ts";
import { daemonPaths } from "../pipelines/daemon/paths.ts";
import { DAEMON, startDaemon, stopDaemon } from "./support/daemon-process.ts";
import { pipelineTestRoot, REPO } from "./support/pipeline-process.ts";
import { startWatched } from "./support/watched-process.ts";

const root = pipelineTestRoot("daemon-one");

describe("one daemon", { timeout: 90_000 }, () => {
  test("two daemons started at once: one serves, the other exits 2 naming its pid; a dead one's socket is taken over", async (t) => {
    const out = join(root, "pair");
    const a = startDaemon(out);
    const b = startDaemon(out);
    t.after(() => Promise.all([stopDaemon(a), stopDaemon(b)]));
    const first = await Promise.race([
      a.process.done.then(() => "a"),
      b.process.done.then(() => "b"),
      sleep(20_000, "neither", { ref: false }), // not holding the process open once one has gone
    ]);
    assert.notEqual(first, "neither", "one of the two must give way");
    const [loser, winner] = first === "a" ? [a, b] : [b, a];
    const lost = await loser.process.done;
    assert.equal(lost.code, 2, lost.stderr);
    const health = await winner.ready();
    assert.equal(health.pid, winner.process.child.pid);
    assert.equal(
      lost.stderr.trim(),
      `daemon: error: another daemon is already running (pid ${winner.process.child.pid}) on ${winner.socket}`,
    );
    assert.equal((statSync(winner.socket).mode & 0o777).toString(8), "600", "the socket is owner-only");
    const lock = JSON.parse(readFileSync(daemonPaths(out).lockFile, "utf8")) as { pid: number };
    assert.equal(lock.pid, winner.process.child.pid);

    winner.process.child.kill("SIGKILL");
    await winner.process.done;
    assert.ok(existsSync(winner.socket), "a SIGKILLed daemon leaves its socket behind");
    const next = startDaemon(out);
    t.after(() => stopDaemon(next));
    assert.equal((await next.ready()).pid, next.process.child.pid, "the stale socket was taken over");
    next.process.child.kill("SIGTERM");
    assert.equal((await next.process.done).code, 0);
    assert.ok(!existsSync(next.socket), "a daemon that stops removes its socket");
  });

  test("another address than loopback needs BATON_TOKEN; with it, every request carries the token", async (t) => {
    const out = join(root, "token");
    const without = startDaemon(out, { flags: ["--host", "0.0.0.0"], env: { BATON_TOKEN: "" } });
    t.after(() => stopDaemon(without));
    const refused = await without.process.done;
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /--host 0\.0\.0\.0 is not a loopback address: set BATON_TOKEN/);

    const daemon = startDaemon(out, { flags: ["--host", "0.0.0.0"], env: { BATON_TOKEN: "s3cret" } });
    t.after(() => stopDaemon(daemon));
    const health = await daemon.ready();
    const url = `http://127.0.0.1:${new URL(String(health.url).replace("0.0.0.0", "127.0.0.1")).port}/`;
    const anonymous = await new DaemonClient({ url }).call("GET", "/api/v1/health");
    assert.equal(anonymous.status, 401);
    const wrong = await new DaemonClient({ url, token: "guess" }).call("GET", "/api/v1/runs");
    assert.equal(wrong.status, 401);
    const right = await new DaemonClient({ url, token: "s3cret" }).call("GET", "/api/v1/runs");
    assert.equal(right.status, 200);
  });

  test("on loopback, a request from another site may not submit", async (t) => {
    const daemon = startDaemon(join(root, "origin"));
    t.after(() => stopDaemon(daemon));
    const health = await daemon.ready();
    const answer = await fetch(new URL("/api/v1/runs", String(health.url)), {
      method: "POST",
      headers: { origin: "http://evil.example", "content-type": "application/json" },
      body: JSON.stringify({ version: 1, kind: "pipeline" }),
    });
    assert.equal(answer.status, 403);
    const port = Number(new URL(String(health.url)).port);
    const rebinding = await new Promise<number>((resolve, reject) => {
      request(
        { host: "127.0.0.1", port, path: "/api/v1/health", headers: { host: `evil.example:${port}` } },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      )
        .on("error", reject)
        .end();
    });
    assert.equal(rebinding, 403, "a Host that is not loopback (DNS rebinding) is refused");
  });

  test("--detach returns once the daemon serves, its output in daemon.log", async () => {
    const out = join(root, "detach");
    const paths = daemonPaths(out);
    const started = await startWatched(DAEMON, ["--detach", "--out", out, "--port", "0"], {
      label: "daemon",
      cwd: REPO,
    }).done;
    assert.equal(started.code, 0, started.stderr);
    const pid = Number(/daemon (\d+) started in the background/.exec(started.stdout)?.[1]);
    const client = new DaemonClient({ socket: paths.socket });
    assert.equal((await client.json<{ pid: number }>("GET", "/api/v1/health")).pid, pid);
    const again = await startWatched(DAEMON, ["--detach", "--out", out, "--port", "0"], {
      label: "daemon",
      cwd: REPO,
    }).done;
    assert.equal(again.code, 2, "a second --detach is refused, naming the first");
    assert.match(again.stderr, new RegExp(`another daemon is already running \\(pid ${pid}\\)`));
    process.kill(pid, "SIGTERM");
    for (let i = 0; i < 100 && existsSync(paths.socket); i++) await sleep(50);
    assert.match(readFileSync(paths.logFile, "utf8"), /SIGTERM: stopping the daemon/);
  });
});
