/**
 * Splitting a batch across data-parallel workers. Each shard keeps its rows' own loss
 * normalisation and carries `share` = its part of the whole batch's normaliser, so
 * Σ share·loss(shard) = loss(batch) and the same holds for the gradients.
 */
import type { Batch } from "../data/samples.ts";

export interface Shard {
  batch: Batch;
  /** This shard's fraction of the batch's loss normaliser. */
  share: number;
}

/** What a stage divides its summed loss by: loss tokens by default, preference pairs for DPO. */
export type Normaliser = (batch: Batch) => number;

export const byLossTokens: Normaliser = (batch) => batch.lossTokens;

function pickRows(batch: Batch, rows: number[]): Batch {
  const T = batch.seqLen;
  const input = new Int32Array(rows.length * T);
  const target = new Int32Array(rows.length * T);
  const weight = new Float32Array(rows.length * T);
  let lossTokens = 0;
  rows.forEach((row, i) => {
    input.set(batch.input.subarray(row * T, (row + 1) * T), i * T);
    target.set(batch.target.subarray(row * T, (row + 1) * T), i * T);
    const w = batch.weight.subarray(row * T, (row + 1) * T);
    weight.set(w, i * T);
    for (const v of w) if (v > 0) lossTokens++;
  });
  const share = rows.length / batch.rows;
  return {
    rows: rows.length,
    seqLen: T,
    input,
    target,
    weight,
    tokens: Math.round(batch.tokens * share),
    lossTokens,
  };
}

/**
 * `parts` shards of contiguous rows; null where a part is empty (a short last batch). With
 * `paired`, rows come as B chosen then B rejected (DPO) and a shard takes matching ranges of
 * both, keeping each pair whole.
 */
export function splitBatch(
  batch: Batch,
  parts: number,
  paired: boolean,
  normaliser: Normaliser,
): Array<Shard | null> {
  if (parts === 1) return [{ batch, share: 1 }];
  const units = paired ? batch.rows / 2 : batch.rows;
  const total = normaliser(batch);
  const shards: Array<Shard | null> = [];
  for (let k = 0; k < parts; k++) {
    const from = Math.ceil((k * units) / parts);
    const to = Math.ceil(((k + 1) * units) / parts);
    if (to <= from) {
      shards.push(null);
      continue;
    }
    const rows: number[] = [];
    for (let r = from; r < to; r++) rows.push(r);
    if (paired) for (let r = from; r < to; r++) rows.push(units + r);
    const shard = pickRows(batch, rows);
    const part = normaliser(shard);
    shards.push(part > 0 && total > 0 ? { batch: shard, share: part / total } : null);
  }
  return shards;
}
