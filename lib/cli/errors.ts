/** Exit codes shared by every Baton command (docs/trainers.md). */
export const EXIT = {
  ok: 0,
  failure: 1,
  badInput: 2,
  interrupted: 130,
  terminated: 143,
} as const;

/**
 * An error the user can fix (bad flag, bad data, bad file). Printed as one line, no stack,
 * and the process exits with `exitCode` (2 unless told otherwise).
 */
export class UserError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode: number = EXIT.badInput) {
    super(message);
    this.name = "UserError";
    this.exitCode = exitCode;
  }
}

export function isNodeError(error: unknown): error is NodeJS.ErrnoException {
  return error instanceof Error && "code" in error;
}

/** Describe a file-system error in words: "no such file", "permission denied", … */
export function describeFsError(error: unknown): string {
  if (!isNodeError(error)) return String(error);
  switch (error.code) {
    case "ENOENT":
      return "no such file or directory";
    case "EACCES":
    case "EPERM":
      return "permission denied";
    case "EISDIR":
      return "is a directory, expected a file";
    case "ENOTDIR":
      return "not a directory";
    case "ENOSPC":
      return "no space left on device";
    default:
      return error.message;
  }
}

/** A file-system error re-worded to name the file it was about, keeping its `code` (ENOSPC, EACCES, …). */
export function fileError(action: string, path: string, error: unknown): Error {
  const wrapped = new Error(`cannot ${action} ${path}: ${describeFsError(error)}`);
  if (isNodeError(error) && error.code !== undefined) Object.assign(wrapped, { code: error.code });
  return wrapped;
}
