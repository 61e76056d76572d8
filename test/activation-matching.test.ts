/**
 * Activation matching against computations that share no code with it: numpy's corrcoef (Pearson) and
 * scipy's linear_sum_assignment for the assignment, a hand-written cosine for the uncentred score. The
 * activations have per-unit offsets far from zero, so a Pearson that forgets to centre (a cosine) gives
 * other similarities and, in these cases, other permutations.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { activationMatching, indistinctUnits, similarityMatrix, type LayerActivations } from '../src/match/activation-matching.js';
import { headPermutation } from '../src/permutation-spec/heads.js';
import { InputError } from '../src/errors.js';
import { jsMatmul } from '../src/engine/matmul.js';
import { createRng } from '../src/random.js';
import { pythonSkipReason, runPython, withTempDir } from './python.js';

/**
 * count × width activations of two "models": B's units are a shuffled, noisy, rescaled copy of A's, and
 * every unit of both sits on its own large offset (as post-ReLU activations do), so centring matters.
 */
function layerPair(count: number, width: number, seed: number, noise: number): LayerActivations {
  const rng = createRng(seed);
  const shuffle = Array.from({ length: width }, (_, i) => i).sort(() => rng.next() - 0.5);
  const a = new Float32Array(count * width);
  const b = new Float32Array(count * width);
  const offsetA = Array.from({ length: width }, () => 3 * rng.next());
  const offsetB = Array.from({ length: width }, () => 3 * rng.next());
  const scaleB = Array.from({ length: width }, () => 0.5 + 2 * rng.next());
  for (let k = 0; k < count; k++) {
    for (let i = 0; i < width; i++) a[k * width + i] = offsetA[i] + rng.normal();
    for (let j = 0; j < width; j++) {
      const src = a[k * width + shuffle[j]] - offsetA[shuffle[j]];
      b[k * width + j] = offsetB[j] + scaleB[j] * (src + noise * rng.normal());
    }
  }
  return { a, b, count, width };
}

const REFERENCE = `
import sys, json
import numpy as np
from scipy.optimize import linear_sum_assignment
d = sys.argv[1]
meta = json.load(open(d + '/meta.json'))
out = []
for i, (count, width) in enumerate(meta):
    a = np.fromfile(f'{d}/a{i}.f32', dtype=np.float32).reshape(count, width).astype(np.float64)
    b = np.fromfile(f'{d}/b{i}.f32', dtype=np.float32).reshape(count, width).astype(np.float64)
    pearson = np.corrcoef(a.T, b.T)[:width, width:]
    na = np.linalg.norm(a, axis=0)
    nb = np.linalg.norm(b, axis=0)
    cosine = (a.T @ b) / np.outer(na, nb)
    res = {}
    for name, s in (('pearson', pearson), ('cosine', cosine)):
        rows, cols = linear_sum_assignment(s, maximize=True)
        res[name] = {'sim': s.ravel().tolist(), 'perm': cols.tolist(), 'before': float(np.trace(s) / width), 'after': float(s[rows, cols].sum() / width)}
    out.append(res)
print(json.dumps(out))
`;

interface Reference {
  sim: number[];
  perm: number[];
  before: number;
  after: number;
}

function reference(layers: readonly LayerActivations[]): { pearson: Reference; cosine: Reference }[] {
  return withTempDir((dir) => {
    layers.forEach((l, i) => {
      writeFileSync(join(dir, `a${i}.f32`), l.a);
      writeFileSync(join(dir, `b${i}.f32`), l.b);
    });
    writeFileSync(join(dir, 'meta.json'), JSON.stringify(layers.map((l) => [l.count, l.width])));
    return JSON.parse(runPython(REFERENCE, dir));
  });
}

function maxAbsDiff(x: ArrayLike<number>, y: ArrayLike<number>): number {
  assert.equal(x.length, y.length);
  let d = 0;
  for (let i = 0; i < x.length; i++) d = Math.max(d, Math.abs(x[i] - y[i]));
  return d;
}

test('similarity matrices and assignments match numpy corrcoef / cosine and scipy', { skip: pythonSkipReason(['numpy', 'scipy.optimize']) }, async () => {
  const layers = [layerPair(64, 12, 1, 0.8), layerPair(40, 9, 2, 1.2), layerPair(200, 16, 3, 0.5)];
  const refs = reference(layers);
  let permsDiffer = 0;
  for (const [i, layer] of layers.entries()) {
    for (const score of ['pearson', 'cosine'] as const) {
      const ref = refs[i][score];
      const sim = await similarityMatrix(layer, score, jsMatmul);
      assert.ok(maxAbsDiff(sim, ref.sim) < 1e-5, `layer ${i} ${score}: similarities differ by ${maxAbsDiff(sim, ref.sim)}`);
      const r = await activationMatching({ [`L${i}`]: layer }, { score });
      assert.deepEqual([...r.perms[`L${i}`]], ref.perm, `layer ${i} ${score}: permutation`);
      assert.ok(Math.abs(r.meanSimilarityBefore[`L${i}`] - ref.before) < 1e-5, `layer ${i} ${score}: mean similarity before`);
      assert.ok(Math.abs(r.meanSimilarityAfter[`L${i}`] - ref.after) < 1e-5, `layer ${i} ${score}: mean similarity after`);
    }
    if (refs[i].pearson.perm.join() !== refs[i].cosine.perm.join()) permsDiffer++;
  }
  // The offsets make the scores disagree on the assignment itself, not only on the values.
  assert.ok(permsDiffer >= 2, `pearson and cosine agree on ${3 - permsDiffer} of 3 layers`);
});

test('pearson similarities by hand: centred, and unchanged by per-unit offsets and positive scales', async () => {
  const layer = layerPair(50, 6, 7, 0.7);
  const { a, b, count, width } = layer;
  const column = (x: Float32Array, i: number): number[] => Array.from({ length: count }, (_, k) => x[k * width + i]);
  const pearson = (u: number[], v: number[]): number => {
    const mu = u.reduce((s, x) => s + x, 0) / u.length;
    const mv = v.reduce((s, x) => s + x, 0) / v.length;
    let uv = 0;
    let uu = 0;
    let vv = 0;
    for (let k = 0; k < u.length; k++) {
      uv += (u[k] - mu) * (v[k] - mv);
      uu += (u[k] - mu) ** 2;
      vv += (v[k] - mv) ** 2;
    }
    return uv / Math.sqrt(uu * vv);
  };
  const sim = await similarityMatrix(layer, 'pearson', jsMatmul);
  for (let i = 0; i < width; i++) {
    for (let j = 0; j < width; j++) {
      const want = pearson(column(a, i), column(b, j));
      assert.ok(Math.abs(sim[i * width + j] - want) < 1e-5, `S[${i}, ${j}] = ${sim[i * width + j]}, want ${want}`);
    }
  }
  // Shifting and stretching B's units (a different bias and gain per unit) leaves Pearson unchanged.
  const moved = b.map((v, k) => 10 + (k % width) + (1 + (k % width)) * v);
  const simMoved = await similarityMatrix({ ...layer, b: moved }, 'pearson', jsMatmul);
  assert.ok(maxAbsDiff(sim, simMoved) < 1e-4);
});

test('a unit that never varies is indistinct: a zero row for Pearson, and for cosine only when all zero', async () => {
  const count = 20;
  const width = 3;
  const rng = createRng(4);
  const a = new Float32Array(count * width);
  for (let k = 0; k < count; k++) {
    a[k * width] = rng.normal();
    a[k * width + 1] = 2.5; // constant but not zero: no variance, still a direction for cosine
    a[k * width + 2] = 0; // dead
  }
  assert.deepEqual(indistinctUnits(a, count, width, 'pearson'), [false, true, true]);
  assert.deepEqual(indistinctUnits(a, count, width), [false, true, true]); // Pearson is the default
  // A unit that is zero on some examples only is still told apart.
  const sparse = Float32Array.from({ length: 8 }, (_, k) => (k % 2 === 0 ? 0 : k));
  assert.deepEqual(indistinctUnits(sparse, 8, 1, 'cosine'), [false]);
  assert.deepEqual(indistinctUnits(a, count, width, 'cosine'), [false, false, true]);
  const sim = await similarityMatrix({ a, b: a, count, width }, 'pearson', jsMatmul);
  assert.deepEqual([...sim.subarray(3, 9)], [0, 0, 0, 0, 0, 0]);
});

test('activationMatching: Pearson by default, sizes checked, head groups matched whole with their mean similarity', async () => {
  const layer = layerPair(60, 8, 5, 0.9);
  const pearson = await activationMatching({ L: layer }, { score: 'pearson' });
  assert.deepEqual(await activationMatching({ L: layer }), pearson);
  await assert.rejects(
    activationMatching({ L: { ...layer, b: layer.b.subarray(1) } }),
    (e: unknown) => e instanceof InputError && e.message === "activations of 'L': expected 60 × 8 values for both models",
  );
  // Two members of one head group (4 heads of 2), plus a free permutation; a group member absent is skipped.
  const qk = layerPair(60, 8, 6, 0.9);
  const v = layerPair(60, 8, 7, 0.9);
  const heads = { attn: { count: 4, perms: ['qk', 'v', 'absent'] } };
  const r = await activationMatching({ qk, v, free: layer }, { heads });
  const pq = headPermutation(r.perms.qk, 4);
  const pv = headPermutation(r.perms.v, 4);
  assert.ok('pi' in pq && 'pi' in pv, 'heads kept whole');
  assert.deepEqual(pq.pi, pv.pi, 'both members move the heads alike');
  assert.deepEqual(r.perms.free, pearson.perms.L);
  assert.equal(r.perms.absent, undefined);
  for (const [name, l] of Object.entries({ qk, v })) {
    const sim = await similarityMatrix(l, 'pearson', jsMatmul);
    const mean = Array.from(r.perms[name], (j, i) => sim[i * 8 + j]).reduce((s, x) => s + x, 0) / 8;
    assert.ok(Math.abs(r.meanSimilarityAfter[name] - mean) < 1e-9, `${name}: mean similarity after`);
  }
});
