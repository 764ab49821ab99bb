/**
 * sbatch options as data, checked, and spelled as argument groups: one group per option, so the
 * same list is both the sbatch command line and the `#SBATCH` lines of the job script.
 */
import { UserError } from "../cli/errors.ts";
import { parseFlagGroups } from "../cli/flag-layers.ts";
import { checkJobId } from "./job-id.ts";

export interface SbatchOptions {
  jobName?: string;
  /** Log file of the batch step; Slurm expands %j (job id), %A and %a (array job and task). */
  output?: string;
  /** "append" keeps a requeued job's earlier lines (sbatch's default truncates them). */
  openMode?: "append" | "truncate";
  /** --requeue / --no-requeue; unset leaves the cluster's JobRequeue default. */
  requeue?: boolean;
  /**
   * --signal=[B:]<name>@<seconds>: `name` seconds before the time limit. batchShellOnly (B:) sends it
   * to the batch shell alone, the only process that gets it when the job runs no srun steps.
   */
  signal?: { name: string; secondsBefore: number; batchShellOnly: boolean };
  /** --dependency=afterok:<id>:<id>… (Slurm drops a dependency on a job it no longer knows). */
  afterOk?: readonly string[];
  /**
   * --kill-on-invalid-dep=yes (with afterOk): Slurm cancels the job once its dependency can never be
   * satisfied (an earlier job failed), instead of leaving it PENDING (DependencyNeverSatisfied) forever.
   */
  killOnInvalidDependency?: boolean;
  partition?: string;
  account?: string;
  /** Time limit in any sbatch spelling: "30", "2:00:00", "1-00:00:00". */
  time?: string;
  gres?: string;
  /** --array=<spec>[%maxParallel]: "0-4", "1,3,5". */
  array?: { spec: string; maxParallel?: number };
  /**
   * --export: "ALL", "NONE" or variable NAMES taken from sbatch's own environment. Never values:
   * sbatch splits `--export=NAME=value` at every comma, so a value travels in sbatch's environment
   * (SubmitRequest.env) or as an `export` line of the job script.
   */
  export?: "ALL" | "NONE" | readonly string[];
  /** Working directory of the job (relative log paths are relative to it). */
  chdir?: string;
  /** --hold: submitted held, runs after `scontrol release`. */
  hold?: boolean;
  /** Anything else, e.g. SBATCH_ARGS split shell-like; after the options above, so they win. */
  extraArgs?: readonly string[];
}

/** One option's tokens; `option` is its long name ("job-name"), or the user's spelling for extras. */
export interface SbatchOptionGroup {
  option: string;
  tokens: string[];
  /**
   * False for what belongs to one submission only and must not be written into a script a user
   * resubmits by hand (a dependency on jobs long gone, a hold).
   */
  repeatable: boolean;
}

const SIGNAL_NAME = /^((SIG)?[A-Z][A-Z0-9]*|[0-9]+)$/;
const ARRAY_SPEC = /^\d+(-\d+(:\d+)?)?(,\d+(-\d+(:\d+)?)?)*$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** The options as argument groups, in a fixed order, checked (UserError naming the option). */
export function sbatchOptionGroups(options: SbatchOptions): SbatchOptionGroup[] {
  const groups: SbatchOptionGroup[] = [];
  const add = (option: string, value: string | null, repeatable = true): void => {
    if (value !== null && /[\0\r\n]/.test(value)) {
      throw new UserError(`sbatch --${option}: ${JSON.stringify(value)} contains a line break or NUL`);
    }
    groups.push({ option, tokens: [value === null ? `--${option}` : `--${option}=${value}`], repeatable });
  };
  const text = (option: string, value: string | undefined): void => {
    if (value === undefined) return;
    if (value.trim() === "") throw new UserError(`sbatch --${option}: empty value`);
    add(option, value);
  };

  text("job-name", options.jobName);
  text("output", options.output);
  if (options.openMode !== undefined) add("open-mode", options.openMode);
  if (options.requeue !== undefined) add(options.requeue ? "requeue" : "no-requeue", null);
  if (options.signal !== undefined) {
    const { name, secondsBefore, batchShellOnly } = options.signal;
    if (!SIGNAL_NAME.test(name))
      throw new UserError(`sbatch --signal: ${JSON.stringify(name)} is not a signal name`);
    if (!Number.isInteger(secondsBefore) || secondsBefore < 0 || secondsBefore > 65535) {
      throw new UserError(`sbatch --signal: ${secondsBefore} s: expected a whole number of seconds 0-65535`);
    }
    add("signal", `${batchShellOnly ? "B:" : ""}${name.replace(/^SIG/, "")}@${secondsBefore}`);
  }
  if (options.afterOk !== undefined && options.afterOk.length > 0) {
    for (const id of options.afterOk) checkJobId(id, "sbatch --dependency");
    add("dependency", `afterok:${options.afterOk.join(":")}`, false);
    if (options.killOnInvalidDependency === true) add("kill-on-invalid-dep", "yes", false);
  }
  text("partition", options.partition);
  text("account", options.account);
  text("time", options.time);
  text("gres", options.gres);
  if (options.array !== undefined) {
    const { spec, maxParallel } = options.array;
    if (!ARRAY_SPEC.test(spec)) {
      throw new UserError(`sbatch --array: ${JSON.stringify(spec)}: expected task ids such as 0-4 or 1,3,5`);
    }
    if (maxParallel !== undefined && (!Number.isInteger(maxParallel) || maxParallel < 1)) {
      throw new UserError(`sbatch --array: %${maxParallel}: expected a whole number of tasks >= 1`);
    }
    add("array", maxParallel === undefined ? spec : `${spec}%${maxParallel}`);
  }
  if (options.export !== undefined) {
    const value = typeof options.export === "string" ? options.export : options.export.join(",");
    if (typeof options.export !== "string") {
      const bad = options.export.find((name) => !ENV_NAME.test(name));
      if (bad !== undefined || options.export.length === 0) {
        throw new UserError(
          `sbatch --export: ${JSON.stringify(bad ?? "")} is not a variable name (values go in the job's environment, not --export)`,
        );
      }
    }
    add("export", value);
  }
  text("chdir", options.chdir);
  if (options.hold === true) add("hold", null, false);
  if (options.extraArgs !== undefined && options.extraArgs.length > 0) {
    for (const group of parseFlagGroups(options.extraArgs, "SBATCH_ARGS")) {
      if (group.tokens.some((token) => /[\0\r\n]/.test(token))) {
        throw new UserError(`SBATCH_ARGS: ${JSON.stringify(group.tokens.join(" "))} contains a line break`);
      }
      const first = group.tokens[0] as string;
      // A dependency or hold passed by the user is theirs to repeat or not; keep it off the script too.
      const bare = first.replace(/^-+/, "").split("=")[0] as string;
      const once = ["dependency", "d", "hold", "H", "parsable"].includes(bare);
      groups.push({ option: first, tokens: [...group.tokens], repeatable: !once });
    }
  }
  return groups;
}

/** The options as one sbatch argument list. */
export function sbatchArgs(options: SbatchOptions): string[] {
  return sbatchOptionGroups(options).flatMap((group) => group.tokens);
}
