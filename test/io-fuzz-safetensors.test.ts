/**
 * Fuzzing the safetensors parser with seeded mutations of valid files: byte flips, truncation,
 * absurd header lengths, and structural edits of the JSON header. Every input must either parse
 * into something self-consistent or fail with a one-line InputError naming the file — never another
 * exception, never a hang, never an allocation sized by an unchecked number.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InputError } from '../src/errors.js';
import { createRng, type Rng } from '../src/random.js';
import { encodeBF16, encodeF16, encodeF32 } from '../src/io/dtype.js';
import {
  parseSafetensors,
  serializeSafetensors,
  tensorByteLength,
  toParams,
  type SafetensorsFile,
  type StoredTensor,
} from '../src/io/safetensors.js';

const LABEL = 'fuzz.safetensors';

function baseFiles(rng: Rng): Uint8Array[] {
  const floats = (n: number) => Float32Array.from({ length: n }, () => rng.normal());
  const make = (entries: [string, StoredTensor][], metadata: Record<string, string> | null): Uint8Array => {
    const tensors: Record<string, StoredTensor> = Object.create(null);
    for (const [k, v] of entries) tensors[k] = v;
    return serializeSafetensors({ tensors, metadata, order: entries.map(([k]) => k) });
  };
  return [
    make(
      [
        ['fc1.weight', { dtype: 'F32', shape: [4, 3], bytes: encodeF32(floats(12)) }],
        ['fc1.bias', { dtype: 'F16', shape: [4], bytes: encodeF16(floats(4)) }],
        ['emb', { dtype: 'BF16', shape: [2, 2], bytes: encodeBF16(floats(4)) }],
        ['n', { dtype: 'I64', shape: [], bytes: new Uint8Array(8) }],
        ['z', { dtype: 'U8', shape: [0], bytes: new Uint8Array(0) }],
      ],
      { format: 'pt' },
    ),
    make([['0', { dtype: 'F64', shape: [2], bytes: new Uint8Array(16) }], ['q', { dtype: 'F4', shape: [4], bytes: new Uint8Array(2) }]], null),
    make([], { only: 'metadata' }),
  ];
}

/** A random JSON value of the kinds that break naive parsers. */
function randomJsonValue(rng: Rng): unknown {
  const pick = [
    () => -1,
    () => 0,
    () => rng.int(40),
    () => 2.5,
    () => 2 ** 53,
    () => 2 ** 64,
    () => 1e308,
    () => 'F32',
    () => 'I64',
    () => 'nope',
    () => '',
    () => null,
    () => true,
    () => [],
    () => [rng.int(20), rng.int(20)],
    () => [0, 2 ** 62],
    () => [-1, 4],
    () => [1, 2, 3],
    () => ({}),
    () => ({ dtype: 'F32', shape: [1], data_offsets: [0, 4] }),
  ];
  return pick[rng.int(pick.length)]();
}

/** The header length field, clamped to the bytes present (inputs may already be mutated). */
function headerLength(bytes: Uint8Array): number {
  if (bytes.length < 8) return 0;
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return Math.min(n, bytes.length - 8);
}

/** Header of a valid base file. */
function headerOf(bytes: Uint8Array): { n: number; json: Record<string, unknown> } {
  const n = headerLength(bytes);
  return { n, json: JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) as Record<string, unknown> };
}

function withHeaderText(bytes: Uint8Array, text: string, n: number): Uint8Array {
  const header = new TextEncoder().encode(text);
  const data = bytes.subarray(8 + n);
  const out = new Uint8Array(8 + header.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(header.length), true);
  out.set(header, 8);
  out.set(data, 8 + header.length);
  return out;
}

/** Structural edit of the JSON header, re-encoded with a correct length prefix. */
function mutateJson(bytes: Uint8Array, rng: Rng): Uint8Array {
  const { n, json } = headerOf(bytes);
  const names = Object.keys(json);
  const kind = rng.int(7);
  if (names.length === 0 || kind === 0) {
    json[`t${rng.int(3)}`] = randomJsonValue(rng);
  } else {
    const name = names[rng.int(names.length)];
    const entry = json[name];
    if (kind === 1 || typeof entry !== 'object' || entry === null) {
      json[name] = randomJsonValue(rng);
    } else {
      const e = entry as Record<string, unknown>;
      const field = ['dtype', 'shape', 'data_offsets', 'format'][rng.int(4)];
      if (kind === 2) delete e[field];
      else if (kind === 3) e[field] = randomJsonValue(rng);
      else if (kind === 4 && Array.isArray(e.data_offsets)) {
        const offs = e.data_offsets as number[];
        offs[rng.int(2)] += rng.int(9) - 4;
      } else if (kind === 5 && Array.isArray(e.shape)) {
        const shape = e.shape as number[];
        if (shape.length > 0 && rng.next() < 0.5) shape[rng.int(shape.length)] += rng.int(5) - 2;
        else shape.push(rng.int(3));
      } else {
        delete json[name];
      }
    }
  }
  let text = JSON.stringify(json);
  if (rng.next() < 0.15 && names.length > 0) {
    // A textual duplicate key, which JSON.parse alone would silently collapse.
    const name = names[rng.int(names.length)];
    text = `{${JSON.stringify(name)}:${JSON.stringify(json[name] ?? 1)},${text.slice(1)}`;
  }
  return withHeaderText(bytes, text, n);
}

/** Insert, delete or replace characters in the header text (keeping the length prefix right). */
function mutateHeaderText(bytes: Uint8Array, rng: Rng): Uint8Array {
  const { n } = headerOf(bytes);
  const text = new TextDecoder().decode(bytes.subarray(8, 8 + n));
  const at = rng.int(text.length + 1);
  const junk = ['{', '}', '[', ']', '"', ',', ':', '\\', '-', '0', '9', 'e', ' ', '\u00e9', '\ud800', '"__metadata__"'][rng.int(16)];
  const op = rng.int(3);
  const edited =
    op === 0 ? text.slice(0, at) + junk + text.slice(at) : op === 1 ? text.slice(0, at) + text.slice(at + 1 + rng.int(4)) : text.slice(0, at) + junk + text.slice(at + 1);
  return withHeaderText(bytes, edited, n);
}

const SPECIAL_LENGTHS = [0n, 1n, 2n ** 31n, 2n ** 32n, 2n ** 32n + 2n, 2n ** 53n, 2n ** 53n + 1n, 2n ** 63n, 2n ** 64n - 1n, 100_000_001n];

function mutateBytes(bytes: Uint8Array, rng: Rng): Uint8Array {
  const out = bytes.slice();
  const kind = rng.int(4);
  if (kind === 0) {
    // Byte flips, mostly inside the prefix and header, where the parser has decisions to make.
    const n = headerLength(bytes);
    const flips = 1 + rng.int(4);
    for (let i = 0; i < flips && out.length > 0; i++) {
      const pos = rng.next() < 0.85 ? rng.int(8 + n) : rng.int(out.length);
      out[pos] ^= 1 << rng.int(8);
    }
    return out;
  }
  if (kind === 1 || out.length < 8) return out.subarray(0, rng.int(out.length));
  const view = new DataView(out.buffer);
  if (kind === 2) {
    const n = headerLength(bytes);
    const value = rng.next() < 0.5 ? SPECIAL_LENGTHS[rng.int(SPECIAL_LENGTHS.length)] : BigInt(Math.max(0, n + rng.int(17) - 8));
    view.setBigUint64(0, value, true);
    return out;
  }
  view.setUint32(rng.int(2) * 4, (rng.next() * 2 ** 32) >>> 0, true);
  return out;
}

/** What a successful parse must satisfy, checked independently of the parser's own checks. */
function checkParsed(file: SafetensorsFile, input: Uint8Array): void {
  assert.deepEqual([...file.order].sort(), Object.keys(file.tensors).sort());
  let total = 0;
  for (const name of file.order) {
    const t = file.tensors[name];
    assert.equal(t.bytes.buffer, input.buffer);
    assert.ok(t.bytes.byteOffset >= input.byteOffset + 8 && t.bytes.byteOffset + t.bytes.length <= input.byteOffset + input.length);
    assert.equal(tensorByteLength(t.dtype, t.shape), t.bytes.length);
    total += t.bytes.length;
  }
  // Contiguous tiling means the tensors add up to exactly the data after the header.
  const n = Number(new DataView(input.buffer, input.byteOffset).getBigUint64(0, true));
  assert.equal(total, input.length - 8 - n);
  toParams(file);
  // What parsed re-serialises into a file that parses to the same tensors.
  const again = parseSafetensors(serializeSafetensors(file), 'again');
  assert.deepEqual(again.order, file.order);
  for (const name of file.order) assert.deepEqual(again.tensors[name].bytes, file.tensors[name].bytes);
}

test('fuzzed safetensors files either parse consistently or throw a one-line InputError', () => {
  const rng = createRng(20240611);
  const bases = baseFiles(rng);
  const counts = { parsed: 0, rejected: 0 };
  const started = Date.now();
  const CASES = 10000;
  for (let i = 0; i < CASES; i++) {
    const base = bases[rng.int(bases.length)];
    const r = rng.next();
    let input = r < 0.4 ? mutateJson(base, rng) : r < 0.6 ? mutateHeaderText(base, rng) : mutateBytes(base, rng);
    if (rng.next() < 0.1) input = mutateBytes(input, rng); // occasionally stack two mutations
    let file: SafetensorsFile | null = null;
    try {
      file = parseSafetensors(input, LABEL);
    } catch (e) {
      if (!(e instanceof InputError)) {
        assert.fail(`case ${i}: ${String(e)} (${(e as Error).stack})\ninput header: ${Buffer.from(input.subarray(0, 300)).toString('latin1')}`);
      }
      assert.ok(e.message.startsWith(`${LABEL}: `), e.message);
      assert.ok(!e.message.includes('\n') && e.message.length < 600, `case ${i}: message too long or multi-line: ${e.message}`);
      counts.rejected++;
      continue;
    }
    checkParsed(file, input);
    counts.parsed++;
  }
  // Both outcomes must actually occur, or the mutations are not exercising the parser.
  assert.ok(counts.parsed > 100, `only ${counts.parsed} parsed`);
  assert.ok(counts.rejected > 1000, `only ${counts.rejected} rejected`);
  assert.ok(Date.now() - started < 10_000, 'fuzzing took over 10 s');
});

test('header lengths that would need huge allocations are refused without allocating', () => {
  const file = new Uint8Array(64);
  const view = new DataView(file.buffer);
  for (const n of [2n ** 63n, 2n ** 64n - 1n, 2n ** 53n, 2n ** 32n, 57n]) {
    view.setBigUint64(0, n, true);
    assert.throws(() => parseSafetensors(file, LABEL), (e: unknown) => e instanceof InputError && e.message.includes(`says ${n} bytes`));
  }
});
