/** Free space on the file system holding a path, for checks before large writes. */
import { statfs } from "node:fs/promises";
import { dirname } from "node:path";
import { isNodeError } from "../cli/errors.ts";

/** Bytes an unprivileged writer may still use where `path` is (or would be: its nearest existing parent). */
export async function freeBytes(path: string): Promise<number> {
  for (let at = path; ; at = dirname(at)) {
    try {
      const s = await statfs(at);
      return s.bavail * s.bsize;
    } catch (error) {
      if (!(isNodeError(error) && error.code === "ENOENT") || dirname(at) === at) throw error;
    }
  }
}
