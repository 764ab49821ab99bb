/**
 * Run one of Slurm's client commands (sbatch, squeue, scontrol, scancel) with an argument array,
 * never through a shell, and turn its failures into one-line errors that name the command and
 * quote Slurm's own complaint.
 */
import { execa } from "execa";
import { EXIT, UserError } from "../cli/errors.ts";

export type SlurmTool = "sbatch" | "squeue" | "scontrol" | "scancel" | "sinfo";

/** A Slurm command that could not run, was refused, or did not answer in time. */
export class SlurmError extends UserError {
  readonly tool: SlurmTool;
  /** Slurm's error text (its stderr, error lines joined), empty when the command could not start. */
  readonly detail: string;
  constructor(tool: SlurmTool, message: string, detail: string, exitCode: number) {
    super(message, exitCode);
    this.name = "SlurmError";
    this.tool = tool;
    this.detail = detail;
  }
}

export interface SlurmCommandOptions {
  /** Environment of the command, added to this process's (sbatch hands it to the job with --export=ALL). */
  env?: Readonly<Record<string, string>>;
  cwd?: string;
  /** Give up after this long (a controller that does not answer makes sbatch retry for minutes). */
  timeoutMs?: number;
}

export interface SlurmCommandResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

const DEFAULT_TIMEOUT_MS = 60_000;

/**
 * Run `tool args…`. Resolves with its output whatever its exit code (callers decide what a refusal
 * means, e.g. "Invalid job id" from scontrol is an answer, not a failure); rejects with SlurmError
 * only when it could not start or did not finish in time.
 */
export async function runSlurmTool(
  tool: SlurmTool,
  args: readonly string[],
  options: SlurmCommandOptions = {},
): Promise<SlurmCommandResult> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const result = await execa(tool, [...args], {
    env: options.env === undefined ? undefined : { ...options.env },
    cwd: options.cwd,
    stdin: "ignore",
    reject: false,
    timeout: timeoutMs,
    forceKillAfterDelay: 2_000,
  });
  const code = "code" in result && typeof result.code === "string" ? result.code : undefined;
  if (code === "ENOENT") {
    throw new SlurmError(
      tool,
      `${tool} not found on PATH: Slurm's client commands are needed (install slurm-client, or load the cluster's Slurm module)`,
      "",
      EXIT.badInput,
    );
  }
  if (code !== undefined) {
    throw new SlurmError(tool, `cannot run ${tool}: ${result.shortMessage}`, "", EXIT.failure);
  }
  if (result.timedOut) {
    throw new SlurmError(
      tool,
      `${tool} did not answer within ${Math.round(timeoutMs / 1000)} s (is slurmctld up? try: scontrol ping)`,
      String(result.stderr ?? ""),
      EXIT.failure,
    );
  }
  return {
    stdout: String(result.stdout ?? ""),
    stderr: String(result.stderr ?? ""),
    exitCode: result.exitCode ?? EXIT.failure,
  };
}

/** Slurm's complaint in one line: its error lines without the `sbatch: error: ` prefixes, joined. */
export function slurmErrorText(stderr: string): string {
  const lines = stderr
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "");
  const errors = lines.filter((line) => /\berror\b/i.test(line));
  return (errors.length > 0 ? errors : lines)
    .map((line) => line.replace(/^[a-z]+: (error: )?/, "").replace(/^error: /, ""))
    .join("; ");
}

/** Like runSlurmTool, but a non-zero exit is a SlurmError quoting Slurm's stderr. */
export async function runSlurmToolOrThrow(
  tool: SlurmTool,
  args: readonly string[],
  options: SlurmCommandOptions & { what: string; exitCode?: number } = { what: "" },
): Promise<SlurmCommandResult> {
  const result = await runSlurmTool(tool, args, options);
  if (result.exitCode !== 0) {
    const detail = slurmErrorText(result.stderr) || `exit code ${result.exitCode}, no message`;
    throw new SlurmError(
      tool,
      `${tool} ${options.what}: ${detail}`,
      detail,
      options.exitCode ?? EXIT.failure,
    );
  }
  return result;
}
