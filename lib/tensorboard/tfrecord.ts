import CRC32C from "crc-32/crc32c";

/*
 * TFRecord framing, as TensorFlow's record_writer.cc writes it:
 *   uint64 LE  length
 *   uint32 LE  masked CRC32C of the 8 length bytes
 *   bytes      data
 *   uint32 LE  masked CRC32C of data
 */
const LENGTH_BYTES = 8;
const HEADER_BYTES = LENGTH_BYTES + 4;
const FOOTER_BYTES = 4;
const MASK_DELTA = 0xa282ead8;

/** CRC32C (Castagnoli) of `bytes`, as an unsigned 32-bit number. */
export function crc32c(bytes: Uint8Array): number {
  return CRC32C.buf(bytes) >>> 0;
}

/**
 * The masked CRC TFRecord stores: rotating right by 15 and adding a constant keeps a CRC of
 * data that itself contains CRCs from being degenerate (the LevelDB trick).
 */
export function maskedCrc32c(bytes: Uint8Array): number {
  const crc = crc32c(bytes);
  return (((crc >>> 15) | (crc << 17)) + MASK_DELTA) >>> 0;
}

/** One whole framed record, ready to append to a file in a single write. */
export function encodeRecord(data: Uint8Array): Buffer {
  const record = Buffer.allocUnsafe(HEADER_BYTES + data.byteLength + FOOTER_BYTES);
  record.writeBigUInt64LE(BigInt(data.byteLength), 0);
  record.writeUInt32LE(maskedCrc32c(record.subarray(0, LENGTH_BYTES)), LENGTH_BYTES);
  record.set(data, HEADER_BYTES);
  record.writeUInt32LE(maskedCrc32c(data), HEADER_BYTES + data.byteLength);
  return record;
}

export type RecordCorruptionKind = "truncated" | "length-crc" | "data-crc";

/** Where and why reading stopped early. `offset` is the byte offset of the bad record's start. */
export interface RecordCorruption {
  offset: number;
  kind: RecordCorruptionKind;
  message: string;
}

export interface DecodedRecords {
  /** Payloads of every intact record before the first corruption, in file order. */
  records: Uint8Array[];
  /** Byte offsets of each record's start, parallel to `records`. */
  offsets: number[];
  corruption: RecordCorruption | null;
}

/**
 * Split a TFRecord stream into payloads, checking both CRCs of each record. Reading stops at
 * the first bad record: after a bad length nothing further can be framed, and a bad payload
 * means the writer was interrupted or the file was damaged there.
 */
export function decodeRecords(bytes: Uint8Array): DecodedRecords {
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const records: Uint8Array[] = [];
  const offsets: number[] = [];
  let offset = 0;
  const stop = (kind: RecordCorruptionKind, message: string): DecodedRecords => ({
    records,
    offsets,
    corruption: { offset, kind, message: `record at byte ${offset}: ${message}` },
  });

  while (offset < view.byteLength) {
    const remaining = view.byteLength - offset;
    if (remaining < HEADER_BYTES) {
      return stop("truncated", `header cut short (${remaining} of ${HEADER_BYTES} bytes)`);
    }
    const lengthBytes = view.subarray(offset, offset + LENGTH_BYTES);
    const storedLengthCrc = view.readUInt32LE(offset + LENGTH_BYTES);
    if (maskedCrc32c(lengthBytes) !== storedLengthCrc) {
      return stop("length-crc", "length checksum mismatch");
    }
    const length = view.readBigUInt64LE(offset);
    if (length > BigInt(remaining - HEADER_BYTES - FOOTER_BYTES)) {
      return stop("truncated", `payload of ${length} bytes cut short (${remaining} bytes left in file)`);
    }
    const dataStart = offset + HEADER_BYTES;
    const dataEnd = dataStart + Number(length);
    const data = view.subarray(dataStart, dataEnd);
    if (maskedCrc32c(data) !== view.readUInt32LE(dataEnd)) {
      return stop("data-crc", "payload checksum mismatch");
    }
    records.push(data);
    offsets.push(offset);
    offset = dataEnd + FOOTER_BYTES;
  }
  return { records, offsets, corruption: null };
}
