/**
 * Model files as the CLI sees them: recognised by content (not only extension), read into params, and
 * written back in the format, names and dtypes they came in.
 */
import { extname } from 'node:path';
import { InputError } from '../errors.js';
import { readRegularFile, readRegularHead } from '../io/regular-file.js';
import type { Params } from '../tensor.js';
import { readSafetensorsFile, writeSafetensorsFile } from '../io/safetensors-fs.js';
import { toParams, paramsToSafetensors, type SafetensorsFile } from '../io/safetensors.js';
import { readOnnxFile, writeOnnxFile } from '../io/onnx-file.js';
import { looksLikeTorchZip } from '../io/torch-checkpoint.js';
import { readTorchCheckpointFile } from '../io/torch-checkpoint-fs.js';
import type { OnnxModel } from '../io/onnx.js';

export type ModelFormat = 'onnx' | 'safetensors';

export interface ModelFile {
  path: string;
  format: ModelFormat;
  params: Params;
  /** Every file read for this model (the model and any external data): never to be overwritten. */
  files: readonly string[];
  onnx?: OnnxModel;
  safetensors?: SafetensorsFile;
  /** Read from a PyTorch checkpoint (torch.save): held as safetensors, and written as safetensors. */
  pytorch?: boolean;
}

/**
 * The format of a file from its first bytes, for the readers that take a file tensor by tensor (--low-memory):
 * a PyTorch checkpoint is read whole, so it is refused here with the command that converts it.
 */
export function sniffModelFormat(path: string): ModelFormat {
  const kind = sniffModelKind(path);
  if (kind === 'pytorch') throw new InputError(`${path}: a PyTorch checkpoint is read whole, not tensor by tensor; convert it first: rebasin convert ${path} -o <file>.safetensors`);
  return kind;
}

/** The format of a file from its first bytes: safetensors starts with a u64 header length and '{', torch.save files are zips. */
function sniffModelKind(path: string): ModelFormat | 'pytorch' {
  // A regular file only (regular-file.ts): a FIFO or a device given as a model would hang or never end.
  const head = readRegularHead(path, 16);
  const n = head.length;
  if (n >= 9 && head[8] === 0x7b /* '{' */) return 'safetensors';
  if (looksLikeTorchZip(head)) return 'pytorch';
  // An ONNX ModelProto starts with a protobuf tag: field 1..20, wire type 0 or 2 (ir_version is field 1).
  if (n >= 2 && (head[0] & 0x07) <= 2 && head[0] >> 3 >= 1 && head[0] >> 3 <= 20) return 'onnx';
  const ext = extname(path).toLowerCase();
  throw new InputError(
    `${path}: not a safetensors, PyTorch (.pt) or ONNX model (content not recognised${ext ? `, extension '${ext}'` : ''})`,
  );
}

export function readModel(path: string): ModelFile {
  const format = sniffModelKind(path);
  if (format === 'pytorch') {
    // A state dict, in safetensors' form: everything downstream (specs by name, writing) treats it as one.
    const { file } = readTorchCheckpointFile(path);
    const { params } = toParams(file);
    assertFinite(path, params);
    return { path, format: 'safetensors', params, files: [path], safetensors: file, pytorch: true };
  }
  if (format === 'safetensors') {
    const file = readSafetensorsFile(path);
    const { params } = toParams(file);
    assertFinite(path, params);
    return { path, format, params, files: [path], safetensors: file };
  }
  const { model, params, files } = readOnnxFile(path);
  assertFinite(path, params);
  return { path, format, params, files, onnx: model };
}

/**
 * NaN or infinite weights make every later number meaningless: name the first one found. A one-value tensor
 * may be an infinite bound (Clip's max = +Inf, as openWakeWord's melspectrogram has); NaN is never allowed.
 */
function assertFinite(path: string, params: Params): void {
  for (const [name, t] of Object.entries(params)) {
    const d = t.data;
    const bound = d.length === 1;
    for (let i = 0; i < d.length; i++) {
      if (!Number.isFinite(d[i]) && !(bound && Math.abs(d[i]) === Infinity)) throw new InputError(`${path}: tensor '${name}' holds ${d[i]} at flat index ${i}; weights must be finite numbers`);
    }
  }
}

/** The files writing a model like `like` to `out` creates: an ONNX model with external data also writes `<out>.data`. */
export function modelOutputs(like: ModelFile, out: string): string[] {
  return like.format === 'onnx' && like.onnx?.layout === 'external' ? [out, `${out}.data`] : [out];
}

/**
 * The output keeps the input's format, and its name says so (which also keeps a model from being written
 * over, say, a dataset or a spec file given by mistake). Check it before any work.
 */
export function assertModelName(like: ModelFile, out: string): void {
  const want = extname(out).toLowerCase();
  const ext = like.format === 'onnx' ? '.onnx' : '.safetensors';
  const what = like.format === 'onnx' ? 'ONNX' : like.pytorch ? 'a PyTorch state dict, written as safetensors' : 'safetensors';
  if (want !== ext) throw new InputError(`${out}: the input ${like.path} is ${what}; name the output *${ext}`);
}

/** Write `params` in the form of `like` (same format, names, dtypes, graph) to `out`, atomically. */
export function writeModelLike(like: ModelFile, params: Params, out: string, inputs: readonly string[]): string[] {
  assertModelName(like, out);
  if (like.format === 'onnx') {
    return writeOnnxFile(out, like.onnx as OnnxModel, params, { inputs });
  }
  writeSafetensorsFile(out, paramsToSafetensors(params, { like: like.safetensors }), { inputs });
  return [out];
}

/** Read several models and check they are of one format. */
export function readModels(paths: readonly string[]): ModelFile[] {
  const models = paths.map(readModel);
  const formats = new Set(models.map((m) => m.format));
  if (formats.size > 1) throw new InputError(`the models mix formats (${[...formats].join(', ')}); give all as ONNX or all as safetensors`);
  return models;
}

export function readText(path: string): string {
  // Spec files are small: 64 MiB is far above any real one.
  return new TextDecoder().decode(readRegularFile(path, path, 64 << 20));
}
