/** Questions about a path that any failure (missing, unreadable) answers with "no". */
import type { Stats } from "node:fs";
import { stat } from "node:fs/promises";

function probe(path: string, test: (info: Stats) => boolean): Promise<boolean> {
  return stat(path).then(test, () => false);
}

export const pathExists = (path: string): Promise<boolean> => probe(path, () => true);
export const isFile = (path: string): Promise<boolean> => probe(path, (info) => info.isFile());
export const isDirectory = (path: string): Promise<boolean> => probe(path, (info) => info.isDirectory());
