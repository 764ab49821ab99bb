/**
 * Check a file's tensors against the names and shapes a model expects, with one line that
 * names what is missing, what is extra and what has the wrong shape — a few of each, and how
 * many in all — so `load_state_dict(strict=True)`-style mismatches read at a glance.
 */
import { UserError } from "../cli/errors.ts";

const SHOWN = 3;

function some(names: string[]): string {
  const listed = names.slice(0, SHOWN).join(", ");
  return names.length > SHOWN ? `${listed} and ${names.length - SHOWN} more` : listed;
}

export interface TensorMismatch {
  missing: string[];
  unexpected: string[];
  /** name, the file's shape, the expected shape. */
  misshaped: Array<[name: string, found: readonly number[], expected: readonly number[]]>;
}

/** How `tensors` differ from `expected` (name → shape); empty lists when they match exactly. */
export function compareTensorShapes(
  tensors: ReadonlyMap<string, { shape: readonly number[] }>,
  expected: Iterable<readonly [string, readonly number[]]>,
): TensorMismatch {
  const wanted = new Map(expected);
  const result: TensorMismatch = { missing: [], unexpected: [], misshaped: [] };
  for (const [name, shape] of wanted) {
    const tensor = tensors.get(name);
    if (!tensor) result.missing.push(name);
    else if (tensor.shape.join("x") !== shape.join("x")) result.misshaped.push([name, tensor.shape, shape]);
  }
  for (const name of tensors.keys()) if (!wanted.has(name)) result.unexpected.push(name);
  return result;
}

/** The mismatch in words ("" when none): "missing a, b; unexpected c; x is [2, 3], expected [3, 2]". */
export function describeMismatch(mismatch: TensorMismatch): string {
  const parts: string[] = [];
  if (mismatch.missing.length) parts.push(`missing ${some(mismatch.missing)}`);
  if (mismatch.unexpected.length) parts.push(`unexpected ${some(mismatch.unexpected)}`);
  const shaped = mismatch.misshaped
    .slice(0, SHOWN)
    .map(([n, f, e]) => `${n} is [${f.join(", ")}], expected [${e.join(", ")}]`);
  if (mismatch.misshaped.length > SHOWN) shaped.push(`${mismatch.misshaped.length - SHOWN} more mis-shaped`);
  if (shaped.length) parts.push(shaped.join(", "));
  return parts.join("; ");
}

/**
 * Throw a UserError naming `source` unless the tensors are exactly `expected` (no name missing,
 * none extra, every shape equal). `hint` (e.g. which flag to change) ends the line.
 */
export function requireTensorShapes(
  tensors: ReadonlyMap<string, { shape: readonly number[] }>,
  expected: Iterable<readonly [string, readonly number[]]>,
  source: string,
  hint = "",
): void {
  const problem = describeMismatch(compareTensorShapes(tensors, expected));
  if (problem)
    throw new UserError(`${source}: tensors do not fit the model: ${problem}${hint ? ` — ${hint}` : ""}`);
}
