/*
 * Reads one run directory's event files the way TensorBoard's DirectoryWatcher and EventFileLoader
 * do, incrementally: files in name order, one at a time, each from the byte after its last whole
 * record; it moves to the next file only once the current one yields nothing more, and never goes
 * back. A record that fails its CRC, or a payload that is no Event, stops that file there for good
 * (TensorBoard retries the same offset forever), and is reported once. A record cut short at the
 * end is a write in progress: reading resumes there when the file grows, and it is reported only
 * if it is still cut short once the file is left behind or has not grown for `tornGraceMs`.
 */
import { open, readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { isNodeError } from "../cli/errors.ts";
import { scanEvent } from "./event-scan.ts";
import { RunScalars, type ScalarChangeListener } from "./scalar-accumulator.ts";
import { decodeRecords } from "./tfrecord.ts";

const FIRST_CHUNK_BYTES = 8 << 20;

export type FileProblemKind = "truncated" | "length-crc" | "data-crc" | "decode";

export interface FileProblem {
  file: string;
  offset: number;
  kind: FileProblemKind;
  /** One line: which file, where, what is wrong and what follows. */
  message: string;
}

export interface EventFileState {
  name: string;
  /** Bytes read and accepted (the start of the next record to read). */
  offset: number;
  size: number;
  records: number;
  problem: FileProblem | null;
}

export interface ReloadOutcome {
  /** The run directory no longer exists (TensorBoard then drops the run). */
  gone: boolean;
  /** Events read in this pass. */
  events: number;
  /** Problems found in this pass, each reported once over the loader's life. */
  problems: FileProblem[];
}

/** TensorBoard's IsSummaryEventsFile: the name holds "tfevents" (profiler placeholders excluded). */
export function isEventFileName(name: string): boolean {
  return name.includes("tfevents") && !name.endsWith(".profile-empty");
}

export interface RunLoaderOptions {
  listener?: ScalarChangeListener | null;
  /** How long a record cut short at the end of the file being written may stay so before it is reported. */
  tornGraceMs?: number;
  now?: () => number;
}

export class RunLoader {
  readonly scalars: RunScalars;
  /** Every file read so far, in reading order; the last is the current one. */
  readonly files: EventFileState[] = [];
  private readonly tornGraceMs: number;
  private readonly now: () => number;
  private tornSince: { file: string; offset: number; at: number } | null = null;

  constructor(
    readonly dir: string,
    options: RunLoaderOptions = {},
  ) {
    this.scalars = new RunScalars(options.listener ?? null);
    this.tornGraceMs = options.tornGraceMs ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  /** Read whatever was appended since the last call. */
  async reload(): Promise<ReloadOutcome> {
    const outcome: ReloadOutcome = { gone: false, events: 0, problems: [] };
    for (;;) {
      let current = this.files[this.files.length - 1];
      if (!current) {
        const first = await this.nextFileName(null);
        if (first === "gone") return { ...outcome, gone: true };
        if (first === null) return outcome;
        current = this.startFile(first);
      }
      await this.loadFile(current, outcome);
      const next = await this.nextFileName(current.name);
      if (next === "gone") return { ...outcome, gone: true };
      if (next === null) break;
      // Whatever was written to this file while we looked for the next one is still this file's.
      await this.loadFile(current, outcome);
      this.leaveFile(current, outcome);
      this.startFile(next);
    }
    this.checkTornTail(outcome);
    return outcome;
  }

  private startFile(name: string): EventFileState {
    const state: EventFileState = { name, offset: 0, size: 0, records: 0, problem: null };
    this.files.push(state);
    this.scalars.beginFile();
    return state;
  }

  /** A record cut short in a file we move past stays unread for good: that is a problem to report. */
  private leaveFile(file: EventFileState, outcome: ReloadOutcome): void {
    if (file.offset < file.size && !file.problem) {
      this.report(file, file.offset, "truncated", "record cut short", outcome);
    }
    this.tornSince = null;
  }

  private checkTornTail(outcome: ReloadOutcome): void {
    const file = this.files[this.files.length - 1];
    if (!file || file.problem || file.offset >= file.size) {
      this.tornSince = null;
      return;
    }
    const since = this.tornSince;
    if (!since || since.file !== file.name || since.offset !== file.offset) {
      this.tornSince = { file: file.name, offset: file.offset, at: this.now() };
      return;
    }
    if (this.now() - since.at >= this.tornGraceMs) {
      this.report(file, file.offset, "truncated", "record cut short and not completed", outcome);
    }
  }

  private async loadFile(file: EventFileState, outcome: ReloadOutcome): Promise<void> {
    if (file.problem && file.problem.kind !== "truncated") return;
    const path = join(this.dir, file.name);
    let handle: Awaited<ReturnType<typeof open>>;
    try {
      handle = await open(path, "r");
    } catch (error) {
      if (isNodeError(error) && error.code === "ENOENT") return;
      throw error;
    }
    try {
      let chunkBytes = FIRST_CHUNK_BYTES;
      for (;;) {
        const { size } = await handle.stat();
        file.size = Math.max(file.size, size);
        if (size <= file.offset) return;
        const want = Math.min(size - file.offset, chunkBytes);
        const bytes = Buffer.allocUnsafe(want);
        const { bytesRead } = await handle.read(bytes, 0, want, file.offset);
        const chunk = bytes.subarray(0, bytesRead);
        const atEnd = file.offset + bytesRead >= size;
        const { records, offsets, corruption } = decodeRecords(chunk);
        for (const [index, record] of records.entries()) {
          let event: ReturnType<typeof scanEvent>;
          try {
            event = scanEvent(record);
          } catch (error) {
            const reason = error instanceof Error ? error.message : String(error);
            file.offset += offsets[index] ?? 0;
            this.report(file, file.offset, "decode", `payload is not an Event (${reason})`, outcome);
            return;
          }
          this.scalars.process(event);
          file.records++;
          outcome.events++;
        }
        const consumed = corruption ? corruption.offset : chunk.byteLength;
        file.offset += consumed;
        // A tail reported as cut short that the writer completed after all is no longer a problem.
        if (file.problem && file.offset > file.problem.offset) file.problem = null;
        if (corruption && corruption.kind !== "truncated") {
          const what =
            corruption.kind === "length-crc" ? "length checksum mismatch" : "data checksum mismatch";
          this.report(file, file.offset, corruption.kind, what, outcome);
          return;
        }
        if (corruption && atEnd) return; // a write in progress, or a torn tail
        if (corruption && consumed === 0) chunkBytes *= 2; // one record larger than the chunk
        if (!corruption && atEnd) continue; // the file may have grown meanwhile
      }
    } finally {
      await handle.close();
    }
  }

  private report(
    file: EventFileState,
    offset: number,
    kind: FileProblemKind,
    what: string,
    outcome: ReloadOutcome,
  ): void {
    if (file.problem) return;
    const path = join(this.dir, file.name);
    const problem: FileProblem = {
      file: path,
      offset,
      kind,
      message: `${path}: record at byte ${offset}: ${what}; the rest of this file is not read (as in TensorBoard)`,
    };
    file.problem = problem;
    outcome.problems.push(problem);
  }

  /** The first event file after `after` in name order, null if none, "gone" if the directory is. */
  private async nextFileName(after: string | null): Promise<string | null | "gone"> {
    let names: string[];
    try {
      const entries = await readdir(this.dir, { withFileTypes: true });
      names = entries
        .filter((entry) => (entry.isFile() || entry.isSymbolicLink()) && isEventFileName(entry.name))
        .map((entry) => entry.name);
    } catch (error) {
      if (isNodeError(error) && (error.code === "ENOENT" || error.code === "ENOTDIR")) {
        return (await stillThere(this.dir)) ? null : "gone";
      }
      throw error;
    }
    let next: string | null = null;
    for (const name of names) {
      if ((after === null || name > after) && (next === null || name < next)) next = name;
    }
    return next;
  }
}

async function stillThere(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}
