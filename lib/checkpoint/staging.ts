import { readdir, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { isNodeError } from "../cli/errors.ts";
import { fsyncDir } from "../fs/atomic.ts";
import { processAlive } from "../process/group.ts";
import { parseStagingName, STAGING_PREFIX } from "./layout.ts";

/** A staging entry belongs to a live writer other than us: leave it for that writer. */
function ownedByAnotherLiveProcess(name: string): boolean {
  const parsed = parseStagingName(name);
  return parsed !== null && parsed.pid !== process.pid && processAlive(parsed.pid);
}

async function entryNames(ckptDir: string): Promise<string[]> {
  try {
    return await readdir(ckptDir);
  } catch (error) {
    if (isNodeError(error) && error.code === "ENOENT") return [];
    throw error;
  }
}

/**
 * Undo a replacement a crash interrupted: replacing step_N moves the old step_N aside as
 * `.tmp-old-step_N-…` for the instant between two renames. If step_N is missing and its old
 * copy is here, the copy goes back, so a crash never leaves fewer valid checkpoints than before.
 * Returns the names restored.
 */
export async function restoreInterruptedReplacements(ckptDir: string): Promise<string[]> {
  const names = await entryNames(ckptDir);
  const present = new Set(names);
  const restored: string[] = [];
  for (const name of names.sort().reverse()) {
    const parsed = parseStagingName(name);
    if (parsed?.role !== "old-" || present.has(parsed.stepDir) || ownedByAnotherLiveProcess(name)) continue;
    await rename(join(ckptDir, name), join(ckptDir, parsed.stepDir));
    present.add(parsed.stepDir);
    restored.push(parsed.stepDir);
  }
  if (restored.length > 0) await fsyncDir(ckptDir);
  return restored;
}

/** Remove staging leftovers (`.tmp-*`) of dead writers and of this process. Returns the names removed. */
export async function removeStaleStaging(ckptDir: string): Promise<string[]> {
  const stale = (await entryNames(ckptDir)).filter(
    (name) => name.startsWith(STAGING_PREFIX) && !ownedByAnotherLiveProcess(name),
  );
  await Promise.all(stale.map((name) => rm(join(ckptDir, name), { recursive: true, force: true })));
  return stale;
}
