/**
 * Numbers and yes/no words as a user types them, in a flag (`--port 8420`) or in the environment
 * (`KEEP_LAST=3`): checked, and refused with a UserError that quotes what was typed where.
 */
import { UserError } from "./errors.ts";

/**
 * `text` (blanks around it ignored) as a whole number from `min` to `max`: digits only, no sign,
 * no exponent. Else a UserError "`what`: expected a whole number from `min` to `max`" (or "≥ `min`"
 * without a max); `what` names the input as typed, like `--port "80a"` or `KEEP_LAST=x`.
 */
export function parseWholeNumber(
  text: string,
  what: string,
  min: number,
  max = Number.POSITIVE_INFINITY,
): number {
  const digits = text.trim();
  const value = Number(digits);
  if (!/^\d+$/.test(digits) || value < min || value > max) {
    const range = max === Number.POSITIVE_INFINITY ? `≥ ${min}` : `from ${min} to ${max}`;
    throw new UserError(`${what}: expected a whole number ${range}`);
  }
  return value;
}

/**
 * 1, true, yes, on: true; 0, false, no, off: false (any case, blanks around ignored). Else a
 * UserError "`what`: expected `expected`" — "1 or 0" for a variable, "true or false" for a flag.
 */
export function parseOnOff(text: string, what: string, expected: string): boolean {
  const word = text.trim().toLowerCase();
  if (["1", "true", "yes", "on"].includes(word)) return true;
  if (["0", "false", "no", "off"].includes(word)) return false;
  throw new UserError(`${what}: expected ${expected}`);
}
