/**
 * The single-node Slurm the Slurm tests run against. Its daemons die with the session that started
 * them, so every test file (re)starts it through .ci/slurm.sh, which returns at once when it is up.
 * Only where it cannot be started (not root: it installs packages and starts daemons; or no Slurm
 * and no apt-get) do the tests skip, with that reason shown; any other failure to start fails them.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after } from "node:test";
import { execa } from "execa";
import lockfile from "proper-lockfile";
import { allFinished, cancelJobs, processesOfJob, waitForJob } from "../../lib/slurm/index.ts";
import { killMentioning, readRecord } from "./pipeline-process.ts";

export const REPO = resolve(import.meta.dirname, "../..");
const SLURM_SCRIPT = join(REPO, ".ci/slurm.sh");

export interface SlurmForTests {
  /** A reason to skip (shown by the test reporter), or false when the cluster is up. */
  skip: string | false;
}

let started: Promise<SlurmForTests> | null = null;

/**
 * Start (or find) the test cluster once per process, then hold the cluster for this test file: the
 * node has two CPUs, and two files' jobs side by side (`npm test` runs two files at a time) would
 * queue behind each other past the tests' deadlines. Throws when a root run of .ci/slurm.sh fails.
 */
export function slurmForTests(): Promise<SlurmForTests> {
  started ??= start().then(async (cluster) => {
    if (cluster.skip === false) await holdCluster();
    return cluster;
  });
  return started;
}

/** The cross-process lock the Slurm test files take in turn; released when this process exits. */
const CLUSTER_LOCK = join(tmpdir(), "baton-slurm-tests");

async function holdCluster(): Promise<void> {
  await writeFile(CLUSTER_LOCK, "", { flag: "a" });
  // proper-lockfile refreshes the lock while this process lives and removes it at exit; a holder
  // killed outright stops refreshing, and its lock is taken over after `stale`.
  await lockfile.lock(CLUSTER_LOCK, {
    stale: 15_000,
    // Lost (this process stalled past `stale`): another file may share the cluster now, which at worst
    // slows both; proper-lockfile's default would throw out of a timer and crash this test file.
    onCompromised: () => {},
    retries: { retries: 900, factor: 1, minTimeout: 1000, maxTimeout: 1000 },
  });
}

async function start(): Promise<SlurmForTests> {
  if (process.getuid?.() !== 0) {
    return { skip: "Slurm tests need root to install and start a single-node Slurm (.ci/slurm.sh)" };
  }
  const result = await execa(SLURM_SCRIPT, [], { reject: false, all: true, timeout: 600_000 });
  // 3: Slurm is not installed and there is no apt-get here to install it.
  if (result.exitCode === 3) return { skip: String(result.all).trim().split("\n").at(-1) ?? "no Slurm" };
  if (result.exitCode !== 0) {
    throw new Error(`.ci/slurm.sh failed (exit ${result.exitCode}):\n${result.all}`);
  }
  return { skip: false };
}

/** The Slurm job ids a pipeline run recorded (pipeline.json), stage by stage. */
export function jobIdsOf(outDir: string): string[] {
  return readRecord(outDir)
    .stages.map((s) => s.job_id)
    .filter((id): id is string => typeof id === "string");
}

/**
 * A scratch folder for a test file that submits jobs: after the file, the jobs pushed on `jobs` are
 * cancelled and waited for, every process still naming the folder killed, and the folder removed.
 */
export function slurmTestRoot(label: string): { root: string; jobs: string[] } {
  const root = mkdtempSync(join(tmpdir(), `baton-${label}-`));
  const jobs: string[] = [];
  after(async () => {
    await cleanUpJobs(jobs);
    killMentioning(root);
    rmSync(root, { recursive: true, force: true });
  });
  return { root, jobs };
}

/** A fresh directory for one test's job scripts and logs (the jobs run on this host, so /tmp is shared). */
export async function jobDir(label: string): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), `baton-slurm-${label}-`));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** A job name unique to this test run, so leftovers of other runs never match. */
export function uniqueName(label: string): string {
  return `baton-test-${label}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
}

export { processesOfJob } from "../../lib/slurm/index.ts";

export const HOST = hostname().split(".")[0] as string;

/** Poll until `check` returns a value other than undefined, or fail naming `what` after `timeoutMs`. */
export async function eventually<T>(
  what: string,
  timeoutMs: number,
  check: () => Promise<T | undefined>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/**
 * After a test, whatever it left: cancel its jobs, wait out KillWait, and kill what Slurm did not
 * (with proctrack/linuxproc a process whose parent died escapes Slurm, e.g. the children of a batch
 * shell that was killed), so a failing test leaves no process behind.
 */
export async function cleanUpJobs(jobIds: readonly string[]): Promise<void> {
  if (jobIds.length === 0) return;
  await cancelJobs(jobIds).catch(() => {});
  for (const id of jobIds) {
    await waitForJob(id, allFinished, { timeoutMs: 45_000, intervalMs: 500 }).catch(() => {});
    for (const pid of await processesOfJob(id)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  }
}
