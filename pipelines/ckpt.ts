/**
 * `npm run ckpt -- <ls|verify|latest|export> <dir>`: look at a stage's step checkpoints.
 *
 * <dir> is a stage folder (out/sft, holding checkpoints/), a checkpoints folder, or — for
 * verify — one step_NNNNNNNN folder.
 *   ls      every checkpoint: step, valid or why not, size, age, finished, which is latest, and
 *           why it is pinned (never pruned). --verify checks every SHA-256 too. Exit 0.
 *   verify  full SHA-256 verification of one step folder, or of every checkpoint in a folder;
 *           exit 0 only if each one passes (and at least one exists), else 1.
 *   latest  print the latest valid checkpoint's path (cheap rules, like bash latest_ckpt; --verify:
 *           the latest whose hashes check); exit 1 if none.
 *   export  write a checkpoint's weights as MiniMind's .pth or a .safetensors (ckpt/export.ts).
 * Bad input (missing folder, not a checkpoint folder, unknown command) exits 2 with one line.
 */
import { join } from "node:path";
import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import { formatAge, formatBytes } from "../lib/checkpoint/describe.ts";
import {
  type CheckpointInfo,
  latestValidCheckpoint,
  listCheckpoints,
  resolveCheckpointsDir,
  verifyCheckpoint,
} from "../lib/checkpoint/index.ts";
import { EXIT, UserError } from "../lib/cli/errors.ts";
import { runMain } from "../lib/cli/main.ts";
import { strictCommandLine } from "../lib/cli/yargs.ts";
import { FLOAT_DTYPE_NAMES, type FloatDtypeName } from "../lib/safetensors/index.ts";
import { DEFAULT_EXPORT_DTYPE, EXPORT_FORMATS, type ExportFormat, exportCheckpoint } from "./ckpt/export.ts";
import { checkpointListing, type ListedCheckpoint } from "./ckpt/listing.ts";

const NAME = "ckpt";

async function checkpointsDirOf(dir: string): Promise<string> {
  const resolved = await resolveCheckpointsDir(dir);
  if (resolved.kind === "step") {
    throw new UserError(`${dir} is a single checkpoint; give the folder that holds it (or use verify)`);
  }
  return resolved.ckptDir;
}

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, column) => Math.max(...rows.map((row) => row[column]?.length ?? 0))) ?? [];
  return rows
    .map((row) =>
      row
        .map((cell, i) => cell.padEnd(widths[i] ?? 0))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

async function ls(dir: string, json: boolean, hashes: boolean): Promise<number> {
  const ckptDir = await checkpointsDirOf(dir);
  const { checkpoints, queueProblem } = await checkpointListing(ckptDir, hashes);
  if (queueProblem) process.stderr.write(`ckpt: warning: ${queueProblem}\n`);
  const latest = checkpoints.find((c) => c.latest);
  if (json) {
    const rows = checkpoints.map(({ state: _state, ...info }) => info);
    process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
    return EXIT.ok;
  }
  if (checkpoints.length === 0) {
    process.stdout.write(`no checkpoints in ${ckptDir}\n`);
    return EXIT.ok;
  }
  const invalid = checkpoints.filter((c) => !c.valid).length;
  const now = new Date();
  const note = (c: ListedCheckpoint) =>
    [c.finished ? "finished" : "", c.latest ? "<- latest" : "", c.pinned ?? "", c.reason ?? ""]
      .filter(Boolean)
      .join("  ");
  const rows = [
    ["CHECKPOINT", "STATUS", "SIZE", "AGE", "NOTE"],
    ...checkpoints.map((c) => [
      c.name,
      c.valid ? "valid" : "INVALID",
      formatBytes(c.bytes),
      formatAge(c.mtime, now),
      note(c),
    ]),
  ];
  process.stdout.write(
    `${ckptDir}: ${checkpoints.length - invalid} valid, ${invalid} invalid${hashes ? " (SHA-256s checked)" : ""}\n${table(rows)}\n` +
      (latest ? "" : "no valid checkpoint\n"),
  );
  return EXIT.ok;
}

async function verifyOne(path: string): Promise<boolean> {
  const result = await verifyCheckpoint(path, { hashes: true });
  if (result.valid) {
    const files = Object.values(result.state?.files ?? {});
    const bytes = files.reduce((sum, f) => sum + f.bytes, 0);
    process.stdout.write(
      `${path}: ok (${files.length} file${files.length === 1 ? "" : "s"}, ${formatBytes(bytes)} hashed)\n`,
    );
  } else {
    process.stdout.write(`${path}: FAILED\n${result.problems.map((p) => `  ${p}\n`).join("")}`);
  }
  return result.valid;
}

async function verify(dir: string): Promise<number> {
  const resolved = await resolveCheckpointsDir(dir);
  if (resolved.kind === "step") return (await verifyOne(resolved.stepDir)) ? EXIT.ok : EXIT.failure;
  const checkpoints = await listCheckpoints(resolved.ckptDir);
  if (checkpoints.length === 0) throw new UserError(`no checkpoints in ${resolved.ckptDir}`, EXIT.failure);
  let failed = 0;
  for (const c of checkpoints) if (!(await verifyOne(c.path))) failed++;
  process.stdout.write(`${checkpoints.length - failed} of ${checkpoints.length} checkpoints verified\n`);
  return failed === 0 ? EXIT.ok : EXIT.failure;
}

async function latest(dir: string, hashes: boolean): Promise<number> {
  const ckptDir = await checkpointsDirOf(dir);
  let found: CheckpointInfo | null = null;
  if (hashes) {
    for (const c of (await listCheckpoints(ckptDir)).reverse()) {
      if (!c.valid) continue;
      const result = await verifyCheckpoint(c.path, { hashes: true });
      if (result.valid) {
        found = c;
        break;
      }
      process.stderr.write(`${c.path}: failed verification: ${result.problems.join("; ")}\n`);
    }
  } else {
    found = await latestValidCheckpoint(ckptDir);
  }
  if (!found) throw new UserError(`no valid checkpoint in ${ckptDir}`, EXIT.failure);
  process.stdout.write(`${join(ckptDir, found.name)}\n`);
  return EXIT.ok;
}

runMain(NAME, async () => {
  const dirArg = { type: "string", describe: "stage folder (out/sft) or checkpoints folder" } as const;
  const parser = yargs(hideBin(process.argv))
    .scriptName(`npm run ${NAME} --`)
    .usage("$0 <command> <dir>\n\nInspect, verify and export a stage's step checkpoints.")
    .command(
      "ls <dir>",
      "list checkpoints: step, valid or why not, size, age, finished, latest, pinned",
      (y) =>
        y
          .positional("dir", dirArg)
          .option("json", { type: "boolean", default: false, describe: "print JSON" })
          .option("verify", { type: "boolean", default: false, describe: "check every SHA-256 too" }),
    )
    .command(
      "verify <dir>",
      "check every file's SHA-256 of one step folder, or of every checkpoint in a folder (exit 1 if any fails)",
      (y) => y.positional("dir", { ...dirArg, describe: "stage, checkpoints or step_NNNNNNNN folder" }),
    )
    .command("latest <dir>", "print the latest valid checkpoint's path (exit 1 if none)", (y) =>
      y
        .positional("dir", dirArg)
        .option("verify", { type: "boolean", default: false, describe: "the latest whose SHA-256s check" }),
    )
    .command(
      "export <dir>",
      "write a checkpoint's weights as one file: MiniMind's .pth (what its eval_llm.py loads) or .safetensors; " +
        "a stage folder exports its latest checkpoint that verifies",
      (y) =>
        y
          .positional("dir", { ...dirArg, describe: "step_NNNNNNNN folder, stage or checkpoints folder" })
          .option("format", { choices: EXPORT_FORMATS, describe: "required" })
          .option("dtype", {
            choices: Object.keys(FLOAT_DTYPE_NAMES),
            describe: `[default: ${EXPORT_FORMATS.map((f) => `${DEFAULT_EXPORT_DTYPE[f]} for ${f}`).join(", ")}]`,
          })
          .option("out", {
            type: "string",
            describe:
              "the file [default: <prefix>_<hidden>.<format> beside the stage folder, e.g. out/full_sft_512.pth]",
          })
          .option("force", { type: "boolean", default: false, describe: "replace --out if it exists" }),
    )
    .demandCommand(1, "say which command: ls, verify, latest or export");
  const argv = await strictCommandLine(parser, undefined, { hint: "see --help" }).parseAsync();
  const [command] = argv._;
  const dir = String(argv.dir);
  if (command === "ls") return ls(dir, argv.json === true, argv.verify === true);
  if (command === "verify") return verify(dir);
  if (command === "latest") return latest(dir, argv.verify === true);
  if (command === "export") {
    if (argv.format === undefined) throw new UserError("export: say --format pth or --format safetensors");
    const result = await exportCheckpoint(dir, {
      format: argv.format as ExportFormat,
      dtype: argv.dtype as FloatDtypeName | undefined,
      out: argv.out as string | undefined,
      force: argv.force === true,
      warn: (message) => process.stderr.write(`warning: ${message}\n`),
    });
    process.stdout.write(
      `wrote ${result.file} (${result.dtype}, ${formatBytes(result.bytes)}) from ${result.checkpoint} (${result.stage} step ${result.step})\n`,
    );
    return EXIT.ok;
  }
  throw new UserError(`unknown command ${String(command)} (see --help)`);
});
