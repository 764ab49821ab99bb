/** The one number a TensorProto holds, read from its wire bytes (see event-scan.ts). */
import { Cursor, WIRE_I32, WIRE_I64, WIRE_LEN, WIRE_VARINT } from "./proto-wire.ts";

/* TensorFlow DataType codes (types.proto) and the TensorProto field holding each one's values. */
const DT = {
  FLOAT: 1,
  DOUBLE: 2,
  INT32: 3,
  UINT8: 4,
  INT16: 5,
  INT8: 6,
  INT64: 9,
  BOOL: 10,
  BFLOAT16: 14,
  UINT16: 17,
  HALF: 19,
  UINT32: 22,
  UINT64: 23,
} as const;

const VALUE_FIELD: Record<number, number> = {
  [DT.FLOAT]: 5,
  [DT.DOUBLE]: 6,
  [DT.INT32]: 7,
  [DT.UINT8]: 7,
  [DT.INT16]: 7,
  [DT.INT8]: 7,
  [DT.INT64]: 10,
  [DT.BOOL]: 11,
  [DT.BFLOAT16]: 13,
  [DT.HALF]: 13,
  [DT.UINT16]: 7,
  [DT.UINT32]: 16,
  [DT.UINT64]: 17,
};

/**
 * The number a tensor holds when it holds exactly one, as numpy's `make_ndarray(t).item()` gives
 * it: from tensor_content when present, else from the dtype's value field (one value broadcasts).
 */
export function scanTensorScalar(c: Cursor): number | undefined {
  let dtype = 0;
  let elements = 1;
  let content: [number, number] | null = null;
  const fieldValues = new Map<number, number[]>();
  while (c.pos < c.end) {
    const key = c.varint();
    const field = Math.floor(key / 8);
    const wire = key & 7;
    if (field === 1 && wire === WIRE_VARINT) dtype = c.varint();
    else if (field === 2 && wire === WIRE_LEN) {
      const [start, stop] = c.span();
      elements = shapeElements(new Cursor(c.bytes, start, stop));
    } else if (field === 4 && wire === WIRE_LEN) content = c.span();
    else if (isNumericField(field)) {
      const list = fieldValues.get(field) ?? [];
      fieldValues.set(field, list);
      readNumbers(c, field, wire, list);
    } else c.skip(wire);
  }
  if (elements !== 1) return undefined;
  if (content && content[1] > content[0]) return fromContent(c.bytes, content, dtype);
  const field = VALUE_FIELD[dtype];
  const list = field === undefined ? undefined : fieldValues.get(field);
  if (list?.length !== 1) return undefined;
  const raw = list[0] as number;
  if (dtype === DT.HALF) return halfToNumber(raw);
  if (dtype === DT.BFLOAT16) return bfloat16ToNumber(raw);
  if (dtype === DT.BOOL) return raw ? 1 : 0;
  if (dtype === DT.INT8) return (raw << 24) >> 24;
  if (dtype === DT.INT16) return (raw << 16) >> 16;
  if (dtype === DT.UINT8) return raw & 0xff;
  if (dtype === DT.UINT16) return raw & 0xffff;
  return raw;
}

function isNumericField(field: number): boolean {
  return (
    (field >= 5 && field <= 7) || field === 10 || field === 11 || field === 13 || field === 16 || field === 17
  );
}

/** Append one repeated numeric field's values, packed (length-delimited) or not. */
function readNumbers(c: Cursor, field: number, wire: number, into: number[]): void {
  const one = (reader: Cursor): number => {
    if (field === 5) return reader.float();
    if (field === 6) return reader.double();
    const raw = reader.varint();
    // int32 fields sign-extend to 64 bits on the wire.
    return field === 7 && raw >= 2 ** 31 && raw < 2 ** 32 ? raw - 2 ** 32 : raw;
  };
  if (wire === WIRE_LEN) {
    const [start, stop] = c.span();
    const packed = new Cursor(c.bytes, start, stop);
    while (packed.pos < packed.end) into.push(one(packed));
  } else if (
    (field === 5 && wire === WIRE_I32) ||
    (field === 6 && wire === WIRE_I64) ||
    wire === WIRE_VARINT
  ) {
    into.push(one(c));
  } else c.skip(wire);
}

function shapeElements(c: Cursor): number {
  let elements = 1;
  while (c.pos < c.end) {
    const key = c.varint();
    if (key === (2 << 3) + WIRE_LEN) {
      const [start, stop] = c.span();
      const dim = new Cursor(c.bytes, start, stop);
      let size = 0;
      while (dim.pos < dim.end) {
        const dimKey = dim.varint();
        if (dimKey === (1 << 3) + WIRE_VARINT) size = dim.varint();
        else dim.skip(dimKey & 7);
      }
      elements *= size;
    } else c.skip(key & 7);
  }
  return elements;
}

function fromContent(bytes: Buffer, [start, stop]: [number, number], dtype: number): number | undefined {
  const length = stop - start;
  const sized = (size: number): boolean => length === size;
  switch (dtype) {
    case DT.FLOAT:
      return sized(4) ? bytes.readFloatLE(start) : undefined;
    case DT.DOUBLE:
      return sized(8) ? bytes.readDoubleLE(start) : undefined;
    case DT.INT32:
      return sized(4) ? bytes.readInt32LE(start) : undefined;
    case DT.UINT32:
      return sized(4) ? bytes.readUInt32LE(start) : undefined;
    case DT.INT64:
      return sized(8) ? Number(bytes.readBigInt64LE(start)) : undefined;
    case DT.UINT64:
      return sized(8) ? Number(bytes.readBigUInt64LE(start)) : undefined;
    case DT.INT16:
      return sized(2) ? bytes.readInt16LE(start) : undefined;
    case DT.UINT16:
      return sized(2) ? bytes.readUInt16LE(start) : undefined;
    case DT.INT8:
      return sized(1) ? bytes.readInt8(start) : undefined;
    case DT.UINT8:
      return sized(1) ? bytes.readUInt8(start) : undefined;
    case DT.BOOL:
      return sized(1) ? (bytes[start] ? 1 : 0) : undefined;
    case DT.HALF:
      return sized(2) ? halfToNumber(bytes.readUInt16LE(start)) : undefined;
    case DT.BFLOAT16:
      return sized(2) ? bfloat16ToNumber(bytes.readUInt16LE(start)) : undefined;
    default:
      return undefined;
  }
}

function halfToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 0x1f) return fraction ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}

const bfloat16View = new DataView(new ArrayBuffer(4));
function bfloat16ToNumber(bits: number): number {
  bfloat16View.setUint32(0, (bits & 0xffff) << 16);
  return bfloat16View.getFloat32(0);
}
