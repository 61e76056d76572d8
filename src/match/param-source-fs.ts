/** A ParamSource over a safetensors file: header parsed once, tensors read by offset on demand (Node). */
import { closeSync } from 'node:fs';
import type { Tensor } from '../tensor.js';
import { sizeOf } from '../tensor.js';
import { isFloatDtype, type FloatDtype } from '../io/dtype.js';
import { openForReading, readSafetensorsHeader, readTensorSync } from '../io/safetensors-fs.js';
import type { SafetensorsHeader } from '../io/safetensors.js';
import { assertFiniteWeights, missing, ReadBuffers, storedFloats, type FileSource, type FileSourceOptions } from './param-source.js';

export interface SafetensorsSourceOptions extends FileSourceOptions {
  /** Keep recently loaded tensors up to this many bytes of float32 (least recently used go first); default 0. */
  readonly cacheBytes?: number;
}

export interface SafetensorsSource extends FileSource {
  readonly header: SafetensorsHeader;
  /** Tensors of non-float dtypes (integer buffers, fp8, ...): not params, left as stored. */
  readonly passthrough: readonly string[];
}

/**
 * Open a safetensors file for reading tensor by tensor: the header is read and validated once, and each
 * get() reads that tensor's bytes by offset through the open descriptor and converts F16/BF16/F64 to
 * float32 (as toParams does). The float tensors are the params, in file order; others are passthrough.
 */
export function openSafetensorsSource(path: string, options: SafetensorsSourceOptions = {}): SafetensorsSource {
  const cacheBytes = options.cacheBytes ?? 0;
  const requireFinite = options.requireFinite ?? true;
  let fd: number | null = openForReading(path);
  let header: SafetensorsHeader;
  try {
    header = readSafetensorsHeader(fd, path);
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  const names: string[] = [];
  const passthrough: string[] = [];
  for (const name of header.order) (isFloatDtype(header.tensors[name].dtype) ? names : passthrough).push(name);
  const floats = new Set(names);
  const has = (name: string): boolean => floats.has(name);
  // Map iteration follows insertion order: re-inserting on a hit keeps the least recently used first.
  const cache = new Map<string, Tensor>();
  let cached = 0;
  let loads = 0;

  const buffers = new ReadBuffers();

  /** Reads a tensor; into the reusable buffers when `reuse`, else into buffers of its own. */
  const load = (name: string, reuse: boolean): Tensor => {
    if (fd === null) throw new Error(`${path}: source is closed`);
    const info = header.tensors[name];
    const n = sizeOf(info.shape);
    const length = info.dataOffsets[1] - info.dataOffsets[0];
    let bytes: Uint8Array;
    if (reuse) {
      bytes = buffers.bytes(length);
      readTensorSync(fd, header, name, bytes);
    } else {
      bytes = readTensorSync(fd, header, name).bytes;
    }
    loads++;
    const data = storedFloats(info.dtype as FloatDtype, bytes, n, reuse ? buffers.floats(n) : undefined);
    if (requireFinite) assertFiniteWeights(path, name, data);
    return { shape: [...info.shape], data };
  };

  const getTensor = (name: string): Tensor => {
    if (!has(name)) missing(path, name);
    const hit = cache.get(name);
    if (hit !== undefined) {
      cache.delete(name);
      cache.set(name, hit);
      return hit;
    }
    const t = load(name, false);
    const bytes = t.data.byteLength;
    if (bytes <= cacheBytes) {
      for (const [old, v] of cache) {
        if (cached + bytes <= cacheBytes) break;
        cache.delete(old);
        cached -= v.data.byteLength;
      }
      cache.set(name, t);
      cached += bytes;
    }
    return t;
  };

  return {
    label: path,
    header,
    names,
    passthrough,
    get loads() {
      return loads;
    },
    has,
    shape: (name) => (has(name) ? header.tensors[name].shape : missing(path, name)),
    get: getTensor,
    use(name, fn) {
      if (!has(name)) missing(path, name);
      // A cached tensor, or a tensor the cache would keep: through the cache. Otherwise the reusable buffers
      // (or, for a call from inside another use(), a tensor of its own).
      if (cache.has(name) || sizeOf(header.tensors[name].shape) * 4 <= cacheBytes) return fn(getTensor(name));
      return buffers.lend((reuse) => fn(reuse ? load(name, true) : getTensor(name)));
    },
    close() {
      buffers.release();
      cache.clear();
      cached = 0;
      if (fd !== null) closeSync(fd);
      fd = null;
    },
  };
}
