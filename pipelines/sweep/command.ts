/**
 * The sweep as a command, shared by `npm run dpo-sweep` and `npm run pipeline -- --dpo-sweep`:
 * say what it will do, run it, print the report; and the report alone.
 */
import type { Writable } from "node:stream";
import { EXIT, UserError } from "../../lib/cli/errors.ts";
import { pathExists } from "../../lib/fs/probe.ts";
import type { StopController } from "../../lib/process/index.ts";
import { readQueue } from "../../lib/queue/index.ts";
import { displayPath } from "../pipeline/settings.ts";
import { sweepCapacity } from "./gpu-slots.ts";
import { writeSweepReport } from "./report.ts";
import type { SweepSettings } from "./settings.ts";
import { runSweep, type SweepOutcome } from "./sweep.ts";

export interface SweepCommandOptions {
  watch: boolean;
  maxParallel: number;
  stop: StopController;
  echo?: { stdout: Writable; stderr: Writable } | false;
  say(line: string): void;
  warn(line: string): void;
  sftDone?: AbortSignal;
}

export async function sweepCommand(
  settings: SweepSettings,
  options: SweepCommandOptions,
): Promise<SweepOutcome> {
  const { say, warn } = options;
  if (!options.watch && !(await pathExists(settings.queueFile))) {
    throw new UserError(
      `no checkpoint queue at ${settings.queueFile}: run the sft stage with its queue on ` +
        '(npm run pipeline -- --stages sft --dpo-sweep, or SFT_ARGS="--checkpoint_queue true"), or pass --watch to wait for it',
    );
  }
  const entries = await readQueue(settings.queueFile);
  const pending = entries.filter((e) => !e.completed).length;
  const devices = settings.devices;
  const parallel = sweepCapacity(options.maxParallel, devices);
  if (devices !== null && options.maxParallel > devices.length) {
    warn(
      `[sweep] --max-parallel ${options.maxParallel}, but CUDA_VISIBLE_DEVICES lists ${devices.length} device(s): ` +
        `running ${parallel} at a time, one GPU each`,
    );
  }
  say(
    `[sweep] ${displayPath(settings.queueFile)}: ${entries.length} line(s), ${pending} pending; one DPO run per line in ` +
      `${displayPath(settings.dpoRoot)}/from_step_N, ${parallel} at a time` +
      (devices === null
        ? ""
        : ` on GPU${devices.length > 1 ? "s" : ""} ${devices.slice(0, parallel).join(", ")}`) +
      (options.watch ? "; watching for new checkpoints" : ""),
  );
  const outcome = await runSweep(settings, {
    watch: options.watch,
    maxParallel: options.maxParallel,
    devices,
    stop: options.stop,
    graceMs: settings.stopGraceMs,
    stallTimeoutMs: settings.stallTimeoutMs,
    echo: options.echo ?? { stdout: process.stdout, stderr: process.stderr },
    say,
    warn,
    ...(options.sftDone ? { sftDone: options.sftDone } : {}),
  });
  await printReport(settings, say);
  if (outcome.exitCode === EXIT.ok) {
    say(
      `[sweep] done: every line of ${displayPath(settings.queueFile)} is completed ` +
        `(${outcome.trained.length} trained now, ${outcome.skipped.length} skipped)`,
    );
  } else if (outcome.interrupted !== null) {
    warn(`[sweep] interrupted by ${outcome.interrupted}; run the same command again to resume`);
  }
  return outcome;
}

/** `--dpo-sweep-report`: the table on stdout, the CSV beside the DPO runs. */
export async function reportCommand(settings: SweepSettings, say: (line: string) => void): Promise<number> {
  if (!(await pathExists(settings.queueFile))) {
    throw new UserError(
      `no checkpoint queue at ${settings.queueFile}: nothing to report (run the sft stage first)`,
    );
  }
  await printReport(settings, say);
  return EXIT.ok;
}

export async function printReport(settings: SweepSettings, say: (line: string) => void): Promise<void> {
  const { table, csvFile } = await writeSweepReport(
    settings.queueFile,
    settings.dpoRoot,
    settings.reportFile,
  );
  say(`[sweep] report (${displayPath(csvFile)}):`);
  for (const line of table.trimEnd().split("\n")) say(line);
}
