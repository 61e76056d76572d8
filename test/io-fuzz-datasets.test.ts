/**
 * Seeded mutation fuzzing of the dataset parsers (IDX, gzip IDX, .npy, .npz stored and deflated): every
 * mutated file must either parse into an array consistent with its own header (as many values as its
 * shape says) or be refused with an InputError; never another exception, a hang, or an allocation
 * beyond the cap given. A parser of files from strangers is only as safe as its worst byte.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync, zipSync } from 'fflate';
import { isInputError } from '../src/errors.js';
import { parseIdx, writeIdx } from '../src/data/idx.js';
import { parseNpy, parseNpz, writeNpy } from '../src/data/npy.js';
import { createRng } from '../src/random.js';

const MUTATIONS = 1500;
const CAP = 1 << 20; // inflated bytes allowed per file in this test

function mutate(bytes: Uint8Array, rng: ReturnType<typeof createRng>): Uint8Array {
  const out = Uint8Array.from(bytes);
  const kind = rng.int(4);
  if (kind === 0) for (let k = 1 + rng.int(4); k > 0; k--) out[rng.int(out.length)] = rng.int(256);
  else if (kind === 1) for (let k = 1 + rng.int(3); k > 0; k--) out[rng.int(out.length)] ^= 1 << rng.int(8);
  else if (kind === 2) return out.subarray(0, rng.int(out.length));
  else {
    // A 32-bit field set to an extreme value: sizes, counts, offsets.
    const at = rng.int(Math.max(1, out.length - 4));
    const v = [0xffffffff, 0x7fffffff, 0x80000000, 0][rng.int(4)];
    new DataView(out.buffer).setUint32(at, v, rng.int(2) === 0);
  }
  return out;
}

function fuzz(name: string, good: Uint8Array, parse: (b: Uint8Array) => number[]): void {
  const rng = createRng(name.length * 7919 + good.length);
  let parsed = 0;
  let refused = 0;
  for (let i = 0; i < MUTATIONS; i++) {
    const bad = mutate(good, rng);
    try {
      for (const n of parse(bad)) assert.ok(Number.isSafeInteger(n) && n >= 0);
      parsed++;
    } catch (e) {
      if (!isInputError(e)) throw new Error(`${name}, mutation ${i}: ${(e as Error).stack ?? e}`);
      refused++;
    }
  }
  assert.ok(refused > 0 && parsed + refused === MUTATIONS, `${name}: ${parsed} parsed, ${refused} refused`);
}

const idxImages = writeIdx(Array.from({ length: 4 * 5 * 5 }, (_, i) => i % 256), [4, 5, 5], 'u8');
const npyX = writeNpy(Array.from({ length: 12 }, (_, i) => i / 7), [3, 4], '<f4');
const npyY = writeNpy([0, 1, 2], [3], '<i8');

function idxCount(b: Uint8Array): number[] {
  const a = parseIdx(b, 'fuzzed IDX', CAP);
  assert.equal(a.data.length, a.shape.reduce((x, y) => x * y, 1));
  return [a.data.length];
}

function npyCount(b: Uint8Array): number[] {
  const a = parseNpy(b, 'fuzzed .npy');
  assert.equal(a.data.length, a.shape.reduce((x, y) => x * y, 1));
  return [a.data.length];
}

function npzCount(b: Uint8Array): number[] {
  return [...parseNpz(b, 'fuzzed .npz', undefined, CAP).values()].map((a) => {
    assert.equal(a.data.length, a.shape.reduce((x, y) => x * y, 1));
    return a.data.length;
  });
}

test('mutated IDX files (raw and gzip) parse consistently or are refused with an InputError', () => {
  fuzz('idx', idxImages, idxCount);
  fuzz('idx.gz', gzipSync(idxImages), idxCount);
});

test('mutated .npy files parse consistently or are refused with an InputError', () => {
  fuzz('npy', npyX, npyCount);
});

test('mutated .npz archives (stored and deflated) parse consistently or are refused with an InputError', () => {
  fuzz('npz-stored', zipSync({ 'x.npy': npyX, 'y.npy': npyY }, { level: 0 }), npzCount);
  fuzz('npz-deflated', zipSync({ 'x.npy': npyX, 'y.npy': npyY }, { level: 6 }), npzCount);
});
