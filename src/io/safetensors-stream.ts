/**
 * Writing a permuted copy of a safetensors model without loading it: the header is read once, then each
 * tensor is read, permuted, encoded back to its stored dtype and written before the next is read. The
 * output is byte for byte what the in-memory path writes (readSafetensorsFile, toParams,
 * applyPermutation, paramsToSafetensors with `like`, serialize): same header text, dtypes, order and
 * metadata, non-float tensors copied as stored, unchanged F64 tensors keeping their full precision.
 */
import { closeSync } from 'node:fs';
import type { Tensor } from '../tensor.js';
import type { PermutationSpec } from '../permutation-spec/spec.js';
import { permutedTensor, type Perms } from '../permute.js';
import { writeFileAtomic } from './atomic.js';
import { assertPermsFitShapes } from './perms-fit.js';
import { decodeFloat, isFloatDtype } from './dtype.js';
import { openForReading, readSafetensorsHeader, readTensorSync } from './safetensors-fs.js';
import {
  paramsToSafetensors,
  serializeSafetensorsChunks,
  tensorByteLength,
  type SafetensorsHeader,
  type StoredTensor,
} from './safetensors.js';

export interface WritePermutedOptions {
  /** The command's other input files, which the output must not overwrite (the input path always counts). */
  readonly inputs?: readonly string[];
}

/**
 * The prefix and header of the output: the writer's own header code, fed stand-ins of the right byte
 * lengths (views of one buffer) so the data need not be in memory. The header depends only on names,
 * dtypes, shapes, order and metadata, all of which permuting keeps.
 */
function headerChunk(header: SafetensorsHeader): Uint8Array {
  let largest = 0;
  for (const name of header.order) {
    const info = header.tensors[name];
    largest = Math.max(largest, tensorByteLength(info.dtype, info.shape) ?? 0);
  }
  const filler = new Uint8Array(largest);
  const tensors: Record<string, StoredTensor> = Object.create(null);
  for (const name of header.order) {
    const info = header.tensors[name];
    tensors[name] = { dtype: info.dtype, shape: info.shape, bytes: filler.subarray(0, tensorByteLength(info.dtype, info.shape) ?? 0) };
  }
  return serializeSafetensorsChunks({ tensors, metadata: header.metadata, order: header.order })[0];
}

/** One stored tensor, permuted and encoded exactly as paramsToSafetensors({like}) would encode it. */
function permutedBytes(spec: PermutationSpec, perms: Perms, name: string, stored: StoredTensor): Uint8Array {
  if (!isFloatDtype(stored.dtype)) return stored.bytes;
  const t: Tensor = { shape: [...stored.shape], data: decodeFloat(stored.dtype, stored.bytes) };
  const out = permutedTensor(spec, perms, name, t);
  const like = { tensors: { [name]: stored }, metadata: null, order: [name] };
  return paramsToSafetensors({ [name]: out }, { like }).tensors[name].bytes;
}

/** The file's float tensor shapes, for assertPermsFitShapes. */
function floatShapes(header: SafetensorsHeader): Record<string, readonly number[]> {
  const shapes: Record<string, readonly number[]> = Object.create(null);
  for (const name of header.order) if (isFloatDtype(header.tensors[name].dtype)) shapes[name] = header.tensors[name].shape;
  return shapes;
}

/**
 * Write P(model at inPath) to outPath atomically, holding one tensor (its bytes, float32 values and
 * permuted copy) at a time. Throws an InputError before writing anything when the spec or perms do not
 * fit the file.
 */
export function writePermutedSafetensors(
  inPath: string,
  outPath: string,
  spec: PermutationSpec,
  perms: Perms,
  options: WritePermutedOptions = {},
): void {
  const fd = openForReading(inPath);
  try {
    const header = readSafetensorsHeader(fd, inPath);
    assertPermsFitShapes(spec, perms, floatShapes(header), inPath);
    function* chunks(): Generator<Uint8Array> {
      yield headerChunk(header);
      for (const name of header.order) {
        const bytes = permutedBytes(spec, perms, name, readTensorSync(fd, header, name));
        if (bytes.length > 0) yield bytes;
      }
    }
    writeFileAtomic(outPath, chunks(), { inputs: [inPath, ...(options.inputs ?? [])] });
  } finally {
    closeSync(fd);
  }
}
