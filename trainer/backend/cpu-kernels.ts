/**
 * The pure-JS cpu backend's UnsortedSegmentSum (the gradient of tf.gather, i.e. of the embedding)
 * builds a mask per segment: O(vocabulary × tokens × width), ~300 ms for a tiny model's batch.
 * A scatter-add does the same in one pass.
 */
import * as tf from "@tensorflow/tfjs-core";

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
  for (let row = 0; row < ids.length; row++) {
    const segment = ids[row];
    if (segment < 0 || segment >= numSegments) continue;
    const from = row * rowSize;
    const to = segment * rowSize;
    for (let j = 0; j < rowSize; j++) dst[to + j] += src[from + j];
  }
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
