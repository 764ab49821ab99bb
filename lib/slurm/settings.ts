/**
 * The Slurm settings a user gives in the environment (issue 14): where jobs go and how they are
 * warned before their time limit. Checked once, each error naming its variable.
 */
import { splitShellWords } from "../cli/shell-words.ts";
import { parseWholeNumber } from "../cli/values.ts";
import type { SbatchOptions } from "./options.ts";

type Env = Readonly<Record<string, string | undefined>>;

export const DEFAULT_SIGNAL_SEC = 120;
export const DEFAULT_MAX_REQUEUES = 3;

export interface SlurmEnvSettings {
  /** SLURM_PARTITION, SLURM_ACCOUNT, SLURM_TIME, SLURM_GRES: unset or empty leaves Slurm's default. */
  partition?: string;
  account?: string;
  time?: string;
  gres?: string;
  /** SBATCH_ARGS, split the way a shell would (quotes group, nothing expanded). */
  extraArgs: string[];
  /** SLURM_SIGNAL_SEC: the USR1 warning this many seconds before the time limit. */
  signalSeconds: number;
  /** SLURM_MAX_REQUEUES: a job restarted more often than this is reported failed, not requeued again. */
  maxRequeues: number;
}

export function slurmSettingsFromEnv(env: Env): SlurmEnvSettings {
  const text = (name: string): string | undefined => {
    const value = env[name]?.trim();
    return value === undefined || value === "" ? undefined : value;
  };
  return {
    partition: text("SLURM_PARTITION"),
    account: text("SLURM_ACCOUNT"),
    time: text("SLURM_TIME"),
    gres: text("SLURM_GRES"),
    extraArgs: splitShellWords(env.SBATCH_ARGS ?? "", "SBATCH_ARGS"),
    signalSeconds: wholeNumber(env, "SLURM_SIGNAL_SEC", 0, 65535) ?? DEFAULT_SIGNAL_SEC,
    maxRequeues: wholeNumber(env, "SLURM_MAX_REQUEUES", 0, 10_000) ?? DEFAULT_MAX_REQUEUES,
  };
}

/** The sbatch options every stage job shares: placement from the settings, log kept across requeues, warned by USR1. */
export function baseSbatchOptions(settings: SlurmEnvSettings): SbatchOptions {
  return {
    partition: settings.partition,
    account: settings.account,
    time: settings.time,
    gres: settings.gres,
    openMode: "append",
    requeue: true,
    signal: { name: "USR1", secondsBefore: settings.signalSeconds, batchShellOnly: true },
    extraArgs: settings.extraArgs,
  };
}

function wholeNumber(env: Env, name: string, min: number, max: number): number | undefined {
  const text = env[name]?.trim();
  return text === undefined || text === "" ? undefined : parseWholeNumber(text, `${name}=${text}`, min, max);
}
