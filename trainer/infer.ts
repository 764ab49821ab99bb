/**
 * Talk to a trained model: `npm run infer -- --checkpoint out/r1 --prompt "Where does Nuvo live?"`.
 * The prompt goes through the chat template, the reply streams to stdout token by token, and a
 * key/value cache makes each new token cost one position. `--interactive` keeps a conversation.
 * Everything but the reply goes to stderr, so `infer … > reply.txt` captures just the text.
 */
import { createInterface } from "node:readline";
import type { Options } from "yargs";
import { UserError } from "../lib/cli/errors.ts";
import { parseSnakeCaseFlags } from "../lib/cli/flags.ts";
import { runMain } from "../lib/cli/main.ts";
import { Rng } from "../lib/rng/index.ts";
import { BACKEND_CHOICES, type BackendChoice } from "../lib/stages/args.ts";
import { loadBackend } from "./backend/load.ts";
import { type ChatMessage, renderPrompt } from "./data/chat-template.ts";
import { loadTokenizer, type Tokenizer } from "./data/tokenizer.ts";
import { generate } from "./eval/generate.ts";
import type { SamplingOptions } from "./eval/sampling.ts";
import { loadModelForInference } from "./inference/load-model.ts";
import { MiniMind } from "./model/minimind.ts";

interface InferArgs {
  checkpoint: string;
  prompt: string;
  system: string;
  chat: boolean;
  interactive: boolean;
  max_new_tokens: number;
  temperature: number;
  top_p: number;
  seed: number;
  backend: BackendChoice;
  tokenizer: string;
  num_attention_heads: number;
  max_seq_len: number;
}

const OPTIONS = {
  checkpoint: {
    type: "string",
    demandOption: true,
    describe: "a step checkpoint, a stage folder (its latest valid checkpoint) or a weights file",
  },
  prompt: { type: "string", default: "", describe: "the user message to answer" },
  system: { type: "string", default: "", describe: "a system message before it" },
  chat: {
    type: "boolean",
    default: true,
    describe: "apply the chat template (--no-chat: continue the prompt as raw text)",
  },
  interactive: { type: "boolean", default: false, describe: "chat in the terminal" },
  max_new_tokens: { type: "number", default: 256, describe: "tokens to generate at most per reply" },
  temperature: { type: "number", default: 0, describe: "sampling temperature; 0 = greedy" },
  top_p: { type: "number", default: 0.85, describe: "nucleus sampling: keep this much probability mass" },
  seed: { type: "number", default: 42, describe: "sampling seed (same seed, same reply)" },
  backend: { choices: BACKEND_CHOICES, default: "auto" as BackendChoice },
  tokenizer: {
    type: "string",
    default: "",
    describe: "tokenizer.json [default: the checkpoint's, else byte-level]",
  },
  num_attention_heads: {
    type: "number",
    default: 4,
    describe: "attention heads of a bare weights file (checkpoints record it)",
  },
  max_seq_len: {
    type: "number",
    default: 0,
    describe: "context length [default: the checkpoint's training length; 128 for a bare file]",
  },
} satisfies Record<string, Options>;

function parseArgs(argv: string[]): InferArgs {
  const parsed = parseSnakeCaseFlags(
    argv,
    "infer",
    "$0 --checkpoint <step dir | stage dir | weights.safetensors> (--prompt <text> | --interactive)",
    OPTIONS,
  ) as unknown as InferArgs;
  const checks: Array<[keyof InferArgs, boolean, string]> = [
    [
      "max_new_tokens",
      Number.isInteger(parsed.max_new_tokens) && parsed.max_new_tokens >= 1,
      "a whole number ≥ 1",
    ],
    ["temperature", parsed.temperature >= 0, "a number ≥ 0"],
    ["top_p", parsed.top_p > 0 && parsed.top_p <= 1, "a number in (0, 1]"],
    ["seed", Number.isSafeInteger(parsed.seed) && parsed.seed >= 0, "a whole number ≥ 0"],
    [
      "num_attention_heads",
      Number.isInteger(parsed.num_attention_heads) && parsed.num_attention_heads >= 1,
      "a whole number ≥ 1",
    ],
    ["max_seq_len", Number.isInteger(parsed.max_seq_len) && parsed.max_seq_len >= 0, "a whole number ≥ 0"],
  ];
  for (const [name, ok, expected] of checks) {
    if (!ok) throw new UserError(`--${name} ${String(parsed[name])}: expected ${expected}`);
  }
  if (!parsed.interactive && !parsed.prompt) throw new UserError("give --prompt <text> or --interactive");
  return parsed;
}

const info = (message: string) => process.stderr.write(`[infer] ${message}\n`);

/** Prompt ids for a conversation, oldest turns dropped (system kept) until it leaves room to reply. */
function promptIds(
  messages: ChatMessage[],
  args: InferArgs,
  tokenizer: Tokenizer,
  context: number,
): number[] {
  if (!args.chat) return [tokenizer.bosId, ...tokenizer.encode(messages.map((m) => m.content).join("\n"))];
  const turns = [...messages];
  for (;;) {
    const ids = tokenizer.encode(renderPrompt(turns));
    if (ids.length < context) return ids;
    const first = turns.findIndex((m) => m.role !== "system");
    if (first < 0 || turns.length - first <= 1) {
      throw new UserError(
        `the prompt is ${ids.length} tokens; the model's context is ${context} (see --max_seq_len)`,
      );
    }
    turns.splice(first, turns[first + 1]?.role === "assistant" ? 2 : 1);
  }
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const loaded = await loadModelForInference(
    args.checkpoint,
    { numAttentionHeads: args.num_attention_heads, maxSeqLen: args.max_seq_len },
    (m) => process.stderr.write(`warning: ${m}\n`),
  );
  const savedTokenizer = loaded.state?.args?.tokenizer;
  const tokenizer = await loadTokenizer(
    args.tokenizer || (typeof savedTokenizer === "string" ? savedTokenizer : ""),
  );
  if (typeof loaded.state?.tokenizer === "string" && loaded.state.tokenizer !== tokenizer.id) {
    throw new UserError(
      `${loaded.source} was trained with tokenizer ${loaded.state.tokenizer}, this run uses ${tokenizer.id} (see --tokenizer)`,
    );
  }
  if (tokenizer.vocabSize > loaded.config.vocab_size) {
    throw new UserError(
      `the tokenizer has ${tokenizer.vocabSize} tokens, the model only ${loaded.config.vocab_size} (see --tokenizer)`,
    );
  }
  const backend = await loadBackend(args.backend);
  const model = new MiniMind(loaded.config, loaded.weights);
  const c = loaded.config;
  info(
    `${loaded.source}: hidden ${c.hidden_size}, ${c.num_hidden_layers} layers, context ${c.max_position_embeddings}; ${backend.description}`,
  );

  const sampling: SamplingOptions = {
    temperature: args.temperature,
    topP: args.top_p,
    rng: Rng.fromSeed(args.seed, "sample"),
  };
  /** Generate one reply, streaming it to stdout; returns its text. */
  const reply = async (
    messages: ChatMessage[],
  ): Promise<{ text: string; tokens: number; seconds: number }> => {
    const prompt = promptIds(messages, args, tokenizer, c.max_position_embeddings);
    const decoder = tokenizer.streamDecoder();
    let text = "";
    let tokens = 0;
    const started = performance.now();
    await generate(model, [prompt], {
      maxNewTokens: args.max_new_tokens,
      stopIds: [tokenizer.eosId],
      sampling,
      onToken: (_, id) => {
        tokens++;
        if (id === tokenizer.eosId) return;
        const piece = decoder.push(id);
        text += piece;
        process.stdout.write(piece);
      },
    });
    const rest = decoder.flush();
    text += rest;
    process.stdout.write(`${rest}\n`);
    return { text, tokens, seconds: (performance.now() - started) / 1000 };
  };

  const system: ChatMessage[] = args.system ? [{ role: "system", content: args.system }] : [];
  if (!args.interactive) {
    const { tokens, seconds } = await reply([...system, { role: "user", content: args.prompt }]);
    info(`${tokens} tokens in ${seconds.toFixed(2)} s (${(tokens / seconds).toFixed(1)} tokens/s)`);
    model.dispose();
    return 0;
  }

  info("interactive chat: type a message; /reset forgets the conversation, /exit or Ctrl+D quits");
  const history: ChatMessage[] = [...system];
  const lines = createInterface({
    input: process.stdin,
    output: process.stderr,
    terminal: process.stdin.isTTY,
  });
  const ask = () => process.stderr.write("> ");
  const pending = args.prompt ? [args.prompt] : [];
  const handle = async (line: string): Promise<boolean> => {
    const text = line.trim();
    if (text === "/exit" || text === "/quit") return false;
    if (text === "/reset") {
      history.splice(system.length);
      info("conversation cleared");
    } else if (text) {
      history.push({ role: "user", content: text });
      const answer = await reply(history);
      history.push({ role: "assistant", content: answer.text });
    }
    return true;
  };
  for (const line of pending) {
    process.stderr.write(`> ${line}\n`);
    await handle(line);
  }
  ask();
  for await (const line of lines) {
    if (!(await handle(line))) break;
    ask();
  }
  lines.close();
  model.dispose();
  return 0;
}

runMain("infer", main);
