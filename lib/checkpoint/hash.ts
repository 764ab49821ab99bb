import { createHash } from "node:crypto";
import { type FileHandle, open } from "node:fs/promises";
import type { FileContent } from "../fs/atomic.ts";

/** Large slices keep syscalls few; each is hashed while the thread pool writes it (or reads the next). */
const SLICE_BYTES = 8 * 1024 * 1024;
/**
 * Start the disk writing back every this many bytes (an fdatasync in the thread pool, not
 * awaited), so the final fsync finds little left and the disk works while we hash.
 */
const FLUSH_EVERY_BYTES = 32 * 1024 * 1024;

export interface HashedFile {
  bytes: number;
  sha256: string;
}

function* slicesOf(content: FileContent): Generator<Uint8Array> {
  const chunks =
    typeof content === "string"
      ? [Buffer.from(content, "utf8")]
      : content instanceof Uint8Array
        ? [content]
        : content;
  for (const chunk of chunks) {
    if (!(chunk instanceof Uint8Array))
      throw new TypeError(`checkpoint file content must be bytes, got ${typeof chunk}`);
    for (let offset = 0; offset < chunk.byteLength; offset += SLICE_BYTES) {
      yield chunk.subarray(offset, Math.min(offset + SLICE_BYTES, chunk.byteLength));
    }
  }
}

async function writeAll(handle: FileHandle, slice: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < slice.byteLength) {
    const { bytesWritten } = await handle.write(slice, offset, slice.byteLength - offset);
    offset += bytesWritten;
  }
}

/**
 * Write `content` to a new file, fsync it, and return its size and SHA-256. Each slice is
 * hashed on this thread while the thread pool writes it, so hashing costs little extra time.
 */
export async function writeFileHashed(path: string, content: FileContent): Promise<HashedFile> {
  const hash = createHash("sha256");
  const handle = await open(path, "wx");
  let bytes = 0;
  let flushedAt = 0;
  // At most one flush in flight: each holds a thread-pool thread, and writes would queue behind them.
  let flushing: Promise<void> | null = null;
  let flushError: unknown = null;
  try {
    for (const slice of slicesOf(content)) {
      const written = writeAll(handle, slice);
      hash.update(slice);
      await written;
      bytes += slice.byteLength;
      if (!flushing && bytes - flushedAt >= FLUSH_EVERY_BYTES) {
        flushedAt = bytes;
        flushing = handle
          .datasync()
          .catch((error: unknown) => {
            flushError ??= error;
          })
          .finally(() => {
            flushing = null;
          });
      }
    }
    await flushing;
    if (flushError) throw flushError;
    await handle.sync();
  } finally {
    await flushing; // never close the file under a flush in flight
    await handle.close();
  }
  return { bytes, sha256: hash.digest("hex") };
}

export interface ReadHashedFile extends HashedFile {
  /** The whole file, when asked to keep it. */
  content: Uint8Array | null;
}

/**
 * Hash a file by reading it once, the next slice being read while the current one is hashed.
 * With `keep`, the bytes land in one fresh buffer (aligned, so safetensors views need no copy).
 */
export async function readFileHashed(path: string, keep: boolean): Promise<ReadHashedFile> {
  const handle = await open(path, "r");
  try {
    const { size } = await handle.stat();
    const hash = createHash("sha256");
    const whole = keep ? new Uint8Array(size) : null;
    const spare = whole
      ? null
      : [new Uint8Array(Math.min(size, SLICE_BYTES)), new Uint8Array(Math.min(size, SLICE_BYTES))];
    const bufferFor = (offset: number, index: number) =>
      whole
        ? whole.subarray(offset, Math.min(offset + SLICE_BYTES, size))
        : (spare as Uint8Array[])[index % 2];

    const readSlice = async (offset: number, index: number): Promise<Uint8Array> => {
      const buffer = bufferFor(offset, index);
      const want = Math.min(SLICE_BYTES, size - offset);
      let done = 0;
      while (done < want) {
        const { bytesRead } = await handle.read(buffer, done, want - done, offset + done);
        if (bytesRead === 0) break; // shrank under us: the size check below reports it
        done += bytesRead;
      }
      return buffer.subarray(0, done);
    };

    let bytes = 0;
    let pending = size > 0 ? readSlice(0, 0) : null;
    for (let index = 0; pending; index++) {
      const slice = await pending;
      const next = bytes + slice.byteLength;
      pending = slice.byteLength === SLICE_BYTES && next < size ? readSlice(next, index + 1) : null;
      hash.update(slice);
      bytes = next;
    }
    return {
      bytes,
      sha256: hash.digest("hex"),
      content: whole && bytes === size ? whole : (whole?.subarray(0, bytes) ?? null),
    };
  } finally {
    await handle.close();
  }
}
