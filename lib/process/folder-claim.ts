/**
 * A folder only one process at a time may write — a trainer's checkpoints — claimed for that
 * process's lifetime by an owner file beside it (`<folder>.owner`: pid, process start time, host,
 * Slurm job). Unlike a lock its holder must keep refreshing, a claim whose holder is gone is taken
 * over at once, so a SIGKILLed trainer's successor waits for nothing. Gone means: the pid no
 * longer runs, or runs another program (its start time differs), or — on another host, where no
 * pid can be checked — the holder was this same Slurm job before a requeue. A claim a live process
 * holds is refused with its pid: a second writer would mix two runs in one folder.
 */
import { readFileSync, unlinkSync } from "node:fs";
import { hostname } from "node:os";
import { dirname } from "node:path";
import { describeFsError, EXIT, isNodeError, UserError } from "../cli/errors.ts";
import { writeFileAtomic } from "../fs/atomic.ts";
import { withFileLock } from "../fs/lock.ts";
import { makeDir } from "../fs/make-dir.ts";
import { processAlive, processStartTime } from "./group.ts";

interface Owner {
  pid: number;
  /** Its start time (clock ticks since boot), null without /proc. */
  start: string | null;
  host: string;
  slurm_job: string | null;
  since: string;
}

export function ownerFileOf(folder: string): string {
  return `${folder}.owner`;
}

function readOwner(file: string): Owner | null {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    if (isNodeError(error) && error.code === "ENOENT") return null;
    throw new UserError(`cannot read ${file}: ${describeFsError(error)}`);
  }
  try {
    const owner = JSON.parse(text) as Partial<Owner>;
    if (typeof owner.pid === "number" && typeof owner.host === "string") return owner as Owner;
  } catch {
    // not ours: said below
  }
  throw new UserError(
    `${file}: not an owner file (expected {"pid": …, "host": …}); remove it if no trainer runs`,
  );
}

/** Why `owner` no longer holds its claim, or null while it does. */
function goneBecause(owner: Owner, env: NodeJS.ProcessEnv): string | null {
  if (owner.host !== hostname()) {
    const job = env.SLURM_JOB_ID;
    return job !== undefined && owner.slurm_job === job ? `Slurm job ${job} before its requeue` : null;
  }
  if (!processAlive(owner.pid)) return `pid ${owner.pid}, which has ended`;
  const start = processStartTime(owner.pid);
  if (owner.start !== null && start !== null && start !== owner.start)
    return `pid ${owner.pid}, now another process`;
  return null;
}

function refusal(folder: string, what: string, owner: Owner): UserError {
  const where = owner.host === hostname() ? "" : ` on ${owner.host}`;
  return new UserError(
    `${what} (${folder}) are being written by pid ${owner.pid}${where} since ${owner.since}: ` +
      `wait for it or stop it (a second trainer would mix two runs in one folder); ` +
      `if it is not running, remove ${ownerFileOf(folder)}`,
    EXIT.badInput,
  );
}

function isMe(owner: Owner): boolean {
  return owner.pid === process.pid && owner.host === hostname();
}

/** Refuse (a UserError naming the holder) when another live process holds `folder`. */
export function assertUnclaimed(folder: string, what: string, env: NodeJS.ProcessEnv = process.env): void {
  const owner = readOwner(ownerFileOf(folder));
  if (owner !== null && !isMe(owner) && goneBecause(owner, env) === null) throw refusal(folder, what, owner);
}

/**
 * Claim `folder` for this process until it exits (or the returned release is called).
 * `what` names it in the refusal ("pretrain's checkpoints").
 */
export async function claimFolder(
  folder: string,
  what: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ release(): void; tookOverFrom: string | null }> {
  const file = ownerFileOf(folder);
  await makeDir(dirname(file));
  const me: Owner = {
    pid: process.pid,
    start: processStartTime(process.pid),
    host: hostname(),
    slurm_job: env.SLURM_JOB_ID ?? null,
    since: new Date().toISOString(),
  };
  // The short lock makes judging the old claim and writing ours one step: two successors of a
  // crashed trainer cannot both take its place.
  const tookOverFrom = await withFileLock(file, async () => {
    const owner = readOwner(file);
    let gone: string | null = null;
    if (owner !== null && !isMe(owner)) {
      gone = goneBecause(owner, env);
      if (gone === null) throw refusal(folder, what, owner);
    }
    await writeFileAtomic(file, `${JSON.stringify(me)}\n`).catch((error: unknown) => {
      throw new Error(`cannot write ${file}: ${describeFsError(error)}`);
    });
    return gone;
  });
  let released = false;
  const release = (): void => {
    if (released) return;
    released = true;
    process.off("exit", release);
    try {
      // Only our own claim: a successor may have taken it over (we were judged gone).
      const owner = readOwner(file);
      if (owner !== null && isMe(owner) && owner.since === me.since) unlinkSync(file);
    } catch {
      // Left behind, it is taken over at the next start (its pid has ended).
    }
  };
  process.on("exit", release);
  return { release, tookOverFrom };
}
