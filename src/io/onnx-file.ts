/**
 * ONNX model files on disk (Node only): reading with external data resolved safely, writing atomically
 * with the weights embedded or in one external `<model file>.data` file.
 */
import { closeSync, realpathSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve as resolvePath, sep } from 'node:path';
import { InputError } from '../errors.js';
import { openRegular, readExactly, readRegularFile } from './regular-file.js';
import { assertNotInput, writeFileAtomic } from './atomic.js';
import { writeOnnxPair } from './onnx-pair.js';
import type { Params } from '../tensor.js';
import {
  type ExternalResolver,
  type OnnxExternalRef,
  type OnnxModel,
  internalizeExternal,
  isFloatDtype,
  liftConstantWeights,
  onnxParams,
  parseOnnx,
  rawDataLength,
  serializeOnnx,
  serializeOnnxChunks,
  withExternalRefs,
  withInitializers,
} from './onnx.js';

export interface OnnxFile {
  /** The model with any external data loaded into it (layout remembers it was 'external'). */
  readonly model: OnnxModel;
  /** Its float initializers as float32. */
  readonly params: Params;
  /** Every file read: the model and its external data files (pass them to writeOnnxFile as inputs). */
  readonly files: readonly string[];
}

function errorCode(e: unknown): string {
  return (e as { code?: string }).code ?? (e as Error).message;
}

function isInside(dir: string, path: string): boolean {
  const rel = relative(dir, path);
  return rel !== '' && !rel.startsWith('..' + sep) && rel !== '..' && !isAbsolute(rel);
}

/**
 * A resolver for external data files of the model at `modelPath`. A location must be a relative path that
 * stays inside the model's folder, also after following symlinks; offsets and lengths must lie inside the
 * file. Files are opened once; call `close()` when done.
 */
export function fileResolver(modelPath: string): { resolve: ExternalResolver; files: string[]; close(): void } {
  const dir = dirname(resolvePath(modelPath));
  let realDir: string | null = null;
  const open = new Map<string, { fd: number; size: number; path: string }>();
  const files: string[] = [];
  const resolve: ExternalResolver = (location, offset, length, expected) => {
    let f = open.get(location);
    if (f === undefined) {
      const shown = location.slice(0, 200);
      if (location.includes('\0') || isAbsolute(location) || /^[a-zA-Z]:|^[\\/]/.test(location) || location.includes('\\')) {
        throw new InputError(`${modelPath}: external data location '${shown}' must be a relative path inside the model's folder`);
      }
      const path = resolvePath(dir, location);
      if (!isInside(dir, path)) {
        throw new InputError(`${modelPath}: external data location '${shown}' points outside the model's folder`);
      }
      let real: string;
      try {
        realDir ??= realpathSync(dir);
        real = realpathSync(path);
      } catch (e) {
        throw new InputError(`${modelPath}: external data file '${path}' cannot be opened (${errorCode(e)})`);
      }
      if (!isInside(realDir, real)) {
        throw new InputError(`${modelPath}: external data location '${shown}' leads outside the model's folder through a link`);
      }
      // A regular file only: a FIFO would hang the read, a device such as /dev/zero never end.
      f = { ...openRegular(real, `${modelPath}: external data file '${path}'`), path };
      open.set(location, f);
      files.push(path);
    }
    const len = length ?? f.size - offset;
    if (offset > f.size || len < 0 || offset + len > f.size) {
      throw new InputError(
        `${modelPath}: external data range ${offset}+${length ?? '(rest)'} lies outside '${f.path}' (${f.size} bytes)`,
      );
    }
    // Checked before reading: a range without a length (to the end of a 2 GB sparse file, say) or with a
    // wrong one is refused without being read in.
    if (expected !== undefined && expected !== null && len !== expected) {
      throw new InputError(
        `${modelPath}: external data range ${offset}+${length ?? '(rest)'} of '${f.path}' holds ${len} bytes; the tensor needs ${expected}`,
      );
    }
    const out = new Uint8Array(len);
    readExactly(f.fd, out, offset, `${modelPath}: external data file '${f.path}'`);
    return out;
  };
  const close = (): void => {
    for (const f of open.values()) closeSync(f.fd);
    open.clear();
  };
  return { resolve, files, close };
}

/** Reads an ONNX model file and its external data (relative to the model's folder). */
export function readOnnxFile(path: string): OnnxFile {
  const bytes = readRegularFile(path, `ONNX model ${path}`, PROTOBUF_LIMIT, "protobuf's 2 GiB limit; weights that large belong in external data files");
  const parsed = parseOnnx(bytes, path);
  const r = fileResolver(path);
  try {
    // Weights some exporters keep in Constant nodes are read as initializers (see liftConstantWeights).
    const model = liftConstantWeights(internalizeExternal(parsed, r.resolve));
    return { model, params: onnxParams(model), files: [path, ...r.files] };
  } finally {
    r.close();
  }
}

export interface WriteOnnxOptions {
  /**
   * true: every float initializer stored as raw bytes goes to `<file name>.data` beside the model; false: all
   * embedded; 'auto' (default): as the model was stored (its `layout`), or external when embedding would
   * pass protobuf's 2 GiB limit.
   */
  readonly externalData?: boolean | 'auto';
  /** Files that must not be overwritten (the inputs of this run). */
  readonly inputs?: readonly string[];
  /** External data only: called between the data file and the model's rename (tests simulate a crash there). */
  readonly beforeCommit?: (dataPath: string) => void;
}

/** Protobuf messages (and so ONNX files with embedded weights) cannot exceed 2 GiB. */
export const PROTOBUF_LIMIT = 2 ** 31 - 1;

/**
 * The bytes of `model` whose initializers listed in `refs` (by index) point into the data file `location`
 * (the weights themselves are written there by writeOnnxPair, so these bytes are small).
 */
export function modelBytesWithDataAt(
  model: OnnxModel,
  refs: ReadonlyMap<number, { offset: number; length: number }>,
  location: string,
  path: string,
): Uint8Array {
  const placed = withExternalRefs(model, (_t, index): OnnxExternalRef | null => {
    const r = refs.get(index);
    return r === undefined ? null : { location, ...r };
  });
  const bytes = serializeOnnx(placed);
  if (bytes.length > PROTOBUF_LIMIT) throw new InputError(`${path}: the model graph alone exceeds protobuf's 2 GiB limit`);
  return bytes;
}

/** Where a float initializer of `bytes` bytes starts in a data file (a multiple of this); the streaming writer places them alike. */
export function alignmentFor(bytes: number): number {
  // Big tensors start on a page so readers can mmap them; small ones on 64 bytes (any typed-array view).
  return bytes >= 1 << 20 ? 4096 : 64;
}

/**
 * Writes `model` with its float initializers replaced by `params` (see withInitializers), atomically
 * (temporary file + rename). With external data, every float raw_data initializer goes to one data file in
 * the same folder (`<file name>.data`, or a fresh `<file name>.<hex>.data` when that exists: see
 * writeOnnxPair), at aligned offsets, and the model records location/offset/length for each.
 * Returns the files written.
 */
export function writeOnnxFile(path: string, model: OnnxModel, params: Params, opts: WriteOnnxOptions = {}): string[] {
  const dataName = `${basename(path)}.data`;
  const dataPath = join(dirname(path), dataName);
  // Checked before anything is written: the data file could be an input too (the model we read).
  const inputs = opts.inputs ?? [];
  assertNotInput(path, inputs);
  const updated = withInitializers(model, params);
  const list = updated.proto.graph?.initializer ?? [];
  let embeddedBytes = 0;
  for (const t of list) {
    const info = updated.initializers[t.name ?? ''];
    if (info.external !== null) {
      throw new InputError(
        `${model.label}: initializer '${info.name}' still refers to external file '${info.external.location}'; load the model with readOnnxFile`,
      );
    }
    embeddedBytes += rawDataLength(t) ?? 0;
  }
  const mode = opts.externalData ?? 'auto';
  const external = mode === true || (mode === 'auto' && (updated.layout === 'external' || embeddedBytes > PROTOBUF_LIMIT - (64 << 20)));

  if (!external) {
    if (embeddedBytes > PROTOBUF_LIMIT) {
      throw new InputError(`${path}: ${embeddedBytes} bytes of weights do not fit in one ONNX file (2 GiB); write with external data`);
    }
    writeFileAtomic(path, serializeOnnxChunks(updated));
    return [path];
  }

  assertNotInput(dataPath, inputs);
  const chunks: Uint8Array[] = [];
  let offset = 0;
  const refs = new Map<number, { offset: number; length: number }>();
  list.forEach((t, index) => {
    // Only float weights move out: integer constants (Reshape targets, ...) must stay inline for ORT's
    // shape inference, which cannot read external tensors.
    if (!isFloatDtype(updated.initializers[t.name ?? ''].dtype)) return;
    const n = rawDataLength(t);
    if (n === null || n === 0) return;
    const start = Math.ceil(offset / alignmentFor(n)) * alignmentFor(n);
    if (start > offset) chunks.push(new Uint8Array(start - offset));
    chunks.push(t.raw_data as Uint8Array);
    offset = start + n;
    refs.set(index, { offset: start, length: n });
  });
  // The data file's name is chosen by writeOnnxPair (a fresh one, so the .onnx rename is the one commit).
  return writeOnnxPair(
    path,
    chunks,
    (location) => modelBytesWithDataAt(updated, refs, location, path),
    { inputs, beforeCommit: opts.beforeCommit },
  );
}
