import { createWriteStream, type WriteStream } from "node:fs";
import { dirname } from "node:path";
import { describeFsError } from "../cli/errors.ts";
import { MakeDirError, makeDir } from "../fs/make-dir.ts";

/**
 * An append-only log file (`out/<stage>/logs/attempt-N.log`). Append-only logs are the one kind
 * of file exempt from atomic replacement: a crash leaves a prefix of what was written, never a mix.
 *
 * A write failure (disk full) must not stop the child from being drained: the log then records
 * nothing more, and `error` says why, once.
 */
export class AppendLog {
  readonly path: string;
  readonly #stream: WriteStream;
  #error: string | null = null;

  private constructor(path: string, stream: WriteStream) {
    this.path = path;
    this.#stream = stream;
    stream.on("error", (error) => {
      this.#error ??= `cannot write log ${path}: ${describeFsError(error)}`;
    });
  }

  /** Create the directory and open the file for appending; throws one clear line on failure. */
  static async open(path: string): Promise<AppendLog> {
    try {
      await makeDir(dirname(path));
      const stream = createWriteStream(path, { flags: "a", highWaterMark: 256 * 1024 });
      await new Promise<void>((resolve, reject) => {
        stream.once("open", () => resolve());
        stream.once("error", reject);
      });
      return new AppendLog(path, stream);
    } catch (error) {
      throw new Error(
        `cannot open log ${path}: ${error instanceof MakeDirError ? error.message : describeFsError(error)}`,
      );
    }
  }

  get error(): string | null {
    return this.#error;
  }

  /**
   * Append text. Returns a promise only when the file is behind (backpressure): the caller then
   * waits before reading more from the child. It settles on drain or on a write error, never hangs.
   */
  write(text: string): Promise<void> | undefined {
    if (this.#error !== null || this.#stream.destroyed) return undefined;
    if (this.#stream.write(text)) return undefined;
    return new Promise((resolve) => {
      const done = (): void => {
        this.#stream.off("drain", done);
        this.#stream.off("close", done);
        resolve();
      };
      this.#stream.on("drain", done);
      this.#stream.on("close", done);
    });
  }

  async close(): Promise<void> {
    if (this.#stream.destroyed) return;
    await new Promise<void>((resolve) => {
      this.#stream.once("close", () => resolve());
      this.#stream.end();
    });
  }
}
