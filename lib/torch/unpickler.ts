/**
 * A restricted unpickler for PyTorch state dicts. It interprets the pickle as data only: the
 * handful of globals a state dict needs are recognised by name and modelled here (an ordered
 * dict, a tensor rebuilt from a storage, the three float storage types); any other global, any
 * call of something that is not one of those, and any instruction that builds arbitrary objects
 * is refused with an error naming it. Nothing is ever imported, called or executed.
 */
import type { FloatDtype } from "../safetensors/index.ts";

/** A storage the pickle refers to by persistent id: record `data/<key>` of the archive. */
export class StorageRef {
  constructor(
    readonly key: string,
    readonly dtype: FloatDtype,
    /** Elements (not bytes) in the storage. */
    readonly numel: number,
  ) {}
}

/** `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, …)`, not yet read from the archive. */
export class TensorRef {
  constructor(
    readonly storage: StorageRef,
    readonly offset: number,
    readonly shape: number[],
    readonly stride: number[],
  ) {}
}

export class PyTuple {
  constructor(readonly items: PyValue[]) {}
}

export class PyList {
  constructor(readonly items: PyValue[]) {}
}

export type DictKey = string | number | bigint | boolean | null;

export class PyDict {
  readonly entries = new Map<DictKey, PyValue>();
}

class Global {
  constructor(readonly name: string) {}
}

export type PyValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | PyTuple
  | PyList
  | PyDict
  | Global
  | StorageRef
  | TensorRef;

const STORAGE_TYPES: Record<string, FloatDtype> = {
  "torch.FloatStorage": "F32",
  "torch.HalfStorage": "F16",
  "torch.BFloat16Storage": "BF16",
};

const ORDERED_DICT = "collections.OrderedDict";
const REBUILD_TENSOR = "torch._utils._rebuild_tensor_v2";
const REBUILD_PARAMETER = "torch._utils._rebuild_parameter";
const ALLOWED_GLOBALS = new Set([
  ORDERED_DICT,
  REBUILD_TENSOR,
  REBUILD_PARAMETER,
  ...Object.keys(STORAGE_TYPES),
]);

/** Names of instructions that construct arbitrary objects, for the refusal message. */
const OBJECT_OPCODES: Record<number, string> = {
  105: "INST",
  111: "OBJ",
  129: "NEWOBJ",
  146: "NEWOBJ_EX",
  130: "EXT1",
  131: "EXT2",
  132: "EXT4",
  80: "PERSID",
};

/**
 * A pickle the unpickler will not interpret. `forbidden`: it asks for something outside a state
 * dict's vocabulary (a global, a call, an object-building instruction); otherwise it is malformed.
 */
export class PickleRefusal extends Error {
  constructor(
    message: string,
    readonly forbidden = true,
  ) {
    super(message);
  }
}

function malformed(message: string): PickleRefusal {
  return new PickleRefusal(message, false);
}

function describe(value: PyValue | undefined): string {
  if (value === undefined) return "nothing";
  if (value === null) return "None";
  if (value instanceof Global) return value.name;
  if (value instanceof TensorRef) return "a tensor";
  if (value instanceof StorageRef) return "a storage";
  if (value instanceof PyDict) return "a dict";
  if (value instanceof PyTuple) return "a tuple";
  if (value instanceof PyList) return "a list";
  return `${typeof value} ${JSON.stringify(typeof value === "bigint" ? String(value) : value)}`;
}

function wholeNumber(value: PyValue, what: string): number {
  if (typeof value === "number" && Number.isSafeInteger(value) && value >= 0) return value;
  throw new PickleRefusal(`${what} is ${describe(value)}, expected a whole number`);
}

function numberTuple(value: PyValue, what: string): number[] {
  if (!(value instanceof PyTuple)) throw new PickleRefusal(`${what} is ${describe(value)}, expected a tuple`);
  return value.items.map((item, i) => wholeNumber(item, `${what}[${i}]`));
}

function isEmpty(value: PyValue): boolean {
  return value === null || (value instanceof PyDict && value.entries.size === 0);
}

/** What calling one of the allowed callables gives, computed from its arguments as data. */
function call(callable: Global, args: PyValue[]): PyValue {
  switch (callable.name) {
    case ORDERED_DICT:
      if (args.length !== 0) throw new PickleRefusal(`${ORDERED_DICT} called with arguments`);
      return new PyDict();
    case REBUILD_TENSOR: {
      const [storage, offset, size, stride, , hooks, metadata] = args;
      if (args.length < 6 || args.length > 7)
        throw new PickleRefusal(`${REBUILD_TENSOR} called with ${args.length} arguments`);
      if (!(storage instanceof StorageRef))
        throw new PickleRefusal(`${REBUILD_TENSOR} got ${describe(storage)}, expected a storage`);
      if (!isEmpty(hooks) || (metadata !== undefined && !isEmpty(metadata)))
        throw new PickleRefusal(`${REBUILD_TENSOR} got backward hooks or tensor metadata`);
      const shape = numberTuple(size, "tensor size");
      const strides = numberTuple(stride, "tensor stride");
      if (shape.length !== strides.length)
        throw new PickleRefusal(`tensor size [${shape}] and stride [${strides}] differ in length`);
      return new TensorRef(storage, wholeNumber(offset, "storage offset"), shape, strides);
    }
    case REBUILD_PARAMETER: {
      const [data, , hooks] = args;
      if (!(data instanceof TensorRef) || !isEmpty(hooks ?? null))
        throw new PickleRefusal(`${REBUILD_PARAMETER} got ${describe(data)}, expected a tensor`);
      return data;
    }
    default:
      throw new PickleRefusal(`calls ${callable.name}`);
  }
}

/** The `(“storage”, storage type, key, location, numel)` persistent id torch.save writes. */
function persistentLoad(pid: PyValue): StorageRef {
  if (!(pid instanceof PyTuple) || pid.items[0] !== "storage" || pid.items.length !== 5)
    throw new PickleRefusal(`persistent id ${describe(pid)} is not a tensor storage`);
  const [, type, key, , numel] = pid.items;
  if (!(type instanceof Global) || !(type.name in STORAGE_TYPES))
    throw new PickleRefusal(`persistent id names ${describe(type)}, expected a storage type`);
  if (typeof key !== "string" || !/^[0-9A-Za-z_.-]+$/.test(key))
    throw new PickleRefusal(`storage key ${describe(key)} is not a record name`);
  return new StorageRef(key, STORAGE_TYPES[type.name], wholeNumber(numel, "storage size"));
}

/**
 * Interpret `bytes` (a data.pkl) and return the object it describes. Throws PickleRefusal for
 * anything outside a state dict's vocabulary, and for malformed or truncated input.
 */
export function unpickleStateDict(bytes: Uint8Array): PyValue {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const utf8 = new TextDecoder("utf-8", { fatal: true });
  let pos = 0;
  let stack: PyValue[] = [];
  const marks: PyValue[][] = [];
  const memo = new Map<number, PyValue>();

  const need = (n: number) => {
    if (pos + n > bytes.length) throw malformed(`pickle ends early at byte ${bytes.length}`);
    const at = pos;
    pos += n;
    return at;
  };
  const u8 = () => bytes[need(1)];
  const line = () => {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0) throw malformed("pickle ends inside a GLOBAL");
    const text = utf8.decode(bytes.subarray(pos, end));
    pos = end + 1;
    return text;
  };
  const text = (n: number) => utf8.decode(bytes.subarray(need(n), pos));
  const pop = (): PyValue => {
    const value = stack.pop();
    if (value === undefined) throw malformed("pickle stack underflow");
    return value;
  };
  const top = (): PyValue => {
    const value = stack[stack.length - 1];
    if (value === undefined) throw malformed("pickle stack underflow");
    return value;
  };
  const popMark = (): PyValue[] => {
    const items = stack;
    const previous = marks.pop();
    if (!previous) throw malformed("pickle has no MARK to pop to");
    stack = previous;
    return items;
  };
  const pushGlobal = (module: string, name: string) => {
    const full = `${module}.${name}`;
    if (!ALLOWED_GLOBALS.has(full)) throw new PickleRefusal(`names the global ${full}`);
    stack.push(new Global(full));
  };
  const setItems = (dict: PyValue, items: PyValue[]) => {
    if (!(dict instanceof PyDict)) throw new PickleRefusal(`SETITEMS on ${describe(dict)}`);
    for (let i = 0; i + 1 < items.length; i += 2) {
      const key = items[i];
      if (key !== null && typeof key === "object") throw new PickleRefusal(`dict key ${describe(key)}`);
      dict.entries.set(key, items[i + 1]);
    }
  };

  for (;;) {
    const at = pos;
    const code = u8();
    switch (code) {
      case 0x80: // PROTO
        u8();
        break;
      case 0x95: // FRAME (protocol 4): a length prefix, nothing to do
        need(8);
        break;
      case 0x2e: // STOP
        return pop();
      case 0x28: // MARK
        marks.push(stack);
        stack = [];
        break;
      case 0x7d: // EMPTY_DICT
        stack.push(new PyDict());
        break;
      case 0x5d: // EMPTY_LIST
        stack.push(new PyList([]));
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push(new PyTuple([]));
        break;
      case 0x74: {
        // TUPLE (popMark replaces `stack`, so take the items before choosing where to push)
        const items = popMark();
        stack.push(new PyTuple(items));
        break;
      }
      case 0x85: // TUPLE1
      case 0x86: // TUPLE2
      case 0x87: {
        // TUPLE3
        const items: PyValue[] = [];
        for (let i = code - 0x84; i > 0; i--) items.unshift(pop());
        stack.push(new PyTuple(items));
        break;
      }
      case 0x63: // GLOBAL
        pushGlobal(line(), line());
        break;
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== "string" || typeof name !== "string")
          throw new PickleRefusal("STACK_GLOBAL without two strings");
        pushGlobal(module, name);
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop();
        const callable = pop();
        if (!(callable instanceof Global) || !(args instanceof PyTuple))
          throw new PickleRefusal(`calls ${describe(callable)}`);
        stack.push(call(callable, args.items));
        break;
      }
      case 0x62: {
        // BUILD: only an OrderedDict's attributes (state_dict()._metadata), which are ignored
        const state = pop();
        const target = top();
        if (!(target instanceof PyDict) || !(state instanceof PyDict))
          throw new PickleRefusal(`BUILD of ${describe(target)}`);
        break;
      }
      case 0x51: // BINPERSID
        stack.push(persistentLoad(pop()));
        break;
      case 0x4a: // BININT
        stack.push(view.getInt32(need(4), true));
        break;
      case 0x4b: // BININT1
        stack.push(u8());
        break;
      case 0x4d: // BININT2
        stack.push(view.getUint16(need(2), true));
        break;
      case 0x8a: {
        // LONG1: little-endian two's complement
        const n = u8();
        const start = need(n);
        let value = 0n;
        for (let i = n - 1; i >= 0; i--) value = (value << 8n) | BigInt(bytes[start + i]);
        if (n > 0 && bytes[start + n - 1] & 0x80) value -= 1n << BigInt(8 * n);
        const small = Number(value);
        stack.push(Number.isSafeInteger(small) ? small : value);
        break;
      }
      case 0x47: // BINFLOAT (big-endian double)
        stack.push(view.getFloat64(need(8), false));
        break;
      case 0x58: // BINUNICODE
        stack.push(text(view.getUint32(need(4), true)));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(text(u8()));
        break;
      case 0x8d: {
        // BINUNICODE8
        const n = view.getBigUint64(need(8), true);
        if (n > BigInt(bytes.length)) throw malformed(`pickle ends early at byte ${bytes.length}`);
        stack.push(text(Number(n)));
        break;
      }
      case 0x71: // BINPUT
        memo.set(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(view.getUint32(need(4), true), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x68: // BINGET
      case 0x6a: {
        // LONG_BINGET
        const index = code === 0x68 ? u8() : view.getUint32(need(4), true);
        const value = memo.get(index);
        if (value === undefined) throw malformed(`memo ${index} read before it was written`);
        stack.push(value);
        break;
      }
      case 0x73: {
        // SETITEM
        const value = pop();
        const key = pop();
        setItems(top(), [key, value]);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        setItems(top(), items);
        break;
      }
      case 0x61: {
        // APPEND
        const item = pop();
        const list = top();
        if (!(list instanceof PyList)) throw new PickleRefusal(`APPEND to ${describe(list)}`);
        list.items.push(item);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        const list = top();
        if (!(list instanceof PyList)) throw new PickleRefusal(`APPENDS to ${describe(list)}`);
        list.items.push(...items);
        break;
      }
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      default: {
        const name = OBJECT_OPCODES[code];
        const shown = `0x${code.toString(16).padStart(2, "0")}`;
        throw new PickleRefusal(
          name
            ? `uses the ${name} instruction (it builds arbitrary objects) at byte ${at}`
            : `uses the unsupported instruction ${shown} at byte ${at}`,
        );
      }
    }
  }
}
