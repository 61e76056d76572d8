/**
 * Head-structured permutations (permutation-spec/heads.ts) on hand-built cases: σ(h·d + i) = π(h)·d + τ_h(i) is
 * recognised only when every unit of a head lands in one head, a group's permutations must move the heads
 * alike, and random draws keep that structure. The oracle is the definition, written out by hand per case.
 * (Surviving Stryker mutants of permutation-spec/heads.js under heads.test: bench/mutation, TESTING.md.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkHeadPerms, headGroupOf, headPermutation, headStructured, randomSpecPerms } from '../src/permutation-spec/heads.js';
import { specFromAxes } from '../src/permutation-spec/spec.js';
import { solveHeadGroup } from '../src/match/head-assignment.js';
import { isPermutation } from '../src/permute.js';
import { InputError } from '../src/errors.js';

const i32 = (v: number[]): Int32Array => Int32Array.from(v);

test('headPermutation: the heads π a σ makes, or the first head whose units land in more than one head', () => {
  // 3 heads of 2: head 0 -> head 2, head 1 -> head 0 (its units swapped), head 2 -> head 1.
  assert.deepEqual(headPermutation(i32([4, 5, 1, 0, 2, 3]), 3), { pi: i32([2, 0, 1]) });
  // Only the last unit of head 1 strays (unit 3 goes to head 2): head 1 is broken, head 0 is whole.
  assert.deepEqual(headPermutation(i32([0, 1, 2, 5, 4, 3]), 3), { brokenHead: 1 });
  // 2 heads of 3, the middle unit of head 0 strays.
  assert.deepEqual(headPermutation(i32([0, 3, 2, 1, 4, 5]), 2), { brokenHead: 0 });
  assert.deepEqual(headStructured(i32([1, 0]), [i32([1, 0]), i32([0, 1])]), i32([3, 2, 0, 1]));
});

test('checkHeadPerms accepts whole heads moved alike, names a broken head or a group that disagrees, skips absent members', () => {
  const spec = specFromAxes({ wq: ['qk', null], wv: ['v', null], wo: [null, 'v'], w2: ['free', null] }, { attn: { count: 2, perms: ['qk', 'v'] } });
  // π = [1, 0] for both, each with its own order inside the heads.
  checkHeadPerms(spec, { qk: i32([2, 3, 0, 1]), v: i32([3, 2, 1, 0]), free: i32([1, 0]) });
  checkHeadPerms(spec, { qk: i32([2, 3, 0, 1]) }); // v not given: nothing to compare with
  assert.throws(
    () => checkHeadPerms(spec, { qk: i32([2, 3, 0, 1]), v: i32([0, 1, 2, 3]) }),
    (e: unknown) => e instanceof InputError && e.message === "permutations: head group 'attn': 'qk' moves head 0 to head 1 but 'v' to head 0",
  );
  // The message names the first head moved differently: here head 1 (head 0 stays put in both).
  const three = specFromAxes({ a: ['x', null], b: ['y', null] }, { g: { count: 3, perms: ['x', 'y'] } });
  assert.throws(
    () => checkHeadPerms(three, { x: i32([0, 1, 4, 5, 2, 3]), y: i32([0, 1, 2, 3, 4, 5]) }, 'init.json'),
    (e: unknown) => e instanceof InputError && e.message === "init.json: head group 'g': 'x' moves head 1 to head 2 but 'y' to head 1",
  );
  assert.throws(
    () => checkHeadPerms(spec, { qk: i32([0, 2, 1, 3]), v: i32([0, 1, 2, 3]) }, 'perms.json'),
    (e: unknown) => e instanceof InputError && e.message === "perms.json: 'qk' (head group 'attn', 2 heads of 2) sends the units of head 0 to more than one head",
  );
  // A free permutation is not checked for heads.
  checkHeadPerms(spec, { qk: i32([0, 1, 2, 3]), v: i32([0, 1, 2, 3]), free: i32([1, 0]) });
});

test('headGroupOf names the group of a member and null for a free permutation', () => {
  const spec = specFromAxes({ wq: ['qk', null], wv: ['v', null], w2: ['free', null] }, { attn: { count: 2, perms: ['qk', 'v'] } });
  assert.deepEqual(headGroupOf(spec, 'v'), { name: 'attn', count: 2, perms: ['qk', 'v'] });
  assert.equal(headGroupOf(spec, 'free'), null);
  assert.equal(headGroupOf(specFromAxes({ w: ['p', null] }), 'p'), null);
});

test('randomSpecPerms: every permutation drawn, head groups whole and moved alike, free ones of their own size', () => {
  const spec = specFromAxes(
    { wq: ['qk', null], wv: ['v', null], w1: ['free', null], w0: ['a0', null] },
    { attn: { count: 3, perms: ['qk', 'v'] } },
  );
  const sizes = { qk: 12, v: 6, free: 5, a0: 7 };
  let moved = 0;
  for (const seed of [1, 2, 3, 4]) {
    const perms = randomSpecPerms(spec, sizes, seed);
    assert.deepEqual(Object.keys(perms).sort(), ['a0', 'free', 'qk', 'v']);
    for (const [p, n] of Object.entries(sizes)) {
      assert.equal(perms[p].length, n, p);
      assert.ok(isPermutation(perms[p]), p);
    }
    const qk = headPermutation(perms.qk, 3);
    const v = headPermutation(perms.v, 3);
    assert.ok('pi' in qk && 'pi' in v);
    assert.deepEqual(qk.pi, v.pi);
    checkHeadPerms(spec, perms);
    if (perms.free.some((x, i) => x !== i)) moved++;
  }
  assert.ok(moved >= 3, 'free permutations are drawn, not left as the identity');
  // Free permutations are drawn in name order: the listing order of the sizes does not matter.
  assert.deepEqual(randomSpecPerms(spec, sizes, 9), randomSpecPerms(spec, { a0: 7, v: 6, free: 5, qk: 12 }, 9));
});

test('solveHeadGroup refuses a member whose units do not split into the heads', () => {
  assert.throws(() => solveHeadGroup([{ cost: new Float64Array(25), n: 5 }], 2), /solveHeadGroup: 5 units are not 2 heads/);
});
