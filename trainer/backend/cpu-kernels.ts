/**
 * The pure-JS cpu backend's UnsortedSegmentSum (the gradient of tf.gather, i.e. of the embedding)
 * builds a mask per segment: O(vocabulary × tokens × width), ~300 ms for a tiny model's batch.
 * A scatter-add does the same in one pass.
 */
import * as tf from "@tensorflow/tfjs-core";
import { scatterAddRows } from "./scatter-add.ts";

interface CpuInternals {
  readSync(dataId: object): ArrayLike<number>;
  makeTensorInfo(shape: number[], dtype: tf.DataType, values: Float32Array): tf.TensorInfo;
}

function unsortedSegmentSum(args: {
  inputs: tf.NamedTensorInfoMap;
  backend: unknown;
  attrs: tf.NamedAttrMap;
}) {
  const backend = args.backend as CpuInternals;
  const { x, segmentIds } = args.inputs;
  if (!x || !segmentIds) throw new Error("UnsortedSegmentSum: missing inputs");
  const numSegments = args.attrs.numSegments as number;
  const rowShape = x.shape.slice(segmentIds.shape.length);
  const rowSize = tf.util.sizeFromShape(rowShape);
  const src = backend.readSync(x.dataId);
  const ids = backend.readSync(segmentIds.dataId);
  const dst = new Float32Array(numSegments * rowSize);
  scatterAddRows(src, ids, dst, rowSize, numSegments);
  return backend.makeTensorInfo([numSegments, ...rowShape], x.dtype, dst);
}

export function installCpuKernels(): void {
  if (tf.getKernel("UnsortedSegmentSum", "cpu")) tf.unregisterKernel("UnsortedSegmentSum", "cpu");
  tf.registerKernel({
    kernelName: "UnsortedSegmentSum",
    backendName: "cpu",
    kernelFunc: unsortedSegmentSum as unknown as tf.KernelFunc,
  });
}
