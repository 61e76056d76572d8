/**
 * The zip container of a PyTorch checkpoint (torch.save since 1.6), read from bytes in memory (pure: no
 * file access, so it runs in a browser too). torch.save writes, under one top folder `<archive>/` (the file's
 * stem in torch 1.x, "archive" in 2.x):
 *   data.pkl           the pickled object (see torch-pickle.ts)
 *   data/<key>         one entry per storage, its raw little-endian bytes
 *   byteorder          "little" or "big" (torch >= 2.1; absent means little)
 *   version, .format_version, .storage_alignment, .data/serialization_id   (not needed here)
 * Every entry is stored (method 0, uncompressed), its data padded to 64-byte alignment through the local
 * header's extra field, and the archive ends with zip64 records even when small (the writer is miniz).
 *
 * Entries are handed out as views of the file's bytes (no copy), after their CRC-32 is checked: a damaged
 * weight would otherwise load silently (torch's own reader checks it too). A file is untrusted input: every
 * size and offset is checked against the file's length before use, and each violation is an InputError
 * naming the file.
 */
import { InputError } from '../errors.js';

export interface ZipEntry {
  readonly name: string;
  readonly method: number;
  readonly flags: number;
  readonly crc32: number;
  readonly compressedSize: number;
  readonly size: number;
  readonly localOffset: number;
}

const EOCD = 0x06054b50;
const ZIP64_LOCATOR = 0x07064b50;
const ZIP64_EOCD = 0x06064b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;
const MAX_COMMENT = 0xffff;
/** Far above a real checkpoint (a few entries per tensor): a bound on work before anything is read. */
export const MAX_ZIP_ENTRIES = 4_000_000;

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** True when the bytes start like a zip archive (a local file header, or an empty archive's end record). */
export function looksLikeZip(head: Uint8Array): boolean {
  return head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b && ((head[2] === 3 && head[3] === 4) || (head[2] === 5 && head[3] === 6));
}

/** A u64 field as a number; values beyond 2^53 cannot be offsets into a file held in memory. */
function u64(view: DataView, at: number, corrupt: (why: string) => InputError, what: string): number {
  const lo = view.getUint32(at, true);
  const hi = view.getUint32(at + 4, true);
  if (hi >= 0x200000) throw corrupt(`${what} is beyond 2^53`);
  return hi * 0x1_0000_0000 + lo;
}

/** The entries of the archive, from its central directory (zip64 records followed where a field overflowed). */
export function zipEntries(bytes: Uint8Array, label: string): ZipEntry[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const corrupt = (why: string): InputError => new InputError(`${label}: corrupt zip archive (${why})`);
  let eocd = -1;
  for (let i = bytes.length - 22; i >= 0 && i >= bytes.length - 22 - MAX_COMMENT; i--) {
    if (view.getUint32(i, true) === EOCD) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw corrupt('no end of central directory record; truncated?');
  let count = view.getUint16(eocd + 10, true);
  let dirSize = view.getUint32(eocd + 12, true);
  let dirOffset = view.getUint32(eocd + 16, true);
  let dirEnd = eocd;
  if (count === 0xffff || dirSize === 0xffffffff || dirOffset === 0xffffffff) {
    const loc = eocd - 20;
    if (loc < 0 || view.getUint32(loc, true) !== ZIP64_LOCATOR) throw corrupt('zip64 fields without a zip64 locator');
    const rec = u64(view, loc + 8, corrupt, 'the zip64 record offset');
    if (rec + 56 > loc || view.getUint32(rec, true) !== ZIP64_EOCD) throw corrupt('the zip64 end record is missing or damaged');
    count = u64(view, rec + 32, corrupt, 'the entry count');
    dirSize = u64(view, rec + 40, corrupt, 'the directory size');
    dirOffset = u64(view, rec + 48, corrupt, 'the directory offset');
    dirEnd = rec;
  } else if (eocd >= 20 && view.getUint32(eocd - 20, true) === ZIP64_LOCATOR) {
    // torch writes zip64 records even for small archives: the central directory ends where they begin.
    const rec = u64(view, eocd - 20 + 8, corrupt, 'the zip64 record offset');
    if (rec <= eocd - 20) dirEnd = rec;
  }
  if (count > MAX_ZIP_ENTRIES) throw corrupt(`${count} entries, over the limit of ${MAX_ZIP_ENTRIES}`);
  if (dirOffset + dirSize > dirEnd || count * 46 > dirSize) throw corrupt('the central directory lies outside the file');
  const entries: ZipEntry[] = [];
  const seen = new Set<string>();
  let at = dirOffset;
  const end = dirOffset + dirSize;
  for (let k = 0; k < count; k++) {
    if (at + 46 > end || view.getUint32(at, true) !== CENTRAL) throw corrupt(`central directory entry ${k} is damaged`);
    const flags = view.getUint16(at + 8, true);
    const method = view.getUint16(at + 10, true);
    const crc32 = view.getUint32(at + 16, true);
    let compressedSize = view.getUint32(at + 20, true);
    let size = view.getUint32(at + 24, true);
    const nameLen = view.getUint16(at + 28, true);
    const extraLen = view.getUint16(at + 30, true);
    const commentLen = view.getUint16(at + 32, true);
    let localOffset = view.getUint32(at + 42, true);
    const next = at + 46 + nameLen + extraLen + commentLen;
    if (next > end) throw corrupt(`central directory entry ${k} runs past the directory`);
    let name: string;
    try {
      name = utf8.decode(bytes.subarray(at + 46, at + 46 + nameLen));
    } catch {
      throw corrupt(`central directory entry ${k} has a name that is not UTF-8`);
    }
    // Zip64: the fields that read 0xffffffff follow in the extra field 0x0001, in this order.
    const extraEnd = at + 46 + nameLen + extraLen;
    for (let e = at + 46 + nameLen; e + 4 <= extraEnd; ) {
      const id = view.getUint16(e, true);
      const len = view.getUint16(e + 2, true);
      if (e + 4 + len > extraEnd) throw corrupt(`entry '${name}' has a damaged extra field`);
      if (id === 0x0001) {
        let p = e + 4;
        const take = (): number => {
          if (p + 8 > e + 4 + len) throw corrupt(`entry '${name}' has a short zip64 field`);
          const v = u64(view, p, corrupt, `a size of '${name}'`);
          p += 8;
          return v;
        };
        if (size === 0xffffffff) size = take();
        if (compressedSize === 0xffffffff) compressedSize = take();
        if (localOffset === 0xffffffff) localOffset = take();
      }
      e += 4 + len;
    }
    if (seen.has(name)) throw corrupt(`entry '${name}' appears twice`);
    seen.add(name);
    entries.push({ name, method, flags, crc32, compressedSize, size, localOffset });
    at = next;
  }
  return entries;
}

let crcTable: Uint32Array | null = null;

/** CRC-32 (the zip/PNG polynomial 0xEDB88320). */
export function crc32(bytes: Uint8Array): number {
  if (crcTable === null) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  const t = crcTable;
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = t[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/**
 * The bytes of a stored entry, a view of `bytes`, located through its local header and checked against its
 * CRC-32. Compressed or encrypted entries are refused: torch.save never writes them.
 */
export function storedEntryBytes(bytes: Uint8Array, entry: ZipEntry, label: string): Uint8Array {
  const corrupt = (why: string): InputError => new InputError(`${label}: corrupt zip archive (entry '${entry.name}': ${why})`);
  if (entry.flags & 1) throw new InputError(`${label}: entry '${entry.name}' is encrypted`);
  if (entry.method !== 0) {
    throw new InputError(`${label}: entry '${entry.name}' is compressed (zip method ${entry.method}); torch.save writes stored entries: re-save the checkpoint with torch.save`);
  }
  if (entry.size !== entry.compressedSize) throw corrupt(`a stored entry of ${entry.compressedSize} bytes says it holds ${entry.size}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const at = entry.localOffset;
  if (at + 30 > bytes.length || view.getUint32(at, true) !== LOCAL) throw corrupt('its local header is missing');
  const start = at + 30 + view.getUint16(at + 26, true) + view.getUint16(at + 28, true);
  if (start + entry.size > bytes.length) throw corrupt(`its ${entry.size} bytes run past the end of the file`);
  const data = bytes.subarray(start, start + entry.size);
  if (crc32(data) !== entry.crc32) throw corrupt('CRC-32 mismatch: the data is damaged');
  return data;
}
