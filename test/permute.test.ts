/**
 * The permutation helpers (src/permute.ts) on hand-built cases: each expected value is written out from the
 * definition (a permutation of 0..n-1, q[p[i]] = i, take(take(x, p), q) = take(x, compose(p, q)), ...).
 * Added for the Stryker mutants of permute.js that survived core and segments (bench/mutation, TESTING.md).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  churn, composePermutations, identityPermutation, inversePermutation, isIdentity, isPermutation, permutedTensor, randomPerms,
} from '../src/permute.js';
import { specFromAxes } from '../src/permutation-spec/spec.js';
import type { Tensor } from '../src/tensor.js';

const i32 = (v: number[]): Int32Array => Int32Array.from(v);

test('isPermutation: each of 0..n-1 exactly once, nothing else', () => {
  assert.equal(isPermutation([2, 0, 1]), true);
  assert.equal(isPermutation([]), true);
  assert.equal(isPermutation([0]), true);
  assert.equal(isPermutation([1, 0, 3, 2]), true);
  assert.equal(isPermutation([0, 0]), false); // repeated
  assert.equal(isPermutation([1, 1, 0]), false); // repeated, not first
  assert.equal(isPermutation([0, 2]), false); // out of range (= length)
  assert.equal(isPermutation([0, 3, 1]), false); // out of range (> length)
  assert.equal(isPermutation([-1, 0]), false);
  assert.equal(isPermutation([0.5, 1]), false);
  assert.equal(isPermutation([1, 0.5]), false);
});

test('isIdentity, churn and identityPermutation by hand', () => {
  assert.deepEqual(identityPermutation(4), i32([0, 1, 2, 3]));
  assert.equal(isIdentity(i32([0, 1, 2])), true);
  assert.equal(isIdentity(i32([])), true);
  assert.equal(isIdentity(i32([1, 0, 2])), false);
  assert.equal(isIdentity(i32([0, 2, 1])), false);
  assert.equal(churn(i32([])), 0);
  assert.equal(churn(i32([0, 1, 2])), 0);
  assert.equal(churn(i32([0, 2, 1])), 2 / 3);
  assert.equal(churn(i32([1, 2, 3, 0])), 1);
});

test('compose and inverse follow take: take(take(x, p), q) = take(x, compose(p, q)), q[p[i]] = i', () => {
  const take = (x: readonly string[], p: Int32Array): string[] => Array.from(p, (j) => x[j]);
  const x = ['a', 'b', 'c', 'd'];
  const p = i32([2, 0, 3, 1]);
  const q = i32([1, 3, 0, 2]);
  assert.deepEqual(take(take(x, p), q), take(x, composePermutations(p, q)));
  assert.deepEqual(composePermutations(p, q), i32([0, 1, 2, 3].map((i) => p[q[i]])));
  assert.deepEqual(inversePermutation(p), i32([1, 3, 0, 2]));
  assert.deepEqual(take(take(x, p), inversePermutation(p)), x);
  assert.throws(() => composePermutations(i32([0, 1]), i32([0, 1, 2])), /compose: lengths 2 and 3 differ/);
});

test('randomPerms draws in name order: the same permutations whatever order the sizes are listed in', () => {
  const one = randomPerms({ b: 6, a: 5, c: 7 }, 3);
  const two = randomPerms({ c: 7, a: 5, b: 6 }, 3);
  assert.deepEqual(one, two);
  for (const [p, n] of [['a', 5], ['b', 6], ['c', 7]] as const) assert.ok(isPermutation(one[p]) && one[p].length === n);
});

test('permutedTensor: every permuted axis but exceptAxis; a missing permutation is an error', () => {
  // w is 2 × 3: rows by 'r', columns by 'c'.
  const spec = specFromAxes({ w: ['r', 'c'] });
  const t: Tensor = { shape: [2, 3], data: Float32Array.from([0, 1, 2, 10, 11, 12]) };
  const perms = { r: i32([1, 0]), c: i32([2, 0, 1]) };
  assert.deepEqual(Array.from(permutedTensor(spec, perms, 'w', t).data), [12, 10, 11, 2, 0, 1]);
  assert.deepEqual(Array.from(permutedTensor(spec, perms, 'w', t, 1).data), [10, 11, 12, 0, 1, 2]);
  assert.deepEqual(Array.from(permutedTensor(spec, perms, 'w', t, 0).data), [2, 0, 1, 12, 10, 11]);
  assert.equal(permutedTensor(spec, perms, 'other', t), t);
  assert.throws(() => permutedTensor(spec, { r: perms.r }, 'w', t), /applyPermutation: no permutation named 'c'/);
});

test('permutedTensor on a fused tensor moves each part by its own permutation, a part without one staying put', () => {
  // Rows 0-1 are part q (permuted by 'p'), rows 2-3 part k (no permutation): the whole is not left as it was.
  const spec = specFromAxes({ 'w#q': ['p', null], 'w#k': [null, null] }, undefined, { w: { axis: 0, parts: ['w#q', 'w#k'] } });
  const t: Tensor = { shape: [4, 1], data: Float32Array.from([0, 1, 2, 3]) };
  assert.deepEqual(Array.from(permutedTensor(spec, { p: i32([1, 0]) }, 'w', t).data), [1, 0, 2, 3]);
  assert.equal(permutedTensor(spec, { p: i32([0, 1]) }, 'w', t).data.length, 4);
});
