/** descendantGroups: the groups a process's descendants lead (a pipeline's trainers), found through /proc. */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { descendantGroups, signalGroup } from "../lib/process/index.ts";

test("a grandchild leading its own group is found from its grandparent, and the grandparent's own group is not listed", async () => {
  // parent (own group) → child (same group) → grandchild (detached: a group of its own)
  const script = `
    const { spawn } = require("node:child_process");
    const child = spawn(process.execPath, ["-e", \`
      const g = require("node:child_process").spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], { detached: true, stdio: "ignore" });
      console.log(g.pid); setInterval(() => {}, 1000);
    \`], { stdio: ["ignore", "inherit", "ignore"] });
    setInterval(() => {}, 1000);`;
  const parent = spawn(process.execPath, ["-e", script], {
    detached: true,
    stdio: ["ignore", "pipe", "ignore"],
  });
  const pgid = parent.pid as number;
  try {
    const grandchild = await new Promise<number>((resolve) =>
      parent.stdout?.once("data", (chunk: Buffer) => resolve(Number(String(chunk).trim()))),
    );
    await sleep(100);
    assert.deepEqual(descendantGroups(pgid), [grandchild]);
    signalGroup(grandchild, "SIGKILL");
  } finally {
    signalGroup(pgid, "SIGKILL");
  }
});
