/*
 * Following event files as TensorBoard's DirectoryWatcher and EventFileLoader do: files read as
 * they grow (a record cut anywhere is waited for), a bad checksum stopping its file for good and
 * said once, runs found under the logdir, dropped when deleted, and new points announced live.
 */
import assert from "node:assert/strict";
import { appendFile, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { TbEventInput } from "../lib/tensorboard/event-proto.ts";
import { EventWriter } from "../lib/tensorboard/event-writer.ts";
import { type LogdirChange, LogdirScalars } from "../lib/tensorboard/logdir-scalars.ts";
import { RunLoader } from "../lib/tensorboard/run-loader.ts";
import { decodeRecords } from "../lib/tensorboard/tfrecord.ts";
import { eventFile, scalar, version } from "./support/event-files.ts";
import type { Point } from "./support/tensorboard-reference.ts";

async function load(logdir: string): Promise<LogdirScalars> {
  const scalars = new LogdirScalars({ logdir, watch: false, reloadIntervalMs: 0 });
  await scalars.start();
  return scalars;
}

function pointsOf(scalars: LogdirScalars, run: string, tag: string): Point[] {
  return scalars.run(run)?.scalars.series(tag)?.points() ?? [];
}

describe("following a logdir", () => {
  let root: string;
  let caseNo = 0;
  const dir = async (...parts: string[]): Promise<string> => {
    const path = join(root, `case-${++caseNo}`, ...parts);
    await mkdir(path, { recursive: true });
    return path;
  };
  before(async () => {
    root = await mkdtemp(join(tmpdir(), "baton-follow-"));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
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
    const seen = () =>
      changes.some((c) => c.kind === "runs") &&
      changes.some((c) => c.kind === "append" && c.tag === "pretrain/loss") &&
      changes.some((c) => c.kind === "append" && c.tag === "sft/loss");
    while (!seen()) {
      assert.ok(Date.now() < deadline, `no change seen: ${JSON.stringify(changes)}`);
      await sleep(20);
    }
    await live.close();
    assert.deepEqual(
      pointsOf(scalars, "pretrain", "pretrain/loss").map((p) => p[1]),
      [1, 2],
    );

    await rm(join(logdir, "dpo_sweep"), { recursive: true });
    await scalars.refresh();
    assert.deepEqual(scalars.runNames(), ["pretrain", ".", "sft"]);

    // The whole logdir deleted and made again (a smoke run starting afresh): followed again.
    await rm(logdir, { recursive: true });
    await scalars.refresh();
    assert.deepEqual(scalars.runNames(), []);
    await write("r1", [version(5), scalar("r1/loss", 1, 1, 5)]);
    const again = Date.now() + 10_000;
    while (!scalars.run("r1")) {
      assert.ok(Date.now() < again, "the new logdir's run was not found without a re-scan");
      await sleep(50);
    }
    await scalars.close();
  });
});
