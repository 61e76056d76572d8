/**
 * IDX files (the MNIST / Fashion-MNIST format), gzipped or not, from bytes. Pure: no file access,
 * so the same parser serves Node and the browser (fflate is plain JS).
 *
 * Layout: two zero bytes, a type code, the number of dimensions, then each dimension as a big-endian
 * uint32, then the values in row-major order, big-endian.
 */
import { InputError } from '../errors.js';
import { inflateExactly } from './inflate.js';
import { MAX_ARRAY_BYTES } from './limits.js';

export type IdxDtype = 'u8' | 'i8' | 'i16' | 'i32' | 'f32' | 'f64';
export type IdxData = Uint8Array | Int8Array | Int16Array | Int32Array | Float32Array | Float64Array;

export interface IdxArray {
  readonly dtype: IdxDtype;
  readonly shape: number[];
  readonly data: IdxData;
}

const CODES: Record<number, { dtype: IdxDtype; bytes: number }> = {
  0x08: { dtype: 'u8', bytes: 1 },
  0x09: { dtype: 'i8', bytes: 1 },
  0x0b: { dtype: 'i16', bytes: 2 },
  0x0c: { dtype: 'i32', bytes: 4 },
  0x0d: { dtype: 'f32', bytes: 4 },
  0x0e: { dtype: 'f64', bytes: 8 },
};

/** More dimensions than any real IDX file has; a bound so a corrupt header cannot ask for much. */
const MAX_DIMS = 8;

/** Default ceiling on an IDX file's decompressed size (see limits.ts). */
export const DEFAULT_MAX_BYTES = MAX_ARRAY_BYTES;

export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/** True when the bytes start like an (uncompressed) IDX file with a known type code. */
export function isIdx(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0 && bytes[1] === 0 && bytes[2] in CODES && bytes[3] >= 1 && bytes[3] <= MAX_DIMS;
}

/**
 * Decompresses gzip data to the size its trailer announces (ISIZE, the length modulo 2^32), refused over
 * `maxBytes` before inflating, and stopped the moment the data would inflate past it (inflate.ts): a small
 * hostile file cannot make us allocate gigabytes, whatever its trailer says.
 */
export function gunzipBounded(bytes: Uint8Array, what: string, maxBytes = DEFAULT_MAX_BYTES): Uint8Array {
  if (bytes.length < 18) throw new InputError(`${what}: gzip data is truncated (${bytes.length} bytes)`);
  const t = bytes.length - 4;
  const announced = (bytes[t] | (bytes[t + 1] << 8) | (bytes[t + 2] << 16) | (bytes[t + 3] << 24)) >>> 0;
  return inflateExactly('gzip', bytes, announced, maxBytes, what);
}

/** Parses an IDX file (gzipped or plain). `what` names the file in error messages. */
export function parseIdx(input: Uint8Array, what = 'IDX file', maxBytes = DEFAULT_MAX_BYTES): IdxArray {
  const bytes = isGzip(input) ? gunzipBounded(input, what, maxBytes) : input;
  if (bytes.length < 4 || bytes[0] !== 0 || bytes[1] !== 0) {
    throw new InputError(`${what}: not an IDX file (it must start with two zero bytes, a type code and a dimension count)`);
  }
  const code = CODES[bytes[2]];
  if (code === undefined) {
    throw new InputError(`${what}: unknown IDX type code 0x${bytes[2].toString(16).padStart(2, '0')}`);
  }
  const ndim = bytes[3];
  if (ndim < 1 || ndim > MAX_DIMS) throw new InputError(`${what}: IDX header gives ${ndim} dimensions (expected 1..${MAX_DIMS})`);
  const headerBytes = 4 + 4 * ndim;
  if (bytes.length < headerBytes) throw new InputError(`${what}: IDX header is truncated`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const shape: number[] = [];
  let count = 1;
  for (let i = 0; i < ndim; i++) {
    const d = view.getUint32(4 + 4 * i, false);
    shape.push(d);
    count *= d;
  }
  const expected = headerBytes + count * code.bytes;
  if (expected !== bytes.length) {
    throw new InputError(
      `${what}: IDX header says shape [${shape.join(', ')}] of ${code.dtype} (${count * code.bytes} data bytes), ` +
        `but the file has ${bytes.length - headerBytes} data bytes`,
    );
  }
  return { dtype: code.dtype, shape, data: readValues(view, headerBytes, count, code.dtype) };
}

function readValues(view: DataView, offset: number, n: number, dtype: IdxDtype): IdxData {
  switch (dtype) {
    case 'u8':
      // A copy, so the result never aliases (or keeps alive) the caller's buffer.
      return new Uint8Array(view.buffer.slice(view.byteOffset + offset, view.byteOffset + offset + n));
    case 'i8':
      return new Int8Array(view.buffer.slice(view.byteOffset + offset, view.byteOffset + offset + n));
    case 'i16': {
      const out = new Int16Array(n);
      for (let i = 0; i < n; i++) out[i] = view.getInt16(offset + 2 * i, false);
      return out;
    }
    case 'i32': {
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) out[i] = view.getInt32(offset + 4 * i, false);
      return out;
    }
    case 'f32': {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = view.getFloat32(offset + 4 * i, false);
      return out;
    }
    case 'f64': {
      const out = new Float64Array(n);
      for (let i = 0; i < n; i++) out[i] = view.getFloat64(offset + 8 * i, false);
      return out;
    }
  }
}

/** Serialises an array as an (uncompressed) IDX file; the inverse of parseIdx. */
export function writeIdx(values: ArrayLike<number>, shape: readonly number[], dtype: IdxDtype): Uint8Array {
  const entry = Object.entries(CODES).find(([, c]) => c.dtype === dtype);
  if (entry === undefined) throw new Error(`writeIdx: unknown dtype ${dtype}`);
  const code = Number(entry[0]);
  const { bytes } = entry[1];
  if (shape.length < 1 || shape.length > MAX_DIMS) throw new Error(`writeIdx: ${shape.length} dimensions`);
  let n = 1;
  for (const d of shape) n *= d;
  if (n !== values.length) throw new Error(`writeIdx: shape [${shape.join(', ')}] needs ${n} values, got ${values.length}`);
  const head = 4 + 4 * shape.length;
  const out = new Uint8Array(head + n * bytes);
  const view = new DataView(out.buffer);
  out[2] = code;
  out[3] = shape.length;
  shape.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  for (let i = 0; i < n; i++) {
    const v = values[i];
    const at = head + i * bytes;
    switch (dtype) {
      case 'u8': view.setUint8(at, v); break;
      case 'i8': view.setInt8(at, v); break;
      case 'i16': view.setInt16(at, v, false); break;
      case 'i32': view.setInt32(at, v, false); break;
      case 'f32': view.setFloat32(at, v, false); break;
      case 'f64': view.setFloat64(at, v, false); break;
    }
  }
  return out;
}
