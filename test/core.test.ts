import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mlpSpec } from '../src/spec/mlp.js';
import { specFromAxes, validateSpec, permSizes } from '../src/spec/spec.js';
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
