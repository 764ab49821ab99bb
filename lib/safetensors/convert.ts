/**
 * float32 ↔ half precision (IEEE float16) and bfloat16, bit for bit as PyTorch's `.half()`,
 * `.bfloat16()` and `.float()` convert: round to nearest, ties to even; every NaN becomes the
 * quiet NaN PyTorch writes (0x7e00 with the sign kept for float16; 0x7fc0 for bfloat16, as c10's
 * scalar conversion — its vectorised CPU path writes 0xffff, another NaN).
 * Half-precision values travel as their raw bits in a Uint16Array (see ArrayOfDtype).
 */

/** The float element types Baton's weights are stored in. */
export type FloatDtype = "F32" | "F16" | "BF16";

export const FLOAT_DTYPES: readonly FloatDtype[] = ["F32", "F16", "BF16"];

export function isFloatDtype(value: unknown): value is FloatDtype {
  return value === "F32" || value === "F16" || value === "BF16";
}

/** PyTorch's names for the float types, as flags spell them (`--legacy_dtype float16`). */
export const FLOAT_DTYPE_NAMES = { float16: "F16", bfloat16: "BF16", float32: "F32" } as const;
export type FloatDtypeName = keyof typeof FLOAT_DTYPE_NAMES;

export function isFloatDtypeName(value: unknown): value is FloatDtypeName {
  return typeof value === "string" && Object.hasOwn(FLOAT_DTYPE_NAMES, value);
}

/** `float16` for F16: the name a message shows. */
export function floatDtypeName(dtype: FloatDtype): FloatDtypeName {
  return NAME_OF[dtype];
}

const NAME_OF: Record<FloatDtype, FloatDtypeName> = { F16: "float16", BF16: "bfloat16", F32: "float32" };

/** float16 bits of one float32 (given as its bits), rounded to nearest even. */
function halfFromFloatBits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exponent = (x >>> 23) & 0xff;
  const mantissa = x & 0x7fffff;
  if (exponent === 0xff) return sign | (mantissa ? 0x7e00 : 0x7c00);
  const halfExponent = exponent - 112; // rebias 127 → 15
  if (halfExponent >= 31) return sign | 0x7c00;
  if (halfExponent >= 1) {
    // Normal: keep 10 mantissa bits; a carry out of the mantissa bumps the exponent, up to infinity.
    const half = (halfExponent << 10) | (mantissa >>> 13);
    const rest = mantissa & 0x1fff;
    return sign | (rest > 0x1000 || (rest === 0x1000 && half & 1) ? half + 1 : half);
  }
  // Subnormal half (or zero): the value in units of 2^-24 is the full significand shifted right.
  const shift = 126 - exponent;
  if (shift > 24) return sign;
  const significand = mantissa | 0x800000;
  const half = significand >>> shift;
  const rest = significand & ((1 << shift) - 1);
  const halfway = 1 << (shift - 1);
  return sign | (rest > halfway || (rest === halfway && half & 1) ? half + 1 : half);
}

export function float32ToFloat16(values: Float32Array): Uint16Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < out.length; i++) out[i] = halfFromFloatBits(bits[i]);
  return out;
}

export function float32ToBfloat16(values: Float32Array): Uint16Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < out.length; i++) {
    const x = bits[i];
    if ((x & 0x7fffffff) > 0x7f800000) out[i] = 0x7fc0;
    else out[i] = (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
  }
  return out;
}

let halfTable: Float32Array | undefined;

/** All 65536 float16 values as float32 (exact: every half is a float32), built on first use. */
function halfValues(): Float32Array {
  if (halfTable) return halfTable;
  halfTable = new Float32Array(65536);
  for (let bits = 0; bits < 65536; bits++) {
    const sign = bits & 0x8000 ? -1 : 1;
    const exponent = (bits >> 10) & 0x1f;
    const fraction = bits & 0x3ff;
    if (exponent === 0) halfTable[bits] = sign * 2 ** -24 * fraction;
    else if (exponent === 31) halfTable[bits] = fraction ? Number.NaN : sign * Number.POSITIVE_INFINITY;
    else halfTable[bits] = sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
  }
  // Keep NaN payloads as PyTorch's .float() does (the table's NaN would be the canonical one).
  const raw = new Uint32Array(halfTable.buffer);
  for (let bits = 0; bits < 65536; bits++) {
    if (((bits >> 10) & 0x1f) === 31 && bits & 0x3ff)
      raw[bits] = ((bits & 0x8000) << 16) | 0x7f800000 | ((bits & 0x3ff) << 13);
  }
  return halfTable;
}

export function float16ToFloat32(bits: Uint16Array): Float32Array {
  const table = halfValues();
  const out = new Float32Array(bits.length);
  for (let i = 0; i < out.length; i++) out[i] = table[bits[i]];
  return out;
}

export function bfloat16ToFloat32(bits: Uint16Array): Float32Array {
  const out = new Uint32Array(bits.length);
  for (let i = 0; i < out.length; i++) out[i] = bits[i] << 16;
  return new Float32Array(out.buffer);
}

/** float32 values in `dtype`: the same array for F32, the raw bits of the rounded values otherwise. */
export function fromFloat32(values: Float32Array, dtype: FloatDtype): Float32Array | Uint16Array {
  if (dtype === "F16") return float32ToFloat16(values);
  if (dtype === "BF16") return float32ToBfloat16(values);
  return values;
}

/** A float tensor's values as float32 (exact: float16 and bfloat16 both widen without loss). */
export function floatToFloat32(dtype: FloatDtype, data: Float32Array | Uint16Array): Float32Array {
  if (dtype === "F16") return float16ToFloat32(data as Uint16Array);
  if (dtype === "BF16") return bfloat16ToFloat32(data as Uint16Array);
  return data as Float32Array;
}
