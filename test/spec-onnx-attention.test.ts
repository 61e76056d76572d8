/**
 * specFromOnnx on attention models as torch.onnx.export writes them (test/fixtures/onnx-attention/, made by
 * make_attention.py with PyTorch 1.13.1, opset 17, every parameter random):
 *
 * - sep.onnx: a tiny ViT with hand-written attention (separate q/k/v Linear, heads split by a Reshape whose
 *   target is built from Shape/Gather/Div/Concat, Transpose to [0,2,1,3] and [0,2,3,1], q·k, Softmax, ·v,
 *   heads merged back), class token through Expand + Concat, position embedding, GELU as Erf;
 * - fused.onnx: the same ViT with nn.TransformerEncoderLayer(batch_first, norm_first, gelu): one fused
 *   in_proj MatMul [E, 3E] cut into q, k, v by Slices whose bounds are computed from Shape, heads folded
 *   into the batch axis;
 * - fused_post.onnx: nn.TransformerEncoderLayer with its defaults (sequence first, post-norm, ReLU);
 * - timm.onnx: the ViT with timm's attention: one qkv Linear reshaped to (3, H, d) in one Reshape, permuted
 *   to [3, N, H, T, d], split and squeezed into q, k, v.
 *
 * The derived spec must permute what a transformer's symmetries allow (residual stream, MLP hidden, heads
 * and the units inside them), keep heads whole (head groups), store the fused projection as parts, and
 * leave only the input and output axes fixed. Truth: ONNX Runtime on the original and permuted models.
 * Random head-structured permutations must keep every output; a flat permutation of the same units that
 * crosses heads must change it (so the head groups are needed, and the check can fail).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as ort from 'onnxruntime-node';
import { withInitializers } from '../src/io/onnx.js';
import { readOnnxFile } from '../src/io/onnx-file.js';
import { applyPermutation, type Perms } from '../src/permute.js';
import { createRng, shuffledRange } from '../src/random.js';
import { headPermutation, randomSpecPerms } from '../src/permutation-spec/heads.js';
import { type OnnxSpec, specFromOnnx } from '../src/permutation-spec/onnx-graph.js';
import { type PermutationSpec, permSizes, validateSpec } from '../src/permutation-spec/spec.js';
import type { Params } from '../src/tensor.js';
import { type Attr, type Built, build, gather, int, ints, maxAbsDiff, randomInput, run, vi, withOutputs } from './helpers/onnx-graphs.js';

const DIR = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', 'test', 'fixtures', 'onnx-attention');
const E = 16;
const HEADS = 4;

interface Fixture {
  readonly file: string;
  readonly input: number[];
}
const SEP: Fixture = { file: 'sep.onnx', input: [3, 1, 8, 8] };
const FUSED: Fixture = { file: 'fused.onnx', input: [3, 1, 8, 8] };
const FUSED_POST: Fixture = { file: 'fused_post.onnx', input: [5, 3, 3] };
const TIMM: Fixture = { file: 'timm.onnx', input: [3, 1, 8, 8] };

function load(f: Fixture): { model: ReturnType<typeof readOnnxFile>['model']; params: Params; derived: OnnxSpec } {
  const { model, params } = readOnnxFile(join(DIR, f.file));
  return { model, params, derived: specFromOnnx(model, { strict: true }) };
}

/** The permutation on an axis (null when the axis is not permuted). */
function permOn(spec: PermutationSpec, tensor: string, axis: number): string | null {
  const row = spec.axesToPerm[tensor];
  assert.ok(row !== undefined, `the spec has no tensor '${tensor}'`);
  return row[axis];
}

/** Outputs of the model permuted by `perms` against the original; every tap must carry its permutation. */
async function outputChange(model: ReturnType<typeof readOnnxFile>['model'], params: Params, derived: OnnxSpec, perms: Perms, feeds: Record<string, ort.Tensor>): Promise<{ out: number; taps: Record<string, number> }> {
  const outName = model.graph.outputs[0].name;
  const tapValues = [...new Set(Object.values(derived.taps).map((t) => t.value))];
  const a = await run(withOutputs(model, tapValues), feeds);
  const b = await run(withOutputs(withInitializers(model, applyPermutation(derived.spec, perms, params)), tapValues), feeds);
  const taps: Record<string, number> = {};
  for (const [p, t] of Object.entries(derived.taps)) taps[p] = maxAbsDiff(gather(a[t.value], perms[p], t.axis), b[t.value].data);
  return { out: maxAbsDiff(a[outName].data, b[outName].data), taps };
}

/** A permutation of n = heads·d units that sends some head's units to two heads (not head-structured). */
function crossHeadPerm(n: number, heads: number, seed: number): Int32Array {
  const rng = createRng(seed);
  for (;;) {
    const p = shuffledRange(n, rng);
    if ('brokenHead' in headPermutation(p, heads)) return p;
  }
}

test('hand-written attention (sep.onnx): residual, MLP hidden, q/k and v are permuted, heads grouped; only input and output axes fixed', () => {
  const { params, derived } = load(SEP);
  const { spec } = derived;
  assert.deepEqual(derived.unsupported, []);
  const res = permOn(spec, 'pos_embed', 2);
  assert.ok(res !== null);
  // One residual permutation: embeddings, every norm, the input of q/k/v/fc1, the output of proj/fc2, the head.
  for (const [t, a] of [['cls_token', 2], ['patch.weight', 0], ['patch.bias', 0], ['norm.weight', 0], ['head.weight', 1]] as const) assert.equal(permOn(spec, t, a), res, `${t}:${a}`);
  for (const b of [0, 1]) {
    const p = `blocks.${b}`;
    for (const t of ['norm1.weight', 'norm1.bias', 'norm2.weight', 'norm2.bias', 'attn.proj.bias', 'fc2.bias']) assert.equal(permOn(spec, `${p}.${t}`, 0), res, `${p}.${t}`);
    const qk = permOn(spec, `${p}.attn.q.bias`, 0);
    const v = permOn(spec, `${p}.attn.v.bias`, 0);
    const hidden = permOn(spec, `${p}.fc1.bias`, 0);
    assert.ok(qk !== null && v !== null && hidden !== null);
    assert.equal(permOn(spec, `${p}.attn.k.bias`, 0), qk, 'q and k share one permutation');
    assert.equal(new Set([res, qk, v, hidden]).size, 4);
    // The anonymous MatMul weights ([in, out]): q, k, v read the residual stream, proj reads v.
    const weights = Object.keys(spec.axesToPerm).filter((t) => t.startsWith('onnx::MatMul_') && (spec.axesToPerm[t].includes(qk) || spec.axesToPerm[t].includes(v)));
    assert.deepEqual(weights.map((t) => spec.axesToPerm[t].join(' ')).sort(), [`${res} ${qk}`, `${res} ${qk}`, `${res} ${v}`, `${v} ${res}`].sort());
    const group = Object.values(spec.heads ?? {}).find((g) => g.perms.includes(qk));
    assert.deepEqual(group, { count: HEADS, perms: [qk, v] });
  }
  assert.equal(Object.keys(spec.heads ?? {}).length, 2);
  assert.equal(spec.segments, undefined);
  // Fixed: the patch embedding's input channel (the image) and the classifier's output classes.
  assert.deepEqual(derived.fixed.map((f) => f.axes.map((a) => `${a.tensor}:${a.axis}`).sort().join(' ')).sort(), ['head.bias:0 head.weight:0', 'patch.weight:1']);
  // Every other axis of size > 1 is permuted.
  const sizes = permSizes(spec, params);
  assert.equal(Object.keys(sizes).length, 1 + 3 * 2);
  // Taps: the residual stream, and per block q's projection, v's projection and the MLP hidden.
  for (const p of Object.keys(sizes)) assert.ok(derived.taps[p] !== undefined, `no tap for ${p}`);
});

for (const f of [FUSED, FUSED_POST, TIMM]) {
  test(`fused q|k|v (${f.file}): the fused in_proj weight and bias are stored as q|k|v parts, q and k share a permutation, heads grouped`, () => {
    const { model, params, derived } = load(f);
    const { spec } = derived;
    assert.deepEqual(derived.unsupported, []);
    const segs = spec.segments ?? {};
    const fusedWeights = model.initializerNames.filter((t) => model.initializers[t].shape.length === 2 && model.initializers[t].shape[1] === 3 * E);
    const fusedBiases = model.initializerNames.filter((t) => t.endsWith('in_proj_bias') || t.endsWith('qkv.bias'));
    assert.equal(fusedWeights.length, fusedBiases.length);
    assert.deepEqual(Object.keys(segs).sort(), [...fusedWeights, ...fusedBiases].sort());
    for (const w of fusedWeights) {
      assert.equal(segs[w].axis, 1);
      assert.equal(segs[w].sizes, undefined, 'three equal parts');
      const [q, k, v] = segs[w].parts.map((part) => spec.axesToPerm[part]);
      assert.equal(spec.axesToPerm[w], undefined, 'the source itself is not in the axes table');
      assert.ok(q[0] !== null && q[0] === k[0] && k[0] === v[0], 'q, k, v read the same stream');
      assert.ok(q[1] !== null && q[1] === k[1], 'q and k share one permutation');
      assert.ok(v[1] !== null && v[1] !== q[1]);
      assert.deepEqual(Object.values(spec.heads ?? {}).find((g) => g.perms.includes(q[1]!)), { count: HEADS, perms: [q[1], v[1]] });
      // out_proj reads v's units.
      assert.ok(Object.values(spec.axesToPerm).some((row) => row[0] === q[0] && row[1] === v[1]), 'out_proj columns carry v');
    }
    assert.equal(Object.keys(spec.heads ?? {}).length, fusedWeights.length);
    validateSpec(spec, { label: f.file, params });
    // Taps: every permutation, except q/k in timm's layout, where q and k never exist as flat values.
    const qkPerms = new Set(Object.values(spec.heads ?? {}).map((g) => g.perms[0]));
    for (const p of Object.keys(permSizes(spec, params))) assert.equal(derived.taps[p] !== undefined, f !== TIMM || !qkPerms.has(p), `tap for ${p}`);
    assert.ok(derived.fixed.length === 2, `only the input and the output axes are fixed: ${JSON.stringify(derived.fixed)}`);
  });
}

for (const f of [SEP, FUSED, FUSED_POST, TIMM]) {
  test(`${f.file}: random head-structured permutations keep every output in ONNX Runtime; a flat cross-head permutation changes it`, async () => {
    const { model, params, derived } = load(f);
    const sizes = permSizes(derived.spec, params);
    const feeds = { input: randomInput(f.input, 7) };
    for (const seed of [1, 2, 3]) {
      const perms = randomSpecPerms(derived.spec, sizes, seed);
      const { out, taps } = await outputChange(model, params, derived, perms, feeds);
      assert.ok(out < 1e-4, `seed ${seed}: output changed by ${out}`);
      for (const [p, d] of Object.entries(taps)) assert.ok(d < 1e-4, `seed ${seed}: tap of '${p}' does not carry it (${d})`);
    }
    // The same classes, one permutation of a group made flat across heads: the function changes.
    for (const [group, { count, perms: members }] of Object.entries(derived.spec.heads ?? {})) {
      for (const member of members) {
        const perms = { ...randomSpecPerms(derived.spec, sizes, 11), [member]: crossHeadPerm(sizes[member], count, 12) };
        const { out } = await outputChange(model, params, derived, perms, feeds);
        assert.ok(out > 1e-2, `${group}: a cross-head permutation of '${member}' should change the output, changed by ${out}`);
      }
    }
  });
}

// The trained ViTs of test/fixtures/vit/ (make_vit.py: Fashion-MNIST, E = 32, 4 heads, 2 blocks, both styles).
for (const style of ['sep', 'fused']) {
  test(`trained ViT (vit_${style}_a.onnx): every block's heads are grouped and random head-structured permutations keep the logits`, async () => {
    const { model, params } = readOnnxFile(join(DIR, '..', 'vit', `vit_${style}_a.onnx`));
    const derived = specFromOnnx(model, { strict: true });
    const groups = Object.values(derived.spec.heads ?? {});
    assert.equal(groups.length, 2);
    for (const g of groups) assert.equal(g.count, 4);
    assert.equal(Object.keys(derived.spec.segments ?? {}).length, style === 'fused' ? 4 : 0, 'fused: in_proj weight and bias of both blocks');
    // Residual, and per block qk, v and the MLP hidden.
    const sizes = permSizes(derived.spec, params);
    assert.equal(Object.keys(sizes).length, 7);
    const feeds = { input: randomInput([2, 1, 28, 28], 3) };
    for (const seed of [1, 2]) {
      const { out, taps } = await outputChange(model, params, derived, randomSpecPerms(derived.spec, sizes, seed), feeds);
      assert.ok(out < 1e-4, `seed ${seed}: logits changed by ${out}`);
      for (const [p, d] of Object.entries(taps)) assert.ok(d < 1e-4, `seed ${seed}: tap of '${p}' (${d})`);
    }
  });
}

/**
 * One attention layer by hand: x [N, 4, 6] → q, k, v (6 = 2 heads × 3) → scores (+ a mask) → softmax → ·v →
 * heads merged → out-projection to 5. `qSplit` is q's Reshape target (k and v use [0, 0, 2, 3]).
 */
function attentionLayer(label: string, mask: 'none' | 'tokens' | 'heads', qSplit = [0, 0, 2, 3]): Built {
  const inits: Record<string, number[]> = { wq: [6, 6], bq: [6], wk: [6, 6], bk: [6], wv: [6, 6], bv: [6], wo: [6, 5] };
  if (mask !== 'none') inits.mask = mask === 'heads' ? [1, 2, 4, 4] : [4, 4];
  const proj = (p: string): Attr[] => [
    { name: `${p}mm`, op_type: 'MatMul', input: ['x', `w${p}`], output: [`${p}0`] },
    { name: `${p}add`, op_type: 'Add', input: [`${p}0`, `b${p}`], output: [`${p}1`] },
    { name: `${p}split`, op_type: 'Reshape', input: [`${p}1`, p === 'q' ? 'qsplit' : 'split'], output: [`${p}2`] },
    { name: `${p}t`, op_type: 'Transpose', input: [`${p}2`], output: [`${p}h`], attribute: [ints('perm', p === 'k' ? [0, 2, 3, 1] : [0, 2, 1, 3])] },
  ];
  const nodes: Attr[] = [
    ...proj('q'), ...proj('k'), ...proj('v'),
    { name: 'qk', op_type: 'MatMul', input: ['qh', 'kh'], output: ['s0'] },
    ...(mask === 'none' ? [] : [{ name: 'mask', op_type: 'Add', input: ['s0', 'mask'], output: ['s1'] }]),
    { name: 'softmax', op_type: 'Softmax', input: [mask === 'none' ? 's0' : 's1'], output: ['a'], attribute: [int('axis', -1)] },
    { name: 'av', op_type: 'MatMul', input: ['a', 'vh'], output: ['o0'] },
    { name: 'ot', op_type: 'Transpose', input: ['o0'], output: ['o1'], attribute: [ints('perm', [0, 2, 1, 3])] },
    { name: 'merge', op_type: 'Reshape', input: ['o1', 'merge'], output: ['o2'] },
    { name: 'out', op_type: 'MatMul', input: ['o2', 'wo'], output: ['y'] },
  ];
  return build(label, inits, nodes, vi('x', ['N', 4, 6]), vi('y', ['N', 4, 5]), { int64: { split: [0, 0, 2, 3], qsplit: qSplit, merge: [0, 0, 6] } });
}

test('a hand-built attention layer: q/k and v form one head group; head-structured permutations keep the output, cross-head ones change it', async () => {
  const { model, params } = attentionLayer('attention', 'tokens');
  const derived = specFromOnnx(model, { strict: true });
  const qk = permOn(derived.spec, 'wq', 1);
  const v = permOn(derived.spec, 'wv', 1);
  assert.ok(qk !== null && v !== null && qk !== v);
  assert.equal(permOn(derived.spec, 'wk', 1), qk);
  assert.equal(permOn(derived.spec, 'wo', 0), v);
  assert.deepEqual(Object.values(derived.spec.heads ?? {}), [{ count: 2, perms: [qk, v] }]);
  const sizes = permSizes(derived.spec, params);
  const feeds = { x: randomInput([2, 4, 6], 1) };
  for (const seed of [1, 2, 3]) {
    const { out } = await outputChange(model, params, derived, randomSpecPerms(derived.spec, sizes, seed), feeds);
    assert.ok(out < 1e-5, `seed ${seed}: output changed by ${out}`);
  }
  for (const p of [qk, v]) {
    const { out } = await outputChange(model, params, derived, { ...randomSpecPerms(derived.spec, sizes, 4), [p]: crossHeadPerm(6, 2, 5) }, feeds);
    assert.ok(out > 1e-2, `a cross-head permutation of '${p}' changed the output by only ${out}`);
  }
});

test('a mask that varies along the heads, or q split into other heads than k: the attention is left unpermuted, with the reason', () => {
  for (const [label, built, reason] of [
    ['mask over heads', attentionLayer('mask-heads', 'heads'), /node 'mask' \(Add\) combines attention heads with 'mask', which varies along them/],
    ['q in 3 heads, k in 2', attentionLayer('split-mismatch', 'none', [0, 0, 3, 2]), /heads/],
  ] as const) {
    const derived = specFromOnnx(built.model);
    for (const t of ['wq', 'wk', 'wv']) assert.equal(permOn(derived.spec, t, 1), null, `${label}: ${t}`);
    assert.equal(derived.spec.heads, undefined, label);
    assert.ok(derived.fixed.some((f) => reason.test(f.reason)), `${label}: ${derived.fixed.map((f) => f.reason).join('; ')}`);
    assert.throws(() => specFromOnnx(built.model, { strict: true }), label === 'mask over heads' ? reason : /./);
  }
});
