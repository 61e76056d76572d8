/**
 * Opening and reading input files safely (Node only). Every file rebasin reads — models, external data,
 * datasets — goes through here, so that no input can make it hang or read without end:
 * - the file is opened with O_NONBLOCK, so opening a FIFO (or a terminal) returns at once instead of
 *   waiting for a writer;
 * - the open descriptor is fstat'ed and anything but a regular file (a folder, a FIFO, a device such as
 *   /dev/zero reached through a link, a socket) is refused with one line naming the file;
 * - reads are bounded by the size fstat gave (and by a caller's limit, checked before allocating), done
 *   in pieces below Node's 2 GiB per-read limit, and a file that ends early is an InputError.
 */
import { closeSync, constants, fstatSync, openSync, readSync, type Stats } from 'node:fs';
import { InputError } from '../errors.js';

// Node's single read() is capped near 2 GiB; read larger spans in pieces.
const READ_CHUNK = 1 << 30;

export interface RegularFile {
  readonly fd: number;
  readonly size: number;
}

function kindOf(st: Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

const PLAIN: Record<string, string> = {
  ENOENT: 'no such file',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EISDIR: 'is a directory, expected a file',
  ELOOP: 'too many levels of symbolic links',
  ENOTDIR: 'a part of the path is not a folder',
};

function why(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  if (err.code === undefined) return err.message;
  return PLAIN[err.code] !== undefined ? `${PLAIN[err.code]} (${err.code})` : `${err.code}: ${err.message}`;
}

/**
 * Opens `path` for reading if it is a regular file; `label` starts every error message (e.g. "dataset file
 * x.npz"). The caller closes the descriptor.
 */
export function openRegular(path: string, label: string = path): RegularFile {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    throw new InputError(`${label}: ${why(e)}`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new InputError(`${label}: is ${kindOf(st)}, expected a regular file`);
    return { fd, size: st.size };
  } catch (e) {
    closeSync(fd);
    if (e instanceof InputError) throw e;
    throw new InputError(`${label}: ${why(e)}`);
  }
}

/** Fills `into` from `fd` at `position`; an InputError naming `label` when the file ends first. */
export function readExactly(fd: number, into: Uint8Array, position: number, label: string): void {
  let done = 0;
  while (done < into.length) {
    let got: number;
    try {
      got = readSync(fd, into, done, Math.min(READ_CHUNK, into.length - done), position + done);
    } catch (e) {
      throw new InputError(`${label}: ${why(e)}`);
    }
    if (got === 0) throw new InputError(`${label}: file ended after ${position + done} bytes while reading (was it changed meanwhile?)`);
    done += got;
  }
}

/**
 * The whole of a regular file, refused unread when fstat gives more than `maxBytes` (say what the limit is
 * for in `limitNote`, e.g. "protobuf's 2 GiB limit").
 */
export function readRegularFile(path: string, label: string = path, maxBytes = Number.MAX_SAFE_INTEGER, limitNote = ''): Uint8Array {
  const f = openRegular(path, label);
  try {
    if (f.size > maxBytes) {
      throw new InputError(`${label}: ${f.size} bytes is over the limit of ${maxBytes}${limitNote ? ` (${limitNote})` : ''}`);
    }
    const bytes = new Uint8Array(f.size);
    readExactly(f.fd, bytes, 0, label);
    return bytes;
  } finally {
    closeSync(f.fd);
  }
}

/** Up to `n` first bytes of a regular file (fewer when it is shorter). */
export function readRegularHead(path: string, n: number, label: string = path): Uint8Array {
  const f = openRegular(path, label);
  try {
    const head = new Uint8Array(Math.min(n, f.size));
    readExactly(f.fd, head, 0, label);
    return head;
  } finally {
    closeSync(f.fd);
  }
}
