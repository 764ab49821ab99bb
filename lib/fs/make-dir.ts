import { constants } from "node:fs";
import { access, mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import { describeFsError, isNodeError } from "../cli/errors.ts";
import { pathExists } from "./probe.ts";

/**
 * `mkdir -p` that says why it failed in words and names the folder ("cannot create out/sft:
 * /mnt/ro is a read-only file system") — node's own error names the wrong level of a nested path.
 */
export async function makeDir(path: string): Promise<void> {
  try {
    await mkdir(path, { recursive: true });
  } catch (error) {
    let existing = dirname(path);
    while (!(await pathExists(existing)) && dirname(existing) !== existing) existing = dirname(existing);
    const blocked = await access(existing, constants.W_OK).then(
      () => null,
      (e: NodeJS.ErrnoException) =>
        e.code === "EROFS" ? `${existing} is on a read-only file system` : `${existing} is not writable`,
    );
    throw new MakeDirError(
      `cannot create ${path}: ${blocked ?? describeFsError(error)}`,
      isNodeError(error) ? error.code : undefined,
    );
  }
}

/** makeDir's failure: its message already says which folder and why; `code` is the system's (EROFS, EACCES…). */
export class MakeDirError extends Error {
  readonly code: string | undefined;
  constructor(message: string, code: string | undefined) {
    super(message);
    this.name = "MakeDirError";
    this.code = code;
  }
}
