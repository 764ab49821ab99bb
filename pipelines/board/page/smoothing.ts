/**
 * TensorBoard's scalar smoothing (its line chart's `resmoothDataset`): an exponential moving
 * average debiased like Adam's first moment, so the start of a curve is not pulled towards zero.
 * Non-finite values pass through unsmoothed and do not enter the average; a constant series is
 * left as it is (TensorBoard's guard against float drift on flat lines).
 */
export function smooth(values: ArrayLike<number>, weight: number): Float64Array {
  const out = new Float64Array(values.length);
  if (values.length === 0) return out;
  const first = values[0] as number;
  let constant = true;
  for (let i = 1; i < values.length; i++) {
    if (values[i] !== first) {
      constant = false;
      break;
    }
  }
  let last = 0;
  let count = 0;
  for (let i = 0; i < values.length; i++) {
    const next = values[i] as number;
    if (constant || !Number.isFinite(next)) {
      out[i] = next;
      continue;
    }
    last = last * weight + (1 - weight) * next;
    count++;
    const debias = weight === 1 ? 1 : 1 - weight ** count;
    out[i] = last / debias;
  }
  return out;
}
