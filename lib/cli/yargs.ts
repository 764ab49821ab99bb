/**
 * The rules every yargs command line of Baton's follows: unknown flags refused, `--help` with the
 * environment it reads, no `--version`, and a parse error thrown as a UserError (one line, exit 2)
 * rather than printed with the whole usage text.
 */
import type { Argv } from "yargs";
import { UserError } from "./errors.ts";

export function strictCommandLine<T>(parser: Argv<T>, environment: string): Argv<T> {
  return parser
    .epilogue(environment)
    .strict()
    .help()
    .version(false)
    .wrap(100)
    .fail((message, error) => {
      throw error ?? new UserError(message);
    });
}
