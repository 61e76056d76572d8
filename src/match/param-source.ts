/**
 * Params loaded lazily, one tensor at a time, so that models larger than memory can be matched
 * (weightMatchingFrom in weight-matching.ts; a safetensors file source is in param-source-fs.ts). A ParamSource knows every tensor's name and shape up front (from a
 * file header) and hands out a tensor's float32 values on request; callers drop them when done, so
 * what is held at once is what one step needs, not the model.
 */
import { InputError } from '../errors.js';
import type { Params, Tensor } from '../tensor.js';
import { decodeFloat, type FloatDtype } from '../io/dtype.js';

export interface ParamSource {
  /** Names the source was opened from (a path), for messages. */
  readonly label: string;
  /** Every tensor's name, in the order the model stores them (a Params object's key order in memory). */
  readonly names: readonly string[];
  has(name: string): boolean;
  shape(name: string): readonly number[];
  /** The tensor's float32 values: a fresh load (or a cached one); the caller must not write to it. */
  get(name: string): Tensor;
  /**
   * Calls fn with the tensor and returns what fn returns. The tensor is valid only during the call (a file
   * source reads it into one buffer that it reuses), so fn must be synchronous and must neither keep it nor
   * write to it: loading this way leaves no garbage behind, which keeps the process's peak memory at what
   * is really in use.
   */
  use<T>(name: string, fn: (t: Tensor) => T): T;
  /**
   * True when the tensors are already in memory (paramsSource): matching may then spend memory on speed
   * (kept cost matrices, see cost-cache.ts). File sources leave it unset, so matching holds only what a
   * step needs.
   */
  readonly resident?: boolean;
  /** Release the file, if any; get() fails afterwards. */
  close(): void;
}

const EMPTY = new Float32Array(0);

/**
 * Stand-ins carrying only shapes (their data is empty), for the checks that read nothing but shapes
 * (validateSpec, permSizes), so a streamed model is validated exactly as an in-memory one.
 */
export function shapeStubs(source: ParamSource): Params {
  const out: Record<string, Tensor> = Object.create(null);
  for (const name of source.names) out[name] = { shape: source.shape(name), data: EMPTY };
  return out;
}

export function missing(label: string, name: string): never {
  throw new InputError(`${label}: no tensor named ${JSON.stringify(name)}`);
}

/** A ParamSource over params already in memory: get() returns the tensors themselves, without a copy. */
export function paramsSource(params: Params, label = 'params'): ParamSource {
  const has = (name: string): boolean => Object.prototype.hasOwnProperty.call(params, name);
  return {
    label,
    resident: true,
    names: Object.keys(params),
    has,
    shape: (name) => (has(name) ? params[name].shape : missing(label, name)),
    get: (name) => (has(name) ? params[name] : missing(label, name)),
    use: (name, fn) => fn(has(name) ? params[name] : missing(label, name)),
    close: () => {},
  };
}

// ---------------------------------------------------------------- shared by the file sources

export interface FileSourceOptions {
  /** Refuse NaN or infinite values with an InputError naming the tensor (as the CLI does on reading); default true. */
  readonly requireFinite?: boolean;
}

/** A ParamSource reading a file (param-source-fs.ts, param-source-onnx.ts). */
export interface FileSource extends ParamSource {
  /** Tensors read from the file(s) so far (cache hits not counted): lets tests and benchmarks see the traffic. */
  readonly loads: number;
}

// Typed arrays use the host's byte order; safetensors and ONNX raw data are little-endian.
const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * The float32 values of n elements stored as little-endian `dtype` bytes: for float32 a view of the bytes
 * themselves (a buffer of the caller's own, so aligned; no copy), else decoded into `into` or a new array.
 */
export function storedFloats(dtype: FloatDtype, bytes: Uint8Array, n: number, into?: Float32Array): Float32Array {
  if (dtype === 'F32' && LITTLE_ENDIAN_HOST) return new Float32Array(bytes.buffer, bytes.byteOffset, n);
  return decodeFloat(dtype, bytes, into);
}

/** Refuses NaN and infinite weights with an InputError naming the file, the tensor and the first bad index. */
export function assertFiniteWeights(path: string, name: string, data: Float32Array): void {
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i])) {
      throw new InputError(`${path}: tensor '${name}' holds ${data[i]} at flat index ${i}; weights must be finite numbers`);
    }
  }
}

/**
 * The buffers a file source reads tensors into for use(): raw bytes and decoded float32 values, grown to
 * the largest tensor used and then reused, so loading leaves no garbage behind.
 */
export class ReadBuffers {
  private raw = new Uint8Array(0);
  private values = new Float32Array(0);
  private lent = false;

  /**
   * Runs fn(true) with the buffers lent to it, or fn(false) when they are lent already (a use() called
   * from inside another, whose tensor sits in them): that call must load into arrays of its own.
   */
  lend<T>(fn: (reuse: boolean) => T): T {
    if (this.lent) return fn(false);
    this.lent = true;
    try {
      return fn(true);
    } finally {
      this.lent = false;
    }
  }

  /** `length` raw bytes; float64 is the widest dtype, so 8-byte aligned growth keeps float32 views aligned. */
  bytes(length: number): Uint8Array {
    if (this.raw.length < length) this.raw = new Uint8Array(Math.ceil(length / 8) * 8);
    return this.raw.subarray(0, length);
  }

  floats(n: number): Float32Array {
    if (this.values.length < n) this.values = new Float32Array(n);
    return this.values.subarray(0, n);
  }

  release(): void {
    this.raw = new Uint8Array(0);
    this.values = new Float32Array(0);
  }
}
