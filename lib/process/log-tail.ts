/**
 * Follow a log file as another process appends to it — a Slurm job's output, a detached child's
 * log — line by line from a byte offset, so a follower that restarts picks up exactly where it left
 * off. Polls (works on network file systems, where change events are unreliable); a file that
 * shrinks was replaced, and is read again from its start.
 */
import { open } from "node:fs/promises";
import { isNodeError } from "../cli/errors.ts";
import { DEFAULT_MAX_LINE_LENGTH } from "./lines.ts";

export interface LogTailOptions {
  /** Start reading here (bytes; default 0). */
  offset?: number;
  /** How often to look for more (default 250 ms). */
  intervalMs?: number;
  /** Longer lines are delivered in pieces of this many bytes (default 64 Ki). */
  maxLineLength?: number;
  /** Each complete line, in order, with the offset just after it. */
  onLine(line: string, offset: number): void;
}

export interface LogTail {
  /** Bytes consumed so far (the offset after the last complete line delivered). */
  readonly offset: number;
  /** Read whatever is there now, deliver it, and stop following (idempotent). */
  stop(): Promise<void>;
}

const CHUNK = 256 * 1024;

export function tailLog(path: string, options: LogTailOptions): LogTail {
  const maxLine = options.maxLineLength ?? DEFAULT_MAX_LINE_LENGTH;
  let offset = options.offset ?? 0;
  let read = offset;
  /** Bytes after the last newline, not delivered yet. */
  let pending = Buffer.alloc(0);
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();

  /** Deliver every complete line of `pending` (an over-long one in pieces); what is left waits for more. */
  const deliver = (): void => {
    for (;;) {
      const newline = pending.indexOf(10);
      const end = newline === -1 ? pending.byteLength : newline;
      if (end > maxLine) {
        offset += maxLine;
        options.onLine(pending.subarray(0, maxLine).toString("utf8"), offset);
        pending = pending.subarray(maxLine);
        continue;
      }
      if (newline === -1) return;
      offset += newline + 1;
      options.onLine(pending.subarray(0, newline).toString("utf8").replace(/\r$/, ""), offset);
      pending = pending.subarray(newline + 1);
    }
  };

  const poll = async (): Promise<void> => {
    let handle: Awaited<ReturnType<typeof open>>;
    try {
      handle = await open(path, "r");
    } catch (error) {
      if (isNodeError(error) && error.code === "ENOENT") return; // not written yet
      throw error;
    }
    try {
      const { size } = await handle.stat();
      if (size < read) {
        // Replaced by a shorter file: start it over.
        read = 0;
        offset = 0;
        pending = Buffer.alloc(0);
      }
      const buffer = Buffer.allocUnsafe(CHUNK);
      while (read < size) {
        const { bytesRead } = await handle.read(buffer, 0, Math.min(CHUNK, size - read), read);
        if (bytesRead === 0) break;
        read += bytesRead;
        // Only complete lines move the offset: a restart re-reads a half-written last line whole.
        pending = Buffer.concat([pending, buffer.subarray(0, bytesRead)]);
        deliver();
      }
    } finally {
      await handle.close();
    }
  };

  const schedule = (): void => {
    if (stopped) return;
    timer = setTimeout(() => {
      running = poll()
        .catch(() => {})
        .finally(schedule);
    }, options.intervalMs ?? 250);
  };
  running = poll()
    .catch(() => {})
    .finally(schedule);

  return {
    get offset() {
      return offset;
    },
    async stop() {
      if (stopped) return running;
      stopped = true;
      clearTimeout(timer);
      await running;
      await poll().catch(() => {});
    },
  };
}
