import { UserError } from "../cli/errors.ts";
import { DTYPES, type Dtype, elementCount, isDtype } from "./dtypes.ts";

/** The same ceiling the reference implementation uses; a larger header means a broken or hostile file. */
export const MAX_HEADER_BYTES = 100_000_000;

export interface TensorEntry {
  name: string;
  dtype: Dtype;
  shape: number[];
  /** Byte range inside the data section (after the header). */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  /** In data order (ascending offsets). */
  tensors: TensorEntry[];
  metadata: Record<string, string>;
  /** Where the data section starts in the file: 8 + header length. */
  dataStart: number;
}

function fail(source: string, what: string): never {
  throw new UserError(`${source}: not a valid safetensors file: ${what}`);
}

/** Read the 8-byte little-endian header length and check it fits the file. */
export function headerLength(prefix: Uint8Array, fileBytes: number, source: string): number {
  if (fileBytes < 8) fail(source, `truncated: ${fileBytes} bytes, too short for the 8-byte header length`);
  const length = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (length < 2n) fail(source, `header length ${length} is too small`);
  if (length > BigInt(MAX_HEADER_BYTES)) {
    fail(source, `header length ${length} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  }
  if (8n + length > BigInt(fileBytes)) {
    fail(
      source,
      `truncated: header says ${length} bytes but the file has only ${fileBytes - 8} after the length`,
    );
  }
  return Number(length);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function parseEntry(name: string, info: unknown, source: string): TensorEntry {
  const where = `tensor ${JSON.stringify(name)}`;
  if (!isPlainObject(info)) fail(source, `${where}: expected an object with dtype, shape, data_offsets`);
  const { dtype, shape, data_offsets: offsets } = info;
  if (!isDtype(dtype)) fail(source, `${where}: unsupported dtype ${JSON.stringify(dtype)}`);
  if (!Array.isArray(shape)) fail(source, `${where}: shape must be an array of whole numbers`);
  const count = elementCount(shape);
  if (count === null) fail(source, `${where}: bad shape ${JSON.stringify(shape)}`);
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !offsets.every((n) => typeof n === "number" && Number.isSafeInteger(n) && n >= 0)
  ) {
    fail(source, `${where}: data_offsets must be [begin, end] whole numbers`);
  }
  const [begin, end] = offsets as [number, number];
  if (end < begin) fail(source, `${where}: data_offsets [${begin}, ${end}] end before they begin`);
  const expected = count * DTYPES[dtype].bytes;
  if (end - begin !== expected) {
    fail(
      source,
      `${where}: ${end - begin} bytes of data, but ${dtype} ${JSON.stringify(shape)} needs ${expected}`,
    );
  }
  return { name, dtype, shape: shape as number[], begin, end };
}

/**
 * Parse and fully validate a header: every entry well-formed, byte sizes matching dtype × shape,
 * and the tensors tiling the data section exactly — no gap, no overlap, nothing missing or left over.
 */
export function parseHeader(
  headerBytes: Uint8Array,
  dataBytes: number,
  source: string,
): Omit<SafetensorsHeader, "dataStart"> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(headerBytes));
  } catch {
    fail(source, "header is not UTF-8 JSON");
  }
  if (!isPlainObject(parsed)) fail(source, "header is not a JSON object");

  const metadata: Record<string, string> = {};
  const tensors: TensorEntry[] = [];
  for (const [name, info] of Object.entries(parsed)) {
    if (name === "__metadata__") {
      if (!isPlainObject(info)) fail(source, "__metadata__ must be an object of strings");
      for (const [key, value] of Object.entries(info)) {
        if (typeof value !== "string") fail(source, `__metadata__.${key} is not a string`);
        metadata[key] = value;
      }
      continue;
    }
    tensors.push(parseEntry(name, info, source));
  }

  tensors.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let position = 0;
  for (const tensor of tensors) {
    if (tensor.begin !== position) {
      const what =
        tensor.begin < position ? "overlaps the previous tensor" : `leaves a gap after byte ${position}`;
      fail(source, `tensor ${JSON.stringify(tensor.name)} at [${tensor.begin}, ${tensor.end}] ${what}`);
    }
    position = tensor.end;
  }
  if (position < dataBytes) {
    fail(source, `oversized: ${dataBytes - position} bytes after the last tensor (data ends at ${position})`);
  }
  if (position > dataBytes) {
    fail(source, `truncated: tensors need ${position} bytes of data, the file has ${dataBytes}`);
  }
  return { tensors, metadata };
}

/**
 * The header bytes, length prefix included, padded with spaces so the data starts on an
 * 8-byte boundary, as the reference writer does. Built by hand so tensor names keep their
 * order and a name like "__proto__" stays an ordinary key.
 */
export function encodeHeader(
  entries: readonly TensorEntry[],
  metadata: Record<string, string> | undefined,
): Uint8Array {
  const parts: string[] = [];
  if (metadata && Object.keys(metadata).length > 0) {
    const fields = Object.entries(metadata).map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`);
    parts.push(`"__metadata__":{${fields.join(",")}}`);
  }
  for (const t of entries) {
    const info = `{"dtype":"${t.dtype}","shape":${JSON.stringify(t.shape)},"data_offsets":[${t.begin},${t.end}]}`;
    parts.push(`${JSON.stringify(t.name)}:${info}`);
  }
  const json = Buffer.from(`{${parts.join(",")}}`, "utf8");
  const padded = Math.ceil(json.byteLength / 8) * 8;
  const out = new Uint8Array(8 + padded);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.byteLength);
  return out;
}
