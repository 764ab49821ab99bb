/**
 * Be told when certain files change (chokidar): the queue file when the SFT trainer lists a new
 * checkpoint, its metadata.json when it ends. The folders are watched rather than the files, since
 * the files may not exist yet and each atomic rewrite replaces the file by a rename.
 */
import { mkdir } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { watch } from "chokidar";

export interface FileWatch {
  close(): Promise<void>;
}

export async function watchFiles(files: readonly string[], onChange: () => void): Promise<FileWatch> {
  const targets = new Set(files.map((file) => resolve(file)));
  const folders = [...new Set([...targets].map((file) => dirname(file)))];
  for (const folder of folders) await mkdir(folder, { recursive: true });
  const watcher = watch(folders, { ignoreInitial: true, depth: 0, atomic: false });
  watcher.on("all", (_event, path) => {
    if (targets.has(resolve(path))) onChange();
  });
  // A watch that fails (too many watches, a vanished folder) leaves the sweep's periodic re-read.
  watcher.on("error", () => {});
  await new Promise<void>((ready) => watcher.once("ready", () => ready()));
  return { close: () => watcher.close() };
}
