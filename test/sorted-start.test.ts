/**
 * The sorted start and checked weight matching (match/sorted-start.ts). Oracles: planted permutations
 * (B = P(A) exactly, so the right answer is known), exact equality with plain weight matching on real
 * trained pairs (where the check must change nothing), and brute force over tiny MLPs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { permSizes } from '../src/permutation-spec/spec.js';
import { randomSpecPerms } from '../src/permutation-spec/heads.js';
import { applyPermutation, inversePermutation, randomPerms } from '../src/permute.js';
import { weightMatching } from '../src/match/weight-matching.js';
import { sortedStart, weightMatchingCheckedInMemory } from '../src/match/sorted-start.js';
import { parseSafetensors, toParams } from '../src/io/safetensors.js';
import { autoSpec } from '../src/permutation-spec/auto.js';
import { mlpSpec } from '../src/permutation-spec/mlp.js';
import { createRng } from '../src/random.js';
import type { Params, Tensor } from '../src/tensor.js';
import { syntheticTransformer } from './helpers/synthetic-transformer.js';

const fixture = (name: string) => new URL(`../../test/fixtures/models/${name}`, import.meta.url);

function exactlyA(a: Params, back: Params): boolean {
  return Object.keys(a).every((n) => back[n].data.every((v, i) => v === a[n].data[i]));
}

test('the sorted start alone finds a planted permutation of a transformer (heads kept whole)', async () => {
  const { spec, params: a } = syntheticTransformer({ layers: 3, dim: 24, heads: 4 });
  for (let seed = 0; seed < 5; seed++) {
    const planted = randomSpecPerms(spec, permSizes(spec, a), seed);
    const b = applyPermutation(spec, planted, a);
    const start = await sortedStart(spec, a, b);
    for (const p of Object.keys(planted)) assert.deepEqual(start[p], inversePermutation(planted[p]), `seed ${seed}: '${p}'`);
  }
});

test('checked weight matching recovers planted transformer permutations from every seed, where plain descent stalls on some', async () => {
  const { spec, params: a } = syntheticTransformer({ layers: 4, dim: 32, heads: 4 });
  let plainMisses = 0;
  for (let seed = 0; seed < 24; seed++) {
    const b = applyPermutation(spec, randomSpecPerms(spec, permSizes(spec, a), 1000 + seed), a);
    const plain = await weightMatching({ spec, paramsA: a, paramsB: b, seed });
    if (!exactlyA(a, applyPermutation(spec, plain.perms, b))) plainMisses++;
    const checked = await weightMatchingCheckedInMemory({ spec, paramsA: a, paramsB: b, seed });
    assert.ok(exactlyA(a, applyPermutation(spec, checked.perms, b)), `seed ${seed}: planted permutation not recovered`);
    // Reported from the identity, whichever descent was kept.
    assert.equal(checked.objectiveBefore, plain.objectiveBefore, `seed ${seed}: objective before`);
  }
  // The case the check exists for must occur here, or this test proves nothing about it.
  assert.ok(plainMisses > 0, 'plain descent recovered every planted permutation: make the model harder');
});

test('on trained pairs the check changes nothing: the same permutations as plain weight matching', async () => {
  for (const [fa, fb] of [['mlp_a.safetensors', 'mlp_b.safetensors'], ['resnet_a.safetensors', 'resnet_b.safetensors']]) {
    const load = (f: string) => toParams(parseSafetensors(readFileSync(fixture(f)), f)).params;
    const [a, b] = [load(fa), load(fb)];
    const spec = autoSpec(a).spec;
    for (const seed of [0, 1]) {
      const plain = await weightMatching({ spec, paramsA: a, paramsB: b, seed });
      const checked = await weightMatchingCheckedInMemory({ spec, paramsA: a, paramsB: b, seed });
      assert.equal(checked.start, 'identity', `${fa} seed ${seed}`);
      for (const p of Object.keys(plain.perms)) assert.deepEqual(checked.perms[p], plain.perms[p], `${fa} seed ${seed}: '${p}'`);
    }
  }
});

function allPerms(n: number): Int32Array[] {
  if (n === 0) return [new Int32Array(0)];
  return allPerms(n - 1).flatMap((p) => Array.from({ length: n }, (_, k) => Int32Array.from([...p.slice(0, k), n - 1, ...p.slice(k)])));
}

test('the sorted start of a tiny planted MLP is the one pair of permutations brute force finds', async () => {
  const rng = createRng(3);
  const spec = mlpSpec(2, { layout: 'torch' });
  const shapes: Record<string, number[]> = { 'layer0.weight': [4, 3], 'layer0.bias': [4], 'layer1.weight': [4, 4], 'layer1.bias': [4], 'layer2.weight': [2, 4], 'layer2.bias': [2] };
  const a: Record<string, Tensor> = {};
  for (const [n, s] of Object.entries(shapes)) a[n] = { shape: s, data: Float32Array.from({ length: s[0] * (s[1] ?? 1) }, () => rng.normal()) };
  const sizes = permSizes(spec, a);
  for (let seed = 0; seed < 10; seed++) {
    const b = applyPermutation(spec, randomPerms(sizes, seed), a);
    const exact: string[] = [];
    for (const p0 of allPerms(4)) for (const p1 of allPerms(4)) {
      if (exactlyA(a, applyPermutation(spec, { P_0: p0, P_1: p1 }, b))) exact.push(`${p0}|${p1}`);
    }
    assert.equal(exact.length, 1, `seed ${seed}: brute force finds ${exact.length} exact alignments`);
    const start = await sortedStart(spec, a, b);
    assert.equal(`${start.P_0}|${start.P_1}`, exact[0], `seed ${seed}`);
  }
});
