/**
 * Batches are padded to --max_seq_len, but short samples (the chat data is mostly under half of
 * it) need not pay for the padding: attention cost grows with the square of the length.
 */
import type { Batch } from "../data/samples.ts";

/**
 * The batch with every row cut after its last weighted position in any row. Exact: attention is
 * causal, so the padding after a position never changes that position's logits.
 */
export function trimBatch(batch: Batch): Batch {
  const T = batch.seqLen;
  let used = 1;
  for (let r = 0; r < batch.rows; r++) {
    for (let t = T - 1; t >= used; t--) {
      if (batch.weight[r * T + t] > 0) {
        used = t + 1;
        break;
      }
    }
  }
  if (used === T) return batch;
  const cut = <A extends Int32Array | Float32Array>(values: A): A => {
    const out = new (values.constructor as new (n: number) => A)(batch.rows * used);
    for (let r = 0; r < batch.rows; r++) out.set(values.subarray(r * T, r * T + used), r * used);
    return out;
  };
  return {
    ...batch,
    seqLen: used,
    input: cut(batch.input),
    target: cut(batch.target),
    weight: cut(batch.weight),
  };
}
