/**
 * Write a state dict as PyTorch's own file format, what `torch.save(state_dict, path)` writes:
 * a zip of `archive/data.pkl` (an OrderedDict of `torch._utils._rebuild_tensor_v2` calls, one
 * per tensor, each naming its storage by persistent id), `archive/byteorder`, one record
 * `archive/data/<key>` per storage and `archive/version`. Loads with `torch.load(f,
 * weights_only=True)` in every PyTorch since 1.13. Tensors are contiguous, little-endian.
 */
import { mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import { writeFileAtomic } from "../fs/atomic.ts";
import { DTYPES, elementCount, HOST_IS_LITTLE_ENDIAN } from "../safetensors/dtypes.ts";
import type { FloatDtype } from "../safetensors/index.ts";
import { DEFAULT_ARCHIVE, encodeTorchArchive } from "./archive.ts";
import { OP, PickleWriter } from "./pickle-writer.ts";

/**
 * One tensor to write: `data` is the dtype's typed array or any view of its little-endian bytes
 * (float16 and bfloat16 as raw bits). Entries given the very same `data` object share one
 * storage, as tied weights do in torch.save's output.
 */
export interface PthTensor {
  dtype: FloatDtype;
  shape: readonly number[];
  data: ArrayBufferView;
}

const STORAGE_TYPE: Record<FloatDtype, string> = {
  F32: "FloatStorage",
  F16: "HalfStorage",
  BF16: "BFloat16Storage",
};

/** The version torch.save writes (caffe2 kProducedFileFormatVersion for plain pickled data). */
const FILE_FORMAT_VERSION = "3\n";

// Python's pickler batches SETITEMS by this many items.
const BATCH = 1000;

function rowMajorStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let step = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = step;
    step *= shape[i];
  }
  return strides;
}

interface Storage {
  key: string;
  dtype: FloatDtype;
  numel: number;
  bytes: Uint8Array;
}

/** The bytes of a .pth holding `tensors` in the order given (names are the state-dict keys). */
export function encodePth(
  tensors: Iterable<readonly [string, PthTensor]>,
  archive: string = DEFAULT_ARCHIVE,
): Uint8Array {
  if (!HOST_IS_LITTLE_ENDIAN) throw new Error(".pth: big-endian hosts are not supported");
  const storages = new Map<ArrayBufferView, Storage>();
  const names = new Set<string>();
  const pickle = new PickleWriter().proto();
  pickle.global("collections", "OrderedDict").op(OP.EMPTY_TUPLE).op(OP.REDUCE);
  let inBatch = 0;
  for (const [name, tensor] of tensors) {
    if (names.has(name)) throw new Error(`.pth: tensor ${name} given twice`);
    names.add(name);
    const numel = elementCount(tensor.shape);
    if (numel === null) throw new Error(`.pth: tensor ${name} has a bad shape [${tensor.shape}]`);
    const width = DTYPES[tensor.dtype].bytes;
    if (tensor.data.byteLength !== numel * width) {
      throw new Error(
        `.pth: tensor ${name}: ${tensor.data.byteLength} bytes of data, ${tensor.dtype} [${tensor.shape}] needs ${numel * width}`,
      );
    }
    let storage = storages.get(tensor.data);
    if (storage && storage.dtype !== tensor.dtype)
      throw new Error(
        `.pth: tensor ${name} shares data with a ${storage.dtype} tensor but is ${tensor.dtype}`,
      );
    if (!storage) {
      const bytes = new Uint8Array(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength);
      storage = { key: String(storages.size), dtype: tensor.dtype, numel, bytes };
      storages.set(tensor.data, storage);
    }
    if (inBatch === 0) pickle.op(OP.MARK);
    pickle.str(name);
    pickle.global("torch._utils", "_rebuild_tensor_v2").op(OP.MARK);
    // Persistent id ("storage", storage type, key, location, element count), as torch.save's.
    pickle.op(OP.MARK).str("storage").global("torch", STORAGE_TYPE[tensor.dtype]);
    pickle.str(storage.key).str("cpu").int(storage.numel).op(OP.TUPLE).op(OP.BINPERSID);
    pickle.int(0).intTuple(tensor.shape).intTuple(rowMajorStrides(tensor.shape)).bool(false);
    pickle.global("collections", "OrderedDict").op(OP.EMPTY_TUPLE).op(OP.REDUCE); // backward hooks
    pickle.op(OP.TUPLE).op(OP.REDUCE);
    if (++inBatch === BATCH) {
      pickle.op(OP.SETITEMS);
      inBatch = 0;
    }
  }
  if (inBatch > 0) pickle.op(OP.SETITEMS);
  pickle.op(OP.STOP);

  const ascii = (text: string) => new TextEncoder().encode(text);
  const records: Array<[string, Uint8Array]> = [
    ["data.pkl", pickle.finish()],
    ["byteorder", ascii("little")],
  ];
  for (const storage of storages.values()) records.push([`data/${storage.key}`, storage.bytes]);
  records.push(["version", ascii(FILE_FORMAT_VERSION)]);
  return encodeTorchArchive(records, archive);
}

/** Write a .pth atomically (readers see the old file or the new one, never a mix). */
export async function writePth(path: string, tensors: Iterable<readonly [string, PthTensor]>): Promise<void> {
  const bytes = encodePth(tensors);
  await mkdir(dirname(path), { recursive: true });
  await writeFileAtomic(path, bytes);
}
