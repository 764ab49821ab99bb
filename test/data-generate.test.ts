import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { STAGES } from "../lib/stages/table.ts";
import type { JsonlDataset } from "../trainer/data/dataset.ts";
import { openDataset } from "../trainer/data/dataset.ts";
import type { ChatRecord, DataFormat } from "../trainer/data/records.ts";
import {
  buildSampleData,
  defaultDataPaths,
  generateSampleData,
  SAMPLE_MAX_TOKENS,
  SAMPLE_SEED,
} from "../trainer/data/sample/generate.ts";
import { buildWorld } from "../trainer/data/sample/world.ts";
import { SampleEncoder } from "../trainer/data/samples.ts";
import { ByteTokenizer } from "../trainer/data/tokenizer.ts";

let dirA: string;
let dirB: string;
before(async () => {
  dirA = await mkdtemp(join(tmpdir(), "baton-gen-a-"));
  dirB = await mkdtemp(join(tmpdir(), "baton-gen-b-"));
});
after(async () => {
  await rm(dirA, { recursive: true, force: true });
  await rm(dirB, { recursive: true, force: true });
});

const FORMAT: Record<string, DataFormat> = { pretrain: "pretrain", sft: "sft", dpo: "dpo", r1: "r1" };

describe("sample data generator", () => {
  test("writes byte-identical files on every run, quickly", async () => {
    const started = performance.now();
    const a = await generateSampleData(dirA);
    assert.ok(performance.now() - started < 2000);
    const b = await generateSampleData(dirB);
    assert.deepEqual(
      a.map((f) => f.path),
      Object.values(defaultDataPaths(dirA)),
    );
    for (let i = 0; i < a.length; i++) {
      assert.ok(
        (await readFile(a[i].path)).equals(await readFile(b[i].path)),
        `${a[i].path} differs between runs`,
      );
    }
    assert.deepEqual(
      a.map((f) => f.path.slice(dirA.length + 1)),
      ["pretrain_hq.jsonl", "sft_mini_512.jsonl", "dpo.jsonl", "r1_mix_1024.jsonl"],
    );
  });

  test("every file validates, has a ~10% held-out tail, and every sample fits 128 tokens untruncated", async () => {
    const tok = new ByteTokenizer();
    const files = await generateSampleData(dirA);
    for (const file of files) {
      const ds = await openDataset(file.path, FORMAT[file.stage], { onWarning: (m) => assert.fail(m) });
      assert.equal(ds.length, file.lines);
      assert.ok(
        file.heldOut >= ds.length * 0.05 && file.heldOut <= ds.length * 0.15,
        `${file.stage} tail ${file.heldOut}`,
      );
      ds.split(file.heldOut);
      const enc = new SampleEncoder(ds.format, tok, { maxSeqLen: 128 });
      for (let i = 0; i < ds.length; i++) {
        for (const sample of enc.encode(ds.readRecord(i) as never)) {
          assert.ok(
            sample.tokens <= SAMPLE_MAX_TOKENS,
            `${file.stage} record ${i} has ${sample.tokens} tokens`,
          );
          assert.ok(sample.weight.some((w) => w > 0));
        }
      }
      ds.close();
    }
  });

  test("SFT/DPO/R1 held-out questions never appear earlier in their file; their facts are in pretrain", async () => {
    const files = await generateSampleData(dirA);
    const pretrain = await readFile(files[0].path, "utf8");
    for (const file of files.slice(1)) {
      const ds = (await openDataset(file.path, FORMAT[file.stage])) as JsonlDataset<DataFormat>;
      const { train, eval: held } = ds.split(file.heldOut);
      const question = (i: number) => {
        const record = ds.readRecord(i) as ChatRecord & { chosen?: ChatRecord["conversations"] };
        return (record.conversations ?? record.chosen ?? [])
          .filter((m) => m.role === "user")
          .map((m) => m.content);
      };
      const seen = new Set([...train].flatMap(question));
      for (const i of held) {
        for (const q of question(i))
          assert.ok(!seen.has(q), `${file.stage}: held-out "${q}" appears earlier`);
      }
      ds.close();
    }
    // Every held-out SFT question's fact is stated, in some phrasing, in pretrain.
    const factOf = new Map(buildWorld(SAMPLE_SEED).flatMap((f) => f.questions.map((q) => [q, f] as const)));
    const sft = buildSampleData()[1];
    for (const line of sft.lines.slice(-sft.heldOut)) {
      const [q, a] = (JSON.parse(line) as ChatRecord).conversations.map((m) => m.content);
      const fact = factOf.get(q);
      assert.ok(fact && fact.answer === a, `held-out "${q}" → "${a}" is not a fact of the world`);
      assert.ok(
        fact.statements.some((st) => pretrain.includes(st)),
        `no pretrain line states ${fact.key}`,
      );
    }
  });

  test("R1 answers carry <think> and <answer>; the default paths are the stage table's names", () => {
    const r1 = buildSampleData()[3];
    for (const line of r1.lines) {
      const { conversations } = JSON.parse(line) as ChatRecord;
      assert.match(conversations[1].content, /^<think>[^<]+<\/think>\n<answer>[^<]+<\/answer>$/);
    }
    assert.equal(defaultDataPaths("/d").sft, join("/d", STAGES.sft.dataFile));
  });
});
