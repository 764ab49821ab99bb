/**
 * A Hugging Face `tokenizer.json` behind Baton's Tokenizer interface, through the pure-JS
 * @huggingface/tokenizers (loads MiniMind's 6400-token BPE as is).
 */
import { createHash } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { describeFsError, UserError } from "../../lib/cli/errors.ts";
import { BOS_TOKEN, EOS_TOKEN, PAD_TOKEN, type StreamDecoder, type Tokenizer } from "./tokens.ts";

const DECODE_OPTIONS = { skip_special_tokens: false, clean_up_tokenization_spaces: false };

/** `tokenizer_config.json` names tokens either as strings or as `{"content": …}`. */
function tokenName(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (value && typeof value === "object" && typeof (value as { content?: unknown }).content === "string") {
    return (value as { content: string }).content;
  }
  return undefined;
}

async function readJson(path: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    throw new UserError(`${path}: cannot read ${what} (${describeFsError(error)})`);
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new UserError(`${path}: invalid JSON in ${what} (${(error as Error).message})`);
  }
}

class HuggingFaceTokenizer implements Tokenizer {
  readonly id: string;
  readonly vocabSize: number;
  readonly padId: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly #inner: HfTokenizer;

  constructor(inner: HfTokenizer, id: string, ids: { pad: number; bos: number; eos: number }) {
    this.#inner = inner;
    this.id = id;
    let maxId = -1;
    for (const tokenId of inner.get_vocab(true).values()) maxId = Math.max(maxId, tokenId);
    this.vocabSize = maxId + 1;
    this.padId = ids.pad;
    this.bosId = ids.bos;
    this.eosId = ids.eos;
  }

  encode(text: string): number[] {
    return this.#inner.encode(text, { add_special_tokens: false }).ids;
  }

  decode(ids: ArrayLike<number>): string {
    // The library refuses an empty list; an empty decode is simply "".
    return ids.length === 0 ? "" : this.#inner.decode(Array.from(ids), DECODE_OPTIONS);
  }

  /**
   * Byte-level BPE tokens can end mid-character, and some decoders look at neighbours (spaces),
   * so decode a short window of ids and emit only what grew past the already-emitted prefix,
   * holding back text that ends in U+FFFD (the incremental scheme text-generation-inference uses).
   */
  streamDecoder(): StreamDecoder {
    const ids: number[] = [];
    let prefixOffset = 0;
    let readOffset = 0;
    const step = (final: boolean): string => {
      const prefix = this.decode(ids.slice(prefixOffset, readOffset));
      const full = this.decode(ids.slice(prefixOffset));
      if (full.length <= prefix.length || (!final && full.endsWith("\uFFFD"))) return "";
      prefixOffset = readOffset;
      readOffset = ids.length;
      return full.slice(prefix.length);
    };
    return {
      push: (id) => {
        ids.push(id);
        return step(false);
      },
      flush: () => step(true),
    };
  }

  tokenToId(token: string): number | undefined {
    return this.#inner.token_to_id(token);
  }
}

/** Load `path` (a tokenizer.json) and, if present, the tokenizer_config.json beside it. */
export async function loadHfTokenizer(path: string): Promise<Tokenizer> {
  try {
    if ((await stat(path)).isDirectory())
      throw new UserError(`${path}: is a directory, expected a tokenizer.json file`);
  } catch (error) {
    if (error instanceof UserError) throw error;
    throw new UserError(`${path}: cannot read tokenizer (${describeFsError(error)})`);
  }
  const bytes = await readFile(path);
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString("utf8"));
  } catch (error) {
    throw new UserError(`${path}: invalid JSON in tokenizer file (${(error as Error).message})`);
  }
  if (!json || typeof json !== "object" || !("model" in json)) {
    throw new UserError(`${path}: not a Hugging Face tokenizer.json (no "model" field)`);
  }
  const configPath = join(dirname(path), "tokenizer_config.json");
  const config = (await stat(configPath).catch(() => null))
    ? await readJson(configPath, "tokenizer config")
    : {};
  const configObject = (config && typeof config === "object" ? config : {}) as Record<string, unknown>;

  let inner: HfTokenizer;
  try {
    inner = new HfTokenizer(json, configObject);
  } catch (error) {
    throw new UserError(`${path}: cannot load tokenizer (${(error as Error).message})`);
  }
  const idOf = (key: string, fallback: string): number => {
    const name = tokenName(configObject[key]) ?? fallback;
    const id = inner.token_to_id(name);
    if (id === undefined) {
      throw new UserError(
        `${path}: the tokenizer has no ${name} token (Baton's chat template needs ${PAD_TOKEN}, ${BOS_TOKEN} and ${EOS_TOKEN})`,
      );
    }
    return id;
  };
  const ids = {
    pad: idOf("pad_token", PAD_TOKEN),
    bos: idOf("bos_token", BOS_TOKEN),
    eos: idOf("eos_token", EOS_TOKEN),
  };
  // Named by content, not path, so the same tokenizer copied elsewhere still resumes.
  const id = `hf-${createHash("sha256").update(bytes).digest("hex").slice(0, 16)}`;
  return new HuggingFaceTokenizer(inner, id, ids);
}
