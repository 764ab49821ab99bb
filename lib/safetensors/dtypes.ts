/**
 * The safetensors element types and the typed array each one is read into. Half-precision and
 * 8-bit float types have no JavaScript array of their own, so they come back as raw bit patterns.
 */
export interface ArrayOfDtype {
  F64: Float64Array;
  F32: Float32Array;
  /** IEEE half precision, raw bits. */
  F16: Uint16Array;
  /** bfloat16, raw bits (the upper half of a float32). */
  BF16: Uint16Array;
  F8_E4M3: Uint8Array;
  F8_E5M2: Uint8Array;
  I64: BigInt64Array;
  I32: Int32Array;
  I16: Int16Array;
  I8: Int8Array;
  U64: BigUint64Array;
  U32: Uint32Array;
  U16: Uint16Array;
  U8: Uint8Array;
  /** One byte per element, 0 or 1. */
  BOOL: Uint8Array;
}

export type Dtype = keyof ArrayOfDtype;

interface TypedArrayConstructor<T> {
  new (buffer: ArrayBufferLike, byteOffset: number, length: number): T;
  readonly BYTES_PER_ELEMENT: number;
}

type DtypeSpec<D extends Dtype> = { bytes: number; array: TypedArrayConstructor<ArrayOfDtype[D]> };

export const DTYPES: { readonly [D in Dtype]: DtypeSpec<D> } = {
  F64: { bytes: 8, array: Float64Array },
  F32: { bytes: 4, array: Float32Array },
  F16: { bytes: 2, array: Uint16Array },
  BF16: { bytes: 2, array: Uint16Array },
  F8_E4M3: { bytes: 1, array: Uint8Array },
  F8_E5M2: { bytes: 1, array: Uint8Array },
  I64: { bytes: 8, array: BigInt64Array },
  I32: { bytes: 4, array: Int32Array },
  I16: { bytes: 2, array: Int16Array },
  I8: { bytes: 1, array: Int8Array },
  U64: { bytes: 8, array: BigUint64Array },
  U32: { bytes: 4, array: Uint32Array },
  U16: { bytes: 2, array: Uint16Array },
  U8: { bytes: 1, array: Uint8Array },
  BOOL: { bytes: 1, array: Uint8Array },
};

export function isDtype(value: unknown): value is Dtype {
  return typeof value === "string" && Object.hasOwn(DTYPES, value);
}

/** Number of elements of a shape, or null when a dimension is not a whole number ≥ 0 or the product overflows. */
export function elementCount(shape: readonly unknown[]): number | null {
  let count = 1;
  for (const dim of shape) {
    if (typeof dim !== "number" || !Number.isSafeInteger(dim) || dim < 0) return null;
    count *= dim;
    if (!Number.isSafeInteger(count)) return null;
  }
  return count;
}

// safetensors data is little-endian and typed arrays use the host's byte order.
export const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
