import { type FileHandle, open } from "node:fs/promises";
import { describeFsError, UserError } from "../cli/errors.ts";
import { type ArrayOfDtype, DTYPES, type Dtype, HOST_IS_LITTLE_ENDIAN } from "./dtypes.ts";
import { headerLength, parseHeader, type SafetensorsHeader } from "./header.ts";

/** One tensor as read: `data` is the dtype's typed array (see ArrayOfDtype). */
export type SafeTensor = { [D in Dtype]: { dtype: D; shape: number[]; data: ArrayOfDtype[D] } }[Dtype];

export interface SafetensorsFile {
  /** In the file's data order (ascending offsets), whatever order the JSON header lists them in. */
  tensors: Map<string, SafeTensor>;
  metadata: Record<string, string>;
}

function viewOf(bytes: Uint8Array, dtype: Dtype, begin: number, end: number): SafeTensor["data"] {
  const spec = DTYPES[dtype];
  const length = (end - begin) / spec.bytes;
  const start = bytes.byteOffset + begin;
  // Typed arrays need aligned offsets; a misaligned tensor (possible after odd-sized ones) is copied.
  if (start % spec.bytes === 0) return new spec.array(bytes.buffer, start, length);
  // (A Buffer's slice() is a view, hence the explicit copy.)
  return new spec.array(new Uint8Array(bytes.subarray(begin, end)).buffer, 0, length);
}

/**
 * Decode a whole safetensors file held in memory. Tensor arrays are views into `bytes`
 * where alignment allows, so keep `bytes` unchanged while they are in use.
 * `source` names the file in error messages.
 */
export function decodeSafetensors(bytes: Uint8Array, source = "safetensors data"): SafetensorsFile {
  if (!HOST_IS_LITTLE_ENDIAN) throw new Error("safetensors: big-endian hosts are not supported");
  const length = headerLength(bytes, bytes.byteLength, source);
  const dataStart = 8 + length;
  const data = bytes.subarray(dataStart);
  const { tensors, metadata } = parseHeader(bytes.subarray(8, dataStart), data.byteLength, source);
  const out = new Map<string, SafeTensor>();
  for (const t of tensors) {
    out.set(t.name, {
      dtype: t.dtype,
      shape: t.shape,
      data: viewOf(data, t.dtype, t.begin, t.end),
    } as SafeTensor);
  }
  return { tensors: out, metadata };
}

async function openForReading(path: string): Promise<FileHandle> {
  try {
    return await open(path, "r");
  } catch (error) {
    throw new UserError(`${path}: cannot read safetensors file: ${describeFsError(error)}`);
  }
}

async function readExactly(
  handle: FileHandle,
  into: Uint8Array,
  position: number,
  path: string,
): Promise<void> {
  let done = 0;
  while (done < into.byteLength) {
    const { bytesRead } = await handle.read(into, done, into.byteLength - done, position + done);
    if (bytesRead === 0)
      throw new UserError(`${path}: not a valid safetensors file: shrank while being read`);
    done += bytesRead;
  }
}

/** Read and decode a safetensors file; any defect is a UserError naming the file and the defect. */
export async function readSafetensors(path: string): Promise<SafetensorsFile> {
  const handle = await openForReading(path);
  try {
    const { size } = await handle.stat();
    // A fresh buffer (not Node's pool) so tensor views start aligned.
    const bytes = new Uint8Array(size);
    await readExactly(handle, bytes, 0, path);
    return decodeSafetensors(bytes, path);
  } finally {
    await handle.close();
  }
}

/** Read and validate only the header (names, dtypes, shapes, metadata) — cheap even for huge files. */
export async function readSafetensorsHeader(path: string): Promise<SafetensorsHeader> {
  const handle = await openForReading(path);
  try {
    const { size } = await handle.stat();
    const prefix = new Uint8Array(8);
    if (size >= 8) await readExactly(handle, prefix, 0, path);
    const length = headerLength(prefix, size, path);
    const header = new Uint8Array(length);
    await readExactly(handle, header, 8, path);
    return { ...parseHeader(header, size - 8 - length, path), dataStart: 8 + length };
  } finally {
    await handle.close();
  }
}

/** The named tensor with the expected dtype, or a UserError saying what the file has instead. */
export function requireTensor<D extends Dtype>(
  file: SafetensorsFile,
  name: string,
  dtype: D,
  source = "safetensors data",
): { dtype: D; shape: number[]; data: ArrayOfDtype[D] } {
  const tensor = file.tensors.get(name);
  if (!tensor) throw new UserError(`${source}: no tensor named ${JSON.stringify(name)}`);
  if (tensor.dtype !== dtype) {
    throw new UserError(`${source}: tensor ${JSON.stringify(name)} is ${tensor.dtype}, expected ${dtype}`);
  }
  return tensor as { dtype: D; shape: number[]; data: ArrayOfDtype[D] };
}
