import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mlpSpec } from '../src/permutation-spec/mlp.js';
import { permSizes } from '../src/permutation-spec/spec.js';
import { applyPermutation, randomPerms, isIdentity, inversePermutation } from '../src/permute.js';
import { weightMatching, matchingObjective, type WeightMatchingResult } from '../src/match/weight-matching.js';
import { jsMatmul, abtSync } from '../src/engine/matmul.js';
import { createOrtMatmul } from '../src/engine/ort-matmul.js';
import { dot, type Params, type Tensor } from '../src/tensor.js';
import { createRng } from '../src/random.js';
import { InputError } from '../src/errors.js';
import { randomMlp } from './helpers/mlp.js';

function sumSquares(params: Params): number {
  let s = 0;
  for (const t of Object.values(params)) s += dot(t.data, t.data);
  return s;
}

function addNoise(params: Params, scale: number, seed: number): Record<string, Tensor> {
  const rng = createRng(seed);
  const out: Record<string, Tensor> = {};
  for (const [k, t] of Object.entries(params)) {
    out[k] = { shape: t.shape, data: t.data.map((v) => v + scale * rng.normal()) };
  }
  return out;
}

function permutationsOf(n: number): number[][] {
  if (n === 0) return [[]];
  const out: number[][] = [];
  for (const rest of permutationsOf(n - 1)) {
    for (let i = 0; i <= rest.length; i++) out.push([...rest.slice(0, i), n - 1, ...rest.slice(i)]);
  }
  return out;
}

const engines = [
  { name: 'js', make: async () => jsMatmul },
  { name: 'onnxruntime', make: () => createOrtMatmul() },
];

test('the ONNX Runtime engine computes A·Bᵀ like the plain loop', async () => {
  const ort = await createOrtMatmul();
  const rng = createRng(4);
  for (const [m, n, k] of [[1, 1, 1], [3, 5, 7], [64, 33, 129]]) {
    const a = Float32Array.from({ length: m * k }, () => rng.normal());
    const b = Float32Array.from({ length: n * k }, () => rng.normal());
    const got = await ort.abt(a, m, b, n, k);
    const want = abtSync(a, m, b, n, k);
    for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i] - want[i]) <= 1e-4 * (1 + Math.abs(want[i])));
    // With a row added to every output row (a dense layer's bias), as the MLP forward pass uses it.
    const row = Float32Array.from({ length: n }, () => 10 * rng.normal());
    const withRow = await ort.abtAddRow!(a, m, b, n, k, row);
    for (let i = 0; i < want.length; i++) {
      const expected = want[i] + row[i % n];
      assert.ok(Math.abs(withRow[i] - expected) <= 1e-4 * (1 + Math.abs(expected)), `${m}x${n}x${k} [${i}]`);
    }
    await assert.rejects(ort.abtAddRow!(a, m, b, n, k, new Float32Array(n + 1)), /row of length/);
  }
  await ort.dispose?.();
});

for (const { name, make } of engines) {
  test(`[${name}] align-to-self: identity permutations and objective = ‖A‖²`, async () => {
    const engine = await make();
    for (const layout of ['torch', 'flax'] as const) {
      const a = randomMlp([10, 24, 24, 24, 5], layout, 11);
      const spec = mlpSpec(3, { layout });
      const r = await weightMatching({ spec, paramsA: a, paramsB: a, seed: 3, engine });
      for (const p of Object.values(r.perms)) assert.ok(isIdentity(p));
      const norm = sumSquares(a);
      assert.ok(Math.abs(r.objectiveAfter - norm) <= 1e-9 * norm, `${r.objectiveAfter} vs ${norm}`);
      assert.equal(r.converged, true);
      assert.equal(r.iterations, 1);
    }
  });

  test(`[${name}] recovery: a randomly permuted (and slightly noisy) copy of A is matched back exactly`, async () => {
    const engine = await make();
    const a = randomMlp([12, 40, 32, 40, 6], 'torch', 21);
    const spec = mlpSpec(3);
    const hidden = randomPerms(permSizes(spec, a), 99);
    const b = addNoise(applyPermutation(spec, hidden, a), 0.01, 5);
    const r = await weightMatching({ spec, paramsA: a, paramsB: b, seed: 1, engine });
    // B = take(A, h), so aligning B back to A needs take(B, p) = A, i.e. p = inverse(h).
    for (const [p, h] of Object.entries(hidden)) assert.deepEqual(r.perms[p], inversePermutation(h), `permutation ${p}`);
    assert.ok(r.objectiveAfter > r.objectiveBefore);
    // The recorded objective is the objective of the returned permutations.
    assert.ok(Math.abs(matchingObjective(spec, r.perms, a, b) - r.objectiveAfter) < 1e-9 * Math.abs(r.objectiveAfter));
  });
}

test('one hidden layer: one pass reaches the brute-force optimum over all permutations', async () => {
  for (let seed = 0; seed < 4; seed++) {
    const a = randomMlp([3, 6, 2], 'torch', 40 + seed);
    const b = randomMlp([3, 6, 2], 'torch', 80 + seed);
    const spec = mlpSpec(1);
    const r = await weightMatching({ spec, paramsA: a, paramsB: b, seed });
    let best = -Infinity;
    for (const p of permutationsOf(6)) {
      best = Math.max(best, matchingObjective(spec, { P_0: Int32Array.from(p) }, a, b));
    }
    assert.ok(Math.abs(r.objectiveAfter - best) <= 1e-9 * Math.abs(best), `${r.objectiveAfter} vs brute force ${best}`);
    // One improving pass, then one pass that confirms nothing changes.
    assert.ok(r.iterations <= 2);
    assert.equal(r.converged, true);
  }
});

test('the seed notebook test: flax shapes with a torch spec fail clearly; the flax spec converges', async () => {
  const a = randomMlp([20, 32, 32, 32, 10], 'flax', 13);
  const b = randomMlp([20, 32, 32, 32, 10], 'flax', 14);
  await assert.rejects(
    weightMatching({ spec: mlpSpec(3, { layout: 'torch' }), paramsA: a, paramsB: b }),
    (e: unknown) => e instanceof InputError && /'layer0\.weight' axis 0 = 20/.test(e.message),
  );
  const r = await weightMatching({ spec: mlpSpec(3, { layout: 'flax' }), paramsA: a, paramsB: b, seed: 13 });
  assert.equal(r.converged, true);
  assert.ok(r.objectiveAfter > r.objectiveBefore);
  // Every permutation was updated, not only the last one (the notebook's second defect).
  const moved = Object.values(r.perms).filter((p) => !isIdentity(p)).length;
  assert.equal(moved, 3);
  // Each recorded pass never lowers the objective (coordinate ascent).
  for (let i = 1; i < r.history.length; i++) assert.ok(r.history[i].objective >= r.history[i - 1].objective - 1e-6);
});

test('weight matching is deterministic for a seed and reports progress', async () => {
  const a = randomMlp([8, 20, 20, 20, 3], 'torch', 1);
  const b = randomMlp([8, 20, 20, 20, 3], 'torch', 2);
  const spec = mlpSpec(3);
  const events: string[] = [];
  const r1 = await weightMatching({ spec, paramsA: a, paramsB: b, seed: 5, onProgress: (e) => events.push(`${e.pass}:${e.perm}`) });
  const r2 = await weightMatching({ spec, paramsA: a, paramsB: b, seed: 5 });
  assert.deepEqual(r1.perms, r2.perms);
  assert.equal(events.length, r1.iterations * 3);
  const limited = await weightMatching({ spec, paramsA: a, paramsB: b, seed: 5, maxIter: 1 });
  assert.equal(limited.iterations, 1);
});

/**
 * Every hidden unit of a one-hidden-layer torch MLP rescaled by its own factor: its row of layer0.weight,
 * its bias and its column of layer1.weight (the whole vector the cosine score normalises).
 */
function rescaleHiddenUnits(params: Params, factors: readonly number[]): Record<string, Tensor> {
  const [w0, b0, w1] = [params['layer0.weight'], params['layer0.bias'], params['layer1.weight']];
  const [hidden, fanIn] = w0.shape;
  const scaled = (t: Tensor, unitOf: (k: number) => number): Tensor => ({ shape: t.shape, data: t.data.map((v, k) => v * factors[unitOf(k)]) });
  return {
    ...params,
    'layer0.weight': scaled(w0, (k) => Math.floor(k / fanIn)),
    'layer0.bias': scaled(b0, (k) => k),
    'layer1.weight': scaled(w1, (k) => k % hidden),
  };
}

/** Hidden unit j's concatenated weights (row of layer0.weight, bias, column of layer1.weight), by hand. */
function unitVector(params: Params, j: number): number[] {
  const [w0, b0, w1] = [params['layer0.weight'], params['layer0.bias'], params['layer1.weight']];
  const [hidden, fanIn] = w0.shape;
  const row = Array.from(w0.data.subarray(j * fanIn, (j + 1) * fanIn));
  const column = Array.from({ length: w1.shape[0] }, (_, o) => w1.data[o * hidden + j]);
  return [...row, b0.data[j], ...column];
}

test('cosine weight matching: recovers a permuted copy even when B is rescaled', async () => {
  const a = randomMlp([6, 16, 4], 'torch', 8);
  const spec = mlpSpec(1);
  const hidden = randomPerms(permSizes(spec, a), 3);
  // Factors from 1/30 to 30: B's units differ from A's by their lengths alone, which cosine ignores. (Each
  // true pair scores the largest cosine, 1, so a score that divides by only one side's norms recovers the copy
  // too: the brute-force test below, on unrelated nets, is the one that tells them apart.)
  const rng = createRng(11);
  const factors = Array.from({ length: 16 }, () => Math.exp((rng.next() * 2 - 1) * Math.log(30)));
  const b = rescaleHiddenUnits(applyPermutation(spec, hidden, a), factors);
  const r = await weightMatching({ spec, paramsA: a, paramsB: b, score: 'cosine', seed: 2 });
  assert.deepEqual(r.perms.P_0, inversePermutation(hidden.P_0));
});

/** The permutation (A unit i -> B unit perm[i]) with the largest Σ scores[i][perm[i]], over all of them. */
function bestAssignment(scores: number[][]): number[] {
  let best = -Infinity;
  let bestPerm: number[] = [];
  for (const perm of permutationsOf(scores.length)) {
    const total = perm.reduce((s, j, i) => s + scores[i][j], 0);
    if (total > best) [best, bestPerm] = [total, perm];
  }
  return bestPerm;
}

test('cosine weight matching picks the assignment with the largest sum of hand-computed cosines (brute force)', async () => {
  // One permutation, so weight matching is a single assignment: its result must be the brute-force optimum.
  const n = 7;
  const spec = mlpSpec(1);
  const rng = createRng(21);
  let dotDisagrees = 0;
  for (let seed = 1; seed <= 10; seed++) {
    const a = randomMlp([5, n, 3], 'torch', 100 + seed);
    const factors = Array.from({ length: n }, () => Math.exp((rng.next() * 2 - 1) * Math.log(20)));
    const b = rescaleHiddenUnits(randomMlp([5, n, 3], 'torch', 200 + seed), factors);
    const inner = (u: number[], v: number[]): number => u.reduce((s, x, k) => s + x * v[k], 0);
    const dots: number[][] = [];
    const cosines: number[][] = [];
    for (let i = 0; i < n; i++) {
      const u = unitVector(a, i);
      dots.push(Array.from({ length: n }, (_, j) => inner(u, unitVector(b, j))));
      cosines.push(Array.from({ length: n }, (_, j) => inner(u, unitVector(b, j)) / Math.sqrt(inner(u, u) * inner(unitVector(b, j), unitVector(b, j)))));
    }
    const r = await weightMatching({ spec, paramsA: a, paramsB: b, score: 'cosine', seed });
    assert.deepEqual([...r.perms.P_0], bestAssignment(cosines), `seed ${seed}`);
    if (bestAssignment(dots).join() !== bestAssignment(cosines).join()) dotDisagrees++;
  }
  // The lengths matter in these cases: the dot product's optimum is another assignment in most of them.
  assert.ok(dotDisagrees >= 5, `dot and cosine optima differ in only ${dotDisagrees} of 10 cases`);
});

test('initial permutations are validated and used', async () => {
  const a = randomMlp([4, 5, 3], 'torch', 1);
  const spec = mlpSpec(1);
  await assert.rejects(
    weightMatching({ spec, paramsA: a, paramsB: a, initPerms: { P_0: Int32Array.from([0, 0, 1, 2, 3]) } }),
    /initial permutation 'P_0' is not a permutation/,
  );
  const init = { P_0: Int32Array.from([4, 3, 2, 1, 0]) };
  const r = await weightMatching({ spec, paramsA: a, paramsB: a, initPerms: init, maxIter: 1 });
  assert.ok(r.objectiveBefore < r.objectiveAfter);
  assert.deepEqual([...init.P_0], [4, 3, 2, 1, 0]);
});

test('the optimised algorithm (warm starts, skipped steps) and the plain one take the same path', async () => {
  const a = randomMlp([30, 64, 48, 64, 10], 'torch', 71);
  const b = randomMlp([30, 64, 48, 64, 10], 'torch', 72);
  const spec = mlpSpec(3);
  const warm = await weightMatching({ spec, paramsA: a, paramsB: b, seed: 4 });
  const cold = await weightMatching({ spec, paramsA: a, paramsB: b, seed: 4, plain: true });
  assert.deepEqual(warm.perms, cold.perms);
  assert.equal(warm.iterations, cold.iterations);
  assert.equal(warm.objectiveAfter, cold.objectiveAfter);
  assert.deepEqual(warm.history.map((h) => h.changed), cold.history.map((h) => h.changed));
  // The skipping really happened (the final pass reuses every step), so the comparison is not vacuous.
  const reused: boolean[] = [];
  await weightMatching({ spec, paramsA: a, paramsB: b, seed: 4, onProgress: (e) => reused.push(e.reused) });
  assert.ok(reused.filter(Boolean).length >= 3, `reused ${reused.filter(Boolean).length} steps`);
});

test('with exact ties (quantised weights), skipping steps never changes the path', async () => {
  const spec = mlpSpec(3);
  for (let trial = 0; trial < 12; trial++) {
    const rng = createRng(500 + trial);
    const quantise = (p: Params) =>
      Object.fromEntries(Object.entries(p).map(([k, t]) => [k, { shape: t.shape, data: t.data.map(() => Math.round(rng.next() * 2) - 1) }]));
    const widths = [6, 8 + (trial % 3) * 8, 20, 12, 3];
    const a = quantise(randomMlp(widths, 'torch', trial));
    const b = quantise(randomMlp(widths, 'torch', trial + 50));
    // Warm starts may pick another of several tied optima; skipping alone must not change anything.
    const fast = await weightMatching({ spec, paramsA: a, paramsB: b, seed: trial, warmStart: false });
    const plain = await weightMatching({ spec, paramsA: a, paramsB: b, seed: trial, plain: true });
    assert.deepEqual(fast.perms, plain.perms, `trial ${trial}`);
    assert.equal(fast.objectiveAfter, plain.objectiveAfter);
  }
});

test('the per-pass objective tracked from step gains agrees with the objective recomputed from scratch', async () => {
  const a = randomMlp([20, 48, 48, 48, 5], 'torch', 91);
  const b = randomMlp([20, 48, 48, 48, 5], 'torch', 92);
  const spec = mlpSpec(3);
  const r = await weightMatching({ spec, paramsA: a, paramsB: b, seed: 9 });
  const last = r.history[r.history.length - 1].objective;
  assert.ok(Math.abs(last - r.objectiveAfter) <= 1e-5 * Math.abs(r.objectiveAfter), `${last} vs ${r.objectiveAfter}`);
  // Replaying the first pass alone gives the first recorded objective.
  const one = await weightMatching({ spec, paramsA: a, paramsB: b, seed: 9, maxIter: 1 });
  assert.ok(Math.abs(r.history[0].objective - one.objectiveAfter) <= 1e-5 * Math.abs(one.objectiveAfter));
});

test('matchings run concurrently in one thread give the results they give one at a time', async () => {
  // Each matching builds its cost matrices where the WebAssembly solver reads them; two of them awaiting
  // their products in turn must not see each other's matrices (same sizes, so nothing is reallocated and a
  // shared buffer would be overwritten silently). Every route: kept matrices, low memory, plain, cosine.
  const spec = mlpSpec(3);
  const widths = [24, 64, 64, 64, 6];
  const pairs = [0, 1, 2].map((k) => ({ a: randomMlp(widths, 'torch', 300 + k), b: randomMlp(widths, 'torch', 400 + k) }));
  const routes = [{}, { lowMemory: true }, { plain: true }, { score: 'cosine' as const }, { incremental: false }];
  for (const route of routes) {
    const one = async (k: number) => weightMatching({ spec, paramsA: pairs[k].a, paramsB: pairs[k].b, seed: k, ...route });
    const alone: WeightMatchingResult[] = [];
    for (const k of [0, 1, 2]) alone.push(await one(k));
    const together = await Promise.all([0, 1, 2].map(one));
    together.forEach((r, k) => {
      const label = `${JSON.stringify(route)} pair ${k}`;
      assert.deepEqual(r.perms, alone[k].perms, label);
      assert.equal(r.objectiveAfter, alone[k].objectiveAfter, label);
      assert.deepEqual(r.history.map((h) => h.objective), alone[k].history.map((h) => h.objective), label);
    });
  }
});

test('a matching whose model fails to load releases its solver; a scalar parameter counts in the objective', async () => {
  const { liveLeases } = await import('../src/match/lap-wasm.js');
  const { paramsSource } = await import('../src/match/param-source.js');
  const { weightMatchingFrom } = await import('../src/match/weight-matching.js');
  const spec = mlpSpec(3);
  const a = randomMlp([8, 16, 16, 16, 3], 'torch', 1);
  const b = randomMlp([8, 16, 16, 16, 3], 'torch', 2);
  const failing = { ...paramsSource(b, 'model B'), use: () => { throw new Error('disk gone'); } };
  const before = liveLeases();
  for (let k = 0; k < 3; k++) {
    await assert.rejects(weightMatchingFrom({ spec, sourceA: paramsSource(a, 'model A'), sourceB: failing, seed: 0 }), /disk gone/);
  }
  assert.equal(liveLeases(), before);
  // A model with a scalar parameter (a logit scale): 3 · 5 counts in the objective, whatever the perms.
  const withScale = (p: typeof a, x: number) => ({ ...p, scale: { shape: [], data: Float32Array.of(x) } });
  const r = await weightMatching({ spec, paramsA: withScale(a, 3), paramsB: withScale(b, 5), seed: 0 });
  assert.ok(Math.abs(r.objectiveAfter - matchingObjective(spec, r.perms, a, b) - 15) < 1e-9);
});
