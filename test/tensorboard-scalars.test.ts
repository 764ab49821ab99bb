/*
 * Reading event files into scalar series exactly as TensorBoard's data provider does: against the
 * files TensorBoard's own writers made and what TensorBoard made of them (test/fixtures/tensorboard,
 * see its README), against a plain transcription of its accumulator, and for the cases the
 * fixtures do not cover (a first START after points, files without a version, other plugins).
 * Following files as they grow, and bad records: tensorboard-follow.test.ts.
 */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { decodeEvent, encodeEvent, scalarOf, type TbEventInput } from "../lib/tensorboard/event-proto.ts";
import { scanEvent } from "../lib/tensorboard/event-scan.ts";
import { LogdirScalars } from "../lib/tensorboard/logdir-scalars.ts";
import { pyFloatRepr } from "../lib/tensorboard/tb-format.ts";
import { decodeRecords } from "../lib/tensorboard/tfrecord.ts";
import { eventFile, scalar, start, version } from "./support/event-files.ts";
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
