/**
 * Head-structured permutations (permutation-spec/heads.ts, match/head-assignment.ts). Oracles: brute force over every
 * head-structured permutation of a tiny group; a numpy-free attention forward written here (the math
 * identity: moving whole heads and reordering within them leaves multi-head attention unchanged, a flat
 * permutation across heads does not); recovery of a planted head-structured permutation.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { solveHeadGroup } from '../src/match/head-assignment.js';
import { checkHeadPerms, headStructured, randomSpecPerms } from '../src/permutation-spec/heads.js';
import { specFromAxes } from '../src/permutation-spec/spec.js';
import { specFromJsonValue, specToJson } from '../src/permutation-spec/json.js';
import { applyPermutation, randomPermutation } from '../src/permute.js';
import { weightMatching } from '../src/match/weight-matching.js';
import { createRng } from '../src/random.js';
import type { Tensor } from '../src/tensor.js';

function perms(n: number): number[][] {
  if (n === 0) return [[]];
  return perms(n - 1).flatMap((p) => Array.from({ length: n }, (_, k) => [...p.slice(0, k), n - 1, ...p.slice(k)]));
}

test('the nested head solve finds the best head-structured permutations (brute force, 3 heads x 2, two members)', () => {
  const rng = createRng(7);
  const H = 3, d = 2, n = H * d;
  for (let trial = 0; trial < 20; trial++) {
    const costs = [0, 1].map(() => Float64Array.from({ length: n * n }, () => rng.normal()));
    const got = solveHeadGroup(costs.map((cost) => ({ cost, n })), H);
    let best = -Infinity;
    for (const pi of perms(H)) {
      // every choice of τ per head and member: (d!)^(H·members) = 2^6 = 64
      const taus = perms(d);
      const choices = taus.length ** (H * 2);
      for (let c = 0; c < choices; c++) {
        let k = c, total = 0;
        for (let m = 0; m < 2; m++) {
          const within = Array.from({ length: H }, () => { const t = taus[k % taus.length]; k = Math.floor(k / taus.length); return t; });
          const s = headStructured(pi, within);
          for (let i = 0; i < n; i++) total += costs[m][i * n + s[i]];
        }
        best = Math.max(best, total);
      }
    }
    let objective = 0;
    got.perms.forEach((s, m) => { for (let i = 0; i < n; i++) objective += costs[m][i * n + s[i]]; });
    assert.ok(Math.abs(objective - best) < 1e-9, `trial ${trial}: ${objective} vs brute force ${best}`);
    assert.ok(Math.abs(got.objective - best) < 1e-9);
    checkHeadPerms(specFromAxes({ q: ['a', null], v: ['b', null] }, { g: { count: H, perms: ['a', 'b'] } }), { a: got.perms[0], b: got.perms[1] });
  }
});

// Multi-head self-attention on x [T, D]: q = x Wqᵀ, k = x Wkᵀ, v = x Wvᵀ (W: [H·d, D]), per head softmax(q kᵀ/√d) v, out = concat · Woᵀ (Wo: [D, H·d]).
function attention(p: Record<string, Tensor>, x: Float32Array, T: number, D: number, H: number): Float64Array {
  const E = p.wq.shape[0], d = E / H;
  const proj = (w: Tensor) => { const o = new Float64Array(T * E); for (let t = 0; t < T; t++) for (let e = 0; e < E; e++) { let s = 0; for (let j = 0; j < D; j++) s += x[t * D + j] * w.data[e * D + j]; o[t * E + e] = s; } return o; };
  const [q, k, v] = [proj(p.wq), proj(p.wk), proj(p.wv)];
  const cat = new Float64Array(T * E);
  for (let h = 0; h < H; h++) for (let t = 0; t < T; t++) {
    const a = Array.from({ length: T }, (_, u) => { let s = 0; for (let i = 0; i < d; i++) s += q[t * E + h * d + i] * k[u * E + h * d + i]; return s / Math.sqrt(d); });
    const mx = Math.max(...a); const e = a.map((z) => Math.exp(z - mx)); const z = e.reduce((s, y) => s + y, 0);
    for (let i = 0; i < d; i++) cat[t * E + h * d + i] = e.reduce((s, w, u) => s + (w / z) * v[u * E + h * d + i], 0);
  }
  const out = new Float64Array(T * D);
  for (let t = 0; t < T; t++) for (let j = 0; j < D; j++) { let s = 0; for (let e = 0; e < E; e++) s += cat[t * E + e] * p.wo.data[j * E + e]; out[t * D + j] = s; }
  return out;
}

const H = 3, dh = 4, D = 5, T = 6;
const spec = specFromAxes({ wq: ['qk', null], wk: ['qk', null], wv: ['v', null], wo: [null, 'v'] }, { attn: { count: H, perms: ['qk', 'v'] } });
function randomParams(seed: number): Record<string, Tensor> {
  const rng = createRng(seed);
  const t = (shape: number[]): Tensor => ({ shape, data: Float32Array.from({ length: shape[0] * shape[1] }, () => rng.normal()) });
  return { wq: t([H * dh, D]), wk: t([H * dh, D]), wv: t([H * dh, D]), wo: t([D, H * dh]) };
}

test('random head-structured permutations leave attention unchanged; a flat permutation across heads changes it', () => {
  const rng = createRng(3);
  const x = Float32Array.from({ length: T * D }, () => rng.normal());
  const p = randomParams(1);
  const ref = attention(p, x, T, D, H);
  for (let seed = 0; seed < 10; seed++) {
    const s = randomSpecPerms(spec, { qk: H * dh, v: H * dh }, seed);
    checkHeadPerms(spec, s);
    const out = attention(applyPermutation(spec, s, p) as Record<string, Tensor>, x, T, D, H);
    assert.ok(out.every((y, i) => Math.abs(y - ref[i]) < 1e-4), `seed ${seed}`);
  }
  const flat = { qk: randomPermutation(H * dh, 5), v: randomPermutation(H * dh, 6) };
  assert.throws(() => checkHeadPerms(spec, flat), /sends the units of head \d+ to more than one head|moves head/);
  const broken = attention(applyPermutation(spec, flat, p) as Record<string, Tensor>, x, T, D, H);
  assert.ok(broken.some((y, i) => Math.abs(y - ref[i]) > 1e-2), 'a flat permutation across heads should change the output');
});

test('weight matching recovers a planted head-structured permutation, keeping heads whole', async () => {
  const a = randomParams(11);
  const planted = randomSpecPerms(spec, { qk: H * dh, v: H * dh }, 4);
  const b = applyPermutation(spec, planted, a);
  for (const seed of [0, 1, 2]) {
    const r = await weightMatching({ spec, paramsA: a, paramsB: b, seed });
    checkHeadPerms(spec, r.perms);
    const aligned = applyPermutation(spec, r.perms, b);
    for (const name of Object.keys(a)) assert.deepEqual(Array.from(aligned[name].data), Array.from(a[name].data), `seed ${seed}: ${name}`);
  }
  // On an unrelated B the best flat permutations cross heads: the result must still keep them whole.
  for (const score of ['dot', 'cosine'] as const) {
    const r = await weightMatching({ spec, paramsA: a, paramsB: randomParams(12), seed: 0, score });
    checkHeadPerms(spec, r.perms, score);
  }
});

test('spec JSON version 2 carries head groups; version 1 files still read; bad groups are refused naming them', () => {
  const text = specToJson(spec);
  assert.match(text, /"version": 2/);
  const back = specFromJsonValue(JSON.parse(text));
  assert.deepEqual({ ...back.heads }, { attn: { count: H, perms: ['qk', 'v'] } });
  assert.match(specToJson(specFromAxes({ w: ['p', null] })), /"version": 1/);
  assert.equal(specFromJsonValue({ format: 'rebasin-spec', version: 1, axes: { w: ['p', null] } }).heads, undefined);
  assert.throws(() => specFromJsonValue({ format: 'rebasin-spec', version: 1, axes: { w: ['p', null] }, heads: {} }), /unknown key/);
  assert.throws(() => specFromJsonValue({ format: 'rebasin-spec', version: 2, axes: { w: ['p', null] }, heads: { g: { count: 0, perms: ['p'] } } }), /head group 'g'.*count/);
  assert.throws(() => specFromJsonValue({ format: 'rebasin-spec', version: 2, axes: { w: ['p', null] }, heads: { g: { count: 2, perms: ['zz'] } } }), /head group 'g' names permutation "zz"/);
});
