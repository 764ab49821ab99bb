import { mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import { writeFileAtomic } from "../fs/atomic.ts";
import { DTYPES, type Dtype, elementCount, HOST_IS_LITTLE_ENDIAN } from "./dtypes.ts";
import { encodeHeader, type TensorEntry } from "./header.ts";

/**
 * A tensor to write. `data` may be the dtype's own typed array or any view over the raw
 * little-endian bytes (e.g. a Uint16Array of bfloat16 bits); only its byte length is checked.
 */
export interface TensorInput {
  dtype: Dtype;
  shape: readonly number[];
  data: ArrayBufferView;
}

/** Named tensors, written in the order given (a Map, an object, or [name, tensor] pairs). */
export type TensorsInput =
  | ReadonlyMap<string, TensorInput>
  | Iterable<readonly [string, TensorInput]>
  | Readonly<Record<string, TensorInput>>;

function entriesOf(tensors: TensorsInput): Iterable<readonly [string, TensorInput]> {
  if (Symbol.iterator in tensors) return tensors as Iterable<readonly [string, TensorInput]>;
  return Object.entries(tensors as Record<string, TensorInput>);
}

/**
 * Encode tensors as safetensors bytes: the first chunk is the length-prefixed, space-padded
 * header and every further chunk is a view of a caller's tensor data, not a copy — so the
 * caller must not change those arrays until the chunks are written.
 *
 * Tensors keep the caller's order. Python's writer sorts by dtype then name; readers accept
 * either, since each tensor's offsets are in the header.
 */
export function encodeSafetensors(tensors: TensorsInput, metadata?: Record<string, string>): Uint8Array[] {
  if (!HOST_IS_LITTLE_ENDIAN) throw new Error("safetensors: big-endian hosts are not supported");
  const entries: TensorEntry[] = [];
  const chunks: Uint8Array[] = [];
  const seen = new Set<string>();
  let offset = 0;
  for (const [name, tensor] of entriesOf(tensors)) {
    if (name === "__metadata__")
      throw new Error('safetensors: "__metadata__" is reserved, not a tensor name');
    if (seen.has(name)) throw new Error(`safetensors: tensor ${JSON.stringify(name)} given twice`);
    seen.add(name);
    const spec = DTYPES[tensor.dtype];
    if (!spec) throw new Error(`safetensors: tensor ${JSON.stringify(name)}: unknown dtype ${tensor.dtype}`);
    const count = elementCount(tensor.shape);
    if (count === null) {
      throw new Error(
        `safetensors: tensor ${JSON.stringify(name)}: bad shape ${JSON.stringify(tensor.shape)}`,
      );
    }
    const bytes = count * spec.bytes;
    if (tensor.data.byteLength !== bytes) {
      throw new Error(
        `safetensors: tensor ${JSON.stringify(name)}: ${tensor.data.byteLength} bytes of data, ` +
          `but ${tensor.dtype} ${JSON.stringify(tensor.shape)} needs ${bytes}`,
      );
    }
    entries.push({ name, dtype: tensor.dtype, shape: [...tensor.shape], begin: offset, end: offset + bytes });
    if (bytes > 0) chunks.push(new Uint8Array(tensor.data.buffer, tensor.data.byteOffset, bytes));
    offset += bytes;
  }
  if (metadata) {
    for (const [key, value] of Object.entries(metadata)) {
      if (typeof value !== "string") throw new Error(`safetensors: metadata ${key} must be a string`);
    }
  }
  return [encodeHeader(entries, metadata), ...chunks];
}

/** Write a safetensors file atomically (readers see the old file or the new one, never a mix). */
export async function writeSafetensors(
  path: string,
  tensors: TensorsInput,
  metadata?: Record<string, string>,
): Promise<void> {
  const chunks = encodeSafetensors(tensors, metadata);
  await mkdir(dirname(path), { recursive: true });
  await writeFileAtomic(path, chunks);
}
