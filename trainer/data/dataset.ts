/**
 * A MiniMind-format JSONL file opened for training: records are read one at a time by byte offset
 * (through the cached index), so the file is never loaded whole.
 */
import { closeSync, openSync, readSync } from "node:fs";
import { UserError } from "../../lib/cli/errors.ts";
import type { LineIndex } from "./jsonl-index.ts";
import { indexJsonl, reportLines } from "./jsonl-index.ts";
import type { DataFormat, RecordOf } from "./records.ts";
import { parseRecord } from "./records.ts";

/** Bump when validation rules change, so cached indexes built under the old rules are rebuilt. */
const RULES_VERSION = 1;

export interface OpenDatasetOptions {
  /** Leave out lines that fail validation (reported with a count) instead of failing. */
  skipBadLines?: boolean;
  /** Receives warnings (skipped lines, R1 records without tags, an unwritable cache). Default: stderr. */
  onWarning?: (message: string) => void;
  /** Index cache file; default `<path>.idx`; null: keep it in memory only. */
  cachePath?: string | null;
}

export interface Split {
  /** Record indices to train on: every record but the last `evalCount`. */
  train: Uint32Array;
  /** The last `evalCount` records, held out for evaluation. */
  eval: Uint32Array;
}

export class JsonlDataset<F extends DataFormat> {
  readonly path: string;
  readonly format: F;
  readonly #index: LineIndex;
  #fd: number | null = null;
  #buffer = Buffer.alloc(64 * 1024);

  constructor(path: string, format: F, index: LineIndex) {
    this.path = path;
    this.format = format;
    this.#index = index;
  }

  /** Number of records (blank and skipped lines excluded). */
  get length(): number {
    return this.#index.count;
  }

  /** "cache" when the index came from `<file>.idx` without rescanning the file. */
  get indexSource(): "cache" | "scan" {
    return this.#index.source;
  }

  /** How many lines were skipped as bad (with skipBadLines). */
  get skippedLines(): number {
    return this.#index.bad.count;
  }

  /** 1-based physical line number of record i. */
  lineNumber(i: number): number {
    this.#check(i);
    return this.#index.lines[i];
  }

  /** The raw text of record i, by positional read. */
  readLine(i: number): string {
    this.#check(i);
    const length = this.#index.lengths[i];
    if (this.#buffer.length < length) this.#buffer = Buffer.alloc(Math.max(length, this.#buffer.length * 2));
    if (this.#fd === null) this.#fd = openSync(this.path, "r");
    let done = 0;
    while (done < length) {
      const n = readSync(this.#fd, this.#buffer, done, length - done, this.#index.offsets[i] + done);
      if (n === 0) throw new UserError(`${this.path}: the file got shorter since it was indexed`);
      done += n;
    }
    return this.#buffer.toString("utf8", 0, length);
  }

  /** Record i, parsed and validated. */
  readRecord(i: number): RecordOf<F> {
    const verdict = parseRecord(this.format, this.readLine(i));
    if (!verdict.ok) {
      throw new UserError(
        `${this.path}:${this.lineNumber(i)}: ${verdict.problem} (did the file change after it was indexed?)`,
      );
    }
    return verdict.record;
  }

  /** Hold out the last `evalCount` records (deterministic: the file's own order). */
  split(evalCount: number): Split {
    if (!Number.isInteger(evalCount) || evalCount < 0) {
      throw new UserError(`eval count must be a whole number ≥ 0, got ${evalCount}`);
    }
    if (evalCount >= this.length) {
      throw new UserError(
        `${this.path}: cannot hold out ${evalCount} records for evaluation, it has only ${this.length}`,
      );
    }
    const cut = this.length - evalCount;
    const all = new Uint32Array(this.length);
    for (let i = 0; i < all.length; i++) all[i] = i;
    return { train: all.subarray(0, cut), eval: all.subarray(cut) };
  }

  close(): void {
    if (this.#fd !== null) closeSync(this.#fd);
    this.#fd = null;
  }

  #check(i: number): void {
    if (!Number.isInteger(i) || i < 0 || i >= this.#index.count) {
      throw new RangeError(`record ${i} is out of range (0..${this.#index.count - 1}) in ${this.path}`);
    }
  }
}

/**
 * Open and index (or reuse the cached index of) a JSONL file of `format`. Every line is validated
 * once, when the index is built. Throws UserError naming `file:line` for bad input.
 */
export async function openDataset<F extends DataFormat>(
  path: string,
  format: F,
  options: OpenDatasetOptions = {},
): Promise<JsonlDataset<F>> {
  const warn = options.onWarning ?? ((message: string) => process.stderr.write(`warning: ${message}\n`));
  const index = await indexJsonl(path, path, {
    validationKey: `${format}/rules-v${RULES_VERSION}`,
    check: (line) => {
      const verdict = parseRecord(format, line);
      if (!verdict.ok) return { problem: verdict.problem };
      return verdict.note ? { note: verdict.note } : null;
    },
    skipBadLines: options.skipBadLines,
    cachePath: options.cachePath,
    onWarning: warn,
  });
  // R1 records without the tags still train (MiniMind's data always has them), just without the
  // extra weight on tag tokens; say how many so a wrong file is noticed.
  reportLines(path, index.notes, `of ${index.count} records have no tag weight to learn from`, warn);
  return new JsonlDataset(path, format, index);
}
