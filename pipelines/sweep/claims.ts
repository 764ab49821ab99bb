/**
 * Exclusive claims on queue lines, so that sweeps sharing a queue never train the same line at once.
 *
 * A claim is a proper-lockfile lock `<dpo>/.sweep/from_step_N.lock` (a directory whose mtime the
 * holder refreshes every second) plus `<dpo>/.sweep/from_step_N.json` naming the holder (pid, host,
 * process start time) and, once started, its DPO child. Claims are taken and dropped only while
 * holding the queue file's lock, so the two files always agree for anyone holding that lock, and
 * two sweeps can never both take over the same abandoned claim.
 *
 * A claim expires when its holder is gone: at once when the record shows the holder died on this
 * host, else when its lock has not been refreshed for CLAIM_STALE_MS (a holder on another host, or
 * one frozen). While the DPO child of a dead holder is still running, the line stays busy.
 */
import { mkdir, readFile, rm, rmdir } from "node:fs/promises";
import { join, resolve } from "node:path";
import lockfile from "proper-lockfile";
import { isNodeError } from "../../lib/cli/errors.ts";
import { writeFileAtomic } from "../../lib/fs/atomic.ts";
import { groupAlive } from "../../lib/process/index.ts";
import {
  completeEntry,
  type QueueEntry,
  readQueue,
  updateQueue,
  withFileLock,
} from "../../lib/queue/index.ts";
import { identityAlive, ownIdentity, type ProcessIdentity } from "./process-identity.ts";

/** A claim whose holder has not refreshed it for this long is taken to be abandoned. */
export const CLAIM_STALE_MS = 10_000;
const CLAIM_REFRESH_MS = 1_000;

export interface ClaimRecord extends ProcessIdentity {
  step: number;
  claimed_at: string;
  /** The DPO child's pid (its process group), once started. */
  child_pid: number | null;
}

/** `from_step_00000040`: a line's DPO run folder (and claim files) by its SFT step. */
export function runDirName(step: number): string {
  return `from_step_${String(step).padStart(8, "0")}`;
}

export interface BusyLine {
  step: number;
  holder: ClaimRecord | null;
  /** claimed: a live sweep (or one we cannot see) holds it; orphan: its holder died but its child runs on. */
  why: "claimed" | "orphan";
}

export interface ClaimSearch {
  claim: LineClaim | null;
  /** Pending lines passed over because they are someone else's. */
  busy: BusyLine[];
}

/** One claimed line; drop it with complete() or release(). */
export class LineClaim {
  readonly entry: QueueEntry;
  readonly #queueFile: string;
  readonly #recordFile: string;
  readonly #record: ClaimRecord;
  #unlock: (() => Promise<void>) | null = null;
  #lost: Error | null = null;
  #onLost: ((error: Error) => void) | null = null;
  /** The record's rewrite in flight, which must land before the record is removed. */
  #recording: Promise<void> = Promise.resolve();

  constructor(entry: QueueEntry, queueFile: string, recordFile: string, record: ClaimRecord) {
    this.entry = entry;
    this.#queueFile = queueFile;
    this.#recordFile = recordFile;
    this.#record = record;
  }

  /** Set when the lock was taken from us (we stalled past the stale time); the child must stop. */
  get lost(): Error | null {
    return this.#lost;
  }

  onLost(listener: (error: Error) => void): void {
    this.#onLost = listener;
    if (this.#lost) listener(this.#lost);
  }

  /** @internal */
  attach(unlock: () => Promise<void>): void {
    this.#unlock = unlock;
  }

  /** @internal */
  markLost(error: Error): void {
    this.#lost ??= error;
    this.#onLost?.(error);
  }

  /** Note the DPO child in the record, so nobody starts a second one while it lives. */
  recordChild(pid: number): Promise<void> {
    this.#record.child_pid = pid;
    this.#recording = writeFileAtomic(this.#recordFile, `${JSON.stringify(this.#record)}\n`);
    return this.#recording;
  }

  /** Mark the line completed with these fields and drop the claim, in one step under the queue lock. */
  async complete(
    fields: Omit<Partial<QueueEntry>, "checkpoint" | "step" | "completed">,
  ): Promise<{ entry: QueueEntry; alreadyCompleted: boolean }> {
    return completeEntry(this.#queueFile, this.entry.step, fields, { afterWrite: () => this.#drop() });
  }

  /** Drop the claim without completing the line (the child failed or was stopped). */
  async release(): Promise<void> {
    await updateQueue(this.#queueFile, () => {}, { afterWrite: () => this.#drop() });
  }

  async #drop(): Promise<void> {
    // A lost claim's record and lock are its new holder's now.
    if (this.#lost) return;
    await this.#recording.catch(() => {});
    // The record goes first: a lock without a record reads as busy, never as free with a stale record.
    await rm(this.#recordFile, { force: true });
    const unlock = this.#unlock;
    this.#unlock = null;
    await unlock?.().catch((error: unknown) => {
      if (!(isNodeError(error) && error.code === "ERELEASED")) throw error;
    });
  }
}

/**
 * Claim the first pending line (in file order) that is not in `exclude`, is in `only` when given,
 * and is not someone else's. Returns null as the claim when there is none to take right now.
 */
export async function claimNextLine(
  queueFile: string,
  claimsDir: string,
  exclude: ReadonlySet<number>,
  only?: ReadonlySet<number>,
): Promise<ClaimSearch> {
  const wanted = (e: QueueEntry): boolean =>
    !e.completed && !exclude.has(e.step) && (only?.has(e.step) ?? true);
  const candidates = (await readQueue(queueFile)).filter(wanted);
  if (candidates.length === 0) return { claim: null, busy: [] };
  await mkdir(claimsDir, { recursive: true });
  return withFileLock(queueFile, async () => {
    const busy: BusyLine[] = [];
    for (const entry of await readQueue(queueFile)) {
      if (!wanted(entry)) continue;
      const taken = await tryClaim(entry, queueFile, claimsDir);
      if (taken instanceof LineClaim) return { claim: taken, busy };
      busy.push(taken);
    }
    return { claim: null, busy };
  });
}

/** The record of the line's current claim, if any (for the report). */
export async function readClaimRecord(claimsDir: string, step: number): Promise<ClaimRecord | null> {
  try {
    return JSON.parse(await readFile(join(claimsDir, `${runDirName(step)}.json`), "utf8")) as ClaimRecord;
  } catch {
    return null; // none, or half a record from a holder that crashed while writing it: no claim to show
  }
}

async function tryClaim(
  entry: QueueEntry,
  queueFile: string,
  claimsDir: string,
): Promise<LineClaim | BusyLine> {
  const name = runDirName(entry.step);
  const lockDir = join(claimsDir, `${name}.lock`);
  const previous = await readClaimRecord(claimsDir, entry.step);
  const holderAlive = previous === null ? null : identityAlive(previous);
  if (
    previous !== null &&
    holderAlive === false &&
    previous.child_pid !== null &&
    groupAlive(previous.child_pid)
  ) {
    return { step: entry.step, holder: previous, why: "orphan" };
  }
  let claim = await lockLine(entry, queueFile, claimsDir, lockDir);
  if (claim === null && holderAlive === false) {
    // Its holder died on this host: the lock is abandoned now, not only after it goes stale.
    await rmdir(lockDir).catch(() => {});
    claim = await lockLine(entry, queueFile, claimsDir, lockDir);
  }
  return claim ?? { step: entry.step, holder: previous, why: "claimed" };
}

async function lockLine(
  entry: QueueEntry,
  queueFile: string,
  claimsDir: string,
  lockDir: string,
): Promise<LineClaim | null> {
  const recordFile = join(claimsDir, `${runDirName(entry.step)}.json`);
  const record: ClaimRecord = {
    ...ownIdentity(),
    step: entry.step,
    claimed_at: new Date().toISOString(),
    child_pid: null,
  };
  const claim = new LineClaim(entry, queueFile, recordFile, record);
  let unlock: () => Promise<void>;
  try {
    unlock = await lockfile.lock(resolve(lockDir), {
      realpath: false,
      lockfilePath: lockDir,
      stale: CLAIM_STALE_MS,
      update: CLAIM_REFRESH_MS,
      retries: 0,
      onCompromised: (error) => claim.markLost(error),
    });
  } catch (error) {
    if (isNodeError(error) && error.code === "ELOCKED") return null;
    throw error;
  }
  claim.attach(unlock);
  try {
    await writeFileAtomic(recordFile, `${JSON.stringify(record)}\n`);
  } catch (error) {
    await unlock().catch(() => {});
    throw error;
  }
  return claim;
}
