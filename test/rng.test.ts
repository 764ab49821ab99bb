import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { UserError } from "../lib/cli/errors.ts";
import {
  Rng,
  type RngState,
  rngStreamsFile,
  rngStreamsFromJson,
  rngStreamsToJson,
} from "../lib/rng/index.ts";

/** A mixed draw of every kind, so a state round trip is checked across all methods. */
function draws(rng: Rng, n: number): unknown[] {
  const out: unknown[] = [];
  for (let i = 0; i < n; i++) {
    out.push(rng.nextUint32(), rng.nextFloat(), rng.nextNormal(), rng.nextInt(1000));
    if (i % 50 === 0) out.push(Array.from(rng.permutation(17)), rng.shuffle(["a", "b", "c", "d"]));
  }
  return out;
}

function correlation(a: number[], b: number[]): number {
  const mean = (x: number[]) => x.reduce((s, v) => s + v, 0) / x.length;
  const ma = mean(a);
  const mb = mean(b);
  let cov = 0;
  let va = 0;
  let vb = 0;
  for (let i = 0; i < a.length; i++) {
    const da = (a[i] as number) - ma;
    const db = (b[i] as number) - mb;
    cov += da * db;
    va += da * da;
    vb += db * db;
  }
  return cov / Math.sqrt(va * vb);
}

describe("Rng", () => {
  test("the sequence for a seed and stream is pinned (old checkpoints must resume the same way)", () => {
    const rng = Rng.fromSeed(42, "data");
    assert.deepEqual(rng.state(), {
      algorithm: "xoroshiro128plus",
      words: [-1606849758, -254509377, -330963073, 1318732089],
    });
    assert.deepEqual(
      [rng.nextUint32(), rng.nextUint32(), rng.nextUint32()],
      [1064222712, 3455685284, 872690002],
    );
    assert.equal(rng.nextFloat(), 0.9116544028031285);
    assert.equal(rng.nextNormal(), 1.209314679946492);
    assert.deepEqual(Array.from(rng.permutation(8)), [3, 0, 6, 1, 5, 7, 4, 2]);
  });

  test("restoring a state through JSON continues the identical sequence", () => {
    const rng = Rng.fromSeed(7, "init");
    draws(rng, 123); // somewhere mid-sequence
    const saved = JSON.parse(JSON.stringify(rng.state())) as RngState;
    const expected = draws(rng, 500);
    assert.deepEqual(draws(Rng.fromState(saved), 500), expected);
  });

  test("state() is a copy: drawing afterwards does not change it", () => {
    const rng = Rng.fromSeed(1);
    const before = rng.state();
    rng.nextUint32();
    assert.notDeepEqual(rng.state(), before);
    assert.equal(Rng.fromState(before).nextUint32(), Rng.fromState(before).nextUint32());
  });

  test("same seed and name give the same stream; other names or seeds do not", () => {
    const first = (rng: Rng) => Array.from({ length: 8 }, () => rng.nextUint32());
    assert.deepEqual(first(Rng.fromSeed(5, "data")), first(Rng.fromSeed(5, "data")));
    assert.notDeepEqual(first(Rng.fromSeed(5, "data")), first(Rng.fromSeed(5, "init")));
    assert.notDeepEqual(first(Rng.fromSeed(5, "data")), first(Rng.fromSeed(6, "data")));
    assert.notDeepEqual(first(Rng.fromSeed(5, "data")), first(Rng.fromSeed(5, "dat")));
  });

  test("streams from one seed are uncorrelated", () => {
    const a = Rng.fromSeed(1234, "data");
    const b = Rng.fromSeed(1234, "dropout");
    const xs = Array.from({ length: 20000 }, () => a.nextFloat());
    const ys = Array.from({ length: 20000 }, () => b.nextFloat());
    assert.ok(Math.abs(correlation(xs, ys)) < 0.03, `correlation ${correlation(xs, ys)}`);
    // Nor is one a shifted copy of the other.
    const lagged = correlation(xs.slice(1), ys.slice(0, -1));
    assert.ok(Math.abs(lagged) < 0.03, `lagged correlation ${lagged}`);
  });

  test("nextFloat is in [0, 1) on a 2^-53 grid with a uniform mean", () => {
    const rng = Rng.fromSeed(3);
    let sum = 0;
    for (let i = 0; i < 20000; i++) {
      const x = rng.nextFloat();
      assert.ok(x >= 0 && x < 1);
      assert.ok(Number.isInteger(x * 2 ** 53));
      sum += x;
    }
    assert.ok(Math.abs(sum / 20000 - 0.5) < 0.01);
  });

  test("nextNormal has mean 0 and standard deviation 1, and honours mean/std", () => {
    const rng = Rng.fromSeed(9);
    const xs = Array.from({ length: 40000 }, () => rng.nextNormal());
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    const std = Math.sqrt(xs.reduce((s, x) => s + (x - mean) ** 2, 0) / xs.length);
    assert.ok(Math.abs(mean) < 0.02, `mean ${mean}`);
    assert.ok(Math.abs(std - 1) < 0.02, `std ${std}`);
    assert.ok(xs.every(Number.isFinite));
    const scaled = Rng.fromSeed(9).nextNormal(10, 0.5);
    assert.ok(Math.abs(scaled - (10 + 0.5 * (xs[0] as number))) < 1e-12);
  });

  test("permutation and shuffle yield each index once, every position equally likely", () => {
    const rng = Rng.fromSeed(11);
    const counts = Array.from({ length: 5 }, () => new Array<number>(5).fill(0));
    for (let i = 0; i < 10000; i++) {
      const p = rng.permutation(5);
      assert.deepEqual(
        Array.from(p).sort((a, b) => a - b),
        [0, 1, 2, 3, 4],
      );
      p.forEach((value, position) => {
        (counts[position] as number[])[value]++;
      });
    }
    for (const row of counts) for (const c of row) assert.ok(c > 1800 && c < 2200, `count ${c}`);
    const array = [1, 2, 3, 4, 5, 6];
    assert.equal(rng.shuffle(array), array);
    assert.deepEqual([...array].sort(), [1, 2, 3, 4, 5, 6]);
    assert.equal(rng.permutation(0).length, 0);
  });

  test("fromState rejects states that are not ours", () => {
    const bad: unknown[] = [
      null,
      { algorithm: "mersenne", words: [1, 2, 3, 4] },
      { algorithm: "xoroshiro128plus", words: [1, 2, 3] },
      { algorithm: "xoroshiro128plus", words: [1, 2, 3, 2 ** 40] },
      { algorithm: "xoroshiro128plus", words: [0, 0, 0, 0] },
    ];
    for (const state of bad) assert.throws(() => Rng.fromState(state as RngState), UserError);
  });
});

describe("rng.json streams", () => {
  test("named streams round-trip through rng.json text and continue their sequences", () => {
    const streams = { data: Rng.fromSeed(1, "data"), init: Rng.fromSeed(1, "init") };
    streams.data.permutation(100);
    const text = rngStreamsToJson(streams);
    const parsed = JSON.parse(text);
    assert.equal(parsed.format_version, 1);
    assert.deepEqual(Object.keys(parsed.streams), ["data", "init"]);
    assert.deepEqual(rngStreamsFile(streams), parsed);
    const fromObject = rngStreamsFromJson(parsed);
    const restored = rngStreamsFromJson(text);
    const next = streams.data.nextUint32();
    assert.equal(restored.data?.nextUint32(), next);
    assert.equal(fromObject.data?.nextUint32(), next);
    assert.equal(restored.init?.nextUint32(), streams.init.nextUint32());
  });

  test("malformed rng.json is a UserError naming the file and the stream", () => {
    assert.throws(() => rngStreamsFromJson("{", "ck/rng.json"), /ck\/rng\.json: not valid JSON/);
    assert.throws(() => rngStreamsFromJson('{"format_version": 2, "streams": {}}'), /format_version/);
    assert.throws(
      () => rngStreamsFromJson('{"format_version": 1, "streams": []}'),
      /"streams" must be an object/,
    );
    assert.throws(
      () => rngStreamsFromJson('{"format_version": 1, "streams": {"data": {"algorithm": "x"}}}', "r.json"),
      (error: unknown) => error instanceof UserError && /r\.json: stream "data"/.test(error.message),
    );
  });
});
