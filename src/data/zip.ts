/**
 * The entries of a zip archive (as .npz files are) from its central directory, and one entry's bytes
 * inflated under a limit (pure: no file access). Only what .npz files use: stored or deflated entries, a
 * plain end-of-directory record, zip64 extra fields for sizes and offsets (numpy writes them).
 */
import { InputError } from '../errors.js';
import { inflateExactly } from './inflate.js';

export interface ZipEntry {
  readonly name: string;
  /** 0 stored, 8 deflated. */
  readonly method: number;
  readonly compressedSize: number;
  /** The size the directory announces once inflated (checked while inflating, never trusted). */
  readonly size: number;
  readonly localOffset: number;
  readonly encrypted: boolean;
}

const EOCD = 0x06054b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;
const MAX_COMMENT = 0xffff;

/** Lists the entries of a zip archive from its central directory. */
export function zipEntries(bytes: Uint8Array, what: string): ZipEntry[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const corrupt = (why: string): InputError => new InputError(`${what}: corrupt zip archive (${why})`);
  let eocd = -1;
  for (let i = bytes.length - 22; i >= 0 && i >= bytes.length - 22 - MAX_COMMENT; i--) {
    if (view.getUint32(i, true) === EOCD) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw corrupt('no end of central directory record');
  const count = view.getUint16(eocd + 10, true);
  const dirSize = view.getUint32(eocd + 12, true);
  const dirOffset = view.getUint32(eocd + 16, true);
  if (count === 0xffff || dirOffset === 0xffffffff || dirSize === 0xffffffff) {
    throw new InputError(`${what}: a zip64 archive (over 4 GiB or 65535 entries), more than a dataset may be`);
  }
  if (dirOffset + dirSize > eocd) throw corrupt('the central directory lies outside the file');
  const entries: ZipEntry[] = [];
  let at = dirOffset;
  for (let k = 0; k < count; k++) {
    if (at + 46 > eocd || view.getUint32(at, true) !== CENTRAL) throw corrupt(`central directory entry ${k} is damaged`);
    const flags = view.getUint16(at + 8, true);
    const method = view.getUint16(at + 10, true);
    let compressedSize = view.getUint32(at + 20, true);
    let size = view.getUint32(at + 24, true);
    const nameLen = view.getUint16(at + 28, true);
    const extraLen = view.getUint16(at + 30, true);
    const commentLen = view.getUint16(at + 32, true);
    let localOffset = view.getUint32(at + 42, true);
    const end = at + 46 + nameLen + extraLen + commentLen;
    if (end > eocd) throw corrupt(`central directory entry ${k} runs past the directory`);
    const name = new TextDecoder().decode(bytes.subarray(at + 46, at + 46 + nameLen));
    // Zip64: the fields that read 0xffffffff are in the extra field 0x0001, in this order.
    for (let e = at + 46 + nameLen; e + 4 <= at + 46 + nameLen + extraLen; ) {
      const id = view.getUint16(e, true);
      const len = view.getUint16(e + 2, true);
      if (id === 0x0001) {
        let p = e + 4;
        const next = (): number => {
          if (p + 8 > e + 4 + len) throw corrupt(`zip64 field of '${name}' is short`);
          const v = Number(view.getBigUint64(p, true));
          p += 8;
          return v;
        };
        if (size === 0xffffffff) size = next();
        if (compressedSize === 0xffffffff) compressedSize = next();
        if (localOffset === 0xffffffff) localOffset = next();
      }
      e += 4 + len;
    }
    entries.push({ name, method, compressedSize, size, localOffset, encrypted: (flags & 1) !== 0 });
    at = end;
  }
  return entries;
}

/** One entry's bytes, inflated to exactly the size the directory announces, refused over `maxBytes`. */
export function zipEntryBytes(bytes: Uint8Array, entry: ZipEntry, maxBytes: number, what: string): Uint8Array {
  const label = `${what} entry '${entry.name}'`;
  if (entry.encrypted) throw new InputError(`${label}: encrypted zip entries are not supported`);
  if (entry.size > maxBytes) throw new InputError(`${label}: ${entry.size} bytes once inflated, over the limit of ${maxBytes}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const at = entry.localOffset;
  if (at + 30 > bytes.length || view.getUint32(at, true) !== LOCAL) throw new InputError(`${label}: corrupt zip archive (bad local header)`);
  const start = at + 30 + view.getUint16(at + 26, true) + view.getUint16(at + 28, true);
  if (start + entry.compressedSize > bytes.length) throw new InputError(`${label}: corrupt zip archive (data runs past the end of the file)`);
  const data = bytes.subarray(start, start + entry.compressedSize);
  if (entry.method === 0) {
    if (entry.compressedSize !== entry.size) throw new InputError(`${label}: corrupt zip archive (stored entry of two sizes)`);
    return data.slice();
  }
  if (entry.method !== 8) throw new InputError(`${label}: zip compression method ${entry.method} is not supported (stored or deflated only)`);
  return inflateExactly('deflate', data, entry.size, maxBytes, label);
}
