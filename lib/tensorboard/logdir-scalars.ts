/*
 * Every run under a logdir, kept up to date like TensorBoard's event multiplexer: a run is each
 * directory (the logdir itself is run ".") that directly holds event files, named by its path
 * relative to the logdir; runs are found by walking the logdir, and a run whose directory is
 * deleted is dropped. Files are followed with a file watcher (chokidar) for prompt updates and a
 * periodic re-scan that catches whatever the watcher misses (network file systems, inotify limits).
 */
import type { Dirent } from "node:fs";
import { readdir, stat } from "node:fs/promises";
import { basename, dirname, join, relative, resolve, sep } from "node:path";
import { type FSWatcher, watch } from "chokidar";
import { isNodeError } from "../cli/errors.ts";
import { type FileProblem, isEventFileName, RunLoader } from "./run-loader.ts";
import type { ScalarChangeListener } from "./scalar-accumulator.ts";

const LOGDIR_POLL_MS = 1000;

export type LogdirChange =
  | { kind: "append"; run: string; tag: string; wallTime: number; step: number; value: number }
  | { kind: "purge"; run: string; tags: readonly string[] | null; fromStep: number }
  /** Runs came or went, or a run's tags, session starts, files or problems changed. */
  | { kind: "runs" };

export type LogdirLog = (line: string, level: "info" | "warn") => void;

export interface LogdirScalarsOptions {
  logdir: string;
  /** Full re-scan period, like TensorBoard's --reload_interval (default 5 s; 0 disables it). */
  reloadIntervalMs?: number;
  /** Follow changes with a file watcher as well (default true). */
  watch?: boolean;
  /** Delay that gathers a burst of file events into one reload (default 50 ms). */
  debounceMs?: number;
  tornGraceMs?: number;
  log?: LogdirLog;
}

export class LogdirScalars {
  readonly logdir: string;
  private readonly loaders = new Map<string, RunLoader>();
  private readonly listeners = new Set<(change: LogdirChange) => void>();
  private readonly options: Required<Omit<LogdirScalarsOptions, "logdir">>;
  private readonly dirtyRuns = new Set<string>();
  private discoverPending = false;
  private draining: Promise<void> | null = null;
  private debounce: NodeJS.Timeout | null = null;
  private interval: NodeJS.Timeout | null = null;
  private watcher: FSWatcher | null = null;
  private closed = false;
  private firstLoad: Promise<void> | null = null;
  private stopWaitingForWatcher: (() => void) | null = null;
  private watchFailed = false;
  private waitForLogdir: NodeJS.Timeout | null = null;
  private watchedInode: number | null = null;
  /** True once the first full load has finished. */
  loaded = false;

  constructor(options: LogdirScalarsOptions) {
    this.logdir = resolve(options.logdir);
    this.options = {
      reloadIntervalMs: options.reloadIntervalMs ?? 5000,
      watch: options.watch ?? true,
      debounceMs: options.debounceMs ?? 50,
      tornGraceMs: options.tornGraceMs ?? 10_000,
      log: options.log ?? (() => {}),
    };
  }

  /** Begin loading and following; the promise settles when the first full load is done. */
  start(): Promise<void> {
    this.firstLoad ??= (async () => {
      const started = performance.now();
      await this.refresh();
      this.loaded = true;
      let points = 0;
      for (const loader of this.loaders.values()) {
        for (const { tag } of loader.scalars.scalarTags()) points += loader.scalars.series(tag)?.length ?? 0;
      }
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      this.options.log(`loaded ${this.loaders.size} runs, ${points} points in ${seconds} s`, "info");
      if (this.options.reloadIntervalMs > 0 && !this.closed) {
        this.interval = setInterval(() => this.schedule(true, null), this.options.reloadIntervalMs);
        this.interval.unref();
      }
    })();
    return this.firstLoad;
  }

  onChange(listener: (change: LogdirChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Run names in TensorBoard's /data/runs order: by start time (runs with no events last), then name. */
  runNames(): string[] {
    const start = (name: string): number =>
      this.loaders.get(name)?.scalars.firstEventTime ?? Number.POSITIVE_INFINITY;
    return [...this.loaders.keys()].sort((a, b) => start(a) - start(b) || (a < b ? -1 : a > b ? 1 : 0));
  }

  run(name: string): RunLoader | undefined {
    return this.loaders.get(name);
  }

  /** Re-scan the logdir and read every run now; settles when done. */
  async refresh(): Promise<void> {
    this.discoverPending = true;
    for (const name of this.loaders.keys()) this.dirtyRuns.add(name);
    await this.drain();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.debounce) clearTimeout(this.debounce);
    if (this.interval) clearInterval(this.interval);
    if (this.waitForLogdir) clearTimeout(this.waitForLogdir);
    this.waitForLogdir = null;
    this.debounce = null;
    this.interval = null;
    const watcher = this.watcher;
    this.watcher = null;
    await watcher?.close();
    this.stopWaitingForWatcher?.();
    await this.draining?.catch(() => {});
    this.listeners.clear();
  }

  private schedule(discover: boolean, run: string | null): void {
    if (this.closed) return;
    if (discover) {
      this.discoverPending = true;
      for (const name of this.loaders.keys()) this.dirtyRuns.add(name);
    }
    if (run !== null) this.dirtyRuns.add(run);
    if (this.debounce) return;
    this.debounce = setTimeout(() => {
      this.debounce = null;
      this.drain().catch((error: unknown) => {
        this.options.log(`warning: reading ${this.logdir} failed: ${String(error)}`, "warn");
      });
    }, this.options.debounceMs);
  }

  /** One worker reads what is dirty until nothing is; callers share it. */
  private drain(): Promise<void> {
    // Cleared in a callback, which runs after this assignment even when there is nothing to do
    // (clearing it inside the worker could run first and leave a settled promise here for good).
    this.draining ??= this.work().finally(() => {
      this.draining = null;
    });
    return this.draining;
  }

  private async work(): Promise<void> {
    while (!this.closed && (this.discoverPending || this.dirtyRuns.size > 0)) {
      let changed = false;
      if (this.discoverPending) {
        this.discoverPending = false;
        changed = (await this.discover()) || changed;
        await this.ensureWatcher();
      }
      const names = [...this.dirtyRuns];
      this.dirtyRuns.clear();
      for (const name of names) {
        if (this.closed) break;
        changed = (await this.reloadRun(name)) || changed;
      }
      if (changed) this.emit({ kind: "runs" });
    }
  }

  /** Add runs for new directories holding event files; true if any were added. */
  private async discover(): Promise<boolean> {
    let added = false;
    for (const dir of await eventDirectories(this.logdir)) {
      const name = runName(this.logdir, dir);
      if (this.loaders.has(name)) continue;
      this.loaders.set(
        name,
        new RunLoader(dir, { listener: this.listenerFor(name), tornGraceMs: this.options.tornGraceMs }),
      );
      this.dirtyRuns.add(name);
      added = true;
    }
    return added;
  }

  /** Read what was appended to one run; true if its description (not just its points) changed. */
  private async reloadRun(name: string): Promise<boolean> {
    const loader = this.loaders.get(name);
    if (!loader) return false;
    const before = describe(loader);
    const outcome = await loader.reload();
    if (outcome.gone) {
      this.loaders.delete(name);
      this.options.log(`run ${name} is gone (${loader.dir} was deleted)`, "info");
      return true;
    }
    for (const problem of outcome.problems) this.options.log(`warning: ${problem.message}`, "warn");
    return describe(loader) !== before;
  }

  private listenerFor(run: string): ScalarChangeListener {
    return {
      append: (tag, wallTime, step, value) => this.emit({ kind: "append", run, tag, wallTime, step, value }),
      purge: (tags, fromStep) => this.emit({ kind: "purge", run, tags, fromStep }),
    };
  }

  private emit(change: LogdirChange): void {
    for (const listener of this.listeners) listener(change);
  }

  private async ensureWatcher(): Promise<void> {
    if (!this.options.watch || this.closed || this.watchFailed) return;
    const inode = await stat(this.logdir).then(
      (info) => info.ino,
      () => null,
    );
    // close() may have run while this awaited: neither a timer nor a watcher may outlive it.
    if (this.closed) return;
    if (this.watcher && inode === this.watchedInode) return;
    if (this.watcher) {
      // The logdir was deleted (and maybe made again, as a smoke test starting afresh does): the
      // old watcher watches nothing any more.
      const stale = this.watcher;
      this.watcher = null;
      await stale.close();
    }
    if (inode === null) {
      // Nothing to watch yet: look again soon (the logdir appears when the first trainer starts).
      this.waitForLogdir ??= setTimeout(() => {
        this.waitForLogdir = null;
        this.schedule(true, null);
      }, LOGDIR_POLL_MS);
      this.waitForLogdir.unref();
      return;
    }
    // close() may have run while the stale watcher closed.
    if (this.closed) return;
    const watcher = watch(this.logdir, { ignoreInitial: true, persistent: true, followSymlinks: false });
    this.watcher = watcher;
    this.watchedInode = inode;
    watcher.on("all", (event, path) => {
      const name = basename(path);
      if (event === "add" || event === "change") {
        if (!isEventFileName(name)) return;
        const run = runName(this.logdir, dirname(path));
        this.schedule(!this.loaders.has(run), this.loaders.has(run) ? run : null);
        return;
      }
      this.schedule(true, null);
    });
    watcher.on("error", (error) => {
      if (this.watchFailed) return;
      this.watchFailed = true;
      const every = this.options.reloadIntervalMs / 1000;
      this.options.log(
        `warning: watching ${this.logdir} failed (${String(error)}); re-scanning every ${every} s instead`,
        "warn",
      );
      // A closed watcher never says "ready": end the wait for the initial scan here too, or every
      // later refresh would wait on it for good.
      this.stopWaitingForWatcher?.();
      void watcher.close();
      if (this.watcher === watcher) this.watcher = null;
    });
    // close() during the initial scan ends the wait too: a closed watcher never says "ready", and
    // close() awaits this drain.
    await new Promise<void>((ready) => {
      this.stopWaitingForWatcher = ready;
      watcher.once("ready", ready);
    });
    this.stopWaitingForWatcher = null;
  }
}

/** What a run looks like apart from its points, to tell when to announce a change. */
function describe(loader: RunLoader): string {
  const { scalars, files } = loader;
  return JSON.stringify([
    scalars.scalarTags().length,
    scalars.sessionStarts.length,
    scalars.firstEventTime,
    files.length,
    files.map((file) => file.problem?.offset ?? -1),
  ]);
}

export function runName(logdir: string, dir: string): string {
  const rel = relative(logdir, dir);
  return rel === "" ? "." : rel.split(sep).join("/");
}

/** Directories under `logdir` (itself included) that directly hold an event file; symlinked directories are not followed. */
export async function eventDirectories(logdir: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    let entries: Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (error) {
      if (
        isNodeError(error) &&
        (error.code === "ENOENT" || error.code === "ENOTDIR" || error.code === "EACCES")
      )
        return;
      throw error;
    }
    if (entries.some((entry) => !entry.isDirectory() && isEventFileName(entry.name))) found.push(dir);
    for (const entry of entries) if (entry.isDirectory()) await walk(join(dir, entry.name));
  };
  await walk(logdir);
  return found;
}

export type { FileProblem };
