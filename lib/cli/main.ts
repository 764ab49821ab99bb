import { EXIT, UserError } from "./errors.ts";

/**
 * After the body has settled, how long the process may take to exit by itself (flushing output,
 * closing files) before it is made to: a leaked thread, timer or socket never keeps it hanging.
 */
const EXIT_GRACE_MS = 5_000;

/**
 * Run a command's body: a UserError becomes one line on stderr and its exit code; anything
 * else is a bug or an environment failure, reported in one line (the stack only with BATON_DEBUG=1).
 */
export function runMain(name: string, body: () => Promise<number | undefined>): void {
  const settle = (code: number): void => {
    process.exitCode = code;
    setTimeout(() => process.exit(code), EXIT_GRACE_MS).unref();
  };
  body().then(
    (code) => settle(typeof code === "number" ? code : EXIT.ok),
    (error: unknown) => {
      if (error instanceof UserError) {
        process.stderr.write(`${name}: error: ${error.message}\n`);
        settle(error.exitCode);
        return;
      }
      const message = error instanceof Error ? error.message : String(error);
      process.stderr.write(`${name}: failed: ${message}\n`);
      if (process.env.BATON_DEBUG === "1" && error instanceof Error) process.stderr.write(`${error.stack}\n`);
      settle(EXIT.failure);
    },
  );
}
