/**
 * Read a PyTorch state dict (`torch.save(state_dict)`: zip format, float32, float16 or bfloat16
 * tensors) without PyTorch and without running any of the file: data.pkl goes through the
 * restricted unpickler, storages are read from the archive's records. Tensors that share a
 * storage, start at an offset into one or are strided (a transposed view) come out as ordinary
 * row-major tensors.
 */
import { open } from "node:fs/promises";
import { describeFsError, UserError } from "../cli/errors.ts";
import { DTYPES, elementCount, HOST_IS_LITTLE_ENDIAN } from "../safetensors/dtypes.ts";
import type { FloatDtype, SafeTensor } from "../safetensors/index.ts";
import { decodeTorchArchive } from "./archive.ts";
import {
  PickleRefusal,
  PyDict,
  type PyValue,
  type StorageRef,
  TensorRef,
  unpickleStateDict,
} from "./unpickler.ts";

/** A float tensor as read: `data` is a Float32Array for F32, raw bits in a Uint16Array otherwise. */
export type PthTensorRead = Extract<SafeTensor, { dtype: FloatDtype }>;

export interface PthFile {
  /** In the state dict's order. */
  tensors: Map<string, PthTensorRead>;
}

const ALLOWED =
  "collections.OrderedDict, torch._utils._rebuild_tensor_v2 and torch.FloatStorage/HalfStorage/BFloat16Storage";

function typedView(bytes: Uint8Array, dtype: FloatDtype): Float32Array | Uint16Array {
  const spec = DTYPES[dtype];
  // The archive's records are fresh copies at offset 0, so the view is aligned.
  return new spec.array(bytes.buffer, bytes.byteOffset, bytes.byteLength / spec.bytes);
}

function isRowMajor(shape: number[], stride: number[]): boolean {
  let step = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] !== 1 && stride[i] !== step) return false;
    step *= shape[i];
  }
  return true;
}

/** The tensor's elements in row-major order, copied out of a strided view when they are not already. */
function materialise(
  ref: TensorRef,
  storage: Float32Array | Uint16Array,
  name: string,
  source: string,
): Float32Array | Uint16Array {
  const count = elementCount(ref.shape);
  if (count === null) throw new UserError(`${source}: tensor ${name} has a bad shape [${ref.shape}]`);
  if (count === 0) return storage.subarray(0, 0);
  const last = ref.offset + ref.shape.reduce((sum, dim, i) => sum + (dim - 1) * ref.stride[i], 0);
  if (last >= ref.storage.numel) {
    throw new UserError(
      `${source}: tensor ${name} reaches element ${last} of storage ${ref.storage.key}, which has ${ref.storage.numel}`,
    );
  }
  if (isRowMajor(ref.shape, ref.stride)) return storage.subarray(ref.offset, ref.offset + count);
  const out = new (storage.constructor as Float32ArrayConstructor | Uint16ArrayConstructor)(count);
  const index = new Array<number>(ref.shape.length).fill(0);
  for (let i = 0; i < count; i++) {
    let at = ref.offset;
    for (let d = 0; d < index.length; d++) at += index[d] * ref.stride[d];
    out[i] = storage[at];
    for (let d = index.length - 1; d >= 0 && ++index[d] === ref.shape[d]; d--) index[d] = 0;
  }
  return out;
}

/** The state dict in `root`: a dict of tensor name → tensor, nothing else. */
function stateDictEntries(root: PyValue, source: string): Array<[string, TensorRef]> {
  if (!(root instanceof PyDict)) {
    throw new UserError(
      `${source}: holds a pickled ${describeKind(root)}, expected a state dict (name → tensor)`,
    );
  }
  const entries: Array<[string, TensorRef]> = [];
  for (const [key, value] of root.entries) {
    if (typeof key !== "string")
      throw new UserError(`${source}: state dict key ${String(key)} is not a name`);
    if (!(value instanceof TensorRef)) {
      throw new UserError(
        `${source}: ${JSON.stringify(key)} holds a ${describeKind(value)}, expected a tensor — ` +
          "save the model's state_dict() alone (not a training-resume file)",
      );
    }
    entries.push([key, value]);
  }
  return entries;
}

function describeKind(value: PyValue): string {
  if (value === null) return "None";
  if (typeof value === "object") return value.constructor.name.replace(/^Py/, "").toLowerCase();
  return typeof value;
}

/** Decode .pth bytes; every defect is a one-line UserError naming `source`. */
export function decodePth(bytes: Uint8Array, source = ".pth data"): PthFile {
  if (!HOST_IS_LITTLE_ENDIAN) throw new Error(".pth: big-endian hosts are not supported");
  const { archive, records } = decodeTorchArchive(bytes, source);
  const pickle = records.get("data.pkl");
  if (!pickle) throw new UserError(`${source}: a zip without ${archive}/data.pkl, so not a torch.save file`);
  const byteorder = records.get("byteorder");
  if (byteorder && new TextDecoder().decode(byteorder) !== "little") {
    throw new UserError(
      `${source}: written on a big-endian machine (byteorder record), Baton reads little-endian .pth only`,
    );
  }
  let root: PyValue;
  try {
    root = unpickleStateDict(pickle);
  } catch (error) {
    if (!(error instanceof PickleRefusal)) throw error;
    if (!error.forbidden) throw new UserError(`${source}: damaged ${archive}/data.pkl: ${error.message}`);
    throw new UserError(
      `${source}: refused to load: its pickle ${error.message}; a state dict needs only ${ALLOWED} (nothing in the file was run)`,
    );
  }
  const storages = new Map<string, Float32Array | Uint16Array>();
  const storageData = (ref: StorageRef): Float32Array | Uint16Array => {
    const cached = storages.get(ref.key);
    if (cached) return cached;
    const record = records.get(`data/${ref.key}`);
    if (!record)
      throw new UserError(`${source}: no record ${archive}/data/${ref.key} for a tensor's storage`);
    const width = DTYPES[ref.dtype].bytes;
    if (record.byteLength !== ref.numel * width) {
      throw new UserError(
        `${source}: ${archive}/data/${ref.key} has ${record.byteLength} bytes, its ${ref.numel}-element ${ref.dtype} storage needs ${ref.numel * width}`,
      );
    }
    const view = typedView(record, ref.dtype);
    storages.set(ref.key, view);
    return view;
  };
  const tensors = new Map<string, PthTensorRead>();
  for (const [name, ref] of stateDictEntries(root, source)) {
    const data = materialise(ref, storageData(ref.storage), name, source);
    tensors.set(name, { dtype: ref.storage.dtype, shape: ref.shape, data } as PthTensorRead);
  }
  return { tensors };
}

/** Read and decode a .pth file (see decodePth). */
export async function readPth(path: string): Promise<PthFile> {
  let bytes: Uint8Array;
  try {
    const handle = await open(path, "r");
    try {
      const { size } = await handle.stat();
      bytes = new Uint8Array(size);
      let done = 0;
      while (done < size) {
        const { bytesRead } = await handle.read(bytes, done, size - done, done);
        if (bytesRead === 0) throw new UserError(`${path}: the file shrank while being read`);
        done += bytesRead;
      }
    } finally {
      await handle.close();
    }
  } catch (error) {
    if (error instanceof UserError) throw error;
    throw new UserError(`${path}: cannot read .pth file: ${describeFsError(error)}`);
  }
  return decodePth(bytes, path);
}
