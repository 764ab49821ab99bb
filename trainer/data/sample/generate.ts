/**
 * The embedded sample data set: four small MiniMind-format files about the closed world in
 * world.ts, generated deterministically (byte-identical on every run) — `npm run data [-- --out dir]`
 * (data/generate.ts) writes them to the repository's data/ folder, and trainers do on first use.
 *
 * Each file ends with a held-out tail (about 10%) meant for `split(heldOut)`: in SFT, DPO and R1
 * the tail asks only about facts whose questions never appear earlier in that file (the facts
 * themselves are stated in pretrain), so exact match on the tail measures generalisation; the
 * pretrain tail is new combinations of sentences whose facts appear earlier.
 */
import { access, mkdir } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { writeFileAtomic } from "../../../lib/fs/atomic.ts";
import { STAGE_NAMES, STAGES, type StageName } from "../../../lib/stages/table.ts";
import type { ChatMessage } from "../chat-template.ts";
import { renderChat } from "../chat-template.ts";
import { ByteTokenizer } from "../tokenizer.ts";
import type { Fact, Random } from "./world.ts";
import { buildWorld, pick, seededRandom, shuffle } from "./world.ts";

/** Seed of the world and of every shuffle: change it and every file changes. */
export const SAMPLE_SEED = 20240828;
/** Every sample, rendered and tokenized by the byte tokenizer, fits in this many tokens. */
export const SAMPLE_MAX_TOKENS = 120;
const HELD_OUT_FRACTION = 0.1;
const PRETRAIN_COMBOS = 2200;
const PRETRAIN_TAIL = 300;
const SYSTEM_PROMPT = "Answer in one word.";

/** The repository's data/ folder, where the trainers look by default. */
export const DEFAULT_DATA_DIR = fileURLToPath(new URL("../../../data", import.meta.url));

export interface SampleFile {
  stage: StageName;
  /** MiniMind's file name for the stage (pretrain_hq.jsonl, …). */
  name: string;
  lines: string[];
  /** Length of the held-out tail: pass it to `split()`. */
  heldOut: number;
}

export interface WrittenFile {
  stage: StageName;
  path: string;
  lines: number;
  heldOut: number;
  bytes: number;
}

const tokenizer = new ByteTokenizer();

function checkedChat(messages: ChatMessage[]): ChatMessage[] {
  const tokens = tokenizer.encode(renderChat(messages)).length;
  if (tokens > SAMPLE_MAX_TOKENS)
    throw new Error(`sample too long (${tokens} tokens): ${JSON.stringify(messages)}`);
  return messages;
}

function fitsChat(messages: ChatMessage[]): boolean {
  return tokenizer.encode(renderChat(messages)).length <= SAMPLE_MAX_TOKENS;
}

function qa(question: string, answer: string): ChatMessage[] {
  return [
    { role: "user", content: question },
    { role: "assistant", content: answer },
  ];
}

/** Two distinct questions of a fact, chosen at random. */
function twoQuestions(random: Random, fact: Fact): string[] {
  return shuffle(random, [...fact.questions]).slice(0, 2);
}

function jsonLines(records: unknown[]): string[] {
  return records.map((r) => JSON.stringify(r));
}

/** Pick ~10% of person facts and ~10% of arithmetic facts to hold out. */
function splitFacts(random: Random, facts: Fact[]): { train: Fact[]; held: Fact[] } {
  const held = new Set<Fact>();
  for (const kind of [(f: Fact) => !/^(sum|diff):/.test(f.key), (f: Fact) => /^(sum|diff):/.test(f.key)]) {
    const group = shuffle(random, facts.filter(kind));
    for (const f of group.slice(0, Math.round(group.length * HELD_OUT_FRACTION))) held.add(f);
  }
  return { train: facts.filter((f) => !held.has(f)), held: facts.filter((f) => held.has(f)) };
}

function pretrainLines(random: Random, facts: Fact[]): SampleFile {
  const singles = facts.flatMap((f) => f.statements);
  const combo = () => {
    let text = pick(random, singles);
    for (let k = 1 + Math.floor(random() * 2); k > 0; k--) {
      const next = `${text} ${pick(random, singles)}`;
      if (Buffer.byteLength(next) + 2 <= SAMPLE_MAX_TOKENS) text = next;
    }
    return text;
  };
  const seen = new Set(singles);
  const train = [...singles];
  while (train.length < singles.length + PRETRAIN_COMBOS) train.push(combo());
  for (const t of train) seen.add(t);
  const tail: string[] = [];
  while (tail.length < PRETRAIN_TAIL) {
    const text = combo();
    if (!text.includes(" ") || seen.has(text)) continue;
    seen.add(text);
    tail.push(text);
  }
  const lines = jsonLines([...shuffle(random, train), ...tail].map((text) => ({ text })));
  return { stage: "pretrain", name: STAGES.pretrain.dataFile, lines, heldOut: tail.length };
}

function sftLines(random: Random, train: Fact[], held: Fact[]): SampleFile {
  const records: ChatMessage[][] = [];
  for (const f of train) for (const q of f.questions) records.push(qa(q, f.answer));
  for (let i = 0; i < 60; i++) {
    const f = pick(random, train);
    records.push([{ role: "system", content: SYSTEM_PROMPT }, ...qa(pick(random, f.questions), f.answer)]);
  }
  for (let made = 0, tries = 0; made < 80 && tries < 10_000; tries++) {
    const [a, b] = [pick(random, train), pick(random, train)];
    const talk = [...qa(pick(random, a.questions), a.answer), ...qa(pick(random, b.questions), b.answer)];
    if (a !== b && fitsChat(talk)) {
      records.push(talk);
      made++;
    }
  }
  const tail = shuffle(
    random,
    held.flatMap((f) => f.questions.map((q) => qa(q, f.answer))),
  );
  const all = [...shuffle(random, records), ...tail].map((conversations) => ({
    conversations: checkedChat(conversations),
  }));
  return { stage: "sft", name: STAGES.sft.dataFile, lines: jsonLines(all), heldOut: tail.length };
}

/**
 * Preference pairs that teach something SFT did not: answer in a full sentence that states the
 * fact (chosen) rather than with a bare, wrong word (rejected). The style part carries over to
 * questions the model has never been asked, so held-out preference accuracy can rise.
 */
function dpoLines(random: Random, train: Fact[], held: Fact[]): SampleFile {
  const pairs = (facts: Fact[]) =>
    facts.flatMap((f) =>
      twoQuestions(random, f).map((q) => ({
        chosen: checkedChat(qa(q, pick(random, f.statements))),
        rejected: checkedChat(qa(q, pick(random, f.wrong))),
      })),
    );
  const body = shuffle(random, pairs(train));
  const tail = shuffle(random, pairs(held));
  return {
    stage: "dpo",
    name: STAGES.dpo.dataFile,
    lines: jsonLines([...body, ...tail]),
    heldOut: tail.length,
  };
}

function r1Lines(random: Random, train: Fact[], held: Fact[]): SampleFile {
  const reasoned = (facts: Fact[]) =>
    facts.flatMap((f) =>
      twoQuestions(random, f).map((q) => ({
        conversations: checkedChat(qa(q, `<think>${f.thought}</think>\n<answer>${f.answer}</answer>`)),
      })),
    );
  const body = shuffle(random, reasoned(train));
  const tail = shuffle(random, reasoned(held));
  return {
    stage: "r1",
    name: STAGES.r1.dataFile,
    lines: jsonLines([...body, ...tail]),
    heldOut: tail.length,
  };
}

/** The four files, in memory. Pure: the same result on every call. */
export function buildSampleData(): SampleFile[] {
  const random = seededRandom(SAMPLE_SEED);
  const facts = buildWorld(SAMPLE_SEED);
  const { train, held } = splitFacts(random, facts);
  for (const text of facts.flatMap((f) => f.statements)) {
    if (Buffer.byteLength(text) + 2 > SAMPLE_MAX_TOKENS) throw new Error(`statement too long: ${text}`);
  }
  return [
    pretrainLines(random, facts),
    sftLines(random, train, held),
    dpoLines(random, train, held),
    r1Lines(random, train, held),
  ];
}

/** Where each stage's default data file lives in `dataDir`. */
export function defaultDataPaths(dataDir: string = DEFAULT_DATA_DIR): Record<StageName, string> {
  return Object.fromEntries(STAGE_NAMES.map((s) => [s, join(dataDir, STAGES[s].dataFile)])) as Record<
    StageName,
    string
  >;
}

/** Write the four files into `outDir` (created if needed), each atomically. */
export async function generateSampleData(outDir: string = DEFAULT_DATA_DIR): Promise<WrittenFile[]> {
  await mkdir(outDir, { recursive: true });
  const written: WrittenFile[] = [];
  for (const file of buildSampleData()) {
    const path = join(outDir, file.name);
    const content = Buffer.from(`${file.lines.join("\n")}\n`, "utf8");
    await writeFileAtomic(path, content);
    written.push({
      stage: file.stage,
      path,
      lines: file.lines.length,
      heldOut: file.heldOut,
      bytes: content.length,
    });
  }
  return written;
}

/** Generate the sample files into `dataDir` if any of them is missing; returns what was written, or null. */
export async function ensureSampleData(dataDir: string = DEFAULT_DATA_DIR): Promise<WrittenFile[] | null> {
  const paths = Object.values(defaultDataPaths(dataDir));
  const present = await Promise.all(
    paths.map((p) =>
      access(p).then(
        () => true,
        () => false,
      ),
    ),
  );
  return present.every(Boolean) ? null : generateSampleData(dataDir);
}

/** How many trailing records of each sample file are held out (no files needed). */
export function sampleHeldOut(): Record<StageName, number> {
  return Object.fromEntries(buildSampleData().map((f) => [f.stage, f.heldOut])) as Record<StageName, number>;
}
