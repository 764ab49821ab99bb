/**
 * The project's promise for bad input (README "Exit codes"): the process exits with the user-error
 * code and its whole stderr is ONE line naming the flag or `file:line` — no warning before it, no
 * second line after it, no stack trace. Every test of a bad-input path checks it through this one
 * helper, so the promise is held to the same standard everywhere.
 */
import assert from "node:assert/strict";

export interface ProcessOutcome {
  code: number | null | undefined;
  stderr: string;
}

/**
 * `expected`: a pattern the line must match, or the exact line. `exitCode`: 2 (a UserError) unless
 * the command documents another code for this failure (e.g. `ckpt latest` exits 1 when none is valid).
 */
export function assertOneLineError(run: ProcessOutcome, expected: RegExp | string, exitCode = 2): void {
  const report = `exit ${run.code}, stderr:\n${run.stderr}`;
  assert.equal(run.code, exitCode, `expected exit ${exitCode} and one stderr line; got ${report}`);
  assert.ok(run.stderr.endsWith("\n"), `stderr must be one complete line; got ${report}`);
  const line = run.stderr.slice(0, -1);
  assert.ok(!line.includes("\n"), `stderr must be exactly one line; got ${report}`);
  assert.match(line, /\berror: /, `the line must say "error:"; got ${report}`);
  if (typeof expected === "string") assert.equal(line, expected);
  else assert.match(line, expected);
}
