/**
 * Tokenizers. The default is a byte-level tokenizer with MiniMind's special tokens, so Baton runs
 * with no vocabulary file at all; a Hugging Face `tokenizer.json` (MiniMind's own, say) can be
 * plugged in through `loadTokenizer(path)`.
 */

import { SPECIAL_TOKENS, type StreamDecoder, type Tokenizer } from "./tokens.ts";

export * from "./tokens.ts";

const BYTE_OFFSET = SPECIAL_TOKENS.length;

/** `a|b|c` matching any special string, longest first so no special hides a longer one. */
function specialsPattern(specials: readonly string[]): RegExp {
  const escaped = [...specials]
    .sort((a, b) => b.length - a.length)
    .map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  return new RegExp(escaped.join("|"), "g");
}

/**
 * ids 0..6 are SPECIAL_TOKENS, ids 7..262 the bytes 0x00..0xff. Every string round-trips, and
 * every id sequence decodes (invalid UTF-8 becomes U+FFFD).
 */
export class ByteTokenizer implements Tokenizer {
  readonly id = "byte-v1";
  readonly vocabSize = BYTE_OFFSET + 256;
  readonly padId = 0;
  readonly bosId = 1;
  readonly eosId = 2;
  readonly #specialIds = new Map<string, number>(SPECIAL_TOKENS.map((token, id) => [token, id]));
  readonly #pattern = specialsPattern(SPECIAL_TOKENS);

  encode(text: string): number[] {
    const ids: number[] = [];
    const pushBytes = (part: string) => {
      for (const byte of Buffer.from(part, "utf8")) ids.push(byte + BYTE_OFFSET);
    };
    let last = 0;
    for (const match of text.matchAll(this.#pattern)) {
      pushBytes(text.slice(last, match.index));
      ids.push(this.#specialIds.get(match[0]) as number);
      last = match.index + match[0].length;
    }
    pushBytes(text.slice(last));
    return ids;
  }

  decode(ids: ArrayLike<number>): string {
    const decoder = this.streamDecoder();
    let text = "";
    for (let i = 0; i < ids.length; i++) text += decoder.push(ids[i]);
    return text + decoder.flush();
  }

  streamDecoder(): StreamDecoder {
    const utf8 = new TextDecoder("utf-8");
    const one = new Uint8Array(1);
    return {
      push: (id) => {
        if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
          throw new RangeError(
            `token id ${id} is outside the byte tokenizer's vocabulary (0..${this.vocabSize - 1})`,
          );
        }
        if (id < BYTE_OFFSET) return utf8.decode() + SPECIAL_TOKENS[id];
        one[0] = id - BYTE_OFFSET;
        return utf8.decode(one, { stream: true });
      },
      flush: () => utf8.decode(),
    };
  }

  tokenToId(token: string): number | undefined {
    const special = this.#specialIds.get(token);
    if (special !== undefined) return special;
    const bytes = Buffer.from(token, "utf8");
    return bytes.length === 1 ? bytes[0] + BYTE_OFFSET : undefined;
  }
}

/**
 * The byte tokenizer when `path` is null/undefined/"", else the Hugging Face `tokenizer.json` at
 * `path` (with `tokenizer_config.json` beside it, if present). Throws UserError for a bad file.
 */
export async function loadTokenizer(path: string | null | undefined): Promise<Tokenizer> {
  if (!path) return new ByteTokenizer();
  const { loadHfTokenizer } = await import("./hf-tokenizer.ts");
  return loadHfTokenizer(path);
}
