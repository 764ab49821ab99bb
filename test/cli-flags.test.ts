// The trainers' command-line parser (lib/cli/flags.ts, lib/stages/args.ts): a repeated flag takes its
// last value, a flag without its value and an unknown flag are one-line errors, a bad number is quoted as typed.
// Likewise Baton's own flags (parseStrictArgs), its yargs command lines (lib/cli/yargs.ts) and values (lib/cli/values.ts).
import assert from "node:assert/strict";
import { test } from "node:test";
import yargs from "yargs";
import { UserError } from "../lib/cli/errors.ts";
import { parseStrictArgs, suggestFlag } from "../lib/cli/flags.ts";
import { parseOnOff, parseWholeNumber } from "../lib/cli/values.ts";
import { strictCommandLine } from "../lib/cli/yargs.ts";
import { parseTrainerArgs } from "../lib/stages/args.ts";

const refused = (argv: string[], pattern: RegExp) =>
  assert.throws(
    () => parseTrainerArgs("pretrain", argv),
    (error: unknown) =>
      error instanceof UserError && pattern.test(error.message) && !error.message.includes("\n"),
  );

test("a repeated flag takes its last value, whatever it is (yargs would add up a 1)", () => {
  assert.equal(parseTrainerArgs("pretrain", ["--max_steps", "6", "--max_steps", "1"]).max_steps, 1);
  assert.equal(parseTrainerArgs("pretrain", ["--max-steps", "6", "--max_steps", "2"]).max_steps, 2);
  assert.equal(parseTrainerArgs("pretrain", ["--eval", "false", "--eval"]).eval, true);
});

test("a flag without its value, an unknown flag, a number that is not one", () => {
  refused(["--max_steps"], /^--max_steps: expected a value after it/);
  refused(["--max_steps", "--epochs", "3"], /^--max_steps: expected a value after it/);
  refused(["--max_step", "3"], /^unknown flag --max_step \(did you mean --max_steps\?\)/);
  refused(["--learning_rate", "abc"], /^--learning_rate abc: expected a finite number ≥ 0/);
  refused(["--learning_rate", "1e309"], /^--learning_rate 1e309: expected a finite number ≥ 0/);
  assert.equal(suggestFlag("batchsize", ["batch_size", "epochs"]), "batch_size");
  assert.equal(suggestFlag("zzz", ["batch_size", "epochs"]), null);
});

test("Baton's own dashed command lines (parseStrictArgs): one line, a did-you-mean, the caller's hint", () => {
  const options = { port: { type: "string" }, "cpu-slots": { type: "string" } } as const;
  const oneLine = (args: string[], pattern: RegExp, hint?: string) =>
    assert.throws(
      () => parseStrictArgs(args, options, hint === undefined ? {} : { hint }),
      (error: unknown) =>
        error instanceof UserError && pattern.test(error.message) && !error.message.includes("\n"),
    );
  assert.equal(parseStrictArgs(["--port", "1"], options).values.port, "1");
  oneLine(["--cpu-slot", "2"], /^Unknown option '--cpu-slot' \(did you mean --cpu-slots\?\) \(see --help\)$/);
  oneLine(["--frobnicate"], /^Unknown option '--frobnicate' \(go away\)$/, "go away");
  // Node spreads this one over three lines.
  oneLine(
    ["--port", "--cpu-slots", "2"],
    /^Option '--port' argument is ambiguous\. Did you forget .* \(see --help\)$/,
  );
  oneLine(
    ["stray"],
    /^Unexpected argument 'stray'\. This command does not take positional arguments \(see --help\)$/,
  );
  assert.deepEqual(parseStrictArgs(["stray"], options, { allowPositionals: true }).positionals, ["stray"]);
});

test("a yargs command line's multi-line message is one line (strictCommandLine)", () => {
  const parse = (hint?: string) =>
    strictCommandLine(
      yargs(["--dtype", "half"]).option("dtype", { choices: ["float16", "float32"] }),
      undefined,
      hint === undefined ? {} : { hint },
    ).parseSync();
  const refusedWith = (expected: string) => (error: unknown) =>
    error instanceof UserError && error.message === expected;
  assert.throws(
    () => parse("see --help"),
    refusedWith('Invalid values: Argument: dtype, Given: "half", Choices: "float16", "float32" (see --help)'),
  );
  assert.throws(
    () => parse(),
    refusedWith('Invalid values: Argument: dtype, Given: "half", Choices: "float16", "float32"'),
  );
});

test("whole numbers and yes/no words, quoted as typed", () => {
  assert.equal(parseWholeNumber(" 8420 ", "--port", 0, 65535), 8420);
  assert.throws(
    () => parseWholeNumber("1e3", '--port "1e3"', 0, 65535),
    /^UserError: --port "1e3": expected a whole number from 0 to 65535$/,
  );
  assert.throws(
    () => parseWholeNumber("0", "KEEP_LAST=0", 1),
    /^UserError: KEEP_LAST=0: expected a whole number ≥ 1$/,
  );
  assert.equal(parseOnOff(" Yes", "TB_AUTO=Yes", "1 or 0"), true);
  assert.equal(parseOnOff("off", "TB_AUTO=off", "1 or 0"), false);
  assert.throws(
    () => parseOnOff("maybe", '--auto-resume "maybe"', "true or false"),
    /: expected true or false$/,
  );
});
