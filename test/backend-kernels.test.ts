/**
 * The kernels Baton replaces (trainer/backend/wasm-kernels.ts, cpu-kernels.ts) against plain
 * reference arithmetic: every transpose flag and batch shape of matMul, the transpose permutations,
 * slices, the embedding gather and its gradient. Odd sizes on purpose (rows not a multiple of 8,
 * runs of more than one element), since the fast paths work in blocks.
 */
import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import * as tf from "@tensorflow/tfjs-core";
import { Rng } from "../lib/rng/index.ts";
import { loadBackend } from "../trainer/backend/load.ts";

const rng = Rng.fromSeed(11, "kernels");
const values = (n: number) => Float32Array.from({ length: n }, () => rng.nextFloat() * 2 - 1);

function strides(shape: number[]): number[] {
  const out = shape.map(() => 1);
  for (let d = shape.length - 2; d >= 0; d--) out[d] = out[d + 1] * shape[d + 1];
  return out;
}

/** Reference matMul on the last two axes, batch axes broadcast, accumulated in double precision. */
function referenceMatMul(a: tf.Tensor, b: tf.Tensor, transposeA: boolean, transposeB: boolean): number[] {
  const av = a.dataSync();
  const bv = b.dataSync();
  const [ar, ac] = a.shape.slice(-2);
  const [br, bc] = b.shape.slice(-2);
  const [m, k, n] = [transposeA ? ac : ar, transposeA ? ar : ac, transposeB ? br : bc];
  const batchA = av.length / (ar * ac);
  const batchB = bv.length / (br * bc);
  const out: number[] = [];
  for (let p = 0; p < Math.max(batchA, batchB); p++) {
    const aBase = (batchA === 1 ? 0 : p) * ar * ac;
    const bBase = (batchB === 1 ? 0 : p) * br * bc;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let sum = 0;
        for (let q = 0; q < k; q++) {
          const x = av[aBase + (transposeA ? q * ac + i : i * ac + q)];
          const y = bv[bBase + (transposeB ? j * bc + q : q * bc + j)];
          sum += x * y;
        }
        out.push(sum);
      }
    }
  }
  return out;
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    if (Math.abs(actual[i] - expected[i]) > 1e-4 * (1 + Math.abs(expected[i]))) {
      assert.fail(`${what}: element ${i} is ${actual[i]}, expected ${expected[i]}`);
    }
  }
}

/** Reference transpose: out[index permuted] = x[index]. */
function referenceTranspose(x: tf.Tensor, perm: number[]): number[] {
  const src = x.dataSync();
  const outShape = perm.map((axis) => x.shape[axis]);
  const inStrides = strides(x.shape);
  const out: number[] = [];
  const index = outShape.map(() => 0);
  for (let written = 0; written < src.length; written++) {
    let from = 0;
    for (let d = 0; d < perm.length; d++) from += index[d] * inStrides[perm[d]];
    out.push(src[from]);
    for (let d = outShape.length - 1; d >= 0; d--) {
      if (++index[d] < outShape[d]) break;
      index[d] = 0;
    }
  }
  return out;
}

for (const backend of ["wasm", "cpu"] as const) {
  describe(`${backend} kernels`, () => {
    before(() => loadBackend(backend));

    test("matMul: every transpose flag, 2-D, batched and broadcast", () => {
      const cases: Array<[aShape: number[], bShape: number[]]> = [
        [
          [13, 7],
          [7, 9],
        ],
        [
          [3, 13, 7],
          [3, 7, 9],
        ],
        [
          [2, 3, 13, 7],
          [2, 3, 7, 9],
        ],
        [
          [1, 13, 7],
          [4, 7, 9],
        ],
        [
          [4, 13, 7],
          [7, 9],
        ],
      ];
      for (const [aShape, bShape] of cases) {
        for (const transposeA of [false, true]) {
          for (const transposeB of [false, true]) {
            const swap = (shape: number[], flag: boolean) =>
              flag ? [...shape.slice(0, -2), shape.at(-1) ?? 0, shape.at(-2) ?? 0] : shape;
            const a = tf.tensor(values(aShape.reduce((x, y) => x * y)), swap(aShape, transposeA));
            const b = tf.tensor(values(bShape.reduce((x, y) => x * y)), swap(bShape, transposeB));
            const product = tf.matMul(a, b, transposeA, transposeB);
            const what = `matMul ${a.shape} × ${b.shape} (${transposeA}, ${transposeB})`;
            assertClose(product.dataSync(), referenceMatMul(a, b, transposeA, transposeB), what);
            tf.dispose([a, b, product]);
          }
        }
      }
    });

    test("transpose: the permutations a transformer uses and a general one", () => {
      const cases: Array<[number[], number[]]> = [
        [
          [19, 11],
          [1, 0],
        ],
        [
          [3, 17, 5],
          [0, 2, 1],
        ],
        [
          [6, 5, 3],
          [1, 0, 2],
        ],
        [
          [2, 9, 3, 4],
          [0, 2, 1, 3],
        ],
        [
          [2, 3, 9, 4],
          [0, 1, 3, 2],
        ],
        [
          [4, 3, 5],
          [2, 0, 1],
        ],
      ];
      for (const [shape, perm] of cases) {
        const x = tf.tensor(values(shape.reduce((a, b) => a * b)), shape);
        const y = tf.transpose(x, perm);
        assert.deepEqual(
          y.shape,
          perm.map((axis) => shape[axis]),
        );
        assert.deepEqual(Array.from(y.dataSync()), referenceTranspose(x, perm), `transpose ${shape} ${perm}`);
        tf.dispose([x, y]);
      }
    });

    test("slice copies exactly the slice", () => {
      const x = tf.tensor(values(4 * 6 * 5), [4, 6, 5]);
      const y = tf.slice(x, [1, 2, 1], [2, 3, 4]);
      const src = x.dataSync();
      const expected: number[] = [];
      for (let i = 1; i < 3; i++)
        for (let j = 2; j < 5; j++) for (let k = 1; k < 5; k++) expected.push(src[i * 30 + j * 5 + k]);
      assert.deepEqual(Array.from(y.dataSync()), expected);
      tf.dispose([x, y]);
    });

    test("embedding gather and its gradient (a scatter-add into the rows)", () => {
      const table = tf.tensor(values(7 * 3), [7, 3]);
      const ids = tf.tensor(
        [
          [4, 0, 4],
          [6, 4, 1],
        ],
        [2, 3],
        "int32",
      );
      const rows = tf.gather(table, ids);
      const src = table.dataSync();
      assert.deepEqual(
        Array.from(rows.dataSync()),
        [4, 0, 4, 6, 4, 1].flatMap((id) => Array.from(src.subarray(id * 3, id * 3 + 3))),
      );
      const upstream = values(2 * 3 * 3);
      const grad = tf.grad((t: tf.Tensor) =>
        tf.sum(tf.mul(tf.gather(t, ids), tf.tensor(upstream, [2, 3, 3]))),
      )(table);
      const expected = new Array<number>(21).fill(0);
      [4, 0, 4, 6, 4, 1].forEach((id, position) => {
        for (let j = 0; j < 3; j++) expected[id * 3 + j] += upstream[position * 3 + j];
      });
      assertClose(grad.dataSync(), expected, "gather gradient");
      tf.dispose([table, ids, rows, grad]);
    });

    test("identity shares data safely: the copy outlives the original", () => {
      const x = tf.tensor(values(10), [10]);
      const expected = Array.from(x.dataSync());
      const y = tf.clone(x);
      x.dispose();
      assert.deepEqual(Array.from(y.dataSync()), expected);
      y.dispose();
    });
  });
}
