import { EXIT, UserError } from "./errors.ts";

/**
 * Run a command's body: a UserError becomes one line on stderr and its exit code; anything
 * else is a bug or an environment failure, reported in one line (the stack only with BATON_DEBUG=1).
 */
export function runMain(name: string, body: () => Promise<number | undefined>): void {
  body().then(
    (code) => {
      process.exitCode = typeof code === "number" ? code : EXIT.ok;
    },
    (error: unknown) => {
      if (error instanceof UserError) {
        process.stderr.write(`${name}: error: ${error.message}\n`);
        process.exitCode = error.exitCode;
        return;
      }
      const message = error instanceof Error ? error.message : String(error);
      process.stderr.write(`${name}: failed: ${message}\n`);
      if (process.env.BATON_DEBUG === "1" && error instanceof Error) process.stderr.write(`${error.stack}\n`);
      else process.stderr.write(`${name}: (set BATON_DEBUG=1 for the stack trace)\n`);
      process.exitCode = EXIT.failure;
    },
  );
}
