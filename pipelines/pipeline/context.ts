/** What every step of one pipeline run shares, and how the run talks to the terminal. */
import { chalk } from "zx";
import type { StopController } from "../../lib/process/index.ts";
import type { Executor } from "../executor/types.ts";
import type { PipelineFlags } from "./cli.ts";
import type { RestartPlan } from "./restarts.ts";
import type { RunRecorder, StepName } from "./run-record.ts";
import { displayPath, type PipelineSettings } from "./settings.ts";

export const PIPELINE = "pipeline";

export interface PipelineRun {
  settings: PipelineSettings;
  flags: PipelineFlags;
  recorder: RunRecorder;
  stop: StopController;
  executor: Executor;
  /** The children's environment (childEnv of ours). */
  env: Record<string, string>;
  restarts: RestartPlan;
}

/** How a step ended, for the loop: go on, or end the run with this exit code. */
export type StepEnd = { go: true } | { go: false; exitCode: number };

export const say = (line: string): void => void process.stdout.write(`${line}\n`);
export const warn = (line: string): void => void process.stderr.write(`${line}\n`);
export const tag = (step: string): string => chalk.bold(`[${step}]`);
export const show = (path: string): string => displayPath(path);

/** Record and print a step that stops the run before anything ran. */
export async function fail(
  run: PipelineRun,
  step: StepName,
  message: string,
  exitCode: number,
): Promise<StepEnd> {
  warn(`${tag(step)} ${chalk.red(message)}`);
  await run.recorder.update(step, { state: "failed", decision: message, message });
  return { go: false, exitCode };
}
