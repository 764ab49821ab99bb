// The trainers' command-line parser (lib/cli/flags.ts, lib/stages/args.ts): a repeated flag takes its
// last value, a flag without its value and an unknown flag are one-line errors, a bad number is quoted as typed.
import assert from "node:assert/strict";
import { test } from "node:test";
import { UserError } from "../lib/cli/errors.ts";
import { suggestFlag } from "../lib/cli/flags.ts";
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
