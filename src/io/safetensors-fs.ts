/**
 * Safetensors files on disk (Node only; the format itself is in safetensors.ts).
 *
 * `readSafetensorsFile` reads the file once into one buffer and hands out views of it. For models
 * too large for that, `readSafetensorsHeader` reads only the header and `readTensorSync` /
 * `readTensor` fetch one tensor at a time.
 */
import { closeSync, fstatSync, readSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { InputError } from '../errors.js';
import { openRegular } from './regular-file.js';
import { writeFileAtomic } from './atomic.js';
import {
  parseHeader,
  parseSafetensors,
  readHeaderLength,
  serializeSafetensorsChunks,
  type SafetensorsFile,
  type SafetensorsHeader,
  type SafetensorsInput,
  type StoredTensor,
} from './safetensors.js';

// Node's single read() is capped near 2 GiB; read larger spans in pieces.
const READ_CHUNK = 1 << 30;

function fsError(path: string, e: unknown): never {
  const err = e as NodeJS.ErrnoException;
  if (err.code === 'ENOENT') throw new InputError(`${path}: no such file`);
  if (err.code === 'EISDIR') throw new InputError(`${path}: is a directory, not a safetensors file`);
  if (err.code !== undefined) throw new InputError(`cannot read ${path}: ${err.code}: ${err.message}`);
  throw e;
}

/**
 * Opens a regular file for reading, with the user-facing errors (missing file, a folder, a FIFO or device,
 * no permission); see regular-file.ts for why anything else is refused.
 */
export function openForReading(path: string): number {
  return openRegular(path).fd;
}

/** Fill `into` from `fd` at `position`; an InputError when the file ends first. */
function readFully(fd: number, into: Uint8Array, position: number, label: string): void {
  let done = 0;
  while (done < into.length) {
    const want = Math.min(READ_CHUNK, into.length - done);
    let got: number;
    try {
      got = readSync(fd, into, done, want, position + done);
    } catch (e) {
      fsError(label, e);
    }
    if (got === 0) throw new InputError(`${label}: file ended after ${position + done} bytes while reading (was it changed meanwhile?)`);
    done += got;
  }
}

function fileSize(fd: number, label: string): number {
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new InputError(`${label}: is ${st.isDirectory() ? 'a directory' : 'not a regular file'}, not a safetensors file`);
    return st.size;
  } catch (e) {
    if (e instanceof InputError) throw e;
    fsError(label, e);
  }
}

function withFd<T>(path: string, fn: (fd: number) => T): T {
  const fd = openForReading(path);
  try {
    return fn(fd);
  } finally {
    closeSync(fd);
  }
}

function headerFromFd(fd: number, label: string): SafetensorsHeader {
  const size = fileSize(fd, label);
  const prefix = new Uint8Array(8);
  readFully(fd, prefix.subarray(0, Math.min(8, size)), 0, label);
  const n = readHeaderLength(prefix, size, label);
  const headerBytes = new Uint8Array(n);
  readFully(fd, headerBytes, 8, label);
  return parseHeader(headerBytes, size - 8 - n, label);
}

/** Read a whole safetensors file into one buffer; tensor bytes are views into it. */
export function readSafetensorsFile(path: string): SafetensorsFile {
  return withFd(path, (fd) => {
    // Check the length prefix first, so a large file that is not safetensors (its first 8 bytes
    // then read as an absurd length) fails before it is loaded.
    const size = fileSize(fd, path);
    const prefix = new Uint8Array(8);
    readFully(fd, prefix.subarray(0, Math.min(8, size)), 0, path);
    readHeaderLength(prefix, size, path);
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(size);
    } catch {
      throw new InputError(`${path}: ${size} bytes is too large to load at once; read it tensor by tensor (readSafetensorsHeader)`);
    }
    readFully(fd, bytes, 0, path);
    return parseSafetensors(bytes, path);
  });
}

/** Read and validate only the header of a file (given by path, or by an open descriptor). */
export function readSafetensorsHeader(file: string | number, label?: string): SafetensorsHeader {
  if (typeof file === 'number') return headerFromFd(file, label ?? `file descriptor ${file}`);
  return withFd(file, (fd) => headerFromFd(fd, label ?? file));
}

function infoOf(header: SafetensorsHeader, name: string): { dtype: string; shape: readonly number[]; begin: number; length: number } {
  if (!Object.prototype.hasOwnProperty.call(header.tensors, name)) {
    throw new InputError(`${header.label}: no tensor named ${JSON.stringify(name)}`);
  }
  const info = header.tensors[name];
  const [begin, end] = info.dataOffsets;
  return { dtype: info.dtype, shape: info.shape, begin: header.dataStart + begin, length: end - begin };
}

/**
 * Read one tensor's bytes from an open descriptor of the file `header` came from: into `into` when given
 * (a reusable buffer of at least the tensor's length; the result is a view of it), else a fresh buffer.
 */
export function readTensorSync(fd: number, header: SafetensorsHeader, name: string, into?: Uint8Array): StoredTensor {
  const { dtype, shape, begin, length } = infoOf(header, name);
  if (into !== undefined && into.length < length) throw new Error(`readTensorSync: buffer of ${into.length} bytes for ${length}`);
  const bytes = into === undefined ? new Uint8Array(length) : into.subarray(0, length);
  readFully(fd, bytes, begin, header.label);
  return { dtype, shape, bytes };
}

/** Read one tensor's bytes from an open FileHandle of the file `header` came from. */
export async function readTensor(handle: FileHandle, header: SafetensorsHeader, name: string): Promise<StoredTensor> {
  const { dtype, shape, begin, length } = infoOf(header, name);
  const bytes = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const want = Math.min(READ_CHUNK, length - done);
    const { bytesRead } = await handle.read(bytes, done, want, begin + done);
    if (bytesRead === 0) throw new InputError(`${header.label}: file ended while reading tensor ${JSON.stringify(name)} (was it changed meanwhile?)`);
    done += bytesRead;
  }
  return { dtype, shape, bytes };
}

/**
 * Write a safetensors file atomically. `inputs`: the command's input files, which the output must
 * not overwrite (see assertNotInput).
 */
export function writeSafetensorsFile(path: string, file: SafetensorsInput, options: { inputs?: readonly string[] } = {}): void {
  writeFileAtomic(path, serializeSafetensorsChunks(file), options);
}
