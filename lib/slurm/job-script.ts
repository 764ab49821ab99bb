/**
 * The batch script of a job, written where the user can read it and resubmit it by hand
 * (`sbatch <file>`): the options as `#SBATCH` lines, the environment as `export` lines, then `exec`
 * of the command. Every user value is quoted; nothing is expanded.
 *
 * `exec`, not a child: Slurm's `--signal=B:…` warning and `scancel --batch` signal the batch shell
 * alone (measured: its children get nothing), and bash would not pass a signal on while it waits for
 * a foreground child. Exec'd, the command is the batch shell and receives them itself.
 */
import { chmod } from "node:fs/promises";
import { UserError } from "../cli/errors.ts";
import { writeFileAtomic } from "../fs/atomic.ts";
import { type SbatchOptions, sbatchOptionGroups } from "./options.ts";

export interface JobScriptSpec {
  /** What the job is, for the reader, e.g. "Baton pretrain stage of out/". One line. */
  description: string;
  /** The submission's options; those that make sense again are written as #SBATCH lines. */
  options: SbatchOptions;
  /** Exported before the command, values exactly as given. */
  env?: Readonly<Record<string, string>>;
  /** The program and its arguments. */
  command: readonly string[];
}

/** The first line every job writes to its log (before the command's own output), on each (re)start. */
export const JOB_START_MARKER = "[slurm] job";

const PLAIN_WORD = /^[A-Za-z0-9_/.,:=@%+-]+$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** `word` as bash reads it back exactly: bare when plain, else in single quotes. */
export function shellQuote(word: string): string {
  if (PLAIN_WORD.test(word)) return word;
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/**
 * One token of an #SBATCH line. sbatch splits these lines itself, not bash: double quotes group
 * (single quotes do too, but a backslash inside them is still an escape), so a value with spaces is
 * double-quoted and a value with `"` or `\` cannot be written faithfully and is refused.
 */
function directiveToken(token: string): string {
  if (PLAIN_WORD.test(token)) return token;
  if (/["\\]/.test(token)) {
    throw new UserError(
      `sbatch option ${JSON.stringify(token)}: a " or \\ cannot be written into an #SBATCH line`,
    );
  }
  const eq = /^(--?[A-Za-z][A-Za-z0-9-]*=)(.*)$/s.exec(token);
  return eq === null ? `"${token}"` : `${eq[1]}"${eq[2]}"`;
}

export function renderJobScript(spec: JobScriptSpec): string {
  if (spec.command.length === 0) throw new UserError("job script: no command to run");
  if (/[\r\n]/.test(spec.description)) throw new UserError("job script: the description must be one line");
  const lines = [
    "#!/bin/bash",
    `# ${spec.description}`,
    "# Written by Baton. Resubmit by hand with: sbatch <this file>",
  ];
  const groups = sbatchOptionGroups(spec.options);
  if (groups.some((group) => !group.repeatable)) {
    lines.push(
      "# (submitted with a dependency on earlier jobs or held; those options are not repeated here)",
    );
  }
  // sbatch reads #SBATCH lines only up to the first command, so they all come first.
  for (const group of groups) {
    if (group.repeatable) lines.push(`#SBATCH ${group.tokens.map(directiveToken).join(" ")}`);
  }
  lines.push("", "set -euo pipefail");
  for (const [name, value] of Object.entries(spec.env ?? {})) {
    if (!ENV_NAME.test(name))
      throw new UserError(`job script: ${JSON.stringify(name)} is not a variable name`);
    lines.push(`export ${name}=${shellQuote(value)}`);
  }
  lines.push(
    `echo "${JOB_START_MARKER} \${SLURM_JOB_ID:-?} restart \${SLURM_RESTART_COUNT:-0} on $(hostname -s) at $(date -u +%Y-%m-%dT%H:%M:%SZ)"`,
    "# exec: the command becomes the batch shell, so Slurm's signals to the batch shell reach it.",
    `exec ${spec.command.map(shellQuote).join(" ")}`,
    "",
  );
  return lines.join("\n");
}

/** One (re)start of a job, as its start line in the log says. */
export interface JobStart {
  jobId: string;
  restartCount: number;
  host: string;
  at: string;
}

/**
 * The starts recorded in a job's log (append mode keeps every run's): what is left to say about a
 * job once Slurm has forgotten it (MinJobAge after it ended). Lines of other programs are ignored.
 */
export function jobStartsInLog(text: string): JobStart[] {
  const starts: JobStart[] = [];
  const pattern = /^\[slurm\] job (\S+) restart (\d+) on (\S*) at (\S+)$/gm;
  for (const match of text.matchAll(pattern)) {
    starts.push({
      jobId: match[1] as string,
      restartCount: Number(match[2]),
      host: match[3] as string,
      at: match[4] as string,
    });
  }
  return starts;
}

/** Write the script atomically, executable (sbatch copies it at submission; later edits do not reach a queued job). */
export async function writeJobScript(path: string, spec: JobScriptSpec): Promise<string> {
  const text = renderJobScript(spec);
  await writeFileAtomic(path, text);
  await chmod(path, 0o755);
  return text;
}
