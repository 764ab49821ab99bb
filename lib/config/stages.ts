import { join } from "node:path";

/** The four training stages, in pipeline order (DESIGN §2). */
export const STAGE_NAMES = ["pretrain", "sft", "dpo", "r1"] as const;
export type StageName = (typeof STAGE_NAMES)[number];

export interface StageSpec {
  name: StageName;
  /** Entry script, relative to the repository root. */
  trainer: string;
  /** MiniMind's file name for the stage's data, looked up in DATA_DIR. */
  dataFile: string;
  /** Prefix of the legacy weights file `out/<prefix>_<hidden>.safetensors`. */
  legacyPrefix: string;
  /** The stage whose weights this one starts from (null: random init). */
  previous: StageName | null;
  /** Environment variables that override the stage folder, data file and extra trainer args. */
  env: { out: string; json: string; args: string };
}

export const STAGES: Record<StageName, StageSpec> = {
  pretrain: {
    name: "pretrain",
    trainer: "trainer/train_pretrain.ts",
    dataFile: "pretrain_hq.jsonl",
    legacyPrefix: "pretrain",
    previous: null,
    env: { out: "PRETRAIN_OUT", json: "PRETRAIN_JSON", args: "PRETRAIN_ARGS" },
  },
  sft: {
    name: "sft",
    trainer: "trainer/train_full_sft.ts",
    dataFile: "sft_mini_512.jsonl",
    legacyPrefix: "full_sft",
    previous: "pretrain",
    env: { out: "SFT_OUT", json: "SFT_JSON", args: "SFT_ARGS" },
  },
  dpo: {
    name: "dpo",
    trainer: "trainer/train_dpo.ts",
    dataFile: "dpo.jsonl",
    legacyPrefix: "rlhf",
    previous: "sft",
    env: { out: "DPO_OUT", json: "DPO_JSON", args: "DPO_ARGS" },
  },
  r1: {
    name: "r1",
    trainer: "trainer/train_distill_reason.ts",
    dataFile: "r1_mix_1024.jsonl",
    legacyPrefix: "reason",
    previous: "dpo",
    env: { out: "R1_OUT", json: "R1_JSON", args: "R1_ARGS" },
  },
};

export function isStageName(value: string): value is StageName {
  return (STAGE_NAMES as readonly string[]).includes(value);
}

/** `out/full_sft_512.safetensors`: the single weights file run.sh users know, beside the stage folders. */
export function legacyWeightsPath(outRoot: string, stage: StageName, hiddenSize: number): string {
  return join(outRoot, `${STAGES[stage].legacyPrefix}_${hiddenSize}.safetensors`);
}
