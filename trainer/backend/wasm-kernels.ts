/**
 * Kernel replacements for the wasm backend. TensorFlow.js's wasm BatchMatMul only reaches XNNPACK for a
 * single, non-transposed 2-D product; anything batched or transposed (attention, and every matmul
 * gradient) falls to a naive triple loop ~20× slower. Its Slice copies the whole input to read a part.
 * The replacements below keep the model code plain (`tf.matMul(a, b, false, true)`) and make it fast:
 *  - BatchMatMul: materialise transposes, then run each batch item through XNNPACK on zero-copy views.
 *  - Slice: copy only the slice.
 *  - Transpose: the shapes a transformer uses ([1,0], [0,2,1], [0,2,1,3] after merging axes) as
 *    eight-rows-at-a-time copies, several times faster than the module's generic loop.
 *  - UnsortedSegmentSum (missing on wasm; needed by the gradient of tf.gather): a scatter-add.
 *  - Identity (every gradient casts its inputs to float32, which is an Identity): share the data
 *    instead of copying it; tensors are immutable, so this is what the cpu backend does too.
 *  - GatherV2 along the first axis (the embedding lookup): row copies.
 * All three are deterministic, so bit-exact resume holds.
 */

import type { BackendWasm } from "@tensorflow/tfjs-backend-wasm";
import * as tf from "@tensorflow/tfjs-core";
import { scatterAddRows } from "./scatter-add.ts";

type TensorInfo = tf.TensorInfo;
type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: BackendWasm; attrs: tf.NamedAttrMap };

function input(args: KernelArgs, name: string): TensorInfo {
  const tensor = args.inputs[name];
  if (!tensor) throw new Error(`kernel input ${name} is missing`);
  return tensor;
}
type WasmBatchMatMul = (
  aId: number,
  aShape: Uint8Array,
  aRank: number,
  bId: number,
  bShape: Uint8Array,
  bRank: number,
  transposeA: boolean,
  transposeB: boolean,
  outId: number,
) => void;

// The backend's internals we rely on (tfjs-backend-wasm 4.22, pinned exactly in package.json).
interface WasmInternals {
  dataIdNextNumber: number;
  dataIdMap: { get(dataId: object): { id: number; memoryOffset: number } };
  wasm: {
    cwrap(name: string, ret: null, args: string[]): unknown;
    tfjs: { registerTensor(id: number, size: number, offset: number): void; disposeData(id: number): void };
  };
  makeOutput(shape: number[], dtype: tf.DataType): TensorInfo;
  disposeData(dataId: object): void;
  typedArrayFromHeap(info: TensorInfo): Float32Array | Int32Array | Uint8Array;
}

function internals(backend: BackendWasm): WasmInternals {
  return backend as unknown as WasmInternals;
}

let xnnMatMul: WasmBatchMatMul | null = null;
const shape3 = new Int32Array(3);
const shape3Bytes = new Uint8Array(shape3.buffer);
const shapeB3 = new Int32Array(3);
const shapeB3Bytes = new Uint8Array(shapeB3.buffer);

function transposeLast2(x: TensorInfo, backend: BackendWasm): TensorInfo {
  const rank = x.shape.length;
  const perm = [...Array(rank).keys()];
  perm[rank - 2] = rank - 1;
  perm[rank - 1] = rank - 2;
  return transpose({ inputs: { x }, backend, attrs: { perm } });
}

type Heap = Float32Array | Int32Array | Uint8Array;

/**
 * dst[j][i] = src[i][j] for a row-major [rows, cols] matrix at element offsets `from` and `to`.
 * Eight source rows at a time, so each destination row gets eight neighbouring elements per pass:
 * about five times faster than a cache-blocked element-by-element loop on wasm memory.
 */
function transposeMatrix(src: Heap, dst: Heap, from: number, to: number, rows: number, cols: number): void {
  let i = 0;
  for (; i + 8 <= rows; i += 8) {
    const r0 = from + i * cols;
    const r1 = r0 + cols;
    const r2 = r1 + cols;
    const r3 = r2 + cols;
    const r4 = r3 + cols;
    const r5 = r4 + cols;
    const r6 = r5 + cols;
    const r7 = r6 + cols;
    for (let j = 0; j < cols; j++) {
      const t = to + j * rows + i;
      dst[t] = src[r0 + j];
      dst[t + 1] = src[r1 + j];
      dst[t + 2] = src[r2 + j];
      dst[t + 3] = src[r3 + j];
      dst[t + 4] = src[r4 + j];
      dst[t + 5] = src[r5 + j];
      dst[t + 6] = src[r6 + j];
      dst[t + 7] = src[r7 + j];
    }
  }
  for (; i < rows; i++) {
    const r = from + i * cols;
    for (let j = 0; j < cols; j++) dst[to + j * rows + i] = src[r + j];
  }
}

/** dst[b][j][i] = src[b][i][j] for `batch` row-major [rows, cols] matrices, each element a run of `run` values. */
function transposeBlocks(src: Heap, dst: Heap, batch: number, rows: number, cols: number, run: number): void {
  const matrix = rows * cols * run;
  if (run === 1) {
    for (let b = 0; b < batch; b++) transposeMatrix(src, dst, b * matrix, b * matrix, rows, cols);
    return;
  }
  // Runs move with copyWithin on one view of the whole heap: a memmove, no subarray per run.
  const Heap = src.constructor as new (buffer: ArrayBufferLike) => Heap;
  const heap = new Heap(src.buffer);
  const srcStart = src.byteOffset / src.BYTES_PER_ELEMENT;
  const dstStart = dst.byteOffset / dst.BYTES_PER_ELEMENT;
  for (let b = 0; b < batch; b++) {
    const base = b * matrix;
    for (let i = 0; i < rows; i++) {
      for (let j = 0; j < cols; j++) {
        const from = srcStart + base + (i * cols + j) * run;
        heap.copyWithin(dstStart + base + (j * rows + i) * run, from, from + run);
      }
    }
  }
}

/** Merge axes that stay neighbours under `perm`, e.g. [0,2,1,3] on [8,128,4,32] stays, [0,1,3,2] → [0,2,1]. */
function mergeAxes(shape: number[], perm: number[]): { shape: number[]; perm: number[] } {
  const groups: number[][] = [];
  for (const axis of perm) {
    const last = groups.at(-1);
    if (last && last.at(-1) === axis - 1) last.push(axis);
    else groups.push([axis]);
  }
  const order = [...groups].sort((a, b) => a[0] - b[0]);
  const merged = order.map((g) => g.reduce((size, axis) => size * shape[axis], 1));
  return { shape: merged, perm: groups.map((g) => order.indexOf(g)) };
}

function transpose(args: KernelArgs): TensorInfo {
  const be = internals(args.backend);
  const x = input(args, "x");
  const perm = args.attrs.perm as number[];
  const outShape = perm.map((axis) => x.shape[axis]);
  const merged = mergeAxes(x.shape, perm);
  const p = merged.perm.join(",");
  const [d0, d1, d2, d3] = merged.shape;
  let plan: [batch: number, rows: number, cols: number, run: number] | null = null;
  if (p === "0") plan = [1, 1, 1, d0];
  else if (p === "1,0") plan = [1, d0, d1, 1];
  else if (p === "0,2,1") plan = [d0, d1, d2, 1];
  else if (p === "1,0,2") plan = [1, d0, d1, d2];
  else if (p === "0,2,1,3") plan = [d0, d1, d2, d3];
  if (!plan || x.dtype === "string") {
    return (originalTranspose as (a: KernelArgs) => TensorInfo)(args);
  }
  const out = be.makeOutput(outShape, x.dtype);
  transposeBlocks(be.typedArrayFromHeap(x), be.typedArrayFromHeap(out), ...plan);
  return out;
}

let originalTranspose: tf.KernelFunc | null = null;

/** A tensor id that aliases `size` floats of existing wasm memory, for XNNPACK to read or write. */
function view(be: WasmInternals, offset: number, size: number): number {
  const id = be.dataIdNextNumber++;
  be.wasm.tfjs.registerTensor(id, size, offset);
  return id;
}

function batchMatMul(args: KernelArgs): TensorInfo {
  const { backend } = args;
  const be = internals(backend);
  const transposeA = args.attrs.transposeA as boolean;
  const transposeB = args.attrs.transposeB as boolean;
  let a = input(args, "a");
  let b = input(args, "b");
  if (a.dtype !== "float32" || b.dtype !== "float32") throw new Error("BatchMatMul: float32 only on wasm");
  xnnMatMul ??= be.wasm.cwrap("BatchMatMul", null, [
    "number",
    "array",
    "number",
    "number",
    "array",
    "number",
    "number",
    "number",
    "number",
  ]) as WasmBatchMatMul;

  const temporaries: TensorInfo[] = [];
  if (transposeA) {
    a = transposeLast2(a, backend);
    temporaries.push(a);
  }
  if (transposeB) {
    b = transposeLast2(b, backend);
    temporaries.push(b);
  }
  const [m, k] = a.shape.slice(-2);
  const [k2, n] = b.shape.slice(-2);
  if (k !== k2) throw new Error(`matMul: inner dimensions ${k} and ${k2} differ`);
  const batchA = tf.util.sizeFromShape(a.shape.slice(0, -2));
  const batchB = tf.util.sizeFromShape(b.shape.slice(0, -2));
  if (batchA !== batchB && batchA !== 1 && batchB !== 1) {
    throw new Error(`matMul: batch sizes ${batchA} and ${batchB} do not broadcast`);
  }
  const batch = Math.max(batchA, batchB);
  const outerShape = tf.broadcast_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
  const out = be.makeOutput([...outerShape, m, n], "float32");

  const aOffset = be.dataIdMap.get(a.dataId).memoryOffset;
  const bOffset = be.dataIdMap.get(b.dataId).memoryOffset;
  const outOffset = be.dataIdMap.get(out.dataId).memoryOffset;
  shape3.set([1, m, k]);
  shapeB3.set([1, k, n]);
  for (let i = 0; i < batch; i++) {
    const aId = view(be, aOffset + (batchA === 1 ? 0 : i * m * k * 4), m * k);
    const bId = view(be, bOffset + (batchB === 1 ? 0 : i * k * n * 4), k * n);
    const outId = view(be, outOffset + i * m * n * 4, m * n);
    xnnMatMul(aId, shape3Bytes, 3, bId, shapeB3Bytes, 3, false, false, outId);
    // Disposing the ids also drops XNNPACK's packed-weights cache entry keyed on the b view.
    be.wasm.tfjs.disposeData(aId);
    be.wasm.tfjs.disposeData(bId);
    be.wasm.tfjs.disposeData(outId);
  }
  for (const t of temporaries) be.disposeData(t.dataId);
  return out;
}

function slice(args: KernelArgs): TensorInfo {
  const be = internals(args.backend);
  const x = input(args, "x");
  const [begin, size] = tf.slice_util.parseSliceParams(
    x,
    args.attrs.begin as number | number[],
    args.attrs.size as number | number[],
  );
  const out = be.makeOutput(size, x.dtype);
  const src = be.typedArrayFromHeap(x);
  const dst = be.typedArrayFromHeap(out);
  const strides = tf.util.computeStrides(x.shape);
  if (tf.slice_util.isSliceContinous(x.shape, begin, size)) {
    const from = tf.slice_util.computeFlatOffset(begin, strides);
    dst.set(src.subarray(from, from + dst.length));
    return out;
  }
  // Copy contiguous runs of the innermost dimension, walking the outer index like an odometer.
  const rank = x.shape.length;
  const run = size[rank - 1];
  const index = new Array<number>(rank - 1).fill(0);
  for (let written = 0; written < dst.length; written += run) {
    let from = begin[rank - 1];
    for (let d = 0; d < rank - 1; d++) from += (begin[d] + index[d]) * strides[d];
    dst.set(src.subarray(from, from + run), written);
    for (let d = rank - 2; d >= 0; d--) {
      if (++index[d] < size[d]) break;
      index[d] = 0;
    }
  }
  return out;
}

function unsortedSegmentSum(args: KernelArgs): TensorInfo {
  const be = internals(args.backend);
  const x = input(args, "x");
  const segmentIds = input(args, "segmentIds");
  const numSegments = args.attrs.numSegments as number;
  const rowSize = tf.util.sizeFromShape(x.shape.slice(segmentIds.shape.length));
  const out = be.makeOutput([numSegments, ...x.shape.slice(segmentIds.shape.length)], x.dtype);
  const src = be.typedArrayFromHeap(x);
  const ids = be.typedArrayFromHeap(segmentIds);
  const dst = be.typedArrayFromHeap(out);
  dst.fill(0);
  scatterAddRows(src, ids, dst, rowSize, numSegments);
  return out;
}

interface RefCounting {
  incRef(dataId: object): void;
}

function identity(args: KernelArgs): TensorInfo {
  const x = input(args, "x");
  if (x.dtype === "string") return (originalKernels.Identity as (a: KernelArgs) => TensorInfo)(args);
  (args.backend as unknown as RefCounting).incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

function gatherV2(args: KernelArgs): TensorInfo {
  const x = input(args, "x");
  const indices = input(args, "indices");
  const axis = args.attrs.axis as number;
  const batchDims = (args.attrs.batchDims as number | undefined) ?? 0;
  if (axis !== 0 || batchDims !== 0 || x.dtype === "string") {
    return (originalKernels.GatherV2 as (a: KernelArgs) => TensorInfo)(args);
  }
  const be = internals(args.backend);
  const rowSize = tf.util.sizeFromShape(x.shape.slice(1));
  const rows = x.shape[0];
  const ids = be.typedArrayFromHeap(indices);
  const out = be.makeOutput([...indices.shape, ...x.shape.slice(1)], x.dtype);
  const src = be.typedArrayFromHeap(x);
  const dst = be.typedArrayFromHeap(out);
  for (let i = 0; i < ids.length; i++) {
    const row = ids[i];
    if (row < 0 || row >= rows)
      throw new Error(`GatherV2: the index value ${row} is not in [0, ${rows - 1}]`);
    dst.set(src.subarray(row * rowSize, (row + 1) * rowSize), i * rowSize);
  }
  return out;
}

const originalKernels: Partial<Record<string, tf.KernelFunc>> = {};

const replacements: Array<[string, tf.KernelFunc]> = [
  ["Identity", identity as unknown as tf.KernelFunc],
  ["GatherV2", gatherV2 as unknown as tf.KernelFunc],
  ["BatchMatMul", batchMatMul as unknown as tf.KernelFunc],
  ["Slice", slice as unknown as tf.KernelFunc],
  ["UnsortedSegmentSum", unsortedSegmentSum as unknown as tf.KernelFunc],
  ["Transpose", transpose as unknown as tf.KernelFunc],
];

/** Install the replacements; call once after the wasm backend is registered, before any op runs. */
export function installWasmKernels(): void {
  originalTranspose ??= tf.getKernel("Transpose", "wasm")?.kernelFunc ?? null;
  for (const name of ["Identity", "GatherV2"])
    originalKernels[name] ??= tf.getKernel(name, "wasm")?.kernelFunc;
  for (const [kernelName, kernelFunc] of replacements) {
    if (tf.getKernel(kernelName, "wasm")) tf.unregisterKernel(kernelName, "wasm");
    tf.registerKernel({ kernelName, backendName: "wasm", kernelFunc });
  }
}
