import { createHash } from "node:crypto";
import { uniformFloat64 } from "pure-rand/distribution/uniformFloat64";
import { uniformInt } from "pure-rand/distribution/uniformInt";
import { xoroshiro128plus, xoroshiro128plusFromState } from "pure-rand/generator/xoroshiro128plus";
import type { JumpableRandomGenerator } from "pure-rand/types/JumpableRandomGenerator";
import { UserError } from "../cli/errors.ts";

export const RNG_ALGORITHM = "xoroshiro128plus";

/** The exact state of an Rng as plain JSON: the generator's four signed 32-bit words. */
export interface RngState {
  algorithm: typeof RNG_ALGORITHM;
  words: [number, number, number, number];
}

function isInt32(value: unknown): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= -0x80000000 && value <= 0x7fffffff;
}

/** Check a parsed state; `where` names its origin (file and stream) in the error. */
export function parseRngState(value: unknown, where: string): RngState {
  const state = value as Partial<RngState> | null;
  if (typeof state !== "object" || state === null || state.algorithm !== RNG_ALGORITHM) {
    throw new UserError(`${where}: expected an RNG state {"algorithm":"${RNG_ALGORITHM}","words":[4 int32]}`);
  }
  const { words } = state;
  if (!Array.isArray(words) || words.length !== 4 || !words.every(isInt32)) {
    throw new UserError(`${where}: RNG state "words" must be 4 signed 32-bit integers`);
  }
  if (words.every((w) => w === 0))
    throw new UserError(`${where}: RNG state is all zeros, which never changes`);
  return { algorithm: RNG_ALGORITHM, words: [words[0], words[1], words[2], words[3]] };
}

/**
 * A seedable random source whose whole state is four numbers, so a checkpoint can store it
 * and a resumed run continues the identical sequence. Backed by pure-rand's xoroshiro128+.
 */
export class Rng {
  private readonly gen: JumpableRandomGenerator;

  private constructor(gen: JumpableRandomGenerator) {
    this.gen = gen;
  }

  /**
   * An independent stream per name from one seed: the name and seed are hashed (SHA-256) into
   * the 128-bit generator state, so "data" and "init" never share a sequence and adding a
   * new stream never shifts an old one.
   */
  static fromSeed(seed: number, streamName = "default"): Rng {
    if (!Number.isSafeInteger(seed)) throw new UserError(`seed must be a whole number, got ${seed}`);
    const digest = createHash("sha256").update(`baton-rng\0${seed}\0${streamName}`).digest();
    const words = [0, 4, 8, 12].map((offset) => digest.readInt32LE(offset));
    if (words.every((w) => w === 0)) return new Rng(xoroshiro128plus(seed));
    return new Rng(xoroshiro128plusFromState(words));
  }

  static fromState(state: RngState): Rng {
    const checked = parseRngState(state, "RNG state");
    return new Rng(xoroshiro128plusFromState(checked.words));
  }

  /** A copy of the current state; restoring it with Rng.fromState continues this exact sequence. */
  state(): RngState {
    const [a, b, c, d] = this.gen.getState();
    return { algorithm: RNG_ALGORITHM, words: [a as number, b as number, c as number, d as number] };
  }

  clone(): Rng {
    return Rng.fromState(this.state());
  }

  /** Uniform integer in [0, 2^32). */
  nextUint32(): number {
    return this.gen.next() >>> 0;
  }

  /** Uniform float in [0, 1) with 53 random bits (a multiple of 2^-53); consumes two draws. */
  nextFloat(): number {
    return uniformFloat64(this.gen);
  }

  /** Uniform integer in [0, n), unbiased (rejection sampling). */
  nextInt(n: number): number {
    if (!Number.isSafeInteger(n) || n <= 0)
      throw new RangeError(`nextInt: n must be a whole number ≥ 1, got ${n}`);
    return uniformInt(this.gen, 0, n - 1);
  }

  /**
   * A normal sample (Box–Muller). Each call draws two fresh uniforms and returns one value —
   * the pair's twin is dropped so the state stays just the generator's words.
   */
  nextNormal(mean = 0, std = 1): number {
    const u1 = 1 - this.nextFloat(); // (0, 1], so the log is finite
    const u2 = this.nextFloat();
    return mean + std * Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }

  /** Shuffle in place (Fisher–Yates) and return the same array. */
  shuffle<T extends { length: number; [index: number]: unknown }>(array: T): T {
    for (let i = array.length - 1; i > 0; i--) {
      const j = this.nextInt(i + 1);
      const held = array[i];
      array[i] = array[j];
      array[j] = held;
    }
    return array;
  }

  /** A random ordering of 0 … n-1. */
  permutation(n: number): Uint32Array {
    const order = new Uint32Array(n);
    for (let i = 0; i < n; i++) order[i] = i;
    return this.shuffle(order);
  }
}
