/**
 * NumPy .npy arrays and .npz archives from bytes, and .npy writing. Pure: no file access.
 *
 * A .npy file is the magic "\x93NUMPY", a version (1, 2 or 3), the header length (uint16 LE in v1,
 * uint32 LE in v2/v3), a Python dict literal such as
 * `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }` padded with spaces and '\n', then the
 * raw values. A .npz file is a zip (stored or deflated) of .npy files named `<key>.npy`.
 */
import { InputError } from '../errors.js';
import { DEFAULT_MAX_BYTES } from './idx.js';
import { zipEntries, zipEntryBytes } from './zip.js';
import { toLabel } from './dataset.js';

export type NpyKind = 'f' | 'i' | 'u' | 'b';
export type NpyData =
  | Float32Array
  | Float64Array
  | Int8Array
  | Int16Array
  | Int32Array
  | BigInt64Array
  | Uint8Array
  | Uint16Array
  | Uint32Array
  | BigUint64Array;

export interface NpyArray {
  /** NumPy dtype string with its byte order normalised to '<' (or '|' for single bytes), e.g. '<f4', '|u1'. */
  readonly dtype: string;
  readonly shape: number[];
  /** C-order values. float16 is widened to Float32Array; bool is Uint8Array of 0/1. */
  readonly data: NpyData;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // "\x93NUMPY"
/** numpy's own default limit on header length (np.load's max_header_size) is 10 000 characters. */
const MAX_HEADER = 65536;
const MAX_DIMS = 32;

export function isNpy(bytes: Uint8Array): boolean {
  return bytes.length >= 6 && MAGIC.every((b, i) => bytes[i] === b);
}

/** True for a zip archive (local file header "PK\x03\x04", or "PK\x05\x06" for an empty one). */
export function isZip(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b &&
    ((bytes[2] === 3 && bytes[3] === 4) || (bytes[2] === 5 && bytes[3] === 6));
}

interface Header {
  descr: string;
  fortran: boolean;
  shape: number[];
}

/** Parses the header dict. Deliberately strict: exactly the three keys numpy writes, simple literals. */
function parseHeader(text: string, what: string): Header {
  const body = text.trim();
  if (!body.startsWith('{') || !body.endsWith('}')) throw new InputError(`${what}: .npy header is not a dict: ${clip(body)}`);
  const descr = /['"]descr['"]\s*:\s*['"]([^'"]*)['"]/.exec(body);
  const fortran = /['"]fortran_order['"]\s*:\s*(True|False)/.exec(body);
  const shape = /['"]shape['"]\s*:\s*\(([^)]*)\)/.exec(body);
  if (!descr) {
    // Structured dtypes are written as a list, e.g. [('a', '<f4')]: not numeric arrays we can use.
    throw new InputError(`${what}: .npy header has no simple 'descr' (structured dtypes are not supported): ${clip(body)}`);
  }
  if (!fortran || !shape) throw new InputError(`${what}: .npy header lacks 'fortran_order' or 'shape': ${clip(body)}`);
  const dims = shape[1].split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  if (dims.length > MAX_DIMS) throw new InputError(`${what}: .npy shape has ${dims.length} dimensions`);
  const out: number[] = [];
  for (const d of dims) {
    // numpy may write Python longs as "3L" in old files.
    if (!/^\d+L?$/.test(d)) throw new InputError(`${what}: .npy shape entry '${d}' is not a non-negative integer`);
    out.push(parseInt(d, 10));
  }
  return { descr: descr[1], fortran: fortran[1] === 'True', shape: out };
}

function clip(s: string): string {
  return s.length > 120 ? s.slice(0, 117) + '...' : s;
}

interface DtypeInfo {
  kind: NpyKind;
  bytes: number;
  little: boolean;
  normal: string;
}

function parseDescr(descr: string, what: string): DtypeInfo {
  const m = /^([<>|=]?)([fiub])(\d+)$/.exec(descr) ?? /^([<>|=]?)(\?)()$/.exec(descr);
  if (!m) throw new InputError(`${what}: unsupported .npy dtype '${descr}' (supported: float16/32/64, int8..64, uint8..64, bool)`);
  const order = m[1];
  const kind = (m[2] === '?' ? 'b' : m[2]) as NpyKind;
  const bytes = m[2] === '?' ? 1 : parseInt(m[3], 10);
  const ok = kind === 'f' ? [2, 4, 8].includes(bytes) : kind === 'b' ? bytes === 1 : [1, 2, 4, 8].includes(bytes);
  if (!ok) throw new InputError(`${what}: unsupported .npy dtype '${descr}'`);
  // '=' is native order, which numpy never writes to disk; '|' is "not applicable" (single bytes).
  const little = order !== '>';
  const normal = bytes === 1 ? `|${kind}1` : `<${kind}${bytes}`;
  return { kind, bytes, little, normal };
}

/** Parses a .npy file. `what` names the file (or archive entry) in error messages. */
export function parseNpy(bytes: Uint8Array, what = '.npy file'): NpyArray {
  if (!isNpy(bytes)) throw new InputError(`${what}: not a .npy file (missing the \\x93NUMPY magic)`);
  if (bytes.length < 10) throw new InputError(`${what}: .npy header is truncated`);
  const major = bytes[6];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerLen: number;
  let start: number;
  if (major === 1) {
    headerLen = view.getUint16(8, true);
    start = 10;
  } else if (major === 2 || major === 3) {
    if (bytes.length < 12) throw new InputError(`${what}: .npy header is truncated`);
    headerLen = view.getUint32(8, true);
    start = 12;
  } else {
    throw new InputError(`${what}: unsupported .npy format version ${major}.${bytes[7]}`);
  }
  if (headerLen > MAX_HEADER) throw new InputError(`${what}: .npy header of ${headerLen} bytes is over the ${MAX_HEADER}-byte limit`);
  if (start + headerLen > bytes.length) throw new InputError(`${what}: .npy header is truncated`);
  // v1/v2 headers are latin-1, v3 is UTF-8; the keys and values we read are ASCII either way.
  const text = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(bytes.subarray(start, start + headerLen));
  const header = parseHeader(text, what);
  const dt = parseDescr(header.descr, what);
  let n = 1;
  for (const d of header.shape) n *= d;
  const dataStart = start + headerLen;
  const dataBytes = bytes.length - dataStart;
  if (dataBytes !== n * dt.bytes) {
    throw new InputError(
      `${what}: .npy header says shape (${header.shape.join(', ')}) of ${header.descr} (${n * dt.bytes} bytes), ` +
        `but ${dataBytes} data bytes follow`,
    );
  }
  const raw = readRaw(view, dataStart, n, dt);
  const data = header.fortran ? fortranToC(raw, header.shape) : raw;
  return { dtype: dt.normal, shape: header.shape, data };
}

function readRaw(view: DataView, off: number, n: number, dt: DtypeInfo): NpyData {
  const le = dt.little;
  const { kind, bytes } = dt;
  // Always read through the DataView: correct on any byte order and any buffer alignment
  // (Node's small-file buffers come from a shared pool at arbitrary offsets).
  if (kind === 'f') {
    if (bytes === 2) {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = halfToFloat(view.getUint16(off + 2 * i, le));
      return out;
    }
    if (bytes === 4) {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = view.getFloat32(off + 4 * i, le);
      return out;
    }
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) out[i] = view.getFloat64(off + 8 * i, le);
    return out;
  }
  if (kind === 'b' || (kind === 'u' && bytes === 1)) {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = view.getUint8(off + i);
    if (kind === 'b') for (let i = 0; i < n; i++) out[i] = out[i] !== 0 ? 1 : 0;
    return out;
  }
  if (kind === 'i') {
    switch (bytes) {
      case 1: { const o = new Int8Array(n); for (let i = 0; i < n; i++) o[i] = view.getInt8(off + i); return o; }
      case 2: { const o = new Int16Array(n); for (let i = 0; i < n; i++) o[i] = view.getInt16(off + 2 * i, le); return o; }
      case 4: { const o = new Int32Array(n); for (let i = 0; i < n; i++) o[i] = view.getInt32(off + 4 * i, le); return o; }
      default: { const o = new BigInt64Array(n); for (let i = 0; i < n; i++) o[i] = view.getBigInt64(off + 8 * i, le); return o; }
    }
  }
  switch (bytes) {
    case 2: { const o = new Uint16Array(n); for (let i = 0; i < n; i++) o[i] = view.getUint16(off + 2 * i, le); return o; }
    case 4: { const o = new Uint32Array(n); for (let i = 0; i < n; i++) o[i] = view.getUint32(off + 4 * i, le); return o; }
    default: { const o = new BigUint64Array(n); for (let i = 0; i < n; i++) o[i] = view.getBigUint64(off + 8 * i, le); return o; }
  }
}

/** IEEE 754 half precision bits to a number (subnormals, infinities and NaN included). */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac === 0 ? sign * Infinity : NaN;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/**
 * Fortran (column-major) order to C (row-major) order. In column-major storage the first index
 * varies fastest, so element (i0, ..., ik) sits at i0 + d0*(i1 + d1*(i2 + ...)).
 */
function fortranToC<T extends NpyData>(src: T, shape: readonly number[]): T {
  const nd = shape.length;
  if (nd <= 1) return src;
  const out = new (src.constructor as { new (n: number): T })(src.length);
  const fStride: number[] = [];
  let s = 1;
  for (let k = 0; k < nd; k++) {
    fStride.push(s);
    s *= shape[k];
  }
  const idx = new Array<number>(nd).fill(0);
  let from = 0;
  for (let i = 0; i < src.length; i++) {
    out[i] = src[from];
    // Advance the C-order counter (last index fastest), keeping `from` in step.
    for (let k = nd - 1; k >= 0; k--) {
      idx[k]++;
      from += fStride[k];
      if (idx[k] < shape[k]) break;
      from -= fStride[k] * shape[k];
      idx[k] = 0;
    }
  }
  return out;
}

/**
 * Reads the `.npy` entries of a .npz archive (stored or deflated). `keys`, when given, limits
 * decompression to those entries. Each entry is inflated to at most the size the archive announces, which
 * must not pass `maxBytes` and must be what its .npy header promises (zip.ts, inflate.ts): a small archive
 * cannot inflate to gigabytes.
 */
export function parseNpz(
  bytes: Uint8Array,
  what = '.npz file',
  keys?: readonly string[],
  maxBytes = DEFAULT_MAX_BYTES,
): Map<string, NpyArray> {
  if (!isZip(bytes)) throw new InputError(`${what}: not a .npz file (not a zip archive)`);
  const out = new Map<string, NpyArray>();
  for (const entry of zipEntries(bytes, what)) {
    if (!entry.name.endsWith('.npy')) continue;
    const key = entry.name.slice(0, -4);
    if (keys !== undefined && !keys.includes(key)) continue;
    out.set(key, parseNpy(zipEntryBytes(bytes, entry, maxBytes, what), `${what} entry '${key}'`));
  }
  return out;
}

/** Lists the array names in a .npz archive without decompressing anything. */
export function npzKeys(bytes: Uint8Array, what = '.npz file'): string[] {
  return zipEntries(bytes, what).filter((e) => e.name.endsWith('.npy')).map((e) => e.name.slice(0, -4));
}

export type NpyWriteDtype = '<f4' | '<f8' | '|i1' | '<i2' | '<i4' | '<i8' | '|u1' | '<u2' | '<u4' | '|b1';

/** Serialises values as a version 1.0 .npy file in C order (header padded to 64 bytes, as numpy does). */
export function writeNpy(values: ArrayLike<number> | BigInt64Array, shape: readonly number[], dtype: NpyWriteDtype): Uint8Array {
  let n = 1;
  for (const d of shape) n *= d;
  if (n !== values.length) throw new Error(`writeNpy: shape (${shape.join(', ')}) needs ${n} values, got ${values.length}`);
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '${dtype}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  const pad = 64 - ((10 + header.length + 1) % 64);
  header = header + ' '.repeat(pad % 64) + '\n';
  const size = Number(dtype.slice(2));
  const out = new Uint8Array(10 + header.length + n * size);
  out.set(MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  const view = new DataView(out.buffer);
  view.setUint16(8, header.length, true);
  for (let i = 0; i < header.length; i++) out[10 + i] = header.charCodeAt(i);
  const off = 10 + header.length;
  for (let i = 0; i < n; i++) {
    const v = values[i];
    const at = off + i * size;
    switch (dtype) {
      case '<f4': view.setFloat32(at, Number(v), true); break;
      case '<f8': view.setFloat64(at, Number(v), true); break;
      case '|i1': view.setInt8(at, Number(v)); break;
      case '<i2': view.setInt16(at, Number(v), true); break;
      case '<i4': view.setInt32(at, Number(v), true); break;
      case '<i8': view.setBigInt64(at, BigInt(v), true); break;
      case '|u1': view.setUint8(at, Number(v)); break;
      case '<u2': view.setUint16(at, Number(v), true); break;
      case '<u4': view.setUint32(at, Number(v), true); break;
      case '|b1': view.setUint8(at, Number(v) !== 0 ? 1 : 0); break;
    }
  }
  return out;
}

/** Values as float32 (int64 through Number, exact up to 2^53). */
export function npyToFloat32(arr: NpyArray): Float32Array {
  if (arr.data instanceof Float32Array) return arr.data;
  const out = new Float32Array(arr.data.length);
  const d = arr.data;
  for (let i = 0; i < d.length; i++) out[i] = Number(d[i]);
  return out;
}

/**
 * Class labels as Int32Array: integers (or integral floats) in [0, 2^31) (see toLabel). A 2-D [N, C]
 * array must be one-hot — each row one 1 and C-1 zeros — and becomes the index of each row's 1; anything
 * else (scores, all-zero rows, several ones) is refused rather than guessed at.
 */
export function npyToLabels(arr: NpyArray, what: string): { labels: Int32Array; note: string } {
  const d = arr.data;
  if (arr.shape.length === 2 && arr.shape[1] > 1) {
    const [n, c] = arr.shape;
    const labels = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      let hot = -1;
      for (let j = 0; j < c; j++) {
        const v = Number(d[i * c + j]);
        if (v === 1 && hot < 0) hot = j;
        else if (v !== 0) {
          throw new InputError(`${what}: row ${i} of the (${n}, ${c}) labels is not one-hot (column ${j} holds ${String(d[i * c + j])}); give class indices (N,) or one 1 per row`);
        }
      }
      if (hot < 0) throw new InputError(`${what}: row ${i} of the (${n}, ${c}) labels is not one-hot (no column holds 1); give class indices (N,) or one 1 per row`);
      labels[i] = hot;
    }
    return { labels, note: `labels from ${c}-column one-hot rows` };
  }
  const okShape = arr.shape.length === 1 || (arr.shape.length === 2 && arr.shape[1] === 1);
  if (!okShape) throw new InputError(`${what}: labels must have shape (N,) or (N, C), got (${arr.shape.join(', ')})`);
  const labels = new Int32Array(d.length);
  for (let i = 0; i < d.length; i++) labels[i] = toLabel(d[i], i, what);
  return { labels, note: '' };
}
