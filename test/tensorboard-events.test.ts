import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm, stat, truncate, writeFile } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { basename, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { decodeEvent, encodeEvent, FILE_VERSION, scalarOf } from "../lib/tensorboard/event-proto.ts";
import { parseEvents, readEvents, readRunEvents } from "../lib/tensorboard/event-reader.ts";
import { EventWriter, eventFileName } from "../lib/tensorboard/event-writer.ts";
import { crc32c, decodeRecords, encodeRecord, maskedCrc32c } from "../lib/tensorboard/tfrecord.ts";
import { tensorBoardScalars } from "./support/tensorboard-view.ts";

/*
 * Two records of a real event file written by TensorFlow for
 * `tf.summary.scalar("accuracy", 0.99, step=77)`, as quoted in TensorBoard's own reader tests
 * (tensorboard/data/server/tf_record.rs): the file_version event, then the scalar.
 */
const TF_FILE_VERSION_RECORD = Buffer.concat([
  Buffer.from("1800000000000000", "hex"), // length 24
  Buffer.from("a37f4b22", "hex"), // masked CRC of the length
  Buffer.from("090000803899d6d741", "hex"), // wall_time
  Buffer.from("1a0d", "hex"),
  Buffer.from("brain.Event:2"),
  Buffer.from("124b36ab", "hex"), // masked CRC of the payload
]);
const TF_SCALAR_RECORD = Buffer.concat([
  Buffer.from("3200000000000000", "hex"),
  Buffer.from("241956ec", "hex"),
  Buffer.from("09c405b73d99d6d741", "hex"), // wall_time
  Buffer.from("104d", "hex"), // step 77
  Buffer.from("2a250a230a08", "hex"),
  Buffer.from("accuracy"),
  Buffer.from("420a0801120022 04a4707d3f".replace(/ /g, ""), "hex"), // scalar float tensor 0.99
  Buffer.from("4a0b0a090a07", "hex"),
  Buffer.from("scalars"),
  Buffer.from("a55b6433", "hex"),
]);

describe("CRC32C and TFRecord framing", () => {
  it("matches published CRC32C check values", () => {
    assert.equal(crc32c(Buffer.from("123456789")), 0xe3069283);
    assert.equal(crc32c(Buffer.alloc(32)), 0x8a9136aa); // RFC 3720 §B.4
    assert.equal(crc32c(Buffer.alloc(32, 0xff)), 0x62a8ab43);
  });

  it("masks CRCs exactly as TensorFlow does", () => {
    // From TensorBoard's masked_crc.rs: a real file_version record's checksum.
    assert.equal(maskedCrc32c(Buffer.from("\x1a\x11CRC test, one two", "latin1")), 0x5794d08a);
    assert.equal(maskedCrc32c(Buffer.from("1800000000000000", "hex")), 0x224b7fa3);
  });

  it("writes the file_version record byte for byte as TensorFlow", () => {
    const wallTime = TF_FILE_VERSION_RECORD.readDoubleLE(13);
    const record = encodeRecord(encodeEvent({ wallTime, step: 0, fileVersion: FILE_VERSION }));
    assert.deepEqual(record, TF_FILE_VERSION_RECORD);
  });

  it("reads a TensorFlow-written file, including tensor-valued scalars", () => {
    const { events, corruption } = parseEvents(Buffer.concat([TF_FILE_VERSION_RECORD, TF_SCALAR_RECORD]));
    assert.equal(corruption, null);
    assert.equal(events.length, 2);
    assert.equal(events[0]?.fileVersion, "brain.Event:2");
    assert.equal(events[1]?.step, 77);
    const value = events[1]?.summary?.value[0];
    assert.equal(value?.tag, "accuracy");
    assert.equal(value?.metadata?.pluginData?.pluginName, "scalars");
    assert.equal(value && scalarOf(value), Math.fround(0.99));
  });

  it("reports a torn tail, a bad payload CRC and a bad length CRC at the record's offset", () => {
    const file = Buffer.concat([TF_FILE_VERSION_RECORD, TF_SCALAR_RECORD]);
    const second = TF_FILE_VERSION_RECORD.byteLength;

    const torn = decodeRecords(file.subarray(0, file.byteLength - 3));
    assert.equal(torn.records.length, 1);
    assert.deepEqual(
      { offset: torn.corruption?.offset, kind: torn.corruption?.kind },
      { offset: second, kind: "truncated" },
    );
    assert.equal(decodeRecords(file.subarray(0, second + 5)).corruption?.kind, "truncated");

    const badData = Buffer.from(file);
    badData[second + 20] = (badData[second + 20] ?? 0) ^ 0x01;
    assert.deepEqual(decodeRecords(badData).corruption?.kind, "data-crc");
    assert.equal(decodeRecords(badData).corruption?.offset, second);

    const badLength = Buffer.from(file);
    badLength[second] = 0x33;
    assert.equal(decodeRecords(badLength).corruption?.kind, "length-crc");
    assert.equal(decodeRecords(badLength).records.length, 1);
  });

  it("encodes SessionLog as field 7 with status START = 1", () => {
    const bytes = encodeEvent({ wallTime: 0, step: 5, sessionLog: { status: "START" } });
    // step (field 2) = 5, then field 7 length-delimited { status (field 1) = 1 }.
    assert.ok(Buffer.from(bytes).toString("hex").endsWith("10053a020801"));
    assert.deepEqual(decodeEvent(bytes).sessionLog, { status: "START" });
  });
});

describe("EventWriter", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "baton-tb-events-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("names files like TensorFlow", () => {
    assert.equal(eventFileName(1700000000.9, "box", 42, 0), "events.out.tfevents.1700000000.box.42.0");
    assert.equal(eventFileName(12, "box", 7, 3), "events.out.tfevents.0000000012.box.7.3");
  });

  it("round-trips the file version, a session start and scalars", async () => {
    const runDir = join(dir, "round-trip", "pretrain");
    const writer = await EventWriter.open(runDir, { startStep: 0 });
    writer.scalars({ "train/loss": 2.5, "train/lr": 3e-4 }, 1, 1000.25);
    writer.scalar("train/loss", 1.1, 2);
    await writer.close();
    await writer.close(); // a second close is harmless

    const names = await readdir(runDir);
    assert.equal(names.length, 1);
    const pattern = new RegExp(
      `^events\\.out\\.tfevents\\.\\d{10}\\.${hostname().replace(/\./g, "\\.")}\\.${process.pid}\\.\\d+$`,
    );
    assert.match(names[0] ?? "", pattern);

    const { events, corruption } = await readEvents(writer.path);
    assert.equal(corruption, null);
    assert.equal(events.length, 4);
    assert.equal(events[0]?.fileVersion, "brain.Event:2");
    assert.ok(Math.abs((events[0]?.wallTime ?? 0) - Date.now() / 1000) < 60);
    assert.deepEqual(events[1]?.sessionLog, { status: "START" });
    assert.equal(events[1]?.step, 0);
    assert.equal(events[2]?.step, 1);
    assert.equal(events[2]?.wallTime, 1000.25);
    assert.deepEqual(
      events[2]?.summary?.value.map((v) => [v.tag, v.simpleValue]),
      [
        ["train/loss", 2.5],
        ["train/lr", Math.fround(3e-4)],
      ],
    );
    assert.deepEqual(events[3]?.summary?.value[0], { tag: "train/loss", simpleValue: Math.fround(1.1) });
    assert.throws(() => writer.scalar("x", 1, 3), /closed/);
  });

  it("keeps events in memory until flush, then appends whole records", async () => {
    const writer = await EventWriter.open(join(dir, "buffered"));
    const afterOpen = (await stat(writer.path)).size;
    assert.ok(afterOpen > 0, "the file version is on disk as soon as the file exists");
    writer.scalar("loss", 1, 1);
    assert.equal((await stat(writer.path)).size, afterOpen);
    await writer.flush();
    const afterFlush = (await stat(writer.path)).size;
    assert.ok(afterFlush > afterOpen);
    writer.scalar("loss", 0.5, 2);
    writer.flushSync();
    writer.scalar("loss", 0.25, 3);
    writer.closeSync();
    assert.ok(writer.closed);
    const { events, corruption } = await readEvents(writer.path);
    assert.equal(corruption, null);
    assert.deepEqual(
      events.filter((e) => e.summary).map((e) => e.step),
      [1, 2, 3],
    );
  });

  it("rejects bad steps and tags", async () => {
    const writer = await EventWriter.open(join(dir, "bad"));
    assert.throws(() => writer.scalar("loss", 1, -1), RangeError);
    assert.throws(() => writer.scalar("loss", 1, 1.5), RangeError);
    assert.throws(() => writer.scalar("", 1, 1), TypeError);
    await writer.close();
  });

  it("detects a torn last record left by a crash, keeping every earlier event", async () => {
    const writer = await EventWriter.open(join(dir, "torn"));
    for (let step = 1; step <= 3; step++) writer.scalar("loss", step, step);
    await writer.close();
    const whole = decodeRecords(await readFile(writer.path));
    const lastRecordAt = whole.offsets.at(-1);
    await truncate(writer.path, (await stat(writer.path)).size - 2);
    const { events, corruption } = await readEvents(writer.path);
    assert.equal(events.length, whole.records.length - 1);
    assert.deepEqual(events.at(-1)?.summary?.value[0], { tag: "loss", simpleValue: 2 });
    assert.equal(corruption?.kind, "truncated");
    assert.equal(corruption?.offset, lastRecordAt);
  });

  it("gives TensorBoard one clean curve across a crash and a resume", async () => {
    const runDir = join(dir, "resumed");
    const start = Date.now();
    const first = await EventWriter.open(runDir, { startStep: 0, now: () => start });
    for (let step = 1; step <= 8; step++) first.scalar("loss", 100 + step, step);
    first.closeSync(); // the crash: steps 6..8 were logged after the last checkpoint (step 5)

    // Resumed from the step-5 checkpoint, the session's first logged step is 6.
    const second = await EventWriter.open(runDir, { startStep: 6, now: () => start + 2000 });
    for (let step = 6; step <= 7; step++) second.scalar("loss", 200 + step, step);
    await second.close();

    const { files } = await readRunEvents(runDir);
    assert.equal(files.length, 2);
    assert.deepEqual(
      files.map((f) => f.path),
      [first.path, second.path],
    );
    assert.deepEqual(
      (await tensorBoardScalars(runDir)).get("loss")?.map((p) => [p.step, p.value]),
      [
        [1, 101],
        [2, 102],
        [3, 103],
        [4, 104],
        [5, 105],
        [6, 206],
        [7, 207],
      ],
    );
  });

  it("never reuses an existing file name", async () => {
    const runDir = join(dir, "unique");
    const clock = () => 1_700_000_000_000;
    const a = await EventWriter.open(runDir, { now: clock });
    const b = await EventWriter.open(runDir, { now: clock });
    assert.notEqual(a.path, b.path);
    await writeFile(join(runDir, "not-an-event-file"), "x");
    await a.close();
    await b.close();
    assert.equal((await readRunEvents(runDir)).files.length, 2);
  });
});

describe("event file names", () => {
  it("a new session's file sorts after every earlier one of the run, even in the same second", async () => {
    const runDir = await mkdtemp(join(tmpdir(), "baton-names-"));
    try {
      const clock = () => 1_700_000_000_000;
      // An earlier session in the same second whose name sorts after ours (its pid, as text, is higher).
      const earlier = eventFileName(1_700_000_000, hostname(), 99_999_999, 0);
      await writeFile(join(runDir, earlier), "");
      const writer = await EventWriter.open(runDir, { now: clock });
      await writer.close();
      const names = (await readdir(runDir)).sort();
      assert.deepEqual(names.at(-1), basename(writer.path), `${writer.path} sorts before ${earlier}`);
    } finally {
      await rm(runDir, { recursive: true, force: true });
    }
  });
});
