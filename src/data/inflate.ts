/**
 * Bounded decompression (pure: no file access). A few megabytes of deflate can inflate to gigabytes, and
 * the sizes a gzip trailer or a zip directory announce are the file's word, not a fact. So the output
 * buffer is sized once by the announced size (checked against the caller's limit first), the input is fed
 * in small pieces, and inflation stops with an InputError the moment it would pass that size: memory stays
 * at the announced size plus one piece's output, whatever the data does.
 */
import { Gunzip, Inflate } from 'fflate';
import { InputError } from '../errors.js';

// Compressed bytes fed per step; deflate expands at most ~1032x, so one step yields at most ~17 MB.
const STEP = 1 << 14;

/**
 * Inflates `input` ('gzip': a gzip member; 'deflate': raw deflate, as in zip entries) to exactly `size`
 * bytes; `size` over `maxBytes` is refused before anything is inflated.
 */
export function inflateExactly(kind: 'gzip' | 'deflate', input: Uint8Array, size: number, maxBytes: number, what: string): Uint8Array {
  if (size > maxBytes) throw new InputError(`${what}: would inflate to ${size} bytes, over the limit of ${maxBytes}`);
  const out = new Uint8Array(size);
  let at = 0;
  const onData = (chunk: Uint8Array): void => {
    if (at + chunk.length > size) throw new InputError(`${what}: inflates to more than the ${size} bytes it announces`);
    out.set(chunk, at);
    at += chunk.length;
  };
  const stream = kind === 'gzip' ? new Gunzip(onData) : new Inflate(onData);
  try {
    if (input.length === 0) stream.push(input, true);
    for (let i = 0; i < input.length; i += STEP) stream.push(input.subarray(i, i + STEP), i + STEP >= input.length);
  } catch (e) {
    if (e instanceof InputError) throw e;
    throw new InputError(`${what}: corrupt ${kind === 'gzip' ? 'gzip' : 'deflate'} data (${(e as Error).message})`);
  }
  if (at !== size) throw new InputError(`${what}: inflates to ${at} bytes, not the ${size} it announces`);
  return out;
}
