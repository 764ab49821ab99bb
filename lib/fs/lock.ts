/**
 * A short-lived exclusive lock on a file (proper-lockfile: a `<file>.lock` directory whose mtime
 * the holder refreshes). A holder that crashed stops refreshing it, and after `staleMs` the next
 * process takes it over, so a crash never leaves the lock stuck.
 */
import lockfile from "proper-lockfile";
import { describeFsError, EXIT, isNodeError, UserError } from "../cli/errors.ts";

/** A holder that has not refreshed its lock for this long is taken to have crashed. */
export const LOCK_STALE_MS = 10_000;

export interface FileLockOptions {
  /** Told when the lock was lost while held (the holder stalled longer than the stale time). */
  onCompromised?: (error: Error) => void;
}

/** Run `body` holding the lock on `file` (the file itself need not exist). */
export async function withFileLock<T>(
  file: string,
  body: () => Promise<T>,
  options: FileLockOptions = {},
): Promise<T> {
  let release: () => Promise<void>;
  try {
    release = await lockfile.lock(file, {
      realpath: false,
      stale: LOCK_STALE_MS,
      // Holders keep it for milliseconds; waiting out a crashed holder's stale lock takes ≤ LOCK_STALE_MS.
      retries: { retries: 400, factor: 1.2, minTimeout: 5, maxTimeout: 100 },
      onCompromised: options.onCompromised ?? (() => {}),
    });
  } catch (error) {
    if (isNodeError(error) && error.code === "ELOCKED") {
      throw new UserError(
        `cannot lock ${file}: ${file}.lock has been held for too long (remove it if no Baton process is running)`,
        EXIT.failure,
      );
    }
    throw new UserError(`cannot lock ${file}: ${describeFsError(error)}`, EXIT.failure);
  }
  try {
    return await body();
  } finally {
    await release().catch((error: unknown) => {
      // Released already: the lock was compromised and taken over; onCompromised was told.
      if (!(isNodeError(error) && error.code === "ERELEASED")) throw error;
    });
  }
}
