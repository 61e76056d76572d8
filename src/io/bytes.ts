/** Byte-buffer helpers shared by the file formats (no Node imports). */

/** The chunks joined into one buffer, in order (the serializers emit chunks so large files need not be). */
export function concatBytes(chunks: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const c of chunks) total += c.length;
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}
