/**
 * UnsortedSegmentSum as one scatter-add pass: the gradient of tf.gather (the embedding). Both the
 * cpu and the wasm kernels call this on their own memory.
 */
type Numbers = { length: number; [index: number]: number };

/** Adds row r of `src` (rows of `rowSize`) into row `ids[r]` of `dst`; ids out of range are skipped. */
export function scatterAddRows(
  src: Numbers,
  ids: Numbers,
  dst: Numbers,
  rowSize: number,
  rows: number,
): void {
  for (let row = 0; row < ids.length; row++) {
    const segment = ids[row];
    if (segment < 0 || segment >= rows) continue;
    const from = row * rowSize;
    const to = segment * rowSize;
    for (let j = 0; j < rowSize; j++) dst[to + j] += src[from + j];
  }
}
