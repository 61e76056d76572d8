/**
 * A restricted pickle reader for PyTorch checkpoints (the data.pkl of torch.save's zip, protocols 2-5).
 *
 * Unpickling ordinarily runs code: GLOBAL names any Python callable and REDUCE calls it. This reader runs
 * nothing. It implements only the opcodes a tensor state dict uses, and GLOBAL resolves only the names on
 * ALLOWED_GLOBALS to inert markers; REDUCE applies one of a few fixed rules (build an OrderedDict, describe
 * a tensor over a storage). Any other global, opcode or call is refused with one line naming it.
 *
 * Bounds: the pickle's size is capped by the caller, and the stack, the MARK depth, the memo and the number
 * of values and tensors are capped here, so a hostile pickle cannot make it allocate without limit; every
 * length read from the pickle is checked against the bytes that remain. The work is linear in the pickle's
 * size: no opcode copies a value another one made (BUILD's state is dropped, containers are moved).
 * Values are never walked recursively, so self-referencing or deeply nested containers are harmless.
 */
import { InputError } from '../errors.js';

/** Python float, kept apart from ints (which are JS numbers, or bigints past 2^53). */
export class PyFloat {
  constructor(readonly value: number) {}
}
export class PyTuple {
  constructor(readonly items: readonly PyValue[]) {}
}
export class PyList {
  constructor(readonly items: PyValue[]) {}
}
/** dict or collections.OrderedDict, keys str or int, in insertion order (as Python keeps them). */
export class PyDict {
  readonly entries = new Map<string | number, PyValue>();
  constructor(readonly ordered: boolean) {}
}
/** A global the pickle named: only ever one of ALLOWED_GLOBALS, never resolved to anything callable. */
export class PyGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
  ) {}
  get qualified(): string {
    return `${this.module}.${this.name}`;
  }
}

/** What safetensors calls each torch storage's element type, and its size in bytes. */
export const STORAGE_DTYPES: Readonly<Record<string, { dtype: string; itemsize: number }>> = Object.freeze({
  FloatStorage: { dtype: 'F32', itemsize: 4 },
  DoubleStorage: { dtype: 'F64', itemsize: 8 },
  HalfStorage: { dtype: 'F16', itemsize: 2 },
  BFloat16Storage: { dtype: 'BF16', itemsize: 2 },
  LongStorage: { dtype: 'I64', itemsize: 8 },
  IntStorage: { dtype: 'I32', itemsize: 4 },
  ShortStorage: { dtype: 'I16', itemsize: 2 },
  CharStorage: { dtype: 'I8', itemsize: 1 },
  ByteStorage: { dtype: 'U8', itemsize: 1 },
  BoolStorage: { dtype: 'BOOL', itemsize: 1 },
});

/** A storage named by a persistent id ('storage', torch.<T>Storage, key, location, numel): its bytes from the zip. */
export class TorchStorage {
  constructor(
    readonly key: string,
    readonly dtype: string,
    readonly itemsize: number,
    readonly numel: number,
    readonly bytes: Uint8Array,
  ) {}
}

/**
 * A tensor as torch._utils._rebuild_tensor_v2 describes it: a strided view of a storage. The view's bounds
 * were checked against the storage when it was made; materialise it with contiguousBytes().
 */
export class TorchTensor {
  constructor(
    readonly storage: TorchStorage,
    readonly offset: number,
    readonly shape: readonly number[],
    readonly stride: readonly number[],
  ) {}
}

export type PyValue = null | boolean | number | bigint | string | Uint8Array | PyFloat | PyTuple | PyList | PyDict | PyGlobal | TorchStorage | TorchTensor;

/** The globals a tensor state dict needs; nothing else may be named. */
export const ALLOWED_GLOBALS: ReadonlySet<string> = new Set([
  'collections.OrderedDict',
  'torch._utils._rebuild_tensor',
  'torch._utils._rebuild_tensor_v2',
  'torch._utils._rebuild_parameter',
  'torch._utils._rebuild_parameter_with_state',
  ...Object.keys(STORAGE_DTYPES).map((s) => `torch.${s}`),
]);

export interface PickleLimits {
  /** Values on the stack, all MARK levels together. */
  readonly maxStack: number;
  /** Nested MARKs. */
  readonly maxMarks: number;
  readonly maxMemo: number;
  /** Containers, strings and tensors made, in all: each costs memory beyond the pickle's own bytes. */
  readonly maxValues: number;
  readonly maxTensors: number;
}

/** Far above what a real state dict needs (a 1000-tensor model makes about 20 values per tensor). */
export const DEFAULT_PICKLE_LIMITS: PickleLimits = Object.freeze({
  maxStack: 1_000_000,
  maxMarks: 10_000,
  maxMemo: 4_000_000,
  maxValues: 20_000_000,
  maxTensors: 1_000_000,
});

/** Looks up a storage's bytes by key (data/<key> in the zip); undefined when there is none. */
export type StorageBytes = (key: string) => Uint8Array | undefined;

const OPCODE_NAMES: Readonly<Record<number, string>> = {
  0x28: 'MARK', 0x2e: 'STOP', 0x30: 'POP', 0x31: 'POP_MARK', 0x32: 'DUP', 0x46: 'FLOAT', 0x49: 'INT', 0x4a: 'BININT',
  0x4b: 'BININT1', 0x4c: 'LONG', 0x4d: 'BININT2', 0x4e: 'NONE', 0x50: 'PERSID', 0x51: 'BINPERSID', 0x52: 'REDUCE',
  0x53: 'STRING', 0x54: 'BINSTRING', 0x55: 'SHORT_BINSTRING', 0x56: 'UNICODE', 0x58: 'BINUNICODE', 0x61: 'APPEND',
  0x62: 'BUILD', 0x63: 'GLOBAL', 0x64: 'DICT', 0x7d: 'EMPTY_DICT', 0x65: 'APPENDS', 0x67: 'GET', 0x68: 'BINGET',
  0x69: 'INST', 0x6a: 'LONG_BINGET', 0x6c: 'LIST', 0x5d: 'EMPTY_LIST', 0x6f: 'OBJ', 0x70: 'PUT', 0x71: 'BINPUT',
  0x72: 'LONG_BINPUT', 0x73: 'SETITEM', 0x74: 'TUPLE', 0x29: 'EMPTY_TUPLE', 0x75: 'SETITEMS', 0x47: 'BINFLOAT',
  0x80: 'PROTO', 0x81: 'NEWOBJ', 0x82: 'EXT1', 0x83: 'EXT2', 0x84: 'EXT4', 0x85: 'TUPLE1', 0x86: 'TUPLE2',
  0x87: 'TUPLE3', 0x88: 'NEWTRUE', 0x89: 'NEWFALSE', 0x8a: 'LONG1', 0x8b: 'LONG4', 0x42: 'BINBYTES',
  0x43: 'SHORT_BINBYTES', 0x8c: 'SHORT_BINUNICODE', 0x8d: 'BINUNICODE8', 0x8e: 'BINBYTES8', 0x8f: 'EMPTY_SET',
  0x90: 'ADDITEMS', 0x91: 'FROZENSET', 0x92: 'NEWOBJ_EX', 0x93: 'STACK_GLOBAL', 0x94: 'MEMOIZE', 0x95: 'FRAME',
  0x96: 'BYTEARRAY8', 0x97: 'NEXT_BUFFER', 0x98: 'READONLY_BUFFER',
};

function typeName(v: PyValue | undefined): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'None';
  if (typeof v === 'boolean') return 'a bool';
  if (typeof v === 'number' || typeof v === 'bigint') return 'an int';
  if (typeof v === 'string') return 'a str';
  if (v instanceof Uint8Array) return 'bytes';
  if (v instanceof PyFloat) return 'a float';
  if (v instanceof PyTuple) return 'a tuple';
  if (v instanceof PyList) return 'a list';
  if (v instanceof PyDict) return v.ordered ? 'an OrderedDict' : 'a dict';
  if (v instanceof PyGlobal) return v.qualified;
  if (v instanceof TorchStorage) return 'a storage';
  return 'a tensor';
}

/** A tensor dimension, stride or offset: a non-negative int below 2^53. */
function isCount(v: PyValue): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function countTuple(v: PyValue, what: string, fail: (m: string) => never): number[] {
  if (!(v instanceof PyTuple)) fail(`${what} must be a tuple of ints, got ${typeName(v)}`);
  if (v.items.length > 64) fail(`${what} has ${v.items.length} dimensions (more than 64)`);
  return v.items.map((x) => (isCount(x) ? x : fail(`${what} must hold non-negative ints below 2^53, got ${typeof x === 'number' || typeof x === 'bigint' ? String(x) : typeName(x)}`)));
}

/**
 * Checks that a strided view of `numel` elements at `offset` stays inside a storage of `storageNumel`
 * elements (in exact integer arithmetic: a hostile stride must not wrap around).
 */
export function viewFits(shape: readonly number[], stride: readonly number[], offset: number, storageNumel: number): boolean {
  if (shape.some((d) => d === 0)) return true;
  let last = BigInt(offset);
  for (let i = 0; i < shape.length; i++) last += BigInt(shape[i] - 1) * BigInt(stride[i]);
  return last < BigInt(storageNumel);
}

/** Parses `pkl` (the bytes of data.pkl) into values; storages come from `storageBytes`. */
export function unpickle(pkl: Uint8Array, storageBytes: StorageBytes, label: string, limits: PickleLimits = DEFAULT_PICKLE_LIMITS): PyValue {
  const view = new DataView(pkl.buffer, pkl.byteOffset, pkl.byteLength);
  let pos = 0;
  let opAt = 0;
  const fail = (message: string): never => {
    throw new InputError(`${label}: data.pkl at byte ${opAt}: ${message}`);
  };
  let stack: PyValue[] = [];
  const marks: PyValue[][] = [];
  let depth = 0; // values on all stacks together
  const memo = new Map<number, PyValue>();
  let made = 0;
  let tensors = 0;
  const storages = new Map<string, TorchStorage>();

  const need = (n: number): number => {
    if (n > pkl.length - pos) fail(`needs ${n} more bytes but the pickle ends (truncated?)`);
    const at = pos;
    pos += n;
    return at;
  };
  const u8 = (): number => pkl[need(1)];
  const u16 = (): number => view.getUint16(need(2), true);
  const u32 = (): number => view.getUint32(need(4), true);
  const u64 = (): number => {
    const at = need(8);
    const hi = view.getUint32(at + 4, true);
    if (hi >= 0x200000) fail('a length beyond 2^53');
    return hi * 0x1_0000_0000 + view.getUint32(at, true);
  };
  const count = (): void => {
    if (++made > limits.maxValues) fail(`more than ${limits.maxValues} values`);
  };
  const push = (v: PyValue): void => {
    if (++depth > limits.maxStack) fail(`the stack grows past ${limits.maxStack} values`);
    stack.push(v);
  };
  const pop = (): PyValue => {
    if (stack.length === 0) fail('pops an empty stack (or reaches across a MARK)');
    depth--;
    return stack.pop() as PyValue;
  };
  const top = (): PyValue => {
    if (stack.length === 0) fail('reads an empty stack');
    return stack[stack.length - 1];
  };
  const popMark = (): PyValue[] => {
    const items = stack;
    const outer = marks.pop();
    if (outer === undefined) fail('no MARK to pop to');
    stack = outer as PyValue[];
    depth -= items.length;
    return items;
  };
  const text = (n: number): string => {
    const at = need(n);
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(pkl.subarray(at, at + n));
    } catch {
      return fail('a string that is not valid UTF-8');
    }
  };
  const bytesOf = (n: number): Uint8Array => {
    const at = need(n);
    return pkl.subarray(at, at + n);
  };
  /** GLOBAL's operands: "module\nname\n", each a line of at most 256 characters. */
  const line = (): string => {
    const end = pkl.indexOf(0x0a, pos);
    if (end < 0 || end - pos > 256) fail('GLOBAL without a short newline-terminated name');
    return text(end - pos + 1).slice(0, -1);
  };
  const global = (module: string, name: string): PyGlobal => {
    const q = `${module}.${name}`;
    if (!ALLOWED_GLOBALS.has(q)) {
      // A pickled nn.Module names its class: say what to save instead.
      const hint = /^(torch\.nn\.|__torch__\.)/.test(module) ? ' (a pickled model: save model.state_dict() instead)' : '';
      fail(`refers to the global ${JSON.stringify(q).slice(0, 120)}, which a tensor state dict never needs${hint}; only tensors, their storages and OrderedDict are read (nothing in the file is run)`);
    }
    return new PyGlobal(module, name);
  };
  const dictKey = (k: PyValue): string | number => {
    if (typeof k === 'string' || (typeof k === 'number' && Number.isSafeInteger(k))) return k;
    return fail(`a dict key must be a str or an int, got ${typeName(k)}`);
  };
  const setItems = (target: PyValue, items: readonly PyValue[]): void => {
    if (!(target instanceof PyDict)) fail(`SETITEM(S) on ${typeName(target)}, expected a dict`);
    if (items.length % 2 !== 0) fail('SETITEMS with an odd number of values');
    const d = target as PyDict;
    for (let i = 0; i < items.length; i += 2) d.entries.set(dictKey(items[i]), items[i + 1]);
  };
  const appendItems = (target: PyValue, items: readonly PyValue[]): void => {
    if (!(target instanceof PyList)) fail(`APPEND(S) on ${typeName(target)}, expected a list`);
    for (const x of items) (target as PyList).items.push(x);
  };
  const memoPut = (index: number, v: PyValue): void => {
    if (!memo.has(index) && memo.size >= limits.maxMemo) fail(`the memo grows past ${limits.maxMemo} entries`);
    memo.set(index, v);
  };

  const persistentLoad = (pid: PyValue): TorchStorage => {
    if (!(pid instanceof PyTuple) || pid.items.length !== 5 || pid.items[0] !== 'storage') {
      return fail(`a persistent id must be ('storage', type, key, location, numel), got ${typeName(pid)}`);
    }
    const [, type, key, location, numel] = pid.items;
    if (!(type instanceof PyGlobal) || type.module !== 'torch' || STORAGE_DTYPES[type.name] === undefined) {
      return fail(`a storage type must be a torch.<T>Storage class, got ${typeName(type)}`);
    }
    if (typeof key !== 'string' || typeof location !== 'string' || !isCount(numel)) {
      return fail('a storage persistent id must hold a str key, a str location and an int element count');
    }
    const { dtype, itemsize } = STORAGE_DTYPES[type.name];
    const known = storages.get(key);
    if (known !== undefined) {
      if (known.dtype !== dtype || known.numel !== numel) fail(`storage '${key}' is named as ${known.numel} ${known.dtype} and as ${numel} ${dtype}`);
      return known;
    }
    const bytes = storageBytes(key);
    if (bytes === undefined) return fail(`storage '${key}' has no data/${key} entry in the archive`);
    if (bytes.length !== numel * itemsize) fail(`storage '${key}' should hold ${numel} ${dtype} values (${numel * itemsize} bytes) but data/${key} has ${bytes.length} bytes`);
    const s = new TorchStorage(key, dtype, itemsize, numel, bytes);
    storages.set(key, s);
    return s;
  };

  const rebuildTensor = (args: readonly PyValue[], fn: string): TorchTensor => {
    if (args.length < 4) fail(`${fn} takes (storage, offset, size, stride, ...), got ${args.length} arguments`);
    const [storage, offset, sizes, strides] = args;
    if (!(storage instanceof TorchStorage)) fail(`${fn}: the first argument must be a storage, got ${typeName(storage)}`);
    if (!isCount(offset)) fail(`${fn}: the storage offset must be a non-negative int below 2^53, got ${typeof offset === 'number' || typeof offset === 'bigint' ? String(offset) : typeName(offset)}`);
    const shape = countTuple(sizes, `${fn}: size`, fail);
    const stride = countTuple(strides, `${fn}: stride`, fail);
    if (shape.length !== stride.length) fail(`${fn}: size has ${shape.length} dimensions but stride has ${stride.length}`);
    const s = storage as TorchStorage;
    if (!viewFits(shape, stride, offset as number, s.numel)) {
      fail(`${fn}: a view of size [${shape.join(', ')}], stride [${stride.join(', ')}] at offset ${offset} reaches past storage '${s.key}' of ${s.numel} elements`);
    }
    // requires_grad, then backward hooks (torch refuses to save tensors that have any) and metadata.
    if (args.length > 4 && typeof args[4] !== 'boolean') fail(`${fn}: requires_grad must be a bool, got ${typeName(args[4])}`);
    if (++tensors > limits.maxTensors) fail(`more than ${limits.maxTensors} tensors`);
    return new TorchTensor(s, offset as number, shape, stride);
  };

  const reduce = (fn: PyValue, args: PyValue): PyValue => {
    if (!(fn instanceof PyGlobal)) return fail(`REDUCE calls ${typeName(fn)}, not an allowed global`);
    if (!(args instanceof PyTuple)) return fail(`REDUCE of ${fn.qualified} needs an argument tuple, got ${typeName(args)}`);
    const a = args.items;
    switch (fn.qualified) {
      case 'collections.OrderedDict':
        if (a.length !== 0) fail('collections.OrderedDict is rebuilt from no arguments (its items follow as SETITEMS)');
        return new PyDict(true);
      case 'torch._utils._rebuild_tensor':
        if (a.length !== 4) fail(`torch._utils._rebuild_tensor takes 4 arguments, got ${a.length}`);
        return rebuildTensor(a, fn.qualified);
      case 'torch._utils._rebuild_tensor_v2':
        if (a.length !== 6 && a.length !== 7) fail(`torch._utils._rebuild_tensor_v2 takes 6 or 7 arguments, got ${a.length}`);
        return rebuildTensor(a, fn.qualified);
      case 'torch._utils._rebuild_parameter':
      case 'torch._utils._rebuild_parameter_with_state':
        // (data, requires_grad, backward_hooks[, state]): an nn.Parameter is its data for our purposes.
        if (a.length < 3 || a.length > 4 || !(a[0] instanceof TorchTensor)) fail(`${fn.qualified} takes a tensor and 2 or 3 more arguments`);
        return a[0];
      default:
        return fail(`REDUCE calls ${fn.qualified}, which only names a type here`);
    }
  };

  for (;;) {
    opAt = pos;
    const op = u8();
    switch (op) {
      case 0x80: {
        // PROTO
        const v = u8();
        if (v < 2 || v > 5) fail(`pickle protocol ${v}; protocols 2 to 5 are read`);
        break;
      }
      case 0x95: // FRAME: a length hint only
        if (u64() > pkl.length - pos) fail('a FRAME longer than the rest of the pickle');
        break;
      case 0x2e: {
        // STOP
        if (marks.length !== 0) fail('STOP inside an unclosed MARK');
        const result = pop();
        if (stack.length !== 0) fail(`STOP leaves ${stack.length} extra values on the stack`);
        if (pos !== pkl.length) fail(`${pkl.length - pos} bytes after STOP`);
        return result;
      }
      case 0x28: // MARK
        if (marks.length >= limits.maxMarks) fail(`MARKs nested deeper than ${limits.maxMarks}`);
        marks.push(stack);
        stack = [];
        break;
      case 0x30: // POP
        pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        push(top());
        break;
      case 0x7d: // EMPTY_DICT
        count();
        push(new PyDict(false));
        break;
      case 0x5d: // EMPTY_LIST
        count();
        push(new PyList([]));
        break;
      case 0x29: // EMPTY_TUPLE
        count();
        push(new PyTuple([]));
        break;
      case 0x74: // TUPLE
        count();
        push(new PyTuple(popMark()));
        break;
      case 0x85:
      case 0x86:
      case 0x87: {
        // TUPLE1..3
        const n = op - 0x84;
        const items: PyValue[] = new Array<PyValue>(n);
        for (let i = n - 1; i >= 0; i--) items[i] = pop();
        count();
        push(new PyTuple(items));
        break;
      }
      case 0x6c: // LIST
        count();
        push(new PyList(popMark()));
        break;
      case 0x64: {
        // DICT
        const items = popMark();
        count();
        const d = new PyDict(false);
        setItems(d, items);
        push(d);
        break;
      }
      case 0x4a: // BININT
        push(view.getInt32(need(4), true));
        break;
      case 0x4b: // BININT1
        push(u8());
        break;
      case 0x4d: // BININT2
        push(u16());
        break;
      case 0x8a: {
        // LONG1: n bytes, little-endian two's complement
        const n = u8();
        const b = bytesOf(n);
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
        if (n > 0 && b[n - 1] & 0x80) v -= 1n << BigInt(8 * n);
        push(v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);
        break;
      }
      case 0x47: // BINFLOAT: big-endian float64
        push(new PyFloat(view.getFloat64(need(8), false)));
        break;
      case 0x4e: // NONE
        push(null);
        break;
      case 0x88: // NEWTRUE
        push(true);
        break;
      case 0x89: // NEWFALSE
        push(false);
        break;
      case 0x58: // BINUNICODE
        count();
        push(text(u32()));
        break;
      case 0x8c: // SHORT_BINUNICODE
        count();
        push(text(u8()));
        break;
      case 0x8d: // BINUNICODE8
        count();
        push(text(u64()));
        break;
      case 0x43: // SHORT_BINBYTES
        count();
        push(bytesOf(u8()));
        break;
      case 0x42: // BINBYTES
        count();
        push(bytesOf(u32()));
        break;
      case 0x8e: // BINBYTES8
        count();
        push(bytesOf(u64()));
        break;
      case 0x73: {
        // SETITEM
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
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
        const v = pop();
        appendItems(top(), [v]);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        appendItems(top(), items);
        break;
      }
      case 0x71: // BINPUT
        memoPut(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memoPut(u32(), top());
        break;
      case 0x94: // MEMOIZE
        memoPut(memo.size, top());
        break;
      case 0x68:
      case 0x6a: {
        // BINGET, LONG_BINGET
        const i = op === 0x68 ? u8() : u32();
        if (!memo.has(i)) fail(`memo entry ${i} was never stored`);
        push(memo.get(i) as PyValue);
        break;
      }
      case 0x63: {
        // GLOBAL
        const module = line();
        const name = line();
        push(global(module, name));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL needs two strs');
        push(global(module as string, name as string));
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop();
        const fn = pop();
        count();
        push(reduce(fn, args));
        break;
      }
      case 0x62: {
        // BUILD: only an OrderedDict's attributes (a state dict's _metadata: per-module versions), dropped.
        const state = pop();
        const target = top();
        if (!(target instanceof PyDict && target.ordered)) fail(`BUILD on ${typeName(target)}; only an OrderedDict's attributes are accepted`);
        const attrs = state instanceof PyTuple && state.items.length === 2 ? state.items[0] : state;
        if (!(attrs === null || attrs instanceof PyDict)) fail(`BUILD with ${typeName(state)}, expected a dict of attributes`);
        break;
      }
      case 0x51: // BINPERSID
        push(persistentLoad(pop()));
        break;
      default: {
        const name = OPCODE_NAMES[op];
        fail(name !== undefined ? `opcode ${name} (0x${op.toString(16)}) is not used by a tensor state dict and is not read` : `unknown opcode 0x${op.toString(16).padStart(2, '0')} (not a pickle, or damaged)`);
      }
    }
  }
}

/** Elements in the tensor (a product of checked dimensions: may exceed its storage only when strides repeat elements). */
export function tensorNumel(t: TorchTensor): number {
  if (t.shape.includes(0)) return 0;
  let n = 1;
  for (const d of t.shape) n *= d;
  return n;
}

/** Row-major with no gaps (the strides of size-1 dimensions do not matter), so its bytes are one run of the storage. */
export function isContiguous(t: TorchTensor): boolean {
  let expected = 1;
  for (let i = t.shape.length - 1; i >= 0; i--) {
    if (t.shape[i] !== 1 && t.stride[i] !== expected) return false;
    expected *= t.shape[i];
  }
  return true;
}

/**
 * The tensor's elements in row-major order as little-endian bytes: a view of the storage when the tensor is
 * contiguous, else a copy gathered element by element (transposed or sliced views; the bounds were checked
 * when the tensor was made).
 */
export function contiguousBytes(t: TorchTensor): Uint8Array {
  const { storage, shape, stride, offset } = t;
  const size = storage.itemsize;
  const numel = tensorNumel(t);
  if (numel === 0) return new Uint8Array(0);
  if (isContiguous(t)) return storage.bytes.subarray(offset * size, (offset + numel) * size);
  const out = new Uint8Array(numel * size);
  const src = storage.bytes;
  const nd = shape.length;
  const index = new Array<number>(nd).fill(0);
  let at = offset;
  for (let k = 0; k < numel; k++) {
    for (let b = 0, from = at * size, to = k * size; b < size; b++) out[to + b] = src[from + b];
    // Odometer over the dimensions, last fastest.
    for (let d = nd - 1; d >= 0; d--) {
      if (++index[d] < shape[d]) {
        at += stride[d];
        break;
      }
      at -= (shape[d] - 1) * stride[d];
      index[d] = 0;
    }
  }
  return out;
}
