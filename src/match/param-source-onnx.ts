/**
 * A ParamSource over an ONNX model file (Node), for models larger than memory: the .onnx protobuf is parsed
 * once (a large export keeps only the graph and small tensors in it), and each float initializer stored in
 * an external data file is read by offset when asked for (io/onnx-stream.ts). The params are exactly
 * onnxParams': every float16/bfloat16/float32/float64 initializer, in graph order, as float32.
 */
import type { Tensor } from '../tensor.js';
import { sizeOf } from '../tensor.js';
import { decodeFloat } from '../io/dtype.js';
import { isFloatDtype, onnxInitializerValue, rawDataLength, type OnnxModel } from '../io/onnx.js';
import { floatStorage, openOnnxStore } from '../io/onnx-stream.js';
import { assertFiniteWeights, missing, ReadBuffers, storedFloats, type FileSource, type FileSourceOptions } from './param-source.js';

export type OnnxSourceOptions = FileSourceOptions;

export interface OnnxSource extends FileSource {
  /** The model's graph and what it holds (see OnnxStore.model): for spec derivation, not for its weights. */
  readonly model: OnnxModel;
  /** Every file the source reads: the model, then its external data files. */
  readonly files: readonly string[];
}

/**
 * Open an ONNX model for reading tensor by tensor. External locations are validated, and every range
 * checked against its file, before this returns (see openOnnxStore); values are decoded as onnxParams
 * decodes them.
 */
export function openOnnxSource(path: string, options: OnnxSourceOptions = {}): OnnxSource {
  const requireFinite = options.requireFinite ?? true;
  const store = openOnnxStore(path);
  const model = store.model;
  const initializers = model.proto.graph?.initializer ?? [];
  const names = model.initializerNames.filter((n) => isFloatDtype(model.initializers[n].dtype));
  const floats = new Set(names);
  const has = (name: string): boolean => floats.has(name);
  let loads = 0;
  let closed = false;

  const buffers = new ReadBuffers();

  /** Loads a float tensor; into the reusable buffers when `reuse`, else into buffers of its own. */
  const load = (name: string, reuse: boolean): Tensor => {
    if (closed) throw new Error(`${path}: source is closed`);
    const info = model.initializers[name];
    const dtype = floatStorage(info.dtype);
    const n = sizeOf(info.shape);
    const length = store.storedLength(name);
    let data: Float32Array;
    if (length !== undefined) {
      const bytes = reuse ? store.readStored(name, buffers.bytes(length)) : store.readStored(name);
      loads++;
      data = storedFloats(dtype, bytes, n, reuse ? buffers.floats(n) : undefined);
    } else {
      const t = initializers[info.index];
      if (reuse && rawDataLength(t) !== null) {
        // Embedded raw bytes sit at any offset of the file's buffer: decode (copy) them into ours.
        data = decodeFloat(dtype, t.raw_data as Uint8Array, buffers.floats(n));
      } else {
        // Typed fields (float_data, int32_data bits, double_data), or a copy of its own: onnx.ts's decoder.
        data = onnxInitializerValue(model, name).data as Float32Array;
      }
    }
    if (requireFinite) assertFiniteWeights(path, name, data);
    return { shape: [...info.shape], data };
  };

  return {
    label: path,
    model,
    files: store.files,
    names,
    get loads() {
      return loads;
    },
    has,
    shape: (name) => (has(name) ? model.initializers[name].shape : missing(path, name)),
    get: (name) => (has(name) ? load(name, false) : missing(path, name)),
    use(name, fn) {
      if (!has(name)) missing(path, name);
      return buffers.lend((reuse) => fn(load(name, reuse)));
    },
    close() {
      buffers.release();
      closed = true;
      store.close();
    },
  };
}
