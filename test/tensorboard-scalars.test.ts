/*
 * Reading event files into scalar series exactly as TensorBoard's data provider does: against the
 * files TensorBoard's own writers made and what TensorBoard made of them (test/fixtures/tensorboard,
 * see its README), against a plain transcription of its accumulator, and for the cases the
 * fixtures do not cover (a first START after points, files without a version, bad records,
 * files read while they grow).
 */
import assert from "node:assert/strict";
import { appendFile, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { decodeEvent, encodeEvent, scalarOf, type TbEventInput } from "../lib/tensorboard/event-proto.ts";
import { scanEvent } from "../lib/tensorboard/event-scan.ts";
import { EventWriter } from "../lib/tensorboard/event-writer.ts";
import { type LogdirChange, LogdirScalars } from "../lib/tensorboard/logdir-scalars.ts";
import { RunLoader } from "../lib/tensorboard/run-loader.ts";
import { pyFloatRepr } from "../lib/tensorboard/tb-format.ts";
import { decodeRecords, encodeRecord } from "../lib/tensorboard/tfrecord.ts";
import { type Point, referenceScalars } from "./support/tensorboard-reference.ts";

const FIXTURES = join(import.meta.dirname, "fixtures", "tensorboard");

async function load(logdir: string): Promise<LogdirScalars> {
  const scalars = new LogdirScalars({ logdir, watch: false, reloadIntervalMs: 0 });
  await scalars.start();
  return scalars;
}

function pointsOf(scalars: LogdirScalars, run: string, tag: string): Point[] {
  return scalars.run(run)?.scalars.series(tag)?.points() ?? [];
}

/** run → tag → points of everything the board lists. */
function everything(scalars: LogdirScalars): Map<string, Map<string, Point[]>> {
  const all = new Map<string, Map<string, Point[]>>();
  for (const run of scalars.runNames()) {
    const tags = new Map<string, Point[]>();
    for (const { tag } of scalars.run(run)?.scalars.scalarTags() ?? [])
      tags.set(tag, pointsOf(scalars, run, tag));
    all.set(run, tags);
  }
  return all;
}

const sorted = <T>(map: Map<string, T>): Array<[string, T]> =>
  [...map.entries()].sort(([a], [b]) => (a < b ? -1 : 1));

function eventFile(events: TbEventInput[]): Buffer {
  return Buffer.concat(events.map((event) => encodeRecord(encodeEvent(event))));
}

const version = (wallTime = 1): TbEventInput => ({ wallTime, step: 0, fileVersion: "brain.Event:2" });
const start = (step: number, wallTime = 1): TbEventInput => ({
  wallTime,
  step,
  sessionLog: { status: "START" },
});
const scalar = (tag: string, step: number, value: number, wallTime = 10 + step): TbEventInput => ({
  wallTime,
  step,
  summary: { value: [{ tag, simpleValue: value }] },
});

describe("scalars as TensorBoard's data provider reads them", () => {
  let root: string;
  let caseNo = 0;
  const dir = async (...parts: string[]): Promise<string> => {
    const path = join(root, `case-${++caseNo}`, ...parts);
    await mkdir(path, { recursive: true });
    return path;
  };
  before(async () => {
    root = await mkdtemp(join(tmpdir(), "baton-scalars-"));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  for (const folder of ["resume", "writers"]) {
    it(`gives TensorBoard's own points for ${folder}/ (its *.provider.tsv), repr for repr`, async () => {
      const expected = new Map<string, string[]>();
      const [, ...rows] = (await readFile(join(FIXTURES, `${folder}.provider.tsv`), "utf8"))
        .trim()
        .split("\n");
      for (const row of rows) {
        const [run, tag, step, value, wallTime] = row.split("\t");
        const key = `${run}\t${tag}`;
        expected.set(key, [...(expected.get(key) ?? []), `${step}\t${value}\t${wallTime}`]);
      }
      const scalars = await load(join(FIXTURES, folder));
      const got = new Map<string, string[]>();
      for (const [run, tags] of everything(scalars)) {
        for (const [tag, points] of tags) {
          got.set(
            `${run}\t${tag}`,
            points.map(([w, s, v]) => `${s}\t${pyFloatRepr(v)}\t${pyFloatRepr(w)}`),
          );
        }
      }
      assert.deepEqual(sorted(got), sorted(expected));
      await scalars.close();
    });
  }

  it("keeps no_start's repeated steps and purges with_start's, as TensorBoard does", async () => {
    const scalars = await load(join(FIXTURES, "resume"));
    const steps = (run: string) => pointsOf(scalars, run, "train/loss").map((p) => p[1]);
    const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
    assert.deepEqual(steps("with_start"), range(1, 60));
    assert.deepEqual(steps("no_start"), [...range(1, 30), ...range(21, 60)]);
    assert.deepEqual(
      scalars.run("with_start")?.scalars.sessionStarts.map(({ step, purged }) => [step, purged]),
      [
        [1, 0],
        [21, 20], // steps 21..30 of loss and lr
      ],
    );
    assert.deepEqual(scalars.runNames(), ["with_start", "no_start"], "by first event time");
    await scalars.close();
  });

  it("agrees with a plain transcription of TensorBoard's accumulator on every fixture", async () => {
    for (const folder of ["resume", "writers"]) {
      const scalars = await load(join(FIXTURES, folder));
      const reference = await referenceScalars(join(FIXTURES, folder));
      // torch_new's tensors are float32 tensor_content-free float_val scalars: scalarOf reads them too.
      assert.deepEqual(
        sorted(new Map([...everything(scalars)].map(([r, t]) => [r, sorted(t)]))),
        sorted(new Map([...reference].map(([r, t]) => [r, sorted(t)]))),
      );
      await scalars.close();
    }
  });

  it("ignores a run's first START and purges at each later one", async () => {
    const run = await dir("run");
    const points = Array.from({ length: 10 }, (_, i) => scalar("loss", i + 1, i + 1));
    // Points before the first START stay: TensorBoard takes that START as the start of training.
    await writeFile(join(run, "events.out.tfevents.1.a"), eventFile([version(), ...points, start(5)]));
    const scalars = await load(run);
    assert.deepEqual(
      pointsOf(scalars, ".", "loss").map((p) => p[1]),
      [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
    );
    await scalars.close();

    await writeFile(
      join(run, "events.out.tfevents.2.b"),
      eventFile([version(), start(5), scalar("loss", 5, 50)]),
    );
    const again = await load(run);
    assert.deepEqual(
      pointsOf(again, ".", "loss").map((p) => [p[1], p[2]]),
      [
        [1, 1],
        [2, 2],
        [3, 3],
        [4, 4],
        [5, 50],
      ],
    );
    await again.close();
  });

  it("without a file version, a step going back purges only that event's tags", async () => {
    const run = await dir("old");
    const both = (step: number, value: number): TbEventInput => ({
      wallTime: step,
      step,
      summary: {
        value: [
          { tag: "a", simpleValue: value },
          { tag: "b", simpleValue: value },
        ],
      },
    });
    const events = [both(1, 1), both(2, 2), both(3, 3), scalar("a", 2, 20), start(1)];
    await writeFile(join(run, "events.out.tfevents.1.x"), eventFile(events));
    const scalars = await load(run);
    assert.deepEqual(
      pointsOf(scalars, ".", "a").map((p) => [p[1], p[2]]),
      [
        [1, 1],
        [2, 20],
      ],
    );
    assert.deepEqual(
      pointsOf(scalars, ".", "b").map((p) => p[1]),
      [1, 2, 3],
      "b was not in the event",
    );
    await scalars.close();
  });

  it("lists simple values and scalars-plugin tensors only, named as TensorBoard names them", async () => {
    const run = await dir("kinds");
    const tensor = (tag: string, plugin: string | null, value: number, displayName = ""): TbEventInput => ({
      wallTime: 5,
      step: 1,
      summary: {
        value: [
          {
            tag,
            tensor: { dtype: 2, tensorContent: Buffer.from(new Float64Array([value]).buffer) },
            ...(plugin === null ? {} : { metadata: { pluginData: { pluginName: plugin }, displayName } }),
          },
        ],
      },
    });
    const named: TbEventInput = {
      wallTime: 5,
      step: 1,
      summary: { value: [{ tag: "simple", simpleValue: 2, metadata: { displayName: "Pretty" } }] },
    };
    await writeFile(
      join(run, "events.out.tfevents.1.k"),
      eventFile([
        version(),
        tensor("t/scalar", "scalars", 0.25, "Shown"),
        tensor("t/histo", "histograms", 1),
        tensor("t/bare", null, 3),
        named,
        scalar("plain", 1, 7),
      ]),
    );
    const scalars = await load(run);
    assert.deepEqual(scalars.run(".")?.scalars.scalarTags(), [
      { tag: "t/scalar", displayName: "Shown", description: "" },
      { tag: "simple", displayName: "Pretty", description: "" },
      { tag: "plain", displayName: "plain", description: "" },
    ]);
    assert.deepEqual(pointsOf(scalars, ".", "t/scalar"), [[5, 1, 0.25]], "a float64 tensor_content scalar");
    await scalars.close();
  });

  it("decodes every fixture record as the reflection decoder does", async () => {
    const files = [
      "resume/with_start",
      "resume/no_start",
      "writers/torch_old",
      "writers/torch_new",
      "writers/tb_writer",
    ];
    let compared = 0;
    for (const folder of files) {
      const { readdir } = await import("node:fs/promises");
      for (const name of await readdir(join(FIXTURES, folder))) {
        const { records } = decodeRecords(await readFile(join(FIXTURES, folder, name)));
        for (const record of records) {
          const slow = decodeEvent(record);
          const fast = scanEvent(record);
          assert.equal(fast.wallTime, slow.wallTime);
          assert.equal(fast.step, slow.step);
          assert.equal(fast.fileVersion, slow.fileVersion);
          assert.equal(fast.sessionStatus === 1, slow.sessionLog?.status === "START");
          assert.deepEqual(
            (fast.values ?? []).map((v) => [v.tag, v.number, v.metadata?.pluginName ?? null]),
            (slow.summary?.value ?? []).map((v) => [
              v.tag,
              scalarOf(v),
              v.metadata?.pluginData?.pluginName ?? null,
            ]),
          );
          compared++;
        }
      }
    }
    assert.ok(compared > 190, `compared ${compared} records`);
  });

  it("reads scalar tensors of every numeric encoding, and refuses a payload that is no message", () => {
    const tensorEvent = (tensor: Record<string, unknown>) =>
      scanEvent(
        encodeEvent({
          wallTime: 1,
          step: 3,
          summary: { value: [{ tag: "t", tensor, metadata: { pluginData: { pluginName: "scalars" } } }] },
        } as TbEventInput),
      ).values?.[0]?.number;
    assert.equal(tensorEvent({ dtype: 1, floatVal: [0.5] }), 0.5);
    assert.equal(tensorEvent({ dtype: 2, doubleVal: [0.1] }), 0.1);
    assert.equal(
      tensorEvent({ dtype: 1, tensorContent: Buffer.from(new Float32Array([0.25]).buffer) }),
      0.25,
    );
    assert.equal(
      tensorEvent({ dtype: 2, tensorContent: Buffer.from(new Float64Array([1e-300]).buffer) }),
      1e-300,
    );
    assert.equal(tensorEvent({ dtype: 1, floatVal: [1, 2] }), undefined, "two numbers are not a scalar");
    assert.equal(tensorEvent({ dtype: 1, tensorShape: { dim: [{ size: 2 }] }, floatVal: [1] }), undefined);
    assert.equal(tensorEvent({ dtype: 1, tensorShape: { dim: [{ size: 1 }] }, floatVal: [4] }), 4);
    assert.throws(() => scanEvent(Buffer.from([0x0a, 0x05, 0x01])), /past the end/);
    assert.equal(
      scanEvent(encodeEvent({ wallTime: 2, step: 2 ** 40, sessionLog: { status: "START" } })).step,
      2 ** 40,
    );
  });

  it("reads a file written a few bytes at a time exactly as the whole file", async () => {
    const source = await dir("whole");
    const writer = await EventWriter.open(source, { startStep: 1, now: () => 1.7e12 });
    for (let step = 1; step <= 40; step++)
      writer.scalars({ "x/loss": 1 / step, "x/lr": step }, step, 1.7e9 + step);
    writer.sessionStart(21, 1.7e9 + 41);
    for (let step = 21; step <= 30; step++) writer.scalars({ "x/loss": 2 / step }, step, 1.7e9 + 50 + step);
    await writer.close();
    const bytes = await readFile(writer.path);
    const whole = await load(source);

    const growing = await dir("growing");
    const file = join(growing, "events.out.tfevents.1.grow");
    await writeFile(file, "");
    const loader = new RunLoader(growing);
    let offset = 0;
    let size = 1;
    while (offset < bytes.byteLength) {
      const end = Math.min(bytes.byteLength, offset + size);
      await appendFile(file, bytes.subarray(offset, end));
      offset = end;
      size = ((size * 7) % 97) + 1; // chunk edges fall everywhere, inside headers and payloads alike
      const outcome = await loader.reload();
      assert.deepEqual(outcome.problems, [], "a record still being written is not a problem");
    }
    for (const tag of ["x/loss", "x/lr"]) {
      assert.deepEqual(loader.scalars.series(tag)?.points(), pointsOf(whole, ".", tag));
    }
    await whole.close();
  });

  it("stops a file at a bad checksum for good, says so once, and still reads the next file", async () => {
    const run = await dir("bad");
    const first = eventFile([version(), ...[1, 2, 3, 4].map((s) => scalar("loss", s, s))]);
    const firstRecords = decodeRecords(first);
    const third = firstRecords.offsets[3] as number; // the record of step 3
    const damaged = Buffer.from(first);
    damaged[third + 14] = (damaged[third + 14] as number) ^ 0xff; // inside its payload
    await writeFile(join(run, "events.out.tfevents.1.a"), damaged);
    const loader = new RunLoader(run);
    const outcome = await loader.reload();
    assert.equal(outcome.problems.length, 1);
    assert.equal(outcome.problems[0]?.kind, "data-crc");
    assert.equal(outcome.problems[0]?.offset, third);
    assert.match(
      outcome.problems[0]?.message ?? "",
      /events\.out\.tfevents\.1\.a: record at byte \d+: data checksum mismatch/,
    );
    const steps = () => (loader.scalars.series("loss")?.points() ?? []).map((p) => p[1]);
    assert.deepEqual(steps(), [1, 2]);
    await appendFile(join(run, "events.out.tfevents.1.a"), eventFile([scalar("loss", 9, 9)]));
    assert.deepEqual((await loader.reload()).problems, [], "said once");
    assert.deepEqual(steps(), [1, 2], "nothing after the bad record is read, even when the file grows");
    await writeFile(join(run, "events.out.tfevents.2.b"), eventFile([version(), scalar("loss", 5, 5)]));
    await loader.reload();
    assert.deepEqual(steps(), [1, 2, 5], "TensorBoard moves on to the next file");
  });

  it("reports a record cut short once it is left behind or stays cut short past the grace period", async () => {
    const run = await dir("torn");
    const whole = eventFile([version(), scalar("loss", 1, 1), scalar("loss", 2, 2)]);
    await writeFile(join(run, "events.out.tfevents.1.a"), whole.subarray(0, whole.byteLength - 5));
    let now = 0;
    const loader = new RunLoader(run, { tornGraceMs: 1000, now: () => now });
    assert.deepEqual((await loader.reload()).problems, []);
    now = 500;
    assert.deepEqual((await loader.reload()).problems, [], "within the grace period: a write in progress");
    now = 1500;
    const late = await loader.reload();
    assert.equal(late.problems[0]?.kind, "truncated");
    assert.match(late.problems[0]?.message ?? "", /record cut short/);

    const other = await dir("torn-next");
    await writeFile(join(other, "events.out.tfevents.1.a"), whole.subarray(0, whole.byteLength - 5));
    const next = new RunLoader(other);
    await next.reload();
    await writeFile(join(other, "events.out.tfevents.2.b"), eventFile([version(), scalar("loss", 3, 3)]));
    const moved = await next.reload();
    assert.equal(moved.problems.length, 1, "the torn tail of a file left behind is reported at once");
    assert.equal(moved.problems[0]?.kind, "truncated");
  });

  it("finds nested runs and the logdir's own, drops deleted ones, and follows new points live", async () => {
    const logdir = await dir("logdir");
    const write = async (path: string, events: TbEventInput[]) => {
      await mkdir(join(logdir, path), { recursive: true });
      await writeFile(join(logdir, path, "events.out.tfevents.1.w"), eventFile(events));
    };
    await write(".", [version(3), scalar("root", 1, 1, 3)]);
    await write("pretrain", [version(1), scalar("pretrain/loss", 1, 1, 1)]);
    await write("dpo_sweep/from_step_00000004", [version(2), scalar("dpo/loss", 1, 1, 2)]);
    await mkdir(join(logdir, "empty"), { recursive: true });
    const scalars = new LogdirScalars({ logdir, reloadIntervalMs: 0, debounceMs: 10 });
    const changes: LogdirChange[] = [];
    scalars.onChange((change) => changes.push(change));
    await scalars.start();
    assert.deepEqual(scalars.runNames(), ["pretrain", "dpo_sweep/from_step_00000004", "."]);

    // A writer appending to a run, and a new run appearing, reach listeners without a re-scan.
    changes.length = 0;
    const live = await EventWriter.open(join(logdir, "pretrain"), { startStep: 2 });
    live.scalar("pretrain/loss", 0.5, 2);
    await live.flush();
    await write("sft", [version(4), scalar("sft/loss", 1, 1, 4)]);
    const deadline = Date.now() + 10_000;
    while (!(scalars.run("sft") && changes.some((c) => c.kind === "append" && c.tag === "pretrain/loss"))) {
      assert.ok(Date.now() < deadline, `no change seen: ${JSON.stringify(changes)}`);
      await sleep(20);
    }
    await live.close();
    assert.ok(changes.some((c) => c.kind === "runs"));
    assert.deepEqual(
      pointsOf(scalars, "pretrain", "pretrain/loss").map((p) => p[1]),
      [1, 2],
    );

    await rm(join(logdir, "dpo_sweep"), { recursive: true });
    await scalars.refresh();
    assert.deepEqual(scalars.runNames(), ["pretrain", ".", "sft"]);
    await scalars.close();
  });

  it("writes floats as Python's repr does", () => {
    const cases: Array<[number, string]> = [
      [1, "1.0"],
      [0.5, "0.5"],
      [1 / 3, "0.3333333333333333"],
      [Math.fround(1 / 3), "0.3333333432674408"],
      [1e-5, "1e-05"],
      [0.0001, "0.0001"],
      [1e16, "1e+16"],
      [1234567890123456, "1234567890123456.0"],
      [-2.5e-7, "-2.5e-07"],
      [1796159764.0602837, "1796159764.0602837"],
      [Number.NaN, "nan"],
      [Number.POSITIVE_INFINITY, "inf"],
    ];
    for (const [value, text] of cases) assert.equal(pyFloatRepr(value), text, String(value));
  });
});
