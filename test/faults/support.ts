/**
 * What the fault-injection suite shares: real faulty file systems (a read-only mount, a tiny tmpfs,
 * a tmpfs out of inodes — root only, which CI is; elsewhere the tests that need them skip and say
 * why), a scratch root, and the check that a fault ended in one line with the expected exit code.
 */
import { execFileSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after } from "node:test";

export const isRoot = process.getuid?.() === 0;
/** Why a test that mounts a file system cannot run here, or null when it can. */
export const cannotMount = isRoot ? null : "needs root to mount a tmpfs (CI runs as root)";

export function scratch(prefix: string): string {
  const root = mkdtempSync(join(tmpdir(), `baton-fault-${prefix}-`));
  after(() => {
    for (const mount of mounts.splice(0)) unmount(mount);
    rmSync(root, { recursive: true, force: true });
  });
  return root;
}

const mounts: string[] = [];

function unmount(dir: string): void {
  try {
    execFileSync("umount", ["-l", dir], { stdio: "ignore" });
  } catch {
    // already gone
  }
}

/** A tmpfs at `dir` with these mount options (`size=2m`, `nr_inodes=9`, `ro`); unmounted after the file's tests. */
export function mountTmpfs(dir: string, options: string): string {
  mkdirSync(dir, { recursive: true });
  execFileSync("mount", ["-t", "tmpfs", "-o", options, "tmpfs", dir]);
  mounts.push(dir);
  return dir;
}

/** A folder nobody may write into: a read-only mount for root (who ignores permissions), else mode 0555. */
export function unwritableDir(dir: string): string {
  if (isRoot) return mountTmpfs(dir, "ro,size=1m");
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o555);
  return dir;
}

/** A fault's outcome: this exit code, exactly one stderr line matching, no stack trace. */
export function assertOneLine(
  run: { code: number | null; stderr: string },
  code: number,
  pattern: RegExp,
): string {
  const lines = run.stderr
    .trim()
    .split("\n")
    .filter((line) => !line.startsWith("warning: "));
  if (
    run.code !== code ||
    lines.length !== 1 ||
    !pattern.test(lines[0] ?? "") ||
    /\n\s+at /.test(run.stderr)
  ) {
    throw new Error(
      `expected exit ${code} and one error line matching ${pattern}, got exit ${run.code}:\n${run.stderr}`,
    );
  }
  return lines[0] as string;
}

/** Resolve `promise`, or fail the test naming what hung. */
export async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not end within ${ms / 1000} s: it hangs`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
