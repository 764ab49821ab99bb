/**
 * A byte-offset index of a JSONL file's records, so a file of any size is read one line at a
 * time. Built once by streaming through the file (validating every line on the way) and cached
 * beside it as `<file>.idx`; the cache is used only while the file's size, mtime and a hash of its
 * first and last 64 KiB are unchanged, and only for the same validation rules.
 */
import { createHash } from "node:crypto";
import type { FileHandle } from "node:fs/promises";
import { open, readFile, stat } from "node:fs/promises";
import { endianness } from "node:os";
import { describeFsError, isNodeError, UserError } from "../../lib/cli/errors.ts";
import { writeFileAtomic } from "../../lib/fs/atomic.ts";

/** A line's problem (fatal unless bad lines are skipped) or note (soft: counted and reported). */
export interface LineCheck {
  problem?: string;
  note?: string;
}

export interface IndexOptions {
  /** Names the validation rules; a cache built under another key is rebuilt. */
  validationKey: string;
  /** Validate one non-blank line; return null when it is fine. */
  check(line: string): LineCheck | null;
  /** Leave bad lines out (and report them through onWarning) instead of failing on the first. */
  skipBadLines?: boolean;
  /** Where to cache the index; default `<path>.idx`; null: never cache. */
  cachePath?: string | null;
  onWarning?: (message: string) => void;
}

export interface LineReport {
  count: number;
  /** The first few: 1-based physical line and what was found. */
  first: { line: number; text: string }[];
}

export interface LineIndex {
  /** Number of records (non-blank, valid lines). */
  count: number;
  /** Byte offset of record i (float64: exact to 2^53 bytes). */
  offsets: Float64Array;
  /** Byte length of record i, without its newline. */
  lengths: Uint32Array;
  /** 1-based physical line number of record i, for messages. */
  lines: Uint32Array;
  bad: LineReport;
  notes: LineReport;
  /** "cache": read from the cache file, no scan; "scan": built now. */
  source: "cache" | "scan";
}

const MAGIC = Buffer.from("BATONIX1", "latin1");
const FORMAT_VERSION = 1;
const EDGE_BYTES = 64 * 1024;
const CHUNK_BYTES = 4 * 1024 * 1024;
const REPORT_FIRST = 5;

interface Fingerprint {
  size: number;
  mtimeMs: number;
  edges: string;
}

interface CacheMeta extends Fingerprint {
  version: number;
  endian: string;
  validationKey: string;
  count: number;
  bad: LineReport;
  notes: LineReport;
}

/** Cache files that could not be written, so each is reported once per process. */
const unwritableCaches = new Set<string>();

function defaultWarning(message: string): void {
  process.stderr.write(`warning: ${message}\n`);
}

async function fingerprint(handle: FileHandle, size: number, mtimeMs: number): Promise<Fingerprint> {
  const hash = createHash("sha256");
  const head = Buffer.alloc(Math.min(EDGE_BYTES, size));
  await handle.read(head, 0, head.length, 0);
  hash.update(head);
  const tail = Buffer.alloc(Math.min(EDGE_BYTES, size));
  await handle.read(tail, 0, tail.length, size - tail.length);
  hash.update(tail);
  return { size, mtimeMs, edges: hash.digest("hex") };
}

function sameFingerprint(a: Fingerprint, b: Fingerprint): boolean {
  return a.size === b.size && a.mtimeMs === b.mtimeMs && a.edges === b.edges;
}

/** Typed arrays that grow by doubling while the scan appends records. */
class RecordTable {
  count = 0;
  offsets = new Float64Array(1024);
  lengths = new Uint32Array(1024);
  lines = new Uint32Array(1024);

  push(offset: number, length: number, line: number): void {
    if (this.count === this.offsets.length) {
      const grow = <T extends Float64Array | Uint32Array>(old: T, next: T): T => {
        next.set(old);
        return next;
      };
      const capacity = this.count * 2;
      this.offsets = grow(this.offsets, new Float64Array(capacity));
      this.lengths = grow(this.lengths, new Uint32Array(capacity));
      this.lines = grow(this.lines, new Uint32Array(capacity));
    }
    this.offsets[this.count] = offset;
    this.lengths[this.count] = length;
    this.lines[this.count] = line;
    this.count++;
  }
}

function note(report: LineReport, line: number, text: string): void {
  report.count++;
  if (report.first.length < REPORT_FIRST) report.first.push({ line, text });
}

function isBlank(bytes: Uint8Array): boolean {
  for (const b of bytes) if (b !== 0x20 && b !== 0x09 && b !== 0x0d) return false;
  return true;
}

/** Stream through the file once, splitting on "\n" and checking every line. */
async function scan(handle: FileHandle, name: string, options: IndexOptions) {
  const table = new RecordTable();
  const bad: LineReport = { count: 0, first: [] };
  const notes: LineReport = { count: 0, first: [] };
  let lineNumber = 0;

  const onLine = (start: number, bytes: Uint8Array) => {
    lineNumber++;
    if (lineNumber === 1 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) {
      start += 3; // a UTF-8 byte-order mark, which JSON.parse would reject
      bytes = bytes.subarray(3);
    }
    if (isBlank(bytes)) return;
    const verdict = options.check(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString("utf8"));
    if (verdict?.problem !== undefined) {
      if (!options.skipBadLines) throw new UserError(`${name}:${lineNumber}: ${verdict.problem}`);
      note(bad, lineNumber, verdict.problem);
      return;
    }
    if (verdict?.note !== undefined) note(notes, lineNumber, verdict.note);
    table.push(start, bytes.length, lineNumber);
  };

  const chunk = Buffer.allocUnsafe(CHUNK_BYTES);
  let pending: Buffer[] = [];
  let chunkStart = 0;
  let lineStart = 0;
  for (;;) {
    const { bytesRead } = await handle.read(chunk, 0, CHUNK_BYTES, chunkStart);
    if (bytesRead === 0) break;
    const view = chunk.subarray(0, bytesRead);
    let pos = 0;
    for (let nl = view.indexOf(10, pos); nl !== -1; nl = view.indexOf(10, pos)) {
      const piece = view.subarray(pos, nl);
      onLine(lineStart, pending.length > 0 ? Buffer.concat([...pending, piece]) : piece);
      pending = [];
      pos = nl + 1;
      lineStart = chunkStart + pos;
    }
    if (pos < bytesRead) pending.push(Buffer.from(view.subarray(pos)));
    chunkStart += bytesRead;
  }
  if (pending.length > 0) onLine(lineStart, Buffer.concat(pending));
  return { table, bad, notes };
}

function encodeCache(meta: CacheMeta, table: RecordTable): Uint8Array[] {
  const json = Buffer.from(JSON.stringify(meta), "utf8");
  const head = Buffer.alloc(Math.ceil((MAGIC.length + 4 + json.length) / 8) * 8);
  MAGIC.copy(head, 0);
  head.writeUInt32LE(json.length, MAGIC.length);
  json.copy(head, MAGIC.length + 4);
  const bytesOf = (a: Float64Array | Uint32Array) =>
    new Uint8Array(a.buffer, 0, table.count * a.BYTES_PER_ELEMENT);
  return [head, bytesOf(table.offsets), bytesOf(table.lengths), bytesOf(table.lines)];
}

/** The cached index if it is intact and describes this very file under these rules, else null. */
async function readCache(cachePath: string, expect: Fingerprint, validationKey: string) {
  let buf: Buffer;
  try {
    buf = await readFile(cachePath);
  } catch {
    return null;
  }
  try {
    if (buf.length < MAGIC.length + 4 || !buf.subarray(0, MAGIC.length).equals(MAGIC)) return null;
    const jsonLength = buf.readUInt32LE(MAGIC.length);
    const meta = JSON.parse(
      buf.toString("utf8", MAGIC.length + 4, MAGIC.length + 4 + jsonLength),
    ) as CacheMeta;
    if (
      meta.version !== FORMAT_VERSION ||
      meta.endian !== endianness() ||
      meta.validationKey !== validationKey
    ) {
      return null;
    }
    if (!sameFingerprint(meta, expect)) return null;
    const start = Math.ceil((MAGIC.length + 4 + jsonLength) / 8) * 8;
    const n = meta.count;
    if (buf.length !== start + n * 16) return null;
    // Copy out: readFile's buffer need not be aligned for a Float64Array view.
    const take = (from: number, bytes: number) =>
      buf.buffer.slice(buf.byteOffset + from, buf.byteOffset + from + bytes);
    const offsets = new Float64Array(take(start, n * 8));
    const lengths = new Uint32Array(take(start + n * 8, n * 4));
    const lines = new Uint32Array(take(start + n * 12, n * 4));
    return { meta, offsets, lengths, lines };
  } catch {
    return null; // a damaged cache is just rebuilt
  }
}

export function reportLines(name: string, report: LineReport, what: string, warn: (m: string) => void): void {
  if (report.count === 0) return;
  const first = report.first.map((f) => `line ${f.line}: ${f.text}`).join("; ");
  const more = report.count > report.first.length ? "; …" : "";
  warn(`${name}: ${report.count} ${what} (${first}${more})`);
}

/**
 * Index `path`, from the cache when it is current. `name` is how the file is named in messages
 * (the path as the user gave it). Throws UserError for a missing, empty or invalid file.
 */
export async function indexJsonl(path: string, name: string, options: IndexOptions): Promise<LineIndex> {
  const warn = options.onWarning ?? defaultWarning;
  let handle: FileHandle;
  try {
    const info = await stat(path);
    if (info.isDirectory()) throw new UserError(`${name}: is a directory, expected a JSONL file`);
    handle = await open(path, "r");
  } catch (error) {
    if (error instanceof UserError) throw error;
    if (isNodeError(error) && error.code === "ENOENT") throw new UserError(`${name}: no such file`);
    throw new UserError(`${name}: cannot read (${describeFsError(error)})`);
  }
  try {
    const info = await handle.stat();
    if (info.size === 0) throw new UserError(`${name}: no records (file is empty)`);
    const print = await fingerprint(handle, info.size, info.mtimeMs);
    const cachePath = options.cachePath === undefined ? `${path}.idx` : options.cachePath;

    const cached = cachePath ? await readCache(cachePath, print, options.validationKey) : null;
    let result: LineIndex;
    if (cached) {
      const { meta, offsets, lengths, lines } = cached;
      if (meta.bad.count > 0 && !options.skipBadLines) {
        const first = meta.bad.first[0];
        throw new UserError(`${name}:${first.line}: ${first.text}`);
      }
      result = {
        count: meta.count,
        offsets,
        lengths,
        lines,
        bad: meta.bad,
        notes: meta.notes,
        source: "cache",
      };
    } else {
      const { table, bad, notes } = await scan(handle, name, options);
      const after = await handle.stat();
      if (after.size !== info.size || after.mtimeMs !== info.mtimeMs) {
        throw new UserError(
          `${name}: the file changed while it was being indexed; run again once it is complete`,
        );
      }
      if (table.count === 0) {
        const first = bad.first[0];
        const why = first
          ? `all ${bad.count} non-blank lines are invalid; line ${first.line}: ${first.text}`
          : "only blank lines";
        throw new UserError(`${name}: no records (${why})`);
      }
      if (cachePath) {
        const meta: CacheMeta = {
          ...print,
          version: FORMAT_VERSION,
          endian: endianness(),
          validationKey: options.validationKey,
          count: table.count,
          bad,
          notes,
        };
        try {
          await writeFileAtomic(cachePath, encodeCache(meta, table));
        } catch (error) {
          if (!unwritableCaches.has(cachePath)) {
            unwritableCaches.add(cachePath);
            warn(
              `${name}: cannot save its line index to ${cachePath} (${describeFsError(error)}); keeping it in memory`,
            );
          }
        }
      }
      const n = table.count;
      result = {
        count: n,
        offsets: table.offsets.slice(0, n),
        lengths: table.lengths.slice(0, n),
        lines: table.lines.slice(0, n),
        bad,
        notes,
        source: "scan",
      };
    }
    reportLines(name, result.bad, "bad lines skipped", warn);
    return result;
  } finally {
    await handle.close();
  }
}
