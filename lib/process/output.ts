import type { Readable, Writable } from "node:stream";
import { LineSplitter } from "./lines.ts";
import type { AppendLog } from "./log-file.ts";

/**
 * Where each line of one child stream goes: echoed with a `[stage] ` prefix, appended to the
 * log, handed to a callback, and (stderr) kept in a short tail for the failure report.
 */
export interface LineRoute {
  echo: Echo | null;
  log: AppendLog;
  /** Put before each line in the log: "" for stdout, "[stderr] " for stderr. */
  logPrefix: string;
  onLine?: ((line: string) => void) | undefined;
  /** Receives the last `tailSize` lines, oldest first. */
  tail?: string[] | undefined;
  tailSize?: number;
  /** Reports a failure of `onLine` (once per stream; the stream keeps draining). */
  warn: (message: string) => void;
  /** Lines for programs, not people (a trainer's HEARTBEAT:): handed to `onLine`, neither echoed nor logged. */
  hide?: ((line: string) => boolean) | undefined;
}

/**
 * Read a child stream to its end, line by line. Memory stays bounded: at most one capped line is
 * pending, and the next chunk is read only once the log file has taken the previous one (so a
 * slow disk slows the child down, but the pipe never stops being read for good). Resolves when
 * the stream ends or is destroyed; never rejects.
 */
export async function drainLines(source: Readable, route: LineRoute, maxLineLength: number): Promise<void> {
  const splitter = new LineSplitter(maxLineLength);
  let handlerFailed = false;
  const deliver = async (all: string[]): Promise<void> => {
    if (all.length === 0) return;
    const hide = route.hide;
    const lines = hide === undefined ? all : all.filter((line) => !hide(line));
    if (lines.length > 0) route.echo?.lines(lines);
    if (route.onLine !== undefined) {
      for (const line of all) {
        try {
          route.onLine(line);
        } catch (error) {
          if (!handlerFailed)
            route.warn(`line handler failed: ${error instanceof Error ? error.message : error}`);
          handlerFailed = true;
        }
      }
    }
    if (route.tail !== undefined) keepTail(route.tail, lines, route.tailSize ?? 20);
    if (lines.length > 0) await route.log.write(joinLines(lines, route.logPrefix));
  };
  try {
    for await (const chunk of source) await deliver(splitter.push(chunk as Uint8Array | string));
  } catch {
    // Destroyed while reading (a pipe still held open by a process outside the group): keep what came.
  }
  await deliver(splitter.end());
}

/** Bytes waiting for a slow terminal beyond which echo lines are skipped rather than queued. */
const ECHO_BACKLOG_LIMIT = 1024 * 1024;

/**
 * Echo to the parent's terminal. A terminal that stops reading (scroll lock, a paused pager) must
 * not stall the child nor fill the parent's memory: past a backlog, lines are skipped here (the log
 * has them all) and the count is shown once the terminal catches up.
 */
export class Echo {
  readonly #stream: Writable;
  readonly #prefix: string;
  #skipped = 0;

  constructor(stream: Writable, prefix: string) {
    this.#stream = stream;
    this.#prefix = prefix;
  }

  lines(lines: string[]): void {
    if (this.#stream.destroyed || this.#stream.writableEnded) return;
    if (this.#stream.writableLength > ECHO_BACKLOG_LIMIT) {
      this.#skipped += lines.length;
      return;
    }
    let text = "";
    if (this.#skipped > 0) {
      text = `${this.#prefix}(${this.#skipped} lines not shown: the terminal was not keeping up; see the log)\n`;
      this.#skipped = 0;
    }
    this.#stream.write(text + joinLines(lines, this.#prefix));
  }
}

function joinLines(lines: string[], prefix: string): string {
  let text = "";
  for (const line of lines) text += `${prefix}${line}\n`;
  return text;
}

function keepTail(tail: string[], lines: string[], size: number): void {
  for (const line of lines.length > size ? lines.slice(-size) : lines) {
    tail.push(line);
    if (tail.length > size) tail.shift();
  }
}
