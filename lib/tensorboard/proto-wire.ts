/** Reading protobuf's wire format by hand: a cursor over one message's bytes. */
export const WIRE_VARINT = 0;
export const WIRE_I64 = 1;
export const WIRE_LEN = 2;
export const WIRE_I32 = 5;

export class Cursor {
  pos: number;
  constructor(
    readonly bytes: Buffer,
    start: number,
    readonly end: number,
  ) {
    this.pos = start;
  }

  varint(): number {
    const { bytes, end } = this;
    let result = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= end) throw new Error("varint runs past the end of the message");
      const byte = bytes[this.pos++] as number;
      if (i === 9 && byte > 1) throw new Error("varint is longer than 64 bits");
      result += (byte & 0x7f) * scale;
      if (byte < 0x80) {
        // Ten-byte varints are negative int64s in two's complement.
        return i === 9 ? result - 2 ** 64 : result;
      }
      scale *= 128;
    }
    throw new Error("varint is longer than 10 bytes");
  }

  /** [start, end) of a length-delimited field's payload; the cursor moves past it. */
  span(): [number, number] {
    const length = this.varint();
    const start = this.pos;
    const stop = start + length;
    if (stop > this.end) throw new Error(`field of ${length} bytes runs past the end of the message`);
    this.pos = stop;
    return [start, stop];
  }

  string(): string {
    const [start, stop] = this.span();
    return this.bytes.toString("utf8", start, stop);
  }

  double(): number {
    this.need(8);
    const value = this.bytes.readDoubleLE(this.pos);
    this.pos += 8;
    return value;
  }

  float(): number {
    this.need(4);
    const value = this.bytes.readFloatLE(this.pos);
    this.pos += 4;
    return value;
  }

  skip(wire: number): void {
    if (wire === WIRE_VARINT) this.varint();
    else if (wire === WIRE_I64) this.advance(8);
    else if (wire === WIRE_LEN) this.span();
    else if (wire === WIRE_I32) this.advance(4);
    else throw new Error(`unsupported wire type ${wire}`);
  }

  private advance(count: number): void {
    this.need(count);
    this.pos += count;
  }

  private need(count: number): void {
    if (this.pos + count > this.end) throw new Error("fixed-width field runs past the end of the message");
  }
}
