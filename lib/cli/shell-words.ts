/** Environment variables that hold command-line words (PRETRAIN_ARGS, SBATCH_ARGS). */
import { UserError } from "./errors.ts";

/**
 * Split an environment variable such as PRETRAIN_ARGS into words the way a POSIX shell would
 * (whitespace separates; '…' and "…" group; backslash escapes), without expanding anything.
 */
export function splitShellWords(text: string, source: string): string[] {
  const words: string[] = [];
  let word = "";
  let inWord = false;
  let quote: "'" | '"' | null = null;
  for (let i = 0; i < text.length; i++) {
    const char = text[i] as string;
    if (quote === "'") {
      if (char === "'") quote = null;
      else word += char;
    } else if (quote === '"') {
      if (char === '"') quote = null;
      else if (char === "\\" && i + 1 < text.length && '"\\$`'.includes(text[i + 1] as string))
        word += text[++i];
      else word += char;
    } else if (char === "'" || char === '"') {
      quote = char;
      inWord = true;
    } else if (char === "\\" && i + 1 < text.length) {
      word += text[++i];
      inWord = true;
    } else if (/\s/.test(char)) {
      if (inWord) words.push(word);
      word = "";
      inWord = false;
    } else {
      word += char;
      inWord = true;
    }
  }
  if (quote !== null)
    throw new UserError(`${source}: unterminated ${quote} quote in ${JSON.stringify(text)}`);
  if (inWord) words.push(word);
  return words;
}
