/**
 * MiniMind-style snake_case command lines (`--batch_size 8`, and the dashed `--batch-size 8`),
 * parsed strictly with yargs: an unknown flag is an error with a "did you mean" suggestion, a
 * flag that needs a value and has none is an error (yargs would quietly use the default), and a
 * repeated flag takes its last value. Every problem is a one-line UserError pointing at --help.
 * Baton's own dashed command lines (the pipeline's, the daemon's, the sweep's) go through
 * node:util's parseArgs the same way: parseStrictArgs.
 */
import { type ParseArgsConfig, parseArgs } from "node:util";
import { closest, distance } from "fastest-levenshtein";
import yargs, { type Options } from "yargs";
import { UserError } from "./errors.ts";
import { parseFlagGroups } from "./flag-layers.ts";

/** The known flag nearest to `name`, when it is close enough to be a likely typo. */
export function suggestFlag(name: string, known: readonly string[]): string | null {
  if (known.length === 0) return null;
  const canonical = (flag: string) => flag.replace(/^-+/, "").replaceAll("-", "_");
  const bare = canonical(name);
  const best = closest(bare, known.map(canonical));
  const index = known.map(canonical).indexOf(best);
  return distance(bare, best) <= Math.max(2, Math.floor(bare.length / 3)) ? (known[index] ?? null) : null;
}

type ParseArgsOptions = NonNullable<ParseArgsConfig["options"]>;

/**
 * node:util's parseArgs, strict: an unknown flag, a flag missing its value or given one it does
 * not take (and a positional, unless `allowPositionals`) is a one-line UserError ending in
 * `(hint)` — "see --help" unless told — with a "did you mean" for a misspelt flag. Node's advice
 * to put a positional after `--` is left out: on Baton's command lines what follows `--` is for
 * the trainers. Other errors (a bad `options`) are bugs and thrown as they are.
 */
export function parseStrictArgs<const O extends ParseArgsOptions, P extends boolean = false>(
  args: readonly string[],
  options: O,
  { allowPositionals, hint = "see --help" }: { allowPositionals?: P; hint?: string } = {},
) {
  try {
    return parseArgs<{ args: string[]; options: O; strict: true; allowPositionals: P }>({
      args: [...args],
      options,
      strict: true,
      allowPositionals: (allowPositionals ?? false) as P,
    });
  } catch (error) {
    const code = (error as { code?: unknown } | null)?.code;
    if (typeof code !== "string" || !code.startsWith("ERR_PARSE_ARGS_")) throw error;
    const message = (error as Error).message.replace(/\. To specify[\s\S]*$/, "").replace(/\s*\n\s*/g, " ");
    const unknown = /^Unknown option '(--?[^']+)'/.exec(message)?.[1];
    const suggestion = unknown ? suggestFlag(unknown, Object.keys(options)) : null;
    throw new UserError(`${message}${suggestion ? ` (did you mean --${suggestion}?)` : ""} (${hint})`);
  }
}

function unknownFlagsMessage(message: string, known: readonly string[]): string {
  const match = /^Unknown arguments?: (.+)$/.exec(message);
  if (!match) return message;
  const names = (match[1] as string).split(", ");
  const described = names.map((name) => {
    const suggestion = suggestFlag(name, known);
    const shown = name.startsWith("-") ? name : `--${name}`;
    return suggestion ? `${shown} (did you mean --${suggestion}?)` : shown;
  });
  return `unknown flag${names.length > 1 ? "s" : ""} ${described.join(", ")}`;
}

/** A flag token that starts another flag rather than being a value (`-1e-3` is a value). */
function looksLikeFlag(token: string): boolean {
  return /^--?[A-Za-z]/.test(token);
}

/** `--name` followed by nothing or by another flag, for an option that takes a value. */
function checkValuesPresent(argv: readonly string[], options: Record<string, Options>): void {
  const needsValue = new Set<string>();
  for (const [name, option] of Object.entries(options)) {
    if (option.type !== "boolean" && option.type !== "count") needsValue.add(name);
  }
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i] as string;
    if (token === "--") break;
    if (!token.startsWith("--") || token.includes("=")) continue;
    const name = token.slice(2).replaceAll("-", "_");
    if (!needsValue.has(name)) continue;
    const next = argv[i + 1];
    if (next === undefined || looksLikeFlag(next)) {
      throw new UserError(`${token}: expected a value after it (see --help)`);
    }
  }
}

/**
 * The last spelling of each flag only: yargs adds up a repeated number flag given as 1
 * (`--max_steps 6 --max_steps 1` would be 7). Arguments that are not all flags are left for yargs
 * to refuse.
 */
function lastOfEach(argv: readonly string[]): string[] {
  let groups: ReturnType<typeof parseFlagGroups>;
  try {
    groups = parseFlagGroups(argv, "arguments");
  } catch {
    return [...argv];
  }
  const last = new Map(groups.map((group, i) => [group.name, i]));
  return groups.filter((group, i) => last.get(group.name) === i).flatMap((group) => group.tokens);
}

export function parseSnakeCaseFlags(
  given: readonly string[],
  scriptName: string,
  usage: string,
  options: Record<string, Options>,
): Record<string, unknown> {
  const argv = lastOfEach(given);
  checkValuesPresent(argv, options);
  // yargs camel-cases dashed flags; make `--batch-size` land on `batch_size` explicitly.
  const withAliases: Record<string, Options> = {};
  for (const [name, option] of Object.entries(options)) {
    withAliases[name] = name.includes("_") ? { ...option, alias: name.replaceAll("_", "-") } : option;
  }
  const known = Object.keys(options);
  return yargs([...argv])
    .scriptName(scriptName)
    .usage(usage)
    .options(withAliases)
    .parserConfiguration({ "camel-case-expansion": false, "duplicate-arguments-array": false })
    .strict()
    .help()
    .version(false)
    .wrap(Math.min(110, process.stdout.columns || 110))
    .fail((message, error) => {
      // yargs spreads some messages over lines ("Invalid values:\n  Argument: …"); errors are one line.
      const text = unknownFlagsMessage(error ? error.message : message, known).replace(/:?\s*\n\s*/g, ": ");
      throw new UserError(`${text} (see --help)`);
    })
    .parseSync() as Record<string, unknown>;
}

/**
 * A numeric flag's value, checked: finite, at least `min`, whole when `integer`. The message quotes
 * what the user typed (`--learning_rate abc`), not what it became (NaN).
 */
export function numberFlag(
  parsed: Record<string, unknown>,
  argv: readonly string[],
  name: string,
  min: number,
  integer = true,
): number {
  const value = parsed[name];
  if (
    typeof value === "number" &&
    Number.isFinite(value) &&
    value >= min &&
    (!integer || Number.isInteger(value))
  ) {
    return value;
  }
  const typed = typedValue(argv, name) ?? String(value);
  throw new UserError(
    `--${name} ${typed}: expected ${integer ? "a whole number" : "a finite number"} ≥ ${min}`,
  );
}

/** The last value given for `--name` (or `--name-with-dashes`) on the command line, as typed. */
export function typedValue(argv: readonly string[], name: string): string | undefined {
  let value: string | undefined;
  const spellings = new Set([`--${name}`, `--${name.replaceAll("_", "-")}`]);
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i] as string;
    const eq = token.indexOf("=");
    if (eq !== -1 && spellings.has(token.slice(0, eq))) value = token.slice(eq + 1);
    else if (spellings.has(token)) value = argv[i + 1];
  }
  return value;
}

/** Whether `--name` (either spelling, with or without `=value`, or `--no-name`) was given. */
export function flagGiven(argv: readonly string[], name: string): boolean {
  const spellings = [name, name.replaceAll("_", "-")];
  return argv.some((token) =>
    spellings.some((s) => token === `--${s}` || token.startsWith(`--${s}=`) || token === `--no-${s}`),
  );
}
