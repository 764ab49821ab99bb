import { UserError } from "../../lib/cli/errors.ts";

/** `--max-parallel N`: how many DPO children run at once (default 1). */
export function parseMaxParallel(text: string | undefined, flag = "--max-parallel"): number {
  if (text === undefined) return 1;
  if (!/^\d+$/.test(text.trim()) || Number(text) < 1) {
    throw new UserError(`${flag} ${JSON.stringify(text)}: expected a whole number ≥ 1`);
  }
  return Number(text);
}
