/**
 * The rules every yargs command line of Baton's follows: unknown flags refused, `--help` with the
 * environment it reads, no `--version`, and a parse error thrown as a UserError (one line, exit 2)
 * rather than printed with the whole usage text.
 */
import type { Argv } from "yargs";
import { UserError } from "./errors.ts";

/**
 * `environment`: the epilogue of `--help` (none when undefined). `hint`: put in parentheses after
 * every parse error, e.g. "see --help" (none when undefined).
 */
export function strictCommandLine<T>(
  parser: Argv<T>,
  environment?: string,
  { hint }: { hint?: string } = {},
): Argv<T> {
  return (environment === undefined ? parser : parser.epilogue(environment))
    .strict()
    .help()
    .version(false)
    .wrap(100)
    .fail((message, error) => {
      if (error) throw error;
      // yargs spreads some messages over lines ("Invalid values:\n  Argument: …"); errors are one line.
      const line = message.replace(/:?\s*\n\s*/g, ": ");
      throw new UserError(hint === undefined ? line : `${line} (${hint})`);
    });
}
