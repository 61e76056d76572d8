/**
 * One entry of a zip archive (as .npz files are) inflated under a limit (pure: no file access): stored or
 * deflated entries. The central directory is read by the same reader as PyTorch checkpoints
 * (io/torch-zip.ts: zip64 records, bounded entry count).
 */
import { InputError } from '../errors.js';
import { zipEntries, type ZipEntry } from '../io/torch-zip.js';
import { inflateExactly } from './inflate.js';

export { zipEntries, type ZipEntry };

const LOCAL = 0x04034b50;

/** One entry's bytes, inflated to exactly the size the directory announces, refused over `maxBytes`. */
export function zipEntryBytes(bytes: Uint8Array, entry: ZipEntry, maxBytes: number, what: string): Uint8Array {
  const label = `${what} entry '${entry.name}'`;
  if (entry.flags & 1) throw new InputError(`${label}: encrypted zip entries are not supported`);
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
