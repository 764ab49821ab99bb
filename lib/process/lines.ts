import { StringDecoder } from "node:string_decoder";

/** 64 KiB: long enough for any log line a trainer prints, short enough that a flood stays cheap. */
export const DEFAULT_MAX_LINE_LENGTH = 64 * 1024;

/**
 * Splits a byte stream into text lines without ever holding more than one capped line.
 *
 * A "line" longer than `maxLineLength` characters (a child printing megabytes without a newline)
 * is cut into pieces of exactly `maxLineLength` characters, each delivered as a line of its own,
 * so memory stays bounded whatever the child writes. A trailing `\r` (CRLF) is dropped; a bare
 * `\r` (progress bars) is kept as text. Bytes are decoded as UTF-8 across chunk boundaries.
 */
export class LineSplitter {
  readonly maxLineLength: number;
  readonly #decoder = new StringDecoder("utf8");
  #pending: string[] = [];
  #pendingLength = 0;

  constructor(maxLineLength: number = DEFAULT_MAX_LINE_LENGTH) {
    if (!Number.isInteger(maxLineLength) || maxLineLength < 2) {
      throw new RangeError(`maxLineLength must be an integer >= 2, got ${maxLineLength}`);
    }
    this.maxLineLength = maxLineLength;
  }

  /** Feed one chunk; returns the lines it completed (possibly none). */
  push(chunk: Uint8Array | string): string[] {
    const text = typeof chunk === "string" ? chunk : this.#decoder.write(chunk as Buffer);
    const lines: string[] = [];
    let start = 0;
    for (let newline = text.indexOf("\n"); newline !== -1; newline = text.indexOf("\n", start)) {
      this.#append(text.slice(start, newline), lines);
      lines.push(withoutCarriageReturn(this.#takePending()));
      start = newline + 1;
    }
    this.#append(text.slice(start), lines);
    return lines;
  }

  /** The stream ended: returns the unterminated last line, if any. */
  end(): string[] {
    const lines: string[] = [];
    this.#append(this.#decoder.end(), lines);
    if (this.#pendingLength > 0) lines.push(withoutCarriageReturn(this.#takePending()));
    return lines;
  }

  #append(text: string, lines: string[]): void {
    let rest = text;
    while (this.#pendingLength + rest.length > this.maxLineLength) {
      let room = this.maxLineLength - this.#pendingLength;
      // Never cut a surrogate pair in two: the halves would each become U+FFFD.
      if (room > 1 && isHighSurrogate(rest.charCodeAt(room - 1))) room -= 1;
      this.#pending.push(rest.slice(0, room));
      this.#pendingLength += room;
      lines.push(this.#takePending());
      rest = rest.slice(room);
    }
    if (rest.length > 0) {
      this.#pending.push(rest);
      this.#pendingLength += rest.length;
    }
  }

  #takePending(): string {
    const line = this.#pending.length === 1 ? (this.#pending[0] as string) : this.#pending.join("");
    this.#pending = [];
    this.#pendingLength = 0;
    return line;
  }
}

function withoutCarriageReturn(line: string): string {
  return line.endsWith("\r") ? line.slice(0, -1) : line;
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}
