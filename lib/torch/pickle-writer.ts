/**
 * The few pickle (protocol 2) instructions a PyTorch state dict is written with — the ones
 * Python's pickler emits for `torch.save(state_dict)` and `torch.load(…, weights_only=True)`
 * accepts. No memo: repeated globals and strings are written again, which every unpickler reads.
 */

export const OP = {
  MARK: 0x28, // (
  STOP: 0x2e, // .
  BININT: 0x4a, // J
  BININT1: 0x4b, // K
  BININT2: 0x4d, // M
  BINPERSID: 0x51, // Q
  REDUCE: 0x52, // R
  BINUNICODE: 0x58, // X
  GLOBAL: 0x63, // c
  EMPTY_TUPLE: 0x29, // )
  TUPLE: 0x74, // t
  SETITEMS: 0x75, // u
  PROTO: 0x80,
  LONG1: 0x8a,
  TUPLE1: 0x85,
  TUPLE2: 0x86,
  TUPLE3: 0x87,
  NEWTRUE: 0x88,
  NEWFALSE: 0x89,
} as const;

export class PickleWriter {
  private bytes = new Uint8Array(4096);
  private length = 0;

  private reserve(n: number): void {
    if (this.length + n <= this.bytes.length) return;
    const grown = new Uint8Array(Math.max(this.bytes.length * 2, this.length + n));
    grown.set(this.bytes.subarray(0, this.length));
    this.bytes = grown;
  }

  op(code: number): this {
    this.reserve(1);
    this.bytes[this.length++] = code;
    return this;
  }

  private raw(data: Uint8Array): void {
    this.reserve(data.length);
    this.bytes.set(data, this.length);
    this.length += data.length;
  }

  private uint(value: number, width: 1 | 2 | 4): void {
    this.reserve(width);
    for (let i = 0; i < width; i++) this.bytes[this.length++] = (value >>> (8 * i)) & 0xff;
  }

  proto(): this {
    return this.op(OP.PROTO).op(2);
  }

  /** A module-level name, e.g. global("collections", "OrderedDict"). */
  global(module: string, name: string): this {
    this.op(OP.GLOBAL);
    this.raw(new TextEncoder().encode(`${module}\n${name}\n`));
    return this;
  }

  str(value: string): this {
    const utf8 = new TextEncoder().encode(value);
    this.op(OP.BINUNICODE).uint(utf8.length, 4);
    this.raw(utf8);
    return this;
  }

  /** A whole number in the shortest form Python's pickler would choose. */
  int(value: number): this {
    if (!Number.isSafeInteger(value)) throw new RangeError(`pickle: ${value} is not a safe integer`);
    if (value >= 0 && value <= 0xff) return this.op(OP.BININT1).byte(value);
    if (value >= 0 && value <= 0xffff) {
      this.op(OP.BININT2).uint(value, 2);
      return this;
    }
    if (value >= -(2 ** 31) && value < 2 ** 31) {
      this.op(OP.BININT).uint(value >>> 0, 4);
      return this;
    }
    if (value < 0) throw new RangeError(`pickle: ${value} is below the range a state dict uses`);
    // LONG1 as Python's encode_long: little-endian, one byte more than the bits need (sign bit 0).
    const digits: number[] = [];
    const byteCount = (value.toString(2).length >> 3) + 1;
    let rest = BigInt(value);
    for (let i = 0; i < byteCount; i++, rest >>= 8n) digits.push(Number(rest & 0xffn));
    this.op(OP.LONG1).byte(digits.length);
    for (const d of digits) this.byte(d);
    return this;
  }

  private byte(value: number): this {
    this.reserve(1);
    this.bytes[this.length++] = value;
    return this;
  }

  bool(value: boolean): this {
    return this.op(value ? OP.NEWTRUE : OP.NEWFALSE);
  }

  /** A tuple of whole numbers (a shape or a stride), in Python's shortest tuple form. */
  intTuple(values: readonly number[]): this {
    const short = [OP.EMPTY_TUPLE, OP.TUPLE1, OP.TUPLE2, OP.TUPLE3] as const;
    if (values.length > 3) this.op(OP.MARK);
    for (const v of values) this.int(v);
    return this.op(values.length > 3 ? OP.TUPLE : short[values.length]);
  }

  finish(): Uint8Array {
    return this.bytes.slice(0, this.length);
  }
}
