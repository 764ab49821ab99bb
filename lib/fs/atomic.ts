import { randomBytes } from "node:crypto";
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from "node:fs";
import { open, readdir, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

export type FileContent = string | Uint8Array | readonly Uint8Array[];

function chunksOf(content: FileContent): readonly Uint8Array[] {
  if (typeof content === "string") return [Buffer.from(content, "utf8")];
  if (content instanceof Uint8Array) return [content];
  return content;
}

/** A temporary name in the same directory, so the final rename never crosses file systems. */
export function stagingName(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`);
}

/**
 * Remove the staging files of writers of `path` that were killed mid-write (their pid is in the
 * name; `alive` says whether it still runs). A live writer's staging file is left alone.
 */
export async function removeDeadStaging(path: string, alive: (pid: number) => boolean): Promise<void> {
  const prefix = `.${basename(path)}.tmp-`;
  const names = await readdir(dirname(path)).catch(() => [] as string[]);
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(name.slice(prefix.length).split("-")[0]);
    if (Number.isInteger(pid) && pid > 0 && !alive(pid)) await rm(join(dirname(path), name), { force: true });
  }
}

/** Flush a directory's entries (a rename is only durable once its parent directory is). */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export function fsyncDirSync(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Write a file and fsync it, without renaming (used inside staging directories). */
export async function writeFileDurable(path: string, content: FileContent): Promise<number> {
  const handle = await open(path, "w");
  let bytes = 0;
  try {
    for (const chunk of chunksOf(content)) {
      let offset = 0;
      while (offset < chunk.byteLength) {
        const { bytesWritten } = await handle.write(chunk, offset, chunk.byteLength - offset);
        offset += bytesWritten;
      }
      bytes += chunk.byteLength;
    }
    await handle.sync();
  } finally {
    await handle.close();
  }
  return bytes;
}

/**
 * Replace `path` atomically: readers see the old content or the new, never a mix,
 * and after a crash the file is one or the other.
 */
export async function writeFileAtomic(path: string, content: FileContent): Promise<void> {
  const tmp = stagingName(path);
  try {
    await writeFileDurable(tmp, content);
    await rename(tmp, path);
  } catch (error) {
    await rm(tmp, { force: true });
    throw error;
  }
  await fsyncDir(dirname(path));
}

/** Synchronous twin of writeFileAtomic, for exit paths where the event loop may not run again. */
export function writeFileAtomicSync(path: string, content: FileContent): void {
  const tmp = stagingName(path);
  try {
    const fd = openSync(tmp, "w");
    try {
      for (const chunk of chunksOf(content)) {
        let offset = 0;
        while (offset < chunk.byteLength) offset += writeSync(fd, chunk, offset, chunk.byteLength - offset);
      }
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (error) {
    rmSync(tmp, { force: true });
    throw error;
  }
  fsyncDirSync(dirname(path));
}
