/** Held-out records as batches for evaluation, cut to the longest learned position so padding costs nothing. */
import type { JsonlDataset } from "../data/dataset.ts";
import type { DataFormat } from "../data/records.ts";
import { type Batch, readBatch, type SampleEncoder } from "../data/samples.ts";
import { trimBatch } from "../stages/trim-batch.ts";

/** `indices` in order, `size` records per batch, each trimmed. */
export function* evalBatches<F extends DataFormat>(
  dataset: JsonlDataset<F>,
  indices: ArrayLike<number>,
  encoder: SampleEncoder<F>,
  size: number,
): Generator<{ batch: Batch; records: number }> {
  for (let at = 0; at < indices.length; at += size) {
    const chunk = Array.from(
      { length: Math.min(size, indices.length - at) },
      (_, k) => indices[at + k] as number,
    );
    yield { batch: trimBatch(readBatch(dataset, chunk, encoder)), records: chunk.length };
  }
}
