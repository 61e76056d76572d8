import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mlpSpec } from '../src/permutation-spec/mlp.js';
import { specFromAxes, validateSpec, permSizes } from '../src/permutation-spec/spec.js';
import {
  applyPermutation,
  composePermutations,
  inversePermutation,
  randomPerms,
  randomPermutation,
  churn,
  identityPermutation,
  isIdentity,
} from '../src/permute.js';
import { take, axisFirstMatrix, writeGatheredAxisFirst, gatheredDot, type Params, type Tensor } from '../src/tensor.js';
import { randomMlp, mlpForward, randomInputs } from './helpers/mlp.js';
import { InputError } from '../src/errors.js';


function snapshot(params: Params): Record<string, Float32Array> {
  return Object.fromEntries(Object.entries(params).map(([k, t]) => [k, Float32Array.from(t.data)]));
}

for (const layout of ['torch', 'flax'] as const) {
  test(`permutation invariance: random ${layout}-layout MLPs compute the same function after permuting`, () => {
    for (let trial = 0; trial < 5; trial++) {
      const widths = [7, 16, 9 + trial, 12, 4];
      const params = randomMlp(widths, layout, 100 + trial);
      const spec = mlpSpec(widths.length - 2, { layout });
      validateSpec(spec, { label: 'A', params });
      const perms = randomPerms(permSizes(spec, params), 7 + trial);
      const before = snapshot(params);
      const permuted = applyPermutation(spec, perms, params);
      const x = randomInputs(8 * widths[0], trial);
      const y0 = mlpForward(params, widths.length - 1, layout, x, 8);
      const y1 = mlpForward(permuted, widths.length - 1, layout, x, 8);
      let maxDiff = 0;
      for (let i = 0; i < y0.length; i++) maxDiff = Math.max(maxDiff, Math.abs(y0[i] - y1[i]));
      assert.ok(maxDiff <= 1e-5, `max abs diff ${maxDiff}`);
      // The permutation really moved weights (so the check above is not vacuous) ...
      assert.notDeepEqual(permuted['layer1.weight'].data, params['layer1.weight'].data);
      // ... and the input params were not touched.
      for (const [k, v] of Object.entries(before)) assert.deepEqual(params[k].data, v);
    }
  });
}

test('permuting only one side of a tied pair changes the function (the identity test can fail)', () => {
  const widths = [5, 8, 3];
  const params = randomMlp(widths, 'torch', 3);
  const broken = specFromAxes({ 'layer0.weight': ['P_0', null], 'layer0.bias': ['P_0'] });
  const perms = { P_0: randomPermutation(8, 1) };
  const x = randomInputs(4 * 5, 2);
  const y0 = mlpForward(params, 2, 'torch', x, 4);
  const y1 = mlpForward(applyPermutation(broken, perms, params), 2, 'torch', x, 4);
  assert.ok(y0.some((v, i) => Math.abs(v - y1[i]) > 1e-3));
});

test('take gathers along an axis like numpy.take', () => {
  const t = { shape: [2, 3, 2], data: Float32Array.from({ length: 12 }, (_, i) => i) };
  const r = take(t, Int32Array.from([2, 0, 1]), 1);
  assert.deepEqual([...r.data], [4, 5, 0, 1, 2, 3, 10, 11, 6, 7, 8, 9]);
  // A shorter (or repeating) index selects, as numpy.take does: the axis becomes the index's length.
  const s = take(t, Int32Array.from([2, 2]), 1);
  assert.deepEqual(s.shape, [2, 2, 2]);
  assert.deepEqual([...s.data], [4, 5, 4, 5, 10, 11, 10, 11]);
  assert.deepEqual(t.shape, [2, 3, 2], 'the input keeps its shape');
});

test('inverse and compose obey the group laws', () => {
  for (let seed = 0; seed < 20; seed++) {
    const n = 1 + (seed % 9);
    const p = randomPermutation(n, seed);
    const q = randomPermutation(n, seed + 100);
    assert.ok(isIdentity(composePermutations(p, inversePermutation(p))));
    assert.ok(isIdentity(composePermutations(inversePermutation(p), p)));
    // take(take(x, p), q) == take(x, compose(p, q))
    const x = { shape: [n], data: Float32Array.from({ length: n }, (_, i) => 10 * i + 1) };
    const twice = take(take(x, p, 0), q, 0);
    assert.deepEqual(twice.data, take(x, composePermutations(p, q), 0).data);
  }
});

test('churn is the fraction of moved units', () => {
  assert.equal(churn(identityPermutation(5)), 0);
  assert.equal(churn(Int32Array.from([1, 0, 2, 3])), 0.5);
  assert.equal(churn(Int32Array.from([1, 2, 0])), 1);
});

test('validateSpec: the seed notebook crash becomes a clear error naming tensor, axis and sizes', () => {
  // 3 hidden layers of width 32, 20 inputs, 10 outputs, flax (in, out) shapes with a torch spec.
  const params = randomMlp([20, 32, 32, 32, 10], 'flax', 13);
  const spec = mlpSpec(3, { layout: 'torch' });
  assert.throws(
    () => validateSpec(spec, { label: 'model A', params }),
    (e: unknown) =>
      e instanceof InputError &&
      /'layer0\.weight' axis 0 = 20/.test(e.message) &&
      /'layer1\.weight' axis 1 = 32/.test(e.message),
  );
});

test('validateSpec: missing tensor, rank mismatch and A/B shape mismatch are named', () => {
  const params = randomMlp([4, 6, 3], 'torch', 1);
  const spec = mlpSpec(1);
  const { ['layer1.bias']: _dropped, ...missing } = params;
  assert.throws(() => validateSpec(spec, { label: 'model B', params: missing }), /tensor 'layer1\.bias', which model B does not have/);
  const rank = { ...params, 'layer0.bias': { shape: [6, 1], data: new Float32Array(6) } };
  assert.throws(() => validateSpec(spec, { label: 'A', params: rank }), /'layer0\.bias' 1 axes but in A it has rank 2/);
  const other = randomMlp([4, 7, 3], 'torch', 2);
  assert.throws(
    () => validateSpec(specFromAxes({ 'layer1.bias': [null] }), { label: 'A', params }, { label: 'B', params: other }),
    /tensor 'layer0\.weight' has shape \[6, 4\] in A but \[7, 4\] in B/,
  );
});

test('writeGatheredAxisFirst equals take on the other axes, then the axis-first view, for ranks 1 to 4', () => {
  // Each shape with its permuted axes: the conv-shaped cases (only axes 0 and 1 permuted) take the fast
  // block path, the others the general one.
  const cases: [number[], number[]][] = [
    [[5], [0]],
    [[4, 6], [0, 1]],
    [[4, 6], [1]],
    [[3, 4, 5], [0, 2]],
    [[4, 3, 2, 3], [0, 1]],
    [[4, 3, 2, 3], [1]],
    [[4, 3, 2, 3], [0, 1, 3]],
    [[4, 3, 1, 1], [0, 1]],
  ];
  cases.forEach(([shape, permuted], s) => {
    const n = shape.reduce((x, y) => x * y, 1);
    const t: Tensor = { shape, data: Float32Array.from({ length: n }, (_, i) => i + 0.5) };
    for (let axis = 0; axis < shape.length; axis++) {
      const index = shape.map((d, k) => (k === axis || !permuted.includes(k) ? null : randomPermutation(d, 10 * s + k)));
      let expected: Tensor = t;
      index.forEach((q, k) => {
        if (q) expected = take(expected, q, k);
      });
      const view = axisFirstMatrix(expected, axis);
      // Lay it at column 2 of a wider matrix, to check the stride and offset too.
      const ld = view.cols + 3;
      const dst = new Float32Array(view.rows * ld).fill(-1);
      writeGatheredAxisFirst(t, axis, index, dst, ld, 2);
      for (let i = 0; i < view.rows; i++) {
        assert.deepEqual(dst.subarray(i * ld + 2, i * ld + 2 + view.cols), view.data.subarray(i * view.cols, (i + 1) * view.cols));
        assert.deepEqual([...dst.subarray(i * ld, i * ld + 2)], [-1, -1]);
      }
    }
  });
});

test('gatheredDot equals the dot product with the gathered tensor, for ranks 1 to 4', () => {
  for (const shape of [[7], [5, 6], [3, 4, 2], [4, 3, 2, 2]]) {
    const n = shape.reduce((x, y) => x * y, 1);
    const a: Tensor = { shape, data: Float32Array.from({ length: n }, (_, i) => Math.sin(i)) };
    const b: Tensor = { shape, data: Float32Array.from({ length: n }, (_, i) => Math.cos(3 * i)) };
    const index = shape.map((d, k) => (k === 1 ? null : randomPermutation(d, k + n)));
    let g: Tensor = b;
    index.forEach((q, k) => {
      if (q) g = take(g, q, k);
    });
    let want = 0;
    for (let i = 0; i < n; i++) want += a.data[i] * g.data[i];
    assert.ok(Math.abs(gatheredDot(a, b, index) - want) < 1e-9);
  }
});

// ===================================================================================================
// Layout kernels: writeAxisFirst / writeGatheredAxisFirst against a naive reference written here.
// (Property checks over random shapes of rank 1–4, axes, gather indices, ld and col offsets, with sizes
// that the kernels' 8-row bands and 8-wide unrolling do not divide; every bit must match, and nothing
// outside the view may be written.)
// ===================================================================================================

// Import declarations are hoisted, so this block can name what it needs beside the file's own imports.
import { writeAxisFirst, writeTakenAxisFirst, tensor } from '../src/tensor.js';
import { createRng, shuffledRange, type Rng } from '../src/random.js';

/** A tensor whose values are arbitrary float32 bit patterns: NaNs with payloads, -0, subnormals and all. */
function randomBitsTensor(shape: number[], rng: Rng): Tensor {
  const n = shape.reduce((x, y) => x * y, 1);
  const bits = new Int32Array(n);
  for (let i = 0; i < n; i++) bits[i] = (rng.next() * 4294967296) | 0;
  return { shape, data: new Float32Array(bits.buffer) };
}

/**
 * The definition, element by element: entry m (a multi-index of the gathered tensor) comes from t at
 * m with m[d] replaced by index[d][m[d]] for d ≠ axis; it goes to row m[axis], column = the row-major
 * position of m without its axis-th entry, of the ld-wide dst, shifted by col. Copies bit patterns.
 */
function referenceLayout(t: Tensor, axis: number, index: readonly (Int32Array | null)[], dst: Float32Array, ld: number, col: number): void {
  const shape = t.shape;
  const rank = shape.length;
  const src = new Int32Array(t.data.buffer, t.data.byteOffset, t.data.length);
  const out = new Int32Array(dst.buffer, dst.byteOffset, dst.length);
  const m = new Array<number>(rank).fill(0);
  for (let flat = 0; flat < src.length; flat++) {
    let rest = flat;
    for (let d = rank - 1; d >= 0; d--) {
      m[d] = rest % shape[d];
      rest = Math.floor(rest / shape[d]);
    }
    let from = 0;
    let column = 0;
    for (let d = 0; d < rank; d++) {
      const q = index[d];
      from = from * shape[d] + (d !== axis && q ? q[m[d]] : m[d]);
      if (d !== axis) column = column * shape[d] + m[d];
    }
    out[m[axis] * ld + col + column] = src[from];
  }
}

function sameBits(a: Float32Array, b: Float32Array): boolean {
  const x = new Int32Array(a.buffer, a.byteOffset, a.length);
  const y = new Int32Array(b.buffer, b.byteOffset, b.length);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

/** One dimension: mostly small, sometimes past an 8-row band or a 48-long block, rarely 1. */
function randomDim(rng: Rng): number {
  const u = rng.next();
  if (u < 0.2) return 1 + rng.int(3);
  if (u < 0.75) return 4 + rng.int(17);
  return 21 + rng.int(40);
}

/** Lays t out with `write` and with the reference into identical random-filled destinations; compares all bits. */
function checkLayout(
  what: string,
  t: Tensor,
  axis: number,
  index: readonly (Int32Array | null)[],
  write: (dst: Float32Array, ld: number, col: number) => void,
  rng: Rng,
): void {
  const n = t.shape[axis];
  const width = t.data.length / n;
  const extra = rng.int(3) === 0 ? 0 : rng.int(40);
  const ld = width + extra;
  const col = rng.int(extra + 1);
  // The whole destination starts as random bits, a tail past the last row included: any stray write shows.
  const size = n * ld + rng.int(5);
  const before = randomBitsTensor([size], rng).data;
  const want = Float32Array.from(before);
  const got = Float32Array.from(before);
  const input = Float32Array.from(t.data);
  referenceLayout(t, axis, index, want, ld, col);
  write(got, ld, col);
  const label = `${what} shape [${t.shape.join(', ')}] axis ${axis} gathered [${index.map((q) => (q ? 'perm' : '-')).join(', ')}] ld ${ld} col ${col}`;
  assert.ok(sameBits(got, want), label);
  assert.ok(sameBits(t.data, input), `${label}: input changed`);
}

/** Rank 1–4, dimensions from randomDim, at most 30 000 elements. */
function randomShape(rng: Rng): number[] {
  const rank = 1 + rng.int(4);
  let shape: number[];
  do shape = Array.from({ length: rank }, () => randomDim(rng));
  while (shape.reduce((x, y) => x * y, 1) > 30000);
  return shape;
}

test('layout kernels: writeAxisFirst equals the naive definition bit for bit on random shapes, axes, ld and col', () => {
  const rng = createRng(20240611);
  for (let trial = 0; trial < 300; trial++) {
    const shape = randomShape(rng);
    const rank = shape.length;
    const t = randomBitsTensor(shape, rng);
    const axis = rng.int(rank);
    checkLayout('writeAxisFirst', t, axis, shape.map(() => null), (dst, ld, col) => writeAxisFirst(t, axis, dst, ld, col), rng);
  }
});

test('layout kernels: writeGatheredAxisFirst equals the naive definition bit for bit on random shapes, gathers, ld and col', () => {
  const rng = createRng(777);
  for (let trial = 0; trial < 400; trial++) {
    const shape = randomShape(rng);
    const rank = shape.length;
    const t = randomBitsTensor(shape, rng);
    const axis = rng.int(rank);
    // Mostly the conv/matrix case (only the two leading axes gathered), sometimes any axis; index[axis]
    // is sometimes given too, and must be ignored.
    const leadingOnly = rng.next() < 0.7;
    const index = shape.map((d, k) =>
      (k === axis ? rng.next() < 0.3 : (!leadingOnly || k < 2) && rng.next() < 0.6) ? shuffledRange(d, rng) : null,
    );
    checkLayout('writeGatheredAxisFirst', t, axis, index, (dst, ld, col) => writeGatheredAxisFirst(t, axis, index, dst, ld, col), rng);
  }
});

test('layout kernels: every kernel branch on chosen shapes (bands with tails, short and long blocks, unit dims)', () => {
  const rng = createRng(5);
  const shapes = [
    [1], [7], [1, 1], [1, 9], [9, 1], [8, 8], [16, 24], [17, 9], [7, 13], [10, 51], [33, 8],
    [9, 5, 3, 3], [8, 4, 3, 3], [12, 7, 2], [5, 3, 7, 8], [3, 17, 50], [20, 12, 1, 1], [6, 2, 5, 5],
  ];
  for (const shape of shapes) {
    const t = randomBitsTensor(shape, rng);
    for (let axis = 0; axis < shape.length; axis++) {
      checkLayout('writeAxisFirst', t, axis, shape.map(() => null), (dst, ld, col) => writeAxisFirst(t, axis, dst, ld, col), rng);
      for (const gather of [false, true]) {
        const index = shape.map((d, k) => (gather && k !== axis && k < 2 ? shuffledRange(d, rng) : null));
        checkLayout('writeGatheredAxisFirst', t, axis, index, (dst, ld, col) => writeGatheredAxisFirst(t, axis, index, dst, ld, col), rng);
      }
    }
  }
});

test('layout kernels: a gather over a source of 2^22+ values (rows staged) matches the definition', () => {
  // Above 2^22 values writeGatheredAxisFirst copies each source row aside before gathering it.
  const rows = 1024;
  const cols = 4097;
  const rng = createRng(11);
  const t = randomBitsTensor([rows, cols], rng);
  const q = shuffledRange(cols, rng);
  const ld = cols + 3;
  const col = 2;
  const dst = new Float32Array(rows * ld).fill(-1);
  writeGatheredAxisFirst(t, 0, [shuffledRange(rows, rng), q], dst, ld, col);
  const src = new Int32Array(t.data.buffer);
  const out = new Int32Array(dst.buffer);
  const minusOne = new Int32Array(Float32Array.of(-1).buffer)[0];
  let bad = 0;
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < ld; j++) {
      const want = j >= col && j < col + cols ? src[i * cols + q[j - col]] : minusOne;
      if (out[i * ld + j] !== want) bad++;
    }
  }
  assert.equal(bad, 0);
});

test('writeTakenAxisFirst equals take (minus take), then the axis-first view, bit for bit', () => {
  const rng = createRng(4242);
  for (let trial = 0; trial < 300; trial++) {
    let shape: number[];
    do shape = randomShape(rng);
    while (shape.length < 2);
    const rank = shape.length;
    // Finite values (the operands of a subtraction): normal numbers of mixed scale.
    const t: Tensor = { shape, data: Float32Array.from({ length: shape.reduce((x, y) => x * y, 1) }, () => rng.normal() * 10 ** (rng.int(7) - 3)) };
    // Mostly the two leading axes (the one-pass kernels), sometimes any two.
    const leading = rng.next() < 0.7;
    const axis = leading ? rng.int(2) : rng.int(rank);
    let other: number;
    do other = leading ? 1 - axis : rng.int(rank);
    while (other === axis);
    const k = 1 + rng.int(shape[other]);
    const index = Int32Array.from({ length: k }, () => rng.int(shape[other]));
    const minus = rng.next() < 0.6 ? Int32Array.from({ length: k }, () => rng.int(shape[other])) : null;
    const taken = take(t, index, other);
    if (minus) {
      const less = take(t, minus, other).data;
      for (let i = 0; i < taken.data.length; i++) taken.data[i] -= less[i];
    }
    const n = shape[axis];
    const width = taken.data.length / n;
    const extra = rng.int(9);
    const ld = width + extra;
    const col = rng.int(extra + 1);
    const fill = randomBitsTensor([n * ld + 3], rng).data;
    const want = Float32Array.from(fill);
    const got = Float32Array.from(fill);
    const input = Float32Array.from(t.data);
    writeAxisFirst(taken, axis, want, ld, col);
    writeTakenAxisFirst(t, axis, other, index, minus, got, ld, col);
    const label = `shape [${shape.join(', ')}] axis ${axis} other ${other} k ${k} minus ${minus !== null} ld ${ld} col ${col}`;
    assert.ok(sameBits(got, want), label);
    assert.ok(sameBits(t.data, input), `${label}: input changed`);
  }
  assert.throws(() => writeTakenAxisFirst(tensor([2, 2]), 0, 1, new Int32Array(2), new Int32Array(1), new Float32Array(4), 2, 0), /1 indices to subtract for 2/);
});
