/**
 * Conversions between stored floating-point formats (IEEE half, bfloat16, float64, float32, all
 * little-endian on disk) and the Float32Array every algorithm works on. Pure and browser-safe, so the
 * safetensors and ONNX readers can share them.
 *
 * Narrowing conversions round to nearest, ties to even (what numpy, PyTorch and the hardware do),
 * overflow to ±Infinity, and keep NaNs NaN (with as much payload as fits), so that a half or bfloat16
 * value read into float32 and written back gives the same bits.
 */

/** The floating-point storage formats rebasin converts to and from float32 (safetensors names). */
export type FloatDtype = 'F32' | 'F16' | 'BF16' | 'F64';

export const FLOAT_DTYPES: readonly FloatDtype[] = ['F32', 'F16', 'BF16', 'F64'];

export function isFloatDtype(dtype: string): dtype is FloatDtype {
  return dtype === 'F32' || dtype === 'F16' || dtype === 'BF16' || dtype === 'F64';
}

/** Bytes per element of each float dtype. */
export const FLOAT_ITEMSIZE: Readonly<Record<FloatDtype, number>> = { F32: 4, F16: 2, BF16: 2, F64: 8 };

// Typed arrays use the host's byte order; files are little-endian. Every host JS runs on today is
// little-endian, but the slow DataView paths keep big-endian hosts correct rather than silently wrong.
const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The bit pattern of `x` rounded to float32 (as an unsigned 32-bit integer). */
export function float32Bits(x: number): number {
  f32[0] = x;
  return u32[0];
}

/** The float32 value with bit pattern `bits`. */
export function float32FromBits(bits: number): number {
  u32[0] = bits >>> 0;
  return f32[0];
}

// ---------------------------------------------------------------------------------------------- half

/** Float32 bits of a half-precision bit pattern; exact (every half is a float32). */
function halfToFloatBits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant << 13)) >>> 0; // ±Inf, NaN with its payload
  if (exp === 0) {
    if (mant === 0) return sign >>> 0;
    // Subnormal: mant · 2^-24, exactly representable as a normal float32.
    return (sign | float32Bits(mant * 2 ** -24)) >>> 0;
  }
  return (sign | ((exp - 15 + 127) << 23) | (mant << 13)) >>> 0;
}

// 65536 entries (256 KiB), built on first use: decoding becomes one table lookup per element.
let halfTable: Uint32Array | null = null;
function getHalfTable(): Uint32Array {
  if (halfTable === null) {
    const t = new Uint32Array(65536);
    for (let h = 0; h < 65536; h++) t[h] = halfToFloatBits(h);
    halfTable = t;
  }
  return halfTable;
}

/** The value of a half-precision bit pattern. */
export function halfBitsToFloat(h: number): number {
  return float32FromBits(getHalfTable()[h & 0xffff]);
}

/** The half-precision bit pattern nearest to `x` (first rounded to float32), ties to even. */
export function floatToHalfBits(x: number): number {
  return float32BitsToHalfBits(float32Bits(x));
}

function float32BitsToHalfBits(u: number): number {
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  const mant = u & 0x7fffff;
  if (exp === 0xff) {
    if (mant === 0) return sign | 0x7c00;
    // Keep the top payload bits; a payload that lived only in the low bits still has to stay a NaN.
    const payload = mant >>> 13;
    return sign | 0x7c00 | (payload === 0 ? 0x200 : payload);
  }
  const e = exp - 127;
  if (e > 15) return sign | 0x7c00; // beyond 65504 + half an ulp for sure: overflow
  if (e >= -14) {
    // Normal half. A carry out of the mantissa correctly bumps the exponent (up to Infinity).
    let half = ((e + 15) << 10) | (mant >>> 13);
    const rest = mant & 0x1fff;
    if (rest > 0x1000 || (rest === 0x1000 && (half & 1) === 1)) half++;
    return sign | half;
  }
  // Below 2^-25 everything rounds to zero (2^-25 itself is the tie between 0 and 2^-24: even is 0).
  if (e < -25) return sign;
  // Subnormal half: value = m · 2^(e-23) with m the 24-bit significand; in units of 2^-24 that is
  // m >> shift with shift = -e - 1 (14..24).
  const m = mant | 0x800000;
  const shift = -e - 1;
  let half = m >>> shift;
  const rest = m & ((1 << shift) - 1);
  const tie = 1 << (shift - 1);
  if (rest > tie || (rest === tie && (half & 1) === 1)) half++;
  return sign | half;
}

// ------------------------------------------------------------------------------------------ bfloat16

/** The value of a bfloat16 bit pattern: the top half of a float32. */
export function bfloat16BitsToFloat(b: number): number {
  return float32FromBits((b & 0xffff) << 16);
}

/** The bfloat16 bit pattern nearest to `x` (first rounded to float32), ties to even. */
export function floatToBfloat16Bits(x: number): number {
  return float32BitsToBfloat16Bits(float32Bits(x));
}

function float32BitsToBfloat16Bits(u: number): number {
  if ((u & 0x7f800000) === 0x7f800000 && (u & 0x7fffff) !== 0) {
    const payload = (u >>> 16) & 0x7f;
    return ((u >>> 16) & 0xff80) | (payload === 0 ? 0x40 : payload);
  }
  // Round the low 16 bits away, ties to even. For non-NaN input u ≤ 0xff800000, so the sum stays
  // below 2^32 and >>> does not wrap; a carry into the exponent rounds up to the next binade or Inf.
  return (u + 0x7fff + ((u >>> 16) & 1)) >>> 16;
}

// ------------------------------------------------------------------------------- bulk, bytes <-> f32

/** Number of elements `byteLength` bytes of `dtype` hold; throws when it is not a whole number. */
function elementCount(byteLength: number, dtype: FloatDtype): number {
  const size = FLOAT_ITEMSIZE[dtype];
  if (byteLength % size !== 0) {
    throw new RangeError(`${dtype} data of ${byteLength} bytes is not a whole number of ${size}-byte elements`);
  }
  return byteLength / size;
}

function outArray(n: number, out: Float32Array | undefined): Float32Array {
  if (out === undefined) return new Float32Array(n);
  if (out.length !== n) throw new RangeError(`output has ${out.length} elements, ${n} needed`);
  return out;
}

/** Decode little-endian IEEE half bytes. `bytes` may have any alignment. */
export function decodeF16(bytes: Uint8Array, out?: Float32Array): Float32Array {
  const n = elementCount(bytes.length, 'F16');
  const dst = outArray(n, out);
  const bits = new Uint32Array(dst.buffer, dst.byteOffset, n);
  const table = getHalfTable();
  for (let i = 0, j = 0; i < n; i++, j += 2) bits[i] = table[bytes[j] | (bytes[j + 1] << 8)];
  return dst;
}

/** Decode half-precision bit patterns held as integers (ONNX keeps float16 in int32_data this way). */
export function decodeF16Bits(halfBits: ArrayLike<number>, out?: Float32Array): Float32Array {
  const n = halfBits.length;
  const dst = outArray(n, out);
  const bits = new Uint32Array(dst.buffer, dst.byteOffset, n);
  const table = getHalfTable();
  for (let i = 0; i < n; i++) bits[i] = table[halfBits[i] & 0xffff];
  return dst;
}

/** Decode little-endian bfloat16 bytes. */
export function decodeBF16(bytes: Uint8Array, out?: Float32Array): Float32Array {
  const n = elementCount(bytes.length, 'BF16');
  const dst = outArray(n, out);
  const bits = new Uint32Array(dst.buffer, dst.byteOffset, n);
  for (let i = 0, j = 0; i < n; i++, j += 2) bits[i] = ((bytes[j] << 16) | (bytes[j + 1] << 24)) >>> 0;
  return dst;
}

/** Decode bfloat16 bit patterns held as integers. */
export function decodeBF16Bits(bfBits: ArrayLike<number>, out?: Float32Array): Float32Array {
  const n = bfBits.length;
  const dst = outArray(n, out);
  const bits = new Uint32Array(dst.buffer, dst.byteOffset, n);
  for (let i = 0; i < n; i++) bits[i] = ((bfBits[i] & 0xffff) << 16) >>> 0;
  return dst;
}

/** Decode little-endian float32 bytes (a copy, so the result owns its buffer and is aligned). */
export function decodeF32(bytes: Uint8Array, out?: Float32Array): Float32Array {
  const n = elementCount(bytes.length, 'F32');
  const dst = outArray(n, out);
  if (LITTLE_ENDIAN_HOST) {
    new Uint8Array(dst.buffer, dst.byteOffset, bytes.length).set(bytes);
  } else {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let i = 0; i < n; i++) dst[i] = view.getFloat32(4 * i, true);
  }
  return dst;
}

/** Decode little-endian float64 bytes, rounding each value to the nearest float32. */
export function decodeF64(bytes: Uint8Array, out?: Float32Array): Float32Array {
  const n = elementCount(bytes.length, 'F64');
  const dst = outArray(n, out);
  if (LITTLE_ENDIAN_HOST && bytes.byteOffset % 8 === 0) {
    dst.set(new Float64Array(bytes.buffer, bytes.byteOffset, n));
  } else {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let i = 0; i < n; i++) dst[i] = view.getFloat64(8 * i, true);
  }
  return dst;
}

/** Decode `bytes` stored as `dtype` into float32. */
export function decodeFloat(dtype: FloatDtype, bytes: Uint8Array, out?: Float32Array): Float32Array {
  switch (dtype) {
    case 'F32':
      return decodeF32(bytes, out);
    case 'F16':
      return decodeF16(bytes, out);
    case 'BF16':
      return decodeBF16(bytes, out);
    case 'F64':
      return decodeF64(bytes, out);
  }
}

/** Encode float32 values as little-endian half bytes. */
export function encodeF16(values: Float32Array): Uint8Array {
  const n = values.length;
  const out = new Uint8Array(2 * n);
  const bits = new Uint32Array(values.buffer, values.byteOffset, n);
  for (let i = 0, j = 0; i < n; i++, j += 2) {
    const h = float32BitsToHalfBits(bits[i]);
    out[j] = h & 0xff;
    out[j + 1] = h >>> 8;
  }
  return out;
}

/** Encode float32 values as little-endian bfloat16 bytes. */
export function encodeBF16(values: Float32Array): Uint8Array {
  const n = values.length;
  const out = new Uint8Array(2 * n);
  const bits = new Uint32Array(values.buffer, values.byteOffset, n);
  for (let i = 0, j = 0; i < n; i++, j += 2) {
    const b = float32BitsToBfloat16Bits(bits[i]);
    out[j] = b & 0xff;
    out[j + 1] = b >>> 8;
  }
  return out;
}

/** Encode float32 values as little-endian float32 bytes (a copy). */
export function encodeF32(values: Float32Array): Uint8Array {
  const out = new Uint8Array(4 * values.length);
  if (LITTLE_ENDIAN_HOST) {
    out.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
  } else {
    const view = new DataView(out.buffer);
    for (let i = 0; i < values.length; i++) view.setFloat32(4 * i, values[i], true);
  }
  return out;
}

/** Encode float32 values as little-endian float64 bytes (exact widening). */
export function encodeF64(values: Float32Array): Uint8Array {
  const wide = Float64Array.from(values);
  if (LITTLE_ENDIAN_HOST) return new Uint8Array(wide.buffer);
  const out = new Uint8Array(8 * values.length);
  const view = new DataView(out.buffer);
  for (let i = 0; i < wide.length; i++) view.setFloat64(8 * i, wide[i], true);
  return out;
}

/** Encode float32 values as `dtype` bytes. */
export function encodeFloat(dtype: FloatDtype, values: Float32Array): Uint8Array {
  switch (dtype) {
    case 'F32':
      return encodeF32(values);
    case 'F16':
      return encodeF16(values);
    case 'BF16':
      return encodeBF16(values);
    case 'F64':
      return encodeF64(values);
  }
}
