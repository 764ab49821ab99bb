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
  let grandchild: number | undefined;
  try {
    grandchild = await Promise.race([
      new Promise<number>((resolve) =>
        parent.stdout?.once("data", (chunk: Buffer) => resolve(Number(String(chunk).trim()))),
      ),
      sleep(30_000, undefined, { ref: false }).then(() => {
        throw new Error("the child never printed its grandchild's pid");
      }),
    ]);
    await sleep(100);
    assert.deepEqual(descendantGroups(pgid), [grandchild]);
  } finally {
    // The grandchild leads a group of its own, out of reach of the parent's: killed on its own,
    // whatever the assertion said (it would run forever otherwise) — by the pid it printed, and by
    // whatever groups are found below the parent (should it not have printed one).
    const groups = new Set(descendantGroups(pgid));
    if (grandchild !== undefined && Number.isInteger(grandchild) && grandchild > 0) groups.add(grandchild);
    for (const group of groups) signalGroup(group, "SIGKILL");
    signalGroup(pgid, "SIGKILL");
  }
});
