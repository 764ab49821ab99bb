/**
 * Trainer command lines built from layers (pipeline defaults, --smoke-test, PRETRAIN_MAX_STEPS…,
 * the `--` rest, PRETRAIN_ARGS…) where a later layer's flag replaces an earlier one's.
 *
 * Replacing, not appending: yargs turns a flag given twice into an array, which the trainers reject
 * (`--max_steps 5,10: expected a whole number`). Flags are compared by their underscore spelling,
 * so `--max-steps` in PRETRAIN_ARGS replaces the pipeline's `--max_steps`.
 */
import { UserError } from "./errors.ts";

/** One flag with the tokens that spell it: `["--max_steps", "5"]`, `["--no-eval"]`, `["--lr=1e-3"]`. */
export interface FlagGroup {
  /** Underscore spelling without dashes or `no-`: "max_steps", "eval". */
  name: string;
  tokens: string[];
}

/** A layer: flags by name, in order. Build one with `flags()` or `parseFlagGroups()`. */
export type FlagLayer = readonly FlagGroup[];

/** A layer from name/value pairs; an undefined or null value leaves the flag out. */
export function flags(
  values: ReadonlyArray<readonly [string, string | number | undefined | null]>,
): FlagLayer {
  const groups: FlagGroup[] = [];
  for (const [name, value] of values) {
    if (value === undefined || value === null) continue;
    groups.push({ name: canonicalName(name), tokens: [`--${name}`, String(value)] });
  }
  return groups;
}

/**
 * Group a user's argument list into flags. A token starting with `-` followed by a letter starts a
 * flag; the tokens after it up to the next flag are its values (so `-1e-3` is a value). Tokens
 * before the first flag cannot belong to any flag and are refused: `source` names where they came from.
 */
export function parseFlagGroups(args: readonly string[], source: string): FlagLayer {
  const groups: FlagGroup[] = [];
  for (const token of args) {
    if (isFlagToken(token)) {
      groups.push({ name: flagName(token), tokens: [token] });
      continue;
    }
    const current = groups.at(-1);
    if (current === undefined) {
      throw new UserError(`${source}: ${JSON.stringify(token)} is not a flag (expected --name value …)`);
    }
    current.tokens.push(token);
  }
  return groups;
}

/** Merge layers, lowest priority first: a flag set in a later layer drops every earlier spelling of it. */
export function mergeFlagLayers(layers: readonly FlagLayer[]): string[] {
  const merged: FlagGroup[] = [];
  for (const layer of layers) {
    const names = new Set(layer.map((group) => group.name));
    for (let i = merged.length - 1; i >= 0; i--) {
      if (names.has((merged[i] as FlagGroup).name)) merged.splice(i, 1);
    }
    merged.push(...layer);
  }
  return merged.flatMap((group) => group.tokens);
}

/** The value the trainer will see for `name` in a merged list (the last spelling wins), or undefined. */
export function flagValue(args: readonly string[], name: string): string | undefined {
  const wanted = canonicalName(name);
  let value: string | undefined;
  for (const group of parseFlagGroups(args, "arguments")) {
    if (group.name !== wanted) continue;
    const first = group.tokens[0] as string;
    const eq = first.indexOf("=");
    value = eq !== -1 ? first.slice(eq + 1) : group.tokens[1];
  }
  return value;
}

function isFlagToken(token: string): boolean {
  return /^--?[A-Za-z]/.test(token);
}

function flagName(token: string): string {
  const eq = token.indexOf("=");
  const bare = (eq === -1 ? token : token.slice(0, eq)).replace(/^-+/, "");
  return canonicalName(bare.startsWith("no-") || bare.startsWith("no_") ? bare.slice(3) : bare);
}

function canonicalName(name: string): string {
  return name.replace(/^-+/, "").replaceAll("-", "_");
}
