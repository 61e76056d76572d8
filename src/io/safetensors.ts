/**
 * The safetensors format (github.com/huggingface/safetensors), parsed and written on plain
 * Uint8Arrays so that it runs in a browser too; the Node file functions live in safetensors-fs.ts.
 *
 * Layout: an 8-byte little-endian u64 N, N bytes of UTF-8 JSON
 *   { "<name>": { "dtype": "F32", "shape": [..], "data_offsets": [begin, end] }, ...,
 *     "__metadata__": { "<key>": "<string>" } }            (metadata optional; JSON may be space-padded)
 * then the data buffer. Offsets are relative to the buffer and must tile it exactly: no holes, no
 * overlaps, nothing after the last tensor. A file is untrusted input: every violation is an
 * InputError naming the file, and nothing is allocated in proportion to a number read from the file
 * before that number has been checked against the file's real size.
 */
import { concatBytes } from './bytes.js';
import { InputError } from '../errors.js';
import { sizeOf, type Params, type Tensor } from '../tensor.js';
import { decodeFloat, encodeFloat, isFloatDtype, type FloatDtype } from './dtype.js';

/** The reference implementation's limit; real headers are kilobytes to a few megabytes. */
export const MAX_HEADER_BYTES = 100_000_000;

/** Bits per element of every dtype the format defines (the F4/F6 ones pack several per byte). */
export const DTYPE_BITS: Readonly<Record<string, number>> = Object.freeze({
  BOOL: 8,
  U8: 8,
  I8: 8,
  F8_E5M2: 8,
  F8_E4M3: 8,
  F8_E8M0: 8,
  F4: 4,
  F6_E2M3: 6,
  F6_E3M2: 6,
  I16: 16,
  U16: 16,
  F16: 16,
  BF16: 16,
  I32: 32,
  U32: 32,
  F32: 32,
  I64: 64,
  U64: 64,
  F64: 64,
  C64: 64,
});

export function isKnownDtype(dtype: string): boolean {
  return Object.prototype.hasOwnProperty.call(DTYPE_BITS, dtype);
}

/** One tensor as stored: raw little-endian bytes (a view into the file's buffer, not a copy). */
export interface StoredTensor {
  readonly dtype: string;
  readonly shape: readonly number[];
  readonly bytes: Uint8Array;
}

export interface SafetensorsFile {
  /** Keyed by tensor name; a null-prototype object, so any name (even "__proto__") is a plain key. */
  readonly tensors: Readonly<Record<string, StoredTensor>>;
  readonly metadata: Readonly<Record<string, string>> | null;
  /** Tensor names in the order of their data in the buffer (ties: header order). */
  readonly order: readonly string[];
}

/** A tensor's header entry, with offsets relative to the data buffer. */
export interface TensorInfo {
  readonly dtype: string;
  readonly shape: readonly number[];
  readonly dataOffsets: readonly [number, number];
}

/** The header alone, validated against the size of the data buffer that follows it. */
export interface SafetensorsHeader {
  readonly label: string;
  readonly tensors: Readonly<Record<string, TensorInfo>>;
  readonly metadata: Readonly<Record<string, string>> | null;
  readonly order: readonly string[];
  /** Byte offset of the data buffer in the file: 8 + N. */
  readonly dataStart: number;
  /** Length of the data buffer in bytes. */
  readonly dataLength: number;
}

const METADATA_KEY = '__metadata__';
const PREFIX_BYTES = 8;

/** A name as it appears in messages: quoted, escaped, and cut short if someone made it huge. */
function q(name: string): string {
  const s = JSON.stringify(name);
  return s.length <= 80 ? s : `${s.slice(0, 77)}..."`;
}

function fail(label: string, message: string): never {
  throw new InputError(`${label}: ${message}`);
}

/**
 * Number of bytes `shape` of `dtype` occupies: null when that is not a whole number of bytes (odd
 * counts of 4-bit values), Infinity when it is beyond 2^53 (no buffer can hold it).
 */
export function tensorByteLength(dtype: string, shape: readonly number[]): number | null {
  const bits = DTYPE_BITS[dtype];
  if (bits === undefined) throw new Error(`unknown dtype ${dtype}`);
  if (shape.includes(0)) return 0;
  const total = sizeOf(shape) * bits;
  if (!Number.isSafeInteger(total)) return Infinity;
  if (total % 8 !== 0) return null;
  return total / 8;
}

/**
 * The header length N from the first 8 bytes of a file of `fileSize` bytes, checked against the file
 * size and MAX_HEADER_BYTES before anything is allocated for it.
 */
export function readHeaderLength(prefix: Uint8Array, fileSize: number, label = 'file'): number {
  if (prefix.length < PREFIX_BYTES || fileSize < PREFIX_BYTES) {
    fail(label, `is only ${Math.min(fileSize, prefix.length)} bytes; a safetensors file starts with an 8-byte header length`);
  }
  const view = new DataView(prefix.buffer, prefix.byteOffset, PREFIX_BYTES);
  const lo = view.getUint32(0, true);
  const hi = view.getUint32(4, true);
  const available = fileSize - PREFIX_BYTES;
  if (hi !== 0 || lo > available) {
    const declared = (BigInt(hi) << 32n) | BigInt(lo);
    fail(label, `header length field says ${declared} bytes but only ${available} bytes follow it (truncated, or not a safetensors file)`);
  }
  if (lo > MAX_HEADER_BYTES) {
    fail(label, `header length ${lo} bytes exceeds the ${MAX_HEADER_BYTES}-byte limit (corrupt, or not a safetensors file)`);
  }
  return lo;
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Walk valid JSON text and throw on a key repeated within one object — JSON.parse would silently keep
 * the last one, and a tensor listed twice is a corrupt file, not a choice to make for the user.
 * Returns the top-level keys in textual order (Object.keys puts integer-like names first).
 */
function topLevelKeysNoDuplicates(text: string, label: string): string[] {
  const top: string[] = [];
  const stack: (Set<string> | null)[] = [];
  let expectKey = false;
  let currentTop = '';
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      let j = i + 1;
      let escaped = false;
      for (;;) {
        const d = text.charCodeAt(j);
        if (d === 0x5c) {
          j += 2;
          escaped = true;
        } else if (d === 0x22) break;
        else j++;
      }
      if (expectKey) {
        const key = escaped ? (JSON.parse(text.slice(i, j + 1)) as string) : text.slice(i + 1, j);
        const keys = stack[stack.length - 1] as Set<string>;
        if (keys.has(key)) {
          if (stack.length === 1) fail(label, `header lists ${q(key)} twice`);
          fail(label, `header entry ${q(currentTop)} has the key ${q(key)} twice`);
        }
        keys.add(key);
        if (stack.length === 1) {
          top.push(key);
          currentTop = key;
        }
        expectKey = false;
      }
      i = j;
    } else if (c === 0x7b /* { */) {
      stack.push(new Set());
      expectKey = true;
    } else if (c === 0x5b /* [ */) {
      stack.push(null);
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
    } else if (c === 0x2c /* , */) {
      expectKey = stack[stack.length - 1] !== null;
    }
  }
  return top;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

function readIntArray(v: unknown, what: string, label: string): number[] {
  if (!Array.isArray(v)) fail(label, `${what} must be an array of non-negative integers, got ${typeName(v)}`);
  for (const x of v) {
    if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < 0) {
      fail(label, `${what} must hold non-negative integers, got ${JSON.stringify(x)?.slice(0, 40) ?? String(x)}`);
    }
  }
  return v as number[];
}

function readMetadata(v: unknown, label: string): Record<string, string> | null {
  if (v === null) return null;
  if (!isPlainObject(v)) fail(label, `__metadata__ must be an object of strings, got ${typeName(v)}`);
  const out: Record<string, string> = Object.create(null);
  for (const [k, value] of Object.entries(v)) {
    if (typeof value !== 'string') fail(label, `__metadata__ value ${q(k)} must be a string, got ${typeName(value)}`);
    out[k] = value;
  }
  return out;
}

/**
 * Parse and validate the JSON header (the N bytes after the prefix) for a data buffer of
 * `dataLength` bytes.
 */
export function parseHeader(headerBytes: Uint8Array, dataLength: number, label = 'file'): SafetensorsHeader {
  let text: string;
  try {
    text = utf8.decode(headerBytes);
  } catch {
    fail(label, 'header is not valid UTF-8 (corrupt, or not a safetensors file)');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    fail(label, `header is not valid JSON (${(e as Error).message.slice(0, 120)})`);
  }
  if (!isPlainObject(json)) fail(label, `header must be a JSON object, got ${typeName(json)}`);
  const names = topLevelKeysNoDuplicates(text, label);

  let metadata: Record<string, string> | null = null;
  const tensors: Record<string, TensorInfo> = Object.create(null);
  const byOffset: { name: string; begin: number; end: number }[] = [];
  for (const name of names) {
    const entry = json[name];
    if (name === METADATA_KEY) {
      metadata = readMetadata(entry, label);
      continue;
    }
    const where = `tensor ${q(name)}`;
    if (!isPlainObject(entry)) fail(label, `${where}: header entry must be an object, got ${typeName(entry)}`);
    for (const key of ['dtype', 'shape', 'data_offsets']) {
      if (!Object.prototype.hasOwnProperty.call(entry, key)) fail(label, `${where}: header entry has no "${key}"`);
    }
    const dtype = entry.dtype;
    if (typeof dtype !== 'string') fail(label, `${where}: dtype must be a string, got ${typeName(dtype)}`);
    if (!isKnownDtype(dtype)) {
      fail(label, `${where}: unknown dtype ${q(dtype)} (known: ${Object.keys(DTYPE_BITS).join(', ')})`);
    }
    const shape = readIntArray(entry.shape, `${where}: shape`, label);
    const offsets = readIntArray(entry.data_offsets, `${where}: data_offsets`, label);
    if (offsets.length !== 2) fail(label, `${where}: data_offsets must be [begin, end], got ${offsets.length} numbers`);
    const [begin, end] = offsets;
    if (end < begin) fail(label, `${where}: data_offsets [${begin}, ${end}] end before they begin`);
    if (end > dataLength) {
      fail(label, `${where}: data_offsets [${begin}, ${end}] run past the ${dataLength}-byte data buffer (truncated file?)`);
    }
    const need = tensorByteLength(dtype, shape);
    const shapeText = shape.length <= 16 ? `[${shape.join(', ')}]` : `[${shape.slice(0, 16).join(', ')}, ... (${shape.length} dims)]`;
    if (need === null) fail(label, `${where}: ${dtype} of shape ${shapeText} is not a whole number of bytes`);
    if (need !== end - begin) {
      const needText = need === Infinity ? 'more than 2^53' : String(need);
      fail(label, `${where}: ${dtype} of shape ${shapeText} needs ${needText} bytes but data_offsets [${begin}, ${end}] hold ${end - begin}`);
    }
    tensors[name] = { dtype, shape: [...shape], dataOffsets: [begin, end] };
    byOffset.push({ name, begin, end });
  }

  // The buffer must be tiled exactly. Array.prototype.sort is stable: equal offsets keep header order.
  byOffset.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let covered = 0;
  let previous = '';
  for (const t of byOffset) {
    if (t.begin < covered) {
      fail(label, `tensor ${q(t.name)} at bytes [${t.begin}, ${t.end}] overlaps tensor ${q(previous)}, which ends at ${covered}`);
    }
    if (t.begin > covered) {
      fail(label, `bytes [${covered}, ${t.begin}) of the data buffer belong to no tensor (a hole before tensor ${q(t.name)})`);
    }
    covered = t.end;
    previous = t.name;
  }
  if (covered !== dataLength) {
    fail(label, `${dataLength - covered} bytes after the last tensor belong to no tensor (the data buffer is ${dataLength} bytes)`);
  }
  return {
    label,
    tensors,
    metadata,
    order: byOffset.map((t) => t.name),
    dataStart: PREFIX_BYTES + headerBytes.length,
    dataLength,
  };
}

/**
 * Parse a whole safetensors file held in memory. Tensor bytes are views into `bytes` (no copy), so
 * keep `bytes` unchanged while they are in use. `label` (usually the path) names the file in errors.
 */
export function parseSafetensors(bytes: Uint8Array, label = 'file'): SafetensorsFile {
  const n = readHeaderLength(bytes.subarray(0, PREFIX_BYTES), bytes.length, label);
  const header = parseHeader(bytes.subarray(PREFIX_BYTES, PREFIX_BYTES + n), bytes.length - PREFIX_BYTES - n, label);
  return storedFromHeader(header, (begin, end) => bytes.subarray(header.dataStart + begin, header.dataStart + end));
}

function storedFromHeader(header: SafetensorsHeader, slice: (begin: number, end: number) => Uint8Array): SafetensorsFile {
  const tensors: Record<string, StoredTensor> = Object.create(null);
  for (const name of header.order) {
    const info = header.tensors[name];
    tensors[name] = { dtype: info.dtype, shape: info.shape, bytes: slice(info.dataOffsets[0], info.dataOffsets[1]) };
  }
  return { tensors, metadata: header.metadata, order: header.order };
}

export interface FileParams {
  /** Every F32/F16/BF16/F64 tensor, converted to float32 (each in its own buffer). */
  readonly params: Params;
  /** The stored dtype of each tensor in `params`, to write it back the same way. */
  readonly dtypes: Readonly<Record<string, FloatDtype>>;
  /** Names of the tensors of other dtypes (integer buffers, fp8, ...), left as stored. */
  readonly passthrough: readonly string[];
}

/** The floating-point tensors of `file` as float32 params; other dtypes are listed, not converted. */
export function toParams(file: SafetensorsFile): FileParams {
  const params: Record<string, Tensor> = Object.create(null);
  const dtypes: Record<string, FloatDtype> = Object.create(null);
  const passthrough: string[] = [];
  for (const name of file.order) {
    const t = file.tensors[name];
    if (isFloatDtype(t.dtype)) {
      params[name] = { shape: [...t.shape], data: decodeFloat(t.dtype, t.bytes) };
      dtypes[name] = t.dtype;
    } else {
      passthrough.push(name);
    }
  }
  return { params, dtypes, passthrough };
}

export interface ToSafetensorsOptions {
  /**
   * The file the params were read from: its dtypes, tensor order, metadata and non-float tensors
   * are used unless given below, so a BF16 model is written back as BF16 with the same keys/order.
   * Float tensors of `like` that are missing from params are left out.
   */
  readonly like?: SafetensorsFile;
  /** Stored dtype per tensor (default: as in `like`, else F32). */
  readonly dtypes?: Readonly<Record<string, FloatDtype>>;
  /** File metadata (default: `like`'s). */
  readonly metadata?: Readonly<Record<string, string>> | null;
  /** Tensors written as they are, e.g. integer buffers (default: `like`'s non-float tensors). */
  readonly extra?: Readonly<Record<string, StoredTensor>>;
  /** Order of the tensors in the file (default: `like`'s); names not listed follow in key order. */
  readonly order?: readonly string[];
}

/**
 * F64 is the one float dtype float32 cannot hold exactly. A tensor the caller left unchanged (its
 * float32 values are exactly those read from `like`) keeps its original bytes, so passing a float64
 * model through rebasin does not degrade the tensors that were never touched.
 */
function keptF64Bytes(original: StoredTensor | undefined, dtype: FloatDtype, p: Tensor): Uint8Array | null {
  if (dtype !== 'F64' || original === undefined || original.dtype !== 'F64') return null;
  if (original.bytes.length !== 8 * p.data.length || original.shape.length !== p.shape.length) return null;
  if (!original.shape.every((d, i) => d === p.shape[i])) return null;
  const was = decodeFloat('F64', original.bytes);
  for (let i = 0; i < was.length; i++) if (!Object.is(was[i], p.data[i])) return null;
  return original.bytes;
}

/**
 * Build a file from float32 params, converting each to its stored dtype (F64 tensors left unchanged
 * keep their full-precision bytes; changed ones are float32 values widened).
 */
export function paramsToSafetensors(params: Params, options: ToSafetensorsOptions = {}): SafetensorsFile {
  const like = options.like;
  let extra = options.extra;
  if (extra === undefined && like !== undefined) {
    const kept: Record<string, StoredTensor> = Object.create(null);
    for (const name of like.order) {
      const t = like.tensors[name];
      if (!isFloatDtype(t.dtype) && !Object.prototype.hasOwnProperty.call(params, name)) kept[name] = t;
    }
    extra = kept;
  }
  const tensors: Record<string, StoredTensor> = Object.create(null);
  for (const [name, p] of Object.entries(params)) {
    if (extra !== undefined && Object.prototype.hasOwnProperty.call(extra, name)) {
      throw new Error(`paramsToSafetensors: ${q(name)} is both a param and an extra tensor`);
    }
    if (p.data.length !== sizeOf(p.shape)) {
      throw new Error(`paramsToSafetensors: ${q(name)} has shape [${p.shape.join(', ')}] but ${p.data.length} values`);
    }
    let dtype: FloatDtype = 'F32';
    const given = options.dtypes?.[name];
    const likeDtype = like?.tensors[name]?.dtype;
    if (given !== undefined) dtype = given;
    else if (likeDtype !== undefined && isFloatDtype(likeDtype)) dtype = likeDtype;
    tensors[name] = { dtype, shape: [...p.shape], bytes: keptF64Bytes(like?.tensors[name], dtype, p) ?? encodeFloat(dtype, p.data) };
  }
  if (extra !== undefined) for (const [name, t] of Object.entries(extra)) tensors[name] = t;

  const order: string[] = [];
  const placed = new Set<string>();
  for (const name of options.order ?? like?.order ?? []) {
    if (Object.prototype.hasOwnProperty.call(tensors, name) && !placed.has(name)) {
      order.push(name);
      placed.add(name);
    }
  }
  for (const name of Object.keys(tensors)) if (!placed.has(name)) order.push(name);
  const metadata = options.metadata !== undefined ? options.metadata : (like?.metadata ?? null);
  return { tensors, metadata, order };
}

export interface SafetensorsInput {
  readonly tensors: Readonly<Record<string, StoredTensor>>;
  readonly metadata?: Readonly<Record<string, string>> | null;
  /** Data order; names not listed follow in key order. */
  readonly order?: readonly string[];
}

/**
 * The file as chunks to write in sequence: [prefix + header, tensor bytes...]. The tensor chunks are
 * the given views, so writing a large model does not first concatenate it in memory.
 */
export function serializeSafetensorsChunks(file: SafetensorsInput): Uint8Array[] {
  const names: string[] = [];
  const seen = new Set<string>();
  for (const name of file.order ?? []) {
    if (!Object.prototype.hasOwnProperty.call(file.tensors, name)) {
      throw new Error(`serializeSafetensors: order names ${q(name)}, which is not a tensor`);
    }
    if (seen.has(name)) throw new Error(`serializeSafetensors: order names ${q(name)} twice`);
    seen.add(name);
    names.push(name);
  }
  for (const name of Object.keys(file.tensors)) if (!seen.has(name)) names.push(name);

  // The JSON text is assembled by hand: JSON.stringify of an object would move integer-like names
  // ("0", "12") to the front and lose the order.
  const entries: string[] = [];
  if (file.metadata != null) {
    const pairs = Object.entries(file.metadata).map(([k, v]) => {
      if (typeof v !== 'string') throw new Error(`serializeSafetensors: metadata ${q(k)} is not a string`);
      return `${JSON.stringify(k)}:${JSON.stringify(v)}`;
    });
    entries.push(`${JSON.stringify(METADATA_KEY)}:{${pairs.join(',')}}`);
  }
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const name of names) {
    if (name === METADATA_KEY) throw new Error(`serializeSafetensors: a tensor cannot be named ${METADATA_KEY}`);
    const t = file.tensors[name];
    if (!isKnownDtype(t.dtype)) throw new Error(`serializeSafetensors: tensor ${q(name)} has unknown dtype ${q(t.dtype)}`);
    for (const d of t.shape) {
      if (!Number.isSafeInteger(d) || d < 0) throw new Error(`serializeSafetensors: tensor ${q(name)} has a bad shape`);
    }
    const need = tensorByteLength(t.dtype, t.shape);
    if (need !== t.bytes.length) {
      throw new Error(`serializeSafetensors: tensor ${q(name)} (${t.dtype} [${t.shape.join(', ')}]) needs ${need} bytes, has ${t.bytes.length}`);
    }
    const end = offset + t.bytes.length;
    entries.push(`${JSON.stringify(name)}:{"dtype":${JSON.stringify(t.dtype)},"shape":[${t.shape.join(',')}],"data_offsets":[${offset},${end}]}`);
    if (t.bytes.length > 0) chunks.push(t.bytes);
    offset = end;
  }
  const json = new TextEncoder().encode(`{${entries.join(',')}}`);
  // Pad with spaces to a multiple of 8, as the reference writer does, so the data buffer starts
  // 8-aligned in the file and typed-array views of it can be aligned.
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded > MAX_HEADER_BYTES) throw new Error(`serializeSafetensors: header of ${padded} bytes is over the limit`);
  const head = new Uint8Array(PREFIX_BYTES + padded).fill(0x20);
  new DataView(head.buffer).setUint32(0, padded, true);
  new DataView(head.buffer).setUint32(4, 0, true);
  head.set(json, PREFIX_BYTES);
  return [head, ...chunks];
}

/** The whole file as one buffer. */
export function serializeSafetensors(file: SafetensorsInput): Uint8Array {
  return concatBytes(serializeSafetensorsChunks(file));
}
