/**
 * ONNX models larger than memory (Node): their weights sit in external data files, and the .onnx file holds
 * the graph and small tensors. `openOnnxStore` parses the .onnx once and reads each external float
 * initializer by offset on request (the ParamSource in match/param-source-onnx.ts is built on it);
 * `writePermutedOnnx` writes a permuted copy tensor by tensor. The output is byte for byte what the
 * in-memory path writes (readOnnxFile, applyPermutation, writeOnnxFile): the same .onnx and the same
 * `<output name>.data` beside it, built by the same functions (withInitializers, withExternalRefs).
 */
import { closeSync, readSync, realpathSync } from 'node:fs';
import { openRegular, readRegularFile } from './regular-file.js';
import { basename, dirname, join } from 'node:path';
import { InputError } from '../errors.js';
import type { Tensor } from '../tensor.js';
import { sameBits, shapeToString, sizeOf } from '../tensor.js';
import type { PermutationSpec } from '../permutation-spec/spec.js';
import { applyPermutation, permutedTensor, type Perms } from '../permute.js';
import { assertNotInput } from './atomic.js';
import { writeOnnxPair } from './onnx-pair.js';
import { decodeFloat, encodeFloat, FLOAT_ITEMSIZE } from './dtype.js';
import {
  floatStorage,
  internalizeExternal,
  isFloatDtype,
  onnxInitializerValue,
  onnxParams,
  liftConstantWeights,
  parseOnnx,
  rawDataLength,
  withExternalRefs,
  withInitializers,
  type ExternalResolver,
  type OnnxDtype,
  type OnnxExternalRef,
  type OnnxModel,
} from './onnx.js';
import { PROTOBUF_LIMIT, alignmentFor, fileResolver, modelBytesWithDataAt, writeOnnxFile } from './onnx-file.js';
import { assertPermsFitShapes } from './perms-fit.js';

/** Protobuf messages, and so .onnx files, cannot exceed 2 GiB (weights beyond that must be external). */

// Node's single read() is capped near 2 GiB; read larger spans in pieces.
const READ_CHUNK = 1 << 30;

// floatStorage is onnx.ts's, re-exported for the ParamSource built on this store.
export { floatStorage };

/** Reads and parses the .onnx file itself (as readOnnxFile does), refusing one no protobuf reader could hold. */
export function parseOnnxFile(path: string): OnnxModel {
  const bytes = readRegularFile(path, `ONNX model ${path}`, PROTOBUF_LIMIT, "protobuf's 2 GiB limit; weights that large belong in external data files");
  // As readOnnxFile: weights in Constant nodes are read as initializers.
  return liftConstantWeights(parseOnnx(bytes, path));
}

export interface OnnxStore {
  readonly path: string;
  /**
   * The parsed model. External non-float initializers (shape constants) and empty ones have been read in,
   * as readOnnxFile reads them, so graph analysis and the writer see what the in-memory path sees; every
   * other float initializer stored externally still refers to its data file, with its length resolved.
   */
  readonly model: OnnxModel;
  /** Every file read: the model, then its external data files (inputs never to be overwritten). */
  readonly files: readonly string[];
  /** The byte length of a float initializer read from a data file; undefined for those the model holds. */
  storedLength(name: string): number | undefined;
  /** Its stored bytes (own dtype), into `out` (exactly storedLength bytes) or a fresh buffer. */
  readStored(name: string, out?: Uint8Array): Uint8Array;
  close(): void;
}

interface Stored {
  readonly fd: number;
  readonly file: string;
  readonly offset: number;
  readonly length: number;
}

const rangeKey = (location: string, offset: number, length: number | null): string => `${location}\0${offset}\0${length ?? ''}`;

/** Byte length of a float initializer's values in its own dtype. */
function floatBytes(dtype: OnnxDtype, shape: readonly number[]): number {
  return sizeOf(shape) * FLOAT_ITEMSIZE[floatStorage(dtype)];
}

/**
 * Opens an ONNX model for reading tensor by tensor. Every external location goes through onnx-file.ts's
 * resolver (a relative path inside the model's folder, also through links), and every range is checked
 * against its file's size and its tensor's dtype and shape before anything is returned: a truncated data
 * file fails here, with an InputError naming the tensor and the file.
 */
export function openOnnxStore(path: string): OnnxStore {
  const parsed = parseOnnxFile(path);
  const list = parsed.proto.graph?.initializer ?? [];
  const r = fileResolver(path);
  const fds = new Map<string, { fd: number; size: number; file: string }>();
  const stored = new Map<string, Stored>();
  const closeAll = (): void => {
    for (const f of fds.values()) closeSync(f.fd);
    fds.clear();
  };
  let model: OnnxModel;
  try {
    const streamed = new Map<number, OnnxExternalRef>(); // by initializer index
    const standIns = new Map<string, number>(); // their ranges as the model states them -> byte length
    const others = new Set<string>(); // ranges read in for real
    const validated = new Map<string, string>(); // location -> path
    let largest = 0;
    for (const name of parsed.initializerNames) {
      const info = parsed.initializers[name];
      const ref = info.external;
      const expected = isFloatDtype(info.dtype) ? floatBytes(info.dtype, info.shape) : 0;
      if (ref === null) {
        // Embedded: checked now as decodeTensor would check it later, so bad input fails before any work.
        const n = rawDataLength(list[info.index]);
        if (isFloatDtype(info.dtype) && n !== null && n !== expected) {
          throw new InputError(`${path}: tensor '${name}' (${info.dtype}) ${shapeToString(info.shape)} has ${n} bytes of data, expected ${expected}`);
        }
        continue;
      }
      let file = validated.get(ref.location);
      if (file === undefined) {
        // The resolver validates the location and opens the file (a zero-length read), in graph order as
        // readOnnxFile meets them; streamed reads then go through a descriptor of our own, into buffers the
        // caller may reuse, which the resolver cannot do.
        const known = r.files.length;
        r.resolve(ref.location, 0, 0);
        file = r.files[known];
        validated.set(ref.location, file);
      }
      if (expected === 0) {
        others.add(rangeKey(ref.location, ref.offset, ref.length));
        continue;
      }
      let f = fds.get(ref.location);
      if (f === undefined) {
        f = { ...openRegular(realpathSync(file), `${path}: external data file '${file}'`), file };
        fds.set(ref.location, f);
      }
      const length = ref.length ?? f.size - ref.offset;
      if (ref.offset > f.size || length < 0 || ref.offset + length > f.size) {
        throw new InputError(
          `${path}: initializer '${name}' lies at ${ref.offset}+${ref.length ?? '(rest)'} outside '${f.file}' (${f.size} bytes); the data file is truncated or not this model's`,
        );
      }
      if (length !== expected) {
        throw new InputError(`${path}: initializer '${name}' (${info.dtype} ${shapeToString(info.shape)}) has ${length} bytes in '${ref.location}', expected ${expected}`);
      }
      streamed.set(info.index, { location: ref.location, offset: ref.offset, length });
      standIns.set(rangeKey(ref.location, ref.offset, ref.length), length);
      stored.set(name, { fd: f.fd, file: f.file, offset: ref.offset, length });
      largest = Math.max(largest, length);
    }
    // internalizeExternal reads every external tensor in: the streamed ones get stand-ins of their length
    // (views of one zeroed buffer) and at once their references back, so what the model holds are real
    // bytes. A range that a tensor read in also uses is read for real (correct either way).
    const standIn = new Uint8Array(largest);
    const resolve: ExternalResolver = (location, offset, length) => {
      const k = rangeKey(location, offset, length);
      const n = standIns.get(k);
      return n !== undefined && !others.has(k) ? standIn.subarray(0, n) : r.resolve(location, offset, length);
    };
    model = withExternalRefs(internalizeExternal(parsed, resolve), (_t, index) => streamed.get(index) ?? null);
  } catch (e) {
    closeAll();
    throw e;
  } finally {
    r.close();
  }
  let closed = false;
  return {
    path,
    model,
    files: [path, ...r.files],
    storedLength: (name) => stored.get(name)?.length,
    readStored(name, out) {
      if (closed) throw new Error(`${path}: source is closed`);
      const s = stored.get(name);
      if (s === undefined) throw new Error(`${path}: initializer '${name}' is not read from a data file`);
      const bytes = out ?? new Uint8Array(s.length);
      if (bytes.length !== s.length) throw new Error(`readStored: '${name}' has ${s.length} bytes, the buffer ${bytes.length}`);
      let done = 0;
      while (done < s.length) {
        const n = readSync(s.fd, bytes, done, Math.min(READ_CHUNK, s.length - done), s.offset + done);
        if (n === 0) throw new InputError(`${path}: external data file '${s.file}' ended early while reading '${name}'`);
        done += n;
      }
      return bytes;
    },
    close() {
      closed = true;
      closeAll();
    },
  };
}

export interface WritePermutedOnnxOptions {
  /** The command's other input files, which no output may overwrite (the model and its data always count). */
  readonly inputs?: readonly string[];
  /** External data only: called between the data file and the model's rename (tests simulate a crash there). */
  readonly beforeCommit?: (dataPath: string) => void;
}

/** The model's float initializer shapes, for assertPermsFitShapes. */
function floatShapes(model: OnnxModel): Record<string, readonly number[]> {
  const shapes: Record<string, readonly number[]> = Object.create(null);
  for (const name of model.initializerNames) {
    const info = model.initializers[name];
    if (isFloatDtype(info.dtype)) shapes[name] = info.shape;
  }
  return shapes;
}

/**
 * One streamed tensor's output bytes, as withInitializers would store them: the stored bytes when
 * permuting leaves the float32 values bit for bit unchanged (so float64 keeps its precision), else the
 * permuted values encoded in the tensor's own dtype.
 */
function permutedStored(store: OnnxStore, spec: PermutationSpec, perms: Perms, name: string): Uint8Array {
  const info = store.model.initializers[name];
  const dtype = floatStorage(info.dtype);
  const stored = store.readStored(name);
  const t: Tensor = { shape: info.shape, data: decodeFloat(dtype, stored) };
  const out = permutedTensor(spec, perms, name, t);
  return out === t || sameBits(t.data, out.data) ? stored : encodeFloat(dtype, out.data);
}

/**
 * Write P(model at inPath) to outPath atomically, as writeOnnxFile writes the in-memory result. A model
 * with external data is written as `<outPath>.data` (first) and the .onnx, holding one tensor at a time
 * (its bytes, float32 values and permuted copy) besides the graph; a model with embedded weights (at most
 * 2 GiB by protobuf's limit) goes through the in-memory writer. Throws an InputError before writing
 * anything when the spec or perms do not fit the model or an output would land on an input.
 * Returns the files written.
 */
export function writePermutedOnnx(
  inPath: string,
  outPath: string,
  spec: PermutationSpec,
  perms: Perms,
  options: WritePermutedOnnxOptions = {},
): string[] {
  const store = openOnnxStore(inPath);
  try {
    const model = store.model;
    assertPermsFitShapes(spec, perms, floatShapes(model), inPath);
    const inputs = [...store.files, ...(options.inputs ?? [])];
    if (model.layout === 'embedded') {
      return writeOnnxFile(outPath, model, applyPermutation(spec, perms, onnxParams(model)), { inputs });
    }
    // writeOnnxFile keeps an external layout: every float initializer with bytes goes to one data file.
    // Refused before anything is written, as writeOnnxFile refuses it: `<out>.data` naming an input.
    assertNotInput(outPath, inputs);
    assertNotInput(join(dirname(outPath), `${basename(outPath)}.data`), inputs);

    // The float initializers the model holds are small (or the exporter would have moved them out):
    // replace them in memory, exactly as the in-memory writer does.
    const held: Record<string, Tensor> = Object.create(null);
    for (const [name, t] of Object.entries(heldParams(model))) held[name] = permutedTensor(spec, perms, name, t);
    const updated = withInitializers(model, held);

    // Offsets, as writeOnnxFile assigns them: in graph order, each start aligned, gaps zero-filled.
    const list = updated.proto.graph?.initializer ?? [];
    const refs = new Map<number, { offset: number; length: number }>();
    const plan: { name: string; start: number; length: number; held: Uint8Array | null }[] = [];
    let offset = 0;
    list.forEach((t, index) => {
      const name = t.name ?? '';
      if (!isFloatDtype(updated.initializers[name].dtype)) return;
      const streamedLength = store.storedLength(name);
      const n = streamedLength ?? rawDataLength(t);
      if (n === null || n === 0) return;
      const start = Math.ceil(offset / alignmentFor(n)) * alignmentFor(n);
      plan.push({ name, start, length: n, held: streamedLength === undefined ? (t.raw_data as Uint8Array) : null });
      refs.set(index, { offset: start, length: n });
      offset = start + n;
    });
    // The data file's name is chosen by writeOnnxPair (a fresh one, so the .onnx rename is the one commit).
    const modelFor = (location: string): Uint8Array => modelBytesWithDataAt(updated, refs, location, outPath);

    function* data(): Generator<Uint8Array> {
      let at = 0;
      for (const p of plan) {
        if (p.start > at) yield new Uint8Array(p.start - at);
        const bytes = p.held ?? permutedStored(store, spec, perms, p.name);
        if (bytes.length !== p.length) throw new Error(`writePermutedOnnx: '${p.name}' came to ${bytes.length} bytes, planned ${p.length}`);
        yield bytes;
        at = p.start + p.length;
      }
    }
    return writeOnnxPair(outPath, data(), modelFor, { inputs, beforeCommit: options.beforeCommit });
  } finally {
    store.close();
  }
}

/** onnxParams of the float initializers the model itself holds (not those read from data files). */
function heldParams(model: OnnxModel): Record<string, Tensor> {
  const out: Record<string, Tensor> = Object.create(null);
  for (const name of model.initializerNames) {
    const info = model.initializers[name];
    if (isFloatDtype(info.dtype) && info.external === null) {
      out[name] = { shape: info.shape, data: onnxInitializerValue(model, name).data as Float32Array };
    }
  }
  return out;
}
