import { closeSync, fsync, fsyncSync, openSync, readdirSync, writeSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { isNodeError } from "../cli/errors.ts";
import { fsyncDir } from "../fs/atomic.ts";
import { encodeEvent, FILE_VERSION, type SummaryValue, type TbEventInput } from "./event-proto.ts";
import { encodeRecord } from "./tfrecord.ts";

const fsyncAsync = promisify(fsync);

/** Per-process file counter, the last part of the name, like TensorBoard's `_global_uid`. */
let fileCounter = 0;

/** `events.out.tfevents.<10-digit unix secs>.<host>.<pid>.<counter>`, as tensorboard/tensorboardX name them. */
export function eventFileName(unixSeconds: number, host: string, pid: number, counter: number): string {
  return `events.out.tfevents.${String(Math.floor(unixSeconds)).padStart(10, "0")}.${host}.${pid}.${counter}`;
}

export interface EventWriterOptions {
  /** When set, `sessionStart(startStep)` is written right after the file version. */
  startStep?: number;
  /** Clock in milliseconds (tests pin it); defaults to Date.now. */
  now?: () => number;
}

/**
 * Appends TensorBoard events to one new event file in a run directory. Events are buffered
 * as whole framed records and appended by `flush()`, which then fsyncs; so a clean exit never
 * leaves half a record, and a crash can at worst tear the last one (TensorBoard skips it).
 */
export class EventWriter {
  readonly path: string;
  private fd: number | null;
  private pending: Buffer[] = [];
  private syncing: Promise<void> = Promise.resolve();
  /** Bytes written since the last fsync, so an idle flush costs nothing. */
  private unsynced = false;
  private readonly now: () => number;

  private constructor(path: string, fd: number, now: () => number) {
    this.path = path;
    this.fd = fd;
    this.now = now;
  }

  /** Create `runDir` if needed and a fresh event file in it, starting with the file version record. */
  static async open(runDir: string, options: EventWriterOptions = {}): Promise<EventWriter> {
    const now = options.now ?? Date.now;
    await mkdir(runDir, { recursive: true });
    const { path, fd } = createUniqueFile(runDir, now());
    const writer = new EventWriter(path, fd, now);
    try {
      writer.append({ wallTime: writer.seconds(), step: 0, fileVersion: FILE_VERSION });
      if (options.startStep !== undefined) writer.sessionStart(options.startStep);
      await writer.flush();
      await fsyncDir(runDir);
    } catch (error) {
      writer.closeFd();
      throw error;
    }
    return writer;
  }

  /**
   * Mark the start of a session whose first logged event will be at `step` (after resuming
   * from the checkpoint at global step N, that is N + 1 when steps count finished updates).
   * TensorBoard discards every event at a step ≥ `step` read before this one: the points a
   * crash left behind past the checkpoint. (Its fast Rust loader ignores SessionLog but drops
   * the same points when a tag's step goes back, so both show one clean curve.)
   */
  sessionStart(step: number, wallTime?: number): void {
    checkStep(step);
    this.append({ wallTime: wallTime ?? this.seconds(), step, sessionLog: { status: "START" } });
  }

  scalar(tag: string, value: number, step: number, wallTime?: number): void {
    this.scalars({ [tag]: value }, step, wallTime);
  }

  /** Several scalars at one step, in one event. */
  scalars(values: Readonly<Record<string, number>>, step: number, wallTime?: number): void {
    checkStep(step);
    const value: SummaryValue[] = Object.entries(values).map(([tag, simpleValue]) => {
      if (tag === "") throw new TypeError("scalar tag must not be empty");
      if (typeof simpleValue !== "number") throw new TypeError(`scalar ${tag} must be a number`);
      return { tag, simpleValue };
    });
    if (value.length === 0) return;
    this.append({ wallTime: wallTime ?? this.seconds(), step, summary: { value } });
  }

  /** Append everything buffered, then fsync. The trainer calls this at every log interval. */
  async flush(): Promise<void> {
    const fd = this.writePending();
    if (fd === null || !this.unsynced) return;
    this.unsynced = false;
    // Chained so close() never closes the descriptor under an fsync in flight. A closeSync()
    // from an exit path may still do so; it has synced everything itself by then.
    const sync = this.syncing.then(async () => {
      if (this.fd !== fd) return;
      try {
        await fsyncAsync(fd);
      } catch (error) {
        if (this.fd === fd) throw error;
      }
    });
    this.syncing = sync.catch(() => undefined);
    await sync;
  }

  /** Synchronous flush, for exit paths where the event loop may not turn again. */
  flushSync(): void {
    const fd = this.writePending();
    if (fd === null || !this.unsynced) return;
    this.unsynced = false;
    fsyncSync(fd);
  }

  async close(): Promise<void> {
    if (this.fd === null) return;
    await this.flush();
    await this.syncing;
    this.closeFd();
  }

  /** Synchronous close (flushes first); safe to call more than once. */
  closeSync(): void {
    if (this.fd === null) return;
    this.flushSync();
    this.closeFd();
  }

  get closed(): boolean {
    return this.fd === null;
  }

  private append(event: TbEventInput): void {
    if (this.fd === null) throw new Error(`event file ${this.path} is closed`);
    this.pending.push(encodeRecord(encodeEvent(event)));
  }

  /** Write buffered records in one append; returns the descriptor, or null once closed. */
  private writePending(): number | null {
    const fd = this.fd;
    if (fd === null) return null;
    if (this.pending.length > 0) {
      const bytes = Buffer.concat(this.pending);
      this.pending = [];
      let offset = 0;
      while (offset < bytes.byteLength) offset += writeSync(fd, bytes, offset, bytes.byteLength - offset);
      this.unsynced = true;
    }
    return fd;
  }

  private closeFd(): void {
    const fd = this.fd;
    this.fd = null;
    if (fd !== null) closeSync(fd);
  }

  private seconds(): number {
    return this.now() / 1000;
  }
}

function checkStep(step: number): void {
  if (!Number.isSafeInteger(step) || step < 0)
    throw new RangeError(`step must be a whole number ≥ 0, got ${step}`);
}

/**
 * Open a new event file exclusively; the counter moves on if a same-second name is taken.
 * TensorBoard reads a run's files in name order, so a new session's file must sort after every
 * earlier one: when an existing name would sort after ours (a session started in the same second
 * by a process whose pid sorts higher as text), our time field moves past it.
 */
function createUniqueFile(runDir: string, nowMs: number): { path: string; fd: number } {
  const host = hostname();
  const existing = readdirSync(runDir).filter((name) => name.startsWith("events.out.tfevents."));
  const last = existing.sort().at(-1);
  let seconds = Math.floor(nowMs / 1000);
  for (;;) {
    const name = eventFileName(seconds, host, process.pid, fileCounter++);
    if (last !== undefined && name <= last) {
      seconds = Math.max(seconds + 1, Number(last.split(".")[3]) + 1 || seconds + 1);
      continue;
    }
    const path = join(runDir, name);
    try {
      return { path, fd: openSync(path, "ax") };
    } catch (error) {
      if (!(isNodeError(error) && error.code === "EEXIST")) throw error;
    }
  }
}
