import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { ChatMessage } from "../trainer/data/chat-template.ts";
import {
  AssistantMasker,
  encodeChat,
  MINIMIND_DEFAULT_SYSTEM_PROMPT,
  renderChat,
  renderPrompt,
} from "../trainer/data/chat-template.ts";
import { SampleEncoder } from "../trainer/data/samples.ts";
import { ByteTokenizer } from "../trainer/data/tokenizer.ts";

const tok = new ByteTokenizer();
const talk: ChatMessage[] = [
  { role: "system", content: "Be brief." },
  { role: "user", content: "Hi?" },
  { role: "assistant", content: "Yo." },
  { role: "user", content: "2+2?" },
  { role: "assistant", content: "4" },
];

/** The text of the tokens where `mask` is set, runs joined with "|". */
function maskedRuns(ids: ArrayLike<number>, mask: ArrayLike<number>): string {
  const runs: string[] = [];
  let run: number[] = [];
  for (let i = 0; i <= ids.length; i++) {
    if (i < ids.length && mask[i]) run.push(ids[i]);
    else if (run.length) {
      runs.push(tok.decode(run));
      run = [];
    }
  }
  return runs.join("|");
}

describe("chat template", () => {
  test("renders MiniMind's ChatML, with no default system prompt unless asked", () => {
    const two = talk.slice(1, 3);
    assert.equal(renderChat(two), "<|im_start|>user\nHi?<|im_end|>\n<|im_start|>assistant\nYo.<|im_end|>\n");
    assert.equal(renderPrompt(two.slice(0, 1)), "<|im_start|>user\nHi?<|im_end|>\n<|im_start|>assistant\n");
    const withDefault = renderChat(two, { defaultSystemPrompt: MINIMIND_DEFAULT_SYSTEM_PROMPT });
    assert.ok(
      withDefault.startsWith("<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user"),
    );
    // An explicit system message wins over the default.
    assert.equal(renderChat(talk, { defaultSystemPrompt: "X" }).indexOf("X"), -1);
  });

  test("mask covers exactly each assistant content + <|im_end|> + newline", () => {
    const { ids, mask } = encodeChat(talk, tok);
    assert.equal(tok.decode(ids), renderChat(talk));
    assert.equal(maskedRuns(ids, mask), "Yo.<|im_end|>\n|4<|im_end|>\n");
    const ones = mask.reduce((a, b) => a + b, 0);
    assert.equal(ones, 3 + 2 + 1 + 2);
  });

  test("a turn cut off by truncation is masked to the end; user text is never masked", () => {
    const masker = new AssistantMasker(tok);
    const ids = tok.encode("<|im_start|>user\nassistant\n<|im_end|>\n<|im_start|>assistant\nlong answ");
    assert.equal(maskedRuns(ids, masker.mask(ids)), "long answ");
  });
});

describe("samples", () => {
  test("pretrain: [bos] text [eos], input/target shifted by one, padding weighted 0", () => {
    const enc = new SampleEncoder("pretrain", tok, { maxSeqLen: 8 });
    const [s] = enc.encode({ text: "abc" });
    const a = tok.encode("abc");
    assert.deepEqual([...s.input], [1, ...a, 2, 0, 0, 0]);
    assert.deepEqual([...s.target], [...a, 2, 0, 0, 0, 0]);
    assert.deepEqual([...s.weight], [1, 1, 1, 1, 0, 0, 0, 0]);
    assert.equal(s.tokens, 5);
  });

  test("pretrain: a long text fills exactly maxSeqLen inputs and ends with eos as the last target", () => {
    const enc = new SampleEncoder("pretrain", tok, { maxSeqLen: 8 });
    const [s] = enc.encode({ text: "abcdefghijklmnop" });
    assert.equal(tok.decode(s.input), "<|im_start|>abcdefg");
    assert.equal(tok.decode(s.target), "abcdefg<|im_end|>");
    assert.ok(s.weight.every((w) => w === 1));
    assert.equal(s.tokens, 8);
  });

  test("sft: weights are the assistant mask shifted onto targets", () => {
    const enc = new SampleEncoder("sft", tok, { maxSeqLen: 128 });
    const [s] = enc.encode({ conversations: talk });
    const learned = [...s.target].filter((_, t) => s.weight[t] > 0);
    assert.equal(tok.decode(learned), "Yo.<|im_end|>\n4<|im_end|>\n");
    // The token before each weighted target is its context: the header's newline for the first.
    const first = s.weight.indexOf(1);
    assert.equal(tok.decode([s.input[first]]), "\n");
    assert.equal(tok.decode([s.target[first]]), "Y");
  });

  test("r1: reasoning tags weigh specialTokenWeight inside the mask, nowhere else", () => {
    const convo: ChatMessage[] = [
      { role: "user", content: "say <think>?" },
      { role: "assistant", content: "<think>a</think>\n<answer>b</answer>" },
    ];
    const enc = new SampleEncoder("r1", tok, { maxSeqLen: 64 });
    assert.deepEqual(enc.reasoningTagIds, [3, 4, 5, 6]);
    const [s] = enc.encode({ conversations: convo });
    const weighted = [...s.target]
      .map((id, t) => [tok.decode([id]), s.weight[t]] as const)
      .filter(([, w]) => w > 0);
    assert.deepEqual(weighted, [
      ["<think>", 10],
      ["a", 1],
      ["</think>", 10],
      ["\n", 1],
      ["<answer>", 10],
      ["b", 1],
      ["</answer>", 10],
      ["<|im_end|>", 1],
      ["\n", 1],
    ]);
    const custom = new SampleEncoder("r1", tok, { maxSeqLen: 64, specialTokenWeight: 3 });
    assert.equal(Math.max(...custom.encode({ conversations: convo })[0].weight), 3);
    // sft on the same conversation weighs tags like any token.
    assert.equal(
      Math.max(
        ...new SampleEncoder("sft", tok, { maxSeqLen: 64 }).encode({ conversations: convo })[0].weight,
      ),
      1,
    );
  });

  test("batch: rows laid out row-major, dpo as chosen rows then rejected rows, counts right", () => {
    const q = (a: string): ChatMessage[] => [
      { role: "user", content: "q" },
      { role: "assistant", content: a },
    ];
    const enc = new SampleEncoder("dpo", tok, { maxSeqLen: 32 });
    const batch = enc.batch([
      { chosen: q("A"), rejected: q("B") },
      { chosen: q("C"), rejected: q("D") },
    ]);
    assert.equal(batch.rows, 4);
    assert.equal(batch.input.length, 4 * 32);
    const answerOf = (row: number) =>
      tok.decode(batch.target.subarray(row * 32, (row + 1) * 32)).split("assistant\n")[1][0];
    assert.deepEqual([0, 1, 2, 3].map(answerOf), ["A", "C", "B", "D"]);
    const perRow = renderChat(q("A")).replace(/<\|im_(start|end)\|>/g, "#").length;
    assert.equal(batch.tokens, 4 * perRow);
    assert.equal(batch.lossTokens, 4 * 3);
  });
});
