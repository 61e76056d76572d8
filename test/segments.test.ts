/**
 * Segmented axes (permutation-spec/segments.ts): a fused q|k|v projection cut into parts with their own permutations.
 * Oracles: index arithmetic written here (what each entry of the permuted fused tensor must be), a
 * PyTorch-style fused multi-head attention forward written here in float64 (the math identity), planted
 * recovery by weight matching, and the in-memory permutation for the streamed safetensors writer.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { specFromAxes, validateSpec, permSizes, type PermutationSpec } from '../src/permutation-spec/spec.js';
import { specFromJsonValue, specToJson } from '../src/permutation-spec/json.js';
import { joinAxis, joinSegments, sliceAxis, splitSegments } from '../src/permutation-spec/segments.js';
import { randomSpecPerms } from '../src/permutation-spec/heads.js';
import { applyPermutation, inversePermutation } from '../src/permute.js';
import { weightMatching, matchingObjective } from '../src/match/weight-matching.js';
import { formatSpecTable } from '../src/permutation-spec/table.js';
import { paramsToSafetensors, parseSafetensors, toParams, serializeSafetensors } from '../src/io/safetensors.js';
import { writePermutedSafetensors } from '../src/io/safetensors-stream.js';
import { createRng } from '../src/random.js';
import type { Params, Tensor } from '../src/tensor.js';
import { isInputError } from '../src/errors.js';

const E = 8, H = 2, T = 5;

function randomTensor(shape: number[], rng: ReturnType<typeof createRng>): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return { shape, data: Float32Array.from({ length: n }, () => rng.normal()) };
}

/** One nn.MultiheadAttention: in_proj [3E, E] rows q|k|v, out_proj [E, E]; the residual stream permuted by 'res'. */
function mhaSpec(): PermutationSpec {
  const parts = (t: string) => [`${t}#q`, `${t}#k`, `${t}#v`];
  return specFromAxes(
    {
      'attn.in_proj_weight#q': ['qk', 'res'],
      'attn.in_proj_weight#k': ['qk', 'res'],
      'attn.in_proj_weight#v': ['v', 'res'],
      'attn.in_proj_bias#q': ['qk'],
      'attn.in_proj_bias#k': ['qk'],
      'attn.in_proj_bias#v': ['v'],
      'attn.out_proj.weight': ['res', 'v'],
      'attn.out_proj.bias': ['res'],
    },
    { attn: { count: H, perms: ['qk', 'v'] } },
    {
      'attn.in_proj_weight': { axis: 0, parts: parts('attn.in_proj_weight') },
      'attn.in_proj_bias': { axis: 0, parts: parts('attn.in_proj_bias') },
    },
  );
}

function mhaParams(seed: number): Params {
  const rng = createRng(seed);
  return {
    'attn.in_proj_weight': randomTensor([3 * E, E], rng),
    'attn.in_proj_bias': randomTensor([3 * E], rng),
    'attn.out_proj.weight': randomTensor([E, E], rng),
    'attn.out_proj.bias': randomTensor([E], rng),
  };
}

/** PyTorch's fused self-attention on x [T, E], in float64, written from the definition. */
function mha(p: Params, x: Float64Array): Float64Array {
  const d = E / H;
  const W = p['attn.in_proj_weight'].data, b = p['attn.in_proj_bias'].data;
  const qkv = new Float64Array(T * 3 * E);
  for (let t = 0; t < T; t++) for (let r = 0; r < 3 * E; r++) {
    let s = b[r];
    for (let j = 0; j < E; j++) s += x[t * E + j] * W[r * E + j];
    qkv[t * 3 * E + r] = s;
  }
  const cat = new Float64Array(T * E);
  for (let h = 0; h < H; h++) for (let t = 0; t < T; t++) {
    const score = Array.from({ length: T }, (_, u) => {
      let s = 0;
      for (let i = 0; i < d; i++) s += qkv[t * 3 * E + h * d + i] * qkv[u * 3 * E + E + h * d + i];
      return s / Math.sqrt(d);
    });
    const m = Math.max(...score), e = score.map((z) => Math.exp(z - m)), z = e.reduce((a, c) => a + c, 0);
    for (let i = 0; i < d; i++) {
      let s = 0;
      for (let u = 0; u < T; u++) s += (e[u] / z) * qkv[u * 3 * E + 2 * E + h * d + i];
      cat[t * E + h * d + i] = s;
    }
  }
  const Wo = p['attn.out_proj.weight'].data, bo = p['attn.out_proj.bias'].data;
  const y = new Float64Array(T * E);
  for (let t = 0; t < T; t++) for (let o = 0; o < E; o++) {
    let s = bo[o];
    for (let j = 0; j < E; j++) s += cat[t * E + j] * Wo[o * E + j];
    y[t * E + o] = s;
  }
  return y;
}

/** x' with x'[t, j] = x[t, σ[j]]: the residual stream in the permuted model's unit order. */
function permuteColumns(x: Float64Array, sigma: Int32Array): Float64Array {
  return Float64Array.from(x, (_, k) => x[Math.floor(k / E) * E + sigma[k % E]]);
}

test('a fused q|k|v tensor is permuted part by part: every entry where the index arithmetic puts it', () => {
  const spec = mhaSpec();
  const params = mhaParams(1);
  const perms = randomSpecPerms(spec, permSizes(spec, params), 5);
  const out = applyPermutation(spec, perms, params);
  const W = params['attn.in_proj_weight'].data, got = out['attn.in_proj_weight'].data;
  assert.deepEqual(out['attn.in_proj_weight'].shape, [3 * E, E]);
  for (let seg = 0; seg < 3; seg++) {
    const rows = seg < 2 ? perms.qk : perms.v;
    for (let i = 0; i < E; i++) for (let j = 0; j < E; j++) {
      assert.equal(got[(seg * E + i) * E + j], W[(seg * E + rows[i]) * E + perms.res[j]], `segment ${seg} row ${i} col ${j}`);
    }
    for (let i = 0; i < E; i++) assert.equal(out['attn.in_proj_bias'].data[seg * E + i], params['attn.in_proj_bias'].data[seg * E + rows[i]]);
  }
  // The input is never written to.
  assert.deepEqual(params, mhaParams(1));
});

test('head-structured permutations through the fused tensor keep the attention function; a flat one across heads does not', () => {
  const spec = mhaSpec();
  const params = mhaParams(2);
  const rng = createRng(3);
  const x = Float64Array.from({ length: T * E }, () => rng.normal());
  const y = mha(params, x);
  for (let seed = 0; seed < 10; seed++) {
    const perms = randomSpecPerms(spec, permSizes(spec, params), seed);
    const yP = mha(applyPermutation(spec, perms, params), permuteColumns(x, perms.res));
    const expected = permuteColumns(y, perms.res);
    for (let k = 0; k < y.length; k++) assert.ok(Math.abs(yP[k] - expected[k]) < 1e-4, `seed ${seed} entry ${k}: ${yP[k]} vs ${expected[k]}`);
  }
  // Swap one q/k unit of head 0 with one of head 1: shared by q and k, yet the function changes.
  const flat = { qk: Int32Array.from([4, 1, 2, 3, 0, 5, 6, 7]), v: Int32Array.from({ length: E }, (_, i) => i), res: Int32Array.from({ length: E }, (_, i) => i) };
  const yFlat = mha(applyPermutation(spec, flat, params), x);
  assert.ok(y.some((v, k) => Math.abs(v - yFlat[k]) > 1e-3), 'a permutation crossing heads must change the output');
});

test('weight matching recovers a planted permutation of a fused-attention model exactly', async () => {
  const spec = mhaSpec();
  const a = mhaParams(4);
  for (const seed of [0, 1, 2]) {
    const planted = randomSpecPerms(spec, permSizes(spec, a), 100 + seed);
    const b = applyPermutation(spec, planted, a);
    const r = await weightMatching({ spec, paramsA: a, paramsB: b, seed });
    const back = applyPermutation(spec, r.perms, b);
    for (const name of Object.keys(a)) assert.deepEqual(back[name].data, a[name].data, `seed ${seed}: tensor ${name}`);
    for (const p of ['qk', 'v', 'res']) assert.deepEqual(r.perms[p], inversePermutation(planted[p]));
    const self = matchingObjective(spec, { qk: Int32Array.from({ length: E }, (_, i) => i), v: Int32Array.from({ length: E }, (_, i) => i), res: Int32Array.from({ length: E }, (_, i) => i) }, a, a);
    assert.ok(Math.abs(r.objectiveAfter - self) < 1e-6 * Math.abs(self), `objective ${r.objectiveAfter} vs ⟨A,A⟩ ${self}`);
  }
});

test('sliceAxis and joinAxis cut and rebuild any axis of any shape (index arithmetic)', () => {
  const rng = createRng(9);
  for (let trial = 0; trial < 50; trial++) {
    const rank = 1 + Math.floor(rng.next() * 4);
    const shape = Array.from({ length: rank }, () => 1 + Math.floor(rng.next() * 5));
    const axis = Math.floor(rng.next() * rank);
    shape[axis] = 3 + Math.floor(rng.next() * 4);
    const t = randomTensor(shape, rng);
    const cut = 1 + Math.floor(rng.next() * (shape[axis] - 1));
    const [p, q] = [sliceAxis(t, axis, 0, cut), sliceAxis(t, axis, cut, shape[axis] - cut)];
    // Every entry of each slice is the source entry at the shifted index.
    const check = (part: Tensor, offset: number) => {
      for (let k = 0; k < part.data.length; k++) {
        let rem = k, src = 0, stride = 1;
        const idx: number[] = new Array(rank);
        for (let d = rank - 1; d >= 0; d--) { idx[d] = rem % part.shape[d]; rem = Math.floor(rem / part.shape[d]); }
        idx[axis] += offset;
        for (let d = rank - 1; d >= 0; d--) { src += idx[d] * stride; stride *= shape[d]; }
        assert.equal(part.data[k], t.data[src]);
      }
    };
    check(p, 0);
    check(q, cut);
    assert.deepEqual(joinAxis([p, q], axis), { shape, data: t.data });
  }
});

test('spec JSON v2 round-trips segments; bad segment specs and params are refused naming the tensor', () => {
  const spec = mhaSpec();
  const text = specToJson(spec);
  assert.match(text, /"version": 2/);
  const back = specFromJsonValue(JSON.parse(text));
  assert.deepEqual(back.segments, spec.segments);
  assert.deepEqual(back.axesToPerm, spec.axesToPerm);
  const params = mhaParams(6);
  const split = splitSegments(spec.segments, params);
  assert.deepEqual(Object.keys(split).filter((n) => n.includes('#')).length, 6);
  assert.deepEqual({ ...joinSegments(spec.segments, split) }, { ...params });
  assert.match(formatSpecTable(spec, params), /segments: 'attn.in_proj_weight' axis 0 = attn.in_proj_weight#q \| attn.in_proj_weight#k \| attn.in_proj_weight#v/);

  const refuse = (f: () => unknown, re: RegExp) => assert.throws(f, (e: unknown) => isInputError(e) && re.test((e as Error).message));
  const json = JSON.parse(text);
  refuse(() => specFromJsonValue({ ...json, segments: { 'attn.in_proj_weight': { axis: 0, parts: ['x#q', 'x#q'] } } }), /part 'x#q' is listed under both|listed/);
  refuse(() => specFromJsonValue({ ...json, segments: { 'attn.out_proj.weight': { axis: 0, parts: ['o#1', 'o#2'] } } }), /'attn.out_proj.weight' itself must not be in the axes table/);
  refuse(() => specFromJsonValue({ ...json, segments: { 'attn.in_proj_weight': { axis: 0, parts: ['a', 'b'], sizes: [1] } } }), /"sizes" must list one positive integer per part/);
  refuse(() => specFromJsonValue({ ...json, segments: { 'attn.in_proj_weight': { axis: 0, parts: ['a'], colour: 1 } } }), /unknown key\(s\) "colour"/);
  refuse(() => specFromJsonValue({ ...json, version: 1 }), /unknown key\(s\) "heads", "segments"/);
  const noBias = { ...params };
  delete (noBias as Record<string, Tensor>)['attn.in_proj_bias'];
  refuse(() => validateSpec(spec, { label: 'a.safetensors', params: noBias }), /spec segments tensor 'attn.in_proj_bias', which a.safetensors does not have/);
  const odd = { ...params, 'attn.in_proj_bias': randomTensor([3 * E + 1], createRng(1)) };
  refuse(() => validateSpec(spec, { label: 'b.safetensors', params: odd }), /'attn.in_proj_bias' axis 0 \(25 in b.safetensors\) into 3 equal parts/);
  const sized = specFromAxes(spec.axesToPerm, spec.heads, { ...spec.segments, 'attn.in_proj_bias': { axis: 0, parts: ['attn.in_proj_bias#q', 'attn.in_proj_bias#k', 'attn.in_proj_bias#v'], sizes: [8, 8, 9] } });
  refuse(() => validateSpec(sized, { label: 'b.safetensors', params }), /parts of 8 \+ 8 \+ 9 = 25, but in b.safetensors that axis has 24/);
});

test('the streamed safetensors writer permutes fused tensors as the in-memory path does', () => {
  const spec = mhaSpec();
  const params = mhaParams(8);
  const perms = randomSpecPerms(spec, permSizes(spec, params), 8);
  const dir = mkdtempSync(join(tmpdir(), 'rebasin-seg-'));
  try {
    const inPath = join(dir, 'b.safetensors'), outPath = join(dir, 'pb.safetensors');
    writeFileSync(inPath, serializeSafetensors(paramsToSafetensors(params)));
    writePermutedSafetensors(inPath, outPath, spec, perms);
    const streamed = toParams(parseSafetensors(readFileSync(outPath))).params;
    const inMemory = applyPermutation(spec, perms, params);
    for (const name of Object.keys(params)) assert.deepEqual(streamed[name].data, inMemory[name].data, name);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
