/**
 * `--preset` (the pipeline's MODEL_PRESET): MiniMind's own model shapes, so a stage's weights load
 * into MiniMind's scripts (eval_llm.py, its API server) unchanged. Those scripts build the model from
 * `MiniMindConfig` defaults — 8 attention heads, 6400 tokens, the revision's key/value heads — and
 * take only the hidden size and layer count as flags, so the preset fixes everything else.
 * A preset sets defaults; a flag given explicitly wins.
 */
import { UserError } from "../cli/errors.ts";
import type { ModelRevision } from "./table.ts";

export interface ModelPreset {
  /** What MiniMind calls the model. */
  label: string;
  model_revision: ModelRevision;
  hidden_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  /** MiniMind's tokenizer.json has exactly this many tokens. */
  vocab_size: number;
  /** Where that revision's tokenizer.json is (MiniMind-3 changed the tokenizer, not its size). */
  tokenizer: string;
}

/** MiniMind's tokenizer: 6400 tokens, in every revision. */
export const MINIMIND_VOCAB_SIZE = 6400;

const MINIMIND2_TOKENIZER =
  "MiniMind2's model/tokenizer.json (https://github.com/jingyaogong/minimind as before its MiniMind-3 update of 2026-03-25)";
const MINIMIND3_TOKENIZER = "MiniMind-3's model/tokenizer.json (https://github.com/jingyaogong/minimind)";

export const MODEL_PRESETS = {
  "minimind2-small": {
    label: "MiniMind2-Small (26M)",
    model_revision: "minimind2",
    hidden_size: 512,
    num_hidden_layers: 8,
    num_attention_heads: 8,
    num_key_value_heads: 2,
    vocab_size: MINIMIND_VOCAB_SIZE,
    tokenizer: MINIMIND2_TOKENIZER,
  },
  minimind2: {
    label: "MiniMind2 (104M)",
    model_revision: "minimind2",
    hidden_size: 768,
    num_hidden_layers: 16,
    num_attention_heads: 8,
    num_key_value_heads: 2,
    vocab_size: MINIMIND_VOCAB_SIZE,
    tokenizer: MINIMIND2_TOKENIZER,
  },
  minimind3: {
    label: "MiniMind-3 (64M, its MiniMindConfig defaults)",
    model_revision: "minimind3",
    hidden_size: 768,
    num_hidden_layers: 8,
    num_attention_heads: 8,
    num_key_value_heads: 4,
    vocab_size: MINIMIND_VOCAB_SIZE,
    tokenizer: MINIMIND3_TOKENIZER,
  },
} as const satisfies Record<string, ModelPreset>;

export type PresetName = keyof typeof MODEL_PRESETS;
export const PRESET_NAMES = Object.keys(MODEL_PRESETS) as PresetName[];

/** The flags a preset sets, in the order --help lists them. */
export const PRESET_FLAGS = [
  "hidden_size",
  "num_hidden_layers",
  "num_attention_heads",
  "num_key_value_heads",
  "model_revision",
  "vocab_size",
] as const;

export type PresetFlag = (typeof PRESET_FLAGS)[number];

/** The preset's value of each flag it sets that was not given explicitly (nothing without a preset). */
export function presetDefaults(
  preset: PresetName | null,
  given: (flag: PresetFlag) => boolean,
): Partial<Pick<ModelPreset, PresetFlag>> {
  if (preset === null) return {};
  const values: ModelPreset = MODEL_PRESETS[preset];
  return Object.fromEntries(PRESET_FLAGS.filter((flag) => !given(flag)).map((flag) => [flag, values[flag]]));
}

export function isPresetName(value: unknown): value is PresetName {
  return typeof value === "string" && Object.hasOwn(MODEL_PRESETS, value);
}

/** A preset's weights only mean MiniMind's tokens with MiniMind's tokenizer: refuse it without one. */
export function requirePresetTokenizer(preset: PresetName, tokenizer: string): void {
  if (tokenizer) return;
  const p: ModelPreset = MODEL_PRESETS[preset];
  throw new UserError(
    `--preset ${preset} needs MiniMind's tokenizer (${p.vocab_size} tokens): pass --tokenizer <minimind>/model/tokenizer.json, ` +
      `${p.tokenizer}, with its tokenizer_config.json beside it`,
  );
}

/** The tokenizer given with a preset must be MiniMind's, by its size (checked once it is loaded). */
export function requirePresetVocabulary(preset: PresetName, tokenizer: string, vocabSize: number): void {
  const p: ModelPreset = MODEL_PRESETS[preset];
  if (vocabSize === p.vocab_size) return;
  throw new UserError(
    `--preset ${preset}: --tokenizer ${tokenizer} has ${vocabSize} tokens, MiniMind's has ${p.vocab_size} — pass ${p.tokenizer}`,
  );
}

/** `minimind2-small: MiniMind2-Small (26M), minimind2 512 × 8, 8 heads, 2 kv heads, vocab 6400; …` for --help. */
export function describePresets(): string {
  return PRESET_NAMES.map((name) => {
    const p: ModelPreset = MODEL_PRESETS[name];
    return (
      `${name}: ${p.label}, ${p.model_revision} ${p.hidden_size} × ${p.num_hidden_layers}, ` +
      `${p.num_attention_heads} heads, ${p.num_key_value_heads} kv heads, vocab ${p.vocab_size}`
    );
  }).join("; ");
}
