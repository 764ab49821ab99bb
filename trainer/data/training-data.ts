/**
 * A stage's data, opened from its flags: the tokenizer, the indexed JSONL file, the held-out split
 * and the sample encoder — plus the check that the data trains anything at --max_seq_len.
 */
import { UserError } from "../../lib/cli/errors.ts";
import type { TrainerArgs } from "../../lib/stages/args.ts";
import { type JsonlDataset, openDataset } from "./dataset.ts";
import type { DataFormat } from "./records.ts";
import { SampleEncoder } from "./samples.ts";
import { loadTokenizer, type Tokenizer } from "./tokenizer.ts";

export interface TrainingData<F extends DataFormat> {
  format: F;
  tokenizer: Tokenizer;
  encoder: SampleEncoder<F>;
  dataset: JsonlDataset<F>;
  /** Record indices of `dataset` that are trained on (everything but the held-out tail). */
  trainIndices: Uint32Array;
  /** Held-out record indices of `evalDataset` (none with --eval false). */
  evalIndices: Uint32Array;
  evalDataset: JsonlDataset<F>;
}

/** Records checked for loss tokens at start: enough to be sure, cheap on a file of millions. */
const CHECKED_RECORDS = 2000;
/** A context long enough to find where any sample's first learned token is. */
const UNBOUNDED_SEQ_LEN = 1 << 16;

export async function openTrainingData<F extends DataFormat>(
  args: TrainerArgs,
  format: F,
  warn: (message: string) => void,
): Promise<TrainingData<F>> {
  const tokenizer = await loadTokenizer(args.tokenizer || null);
  const options = { skipBadLines: args.skip_bad_lines, onWarning: warn };
  const dataset = await openDataset(args.data_path, format, options);
  const evalDataset = args.eval_path ? await openDataset(args.eval_path, format, options) : dataset;
  const held = args.eval_path ? 0 : Math.min(args.eval_size, Math.floor(dataset.length / 2));
  const split = dataset.split(held);
  const evalIndices = !args.eval
    ? new Uint32Array(0)
    : args.eval_path
      ? evalDataset.split(0).train
      : split.eval;
  if (split.train.length === 0) throw new UserError(`${args.data_path}: no records left to train on`);
  const encoder = new SampleEncoder(format, tokenizer, {
    maxSeqLen: args.max_seq_len,
    specialTokenWeight:
      typeof args.extra.special_token_weight === "number" ? args.extra.special_token_weight : undefined,
  });
  const data = { format, tokenizer, encoder, dataset, evalDataset, trainIndices: split.train, evalIndices };
  checkLossTokens(data, args, warn);
  return data;
}

/**
 * Samples whose learned tokens (assistant turns, DPO replies) all lie beyond --max_seq_len train
 * nothing. Some: a warning with the count. All of the records checked: a bad-input error naming
 * the length that would keep at least the first learned token of every one of them.
 */
function checkLossTokens<F extends DataFormat>(
  data: TrainingData<F>,
  args: TrainerArgs,
  warn: (m: string) => void,
): void {
  if (data.format === "pretrain") return;
  const indices = data.trainIndices;
  const stride = Math.max(1, Math.floor(indices.length / CHECKED_RECORDS));
  const full = new SampleEncoder(data.format, data.tokenizer, { maxSeqLen: UNBOUNDED_SEQ_LEN });
  let checked = 0;
  let empty = 0;
  let needed = 0;
  for (let i = 0; i < indices.length; i += stride) {
    const record = data.dataset.readRecord(indices[i] as number);
    checked++;
    const cut = data.encoder.encode(record).some((sample) => !sample.weight.some((w) => w > 0));
    if (!cut) continue;
    empty++;
    for (const sample of full.encode(record)) {
      const first = sample.weight.findIndex((w) => w > 0);
      if (first !== -1) needed = Math.max(needed, first + 2);
    }
  }
  if (empty === 0) return;
  const what = data.format === "dpo" ? "a reply with no token" : "no assistant token";
  if (empty === checked) {
    throw new UserError(
      `--max_seq_len ${args.max_seq_len} cuts off every learned token in ${args.data_path} ` +
        `(${checked} records checked): nothing would be trained; use --max_seq_len ${needed} or more`,
    );
  }
  warn(
    `${empty} of ${checked} records checked in ${args.data_path} have ${what} within --max_seq_len ${args.max_seq_len} ` +
      `and train nothing (--max_seq_len ${needed} keeps them)`,
  );
}
