/**
 * REPAIR on transformers exported to ONNX (merge/onnx-repair.ts's MatMul+Add layers): the committed ViT
 * fixtures of both attention styles. The oracle for the statistics is ONNX Runtime run here directly on
 * the repaired model with the layer outputs added as graph outputs, and the per-unit mean and std computed
 * here over every token (MatMul layers) or position (the patch Conv), not the library's runner taps or
 * columnStats.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { readOnnxFile } from '../src/io/onnx-file.js';
import { withInitializers, type OnnxModel } from '../src/io/onnx.js';
import { onnxRepairPlan, onnxStats, type OnnxRepairLayer } from '../src/merge/onnx-repair.js';
import { repairMerged } from '../src/merge/repair.js';
import { interpolate } from '../src/measure/barrier.js';
import { createRng } from '../src/random.js';
import type { Params } from '../src/tensor.js';
import { run, withOutputs } from './helpers/onnx-graphs.js';

const dir = 'test/fixtures/vit/';
const PROBE = 48;

function probeImages(count: number, seed: number): Float32Array {
  const rng = createRng(seed);
  return Float32Array.from({ length: count * 28 * 28 }, () => Math.min(1, Math.max(0, 0.3 + 0.3 * rng.normal())));
}

/** Per-unit mean and population std of each tapped value over all its rows (units on the last axis). */
async function measured(model: OnnxModel, params: Params, taps: readonly { value: string; unitAxis: number }[], images: Float32Array): Promise<Record<string, { mean: number[]; std: number[] }>> {
  const withParams = withOutputs(withInitializers(model, params), taps.map((t) => t.value));
  const out = await run(withParams, { input: new ort.Tensor('float32', images, [images.length / 784, 1, 28, 28]) });
  const stats: Record<string, { mean: number[]; std: number[] }> = {};
  for (const { value, unitAxis } of taps) {
    const { dims, data } = out[value];
    const axis = unitAxis < 0 ? dims.length + unitAxis : unitAxis;
    const units = dims[axis];
    const inner = dims.slice(axis + 1).reduce((x, y) => x * y, 1);
    // Element k belongs to unit ⌊k / inner⌋ mod units; every other position is one more sample.
    const unitOf = (k: number) => Math.floor(k / inner) % units;
    const rows = data.length / units;
    const mean = new Array<number>(units).fill(0);
    for (let k = 0; k < data.length; k++) mean[unitOf(k)] += data[k] / rows;
    const sq = new Array<number>(units).fill(0);
    for (let k = 0; k < data.length; k++) sq[unitOf(k)] += (data[k] - mean[unitOf(k)]) ** 2;
    stats[value] = { mean, std: sq.map((x) => Math.sqrt(x / rows)) };
  }
  return stats;
}

function worstRelative(got: readonly number[], want: readonly number[]): number {
  const scale = Math.max(...want.map(Math.abs), 1e-6);
  return Math.max(...got.map((g, i) => Math.abs(g - want[i]) / scale));
}

test('REPAIR plan of a ViT with separate q/k/v: every MatMul+Add by a weight, the MLP hidden layers named by their GELU', () => {
  const plan = onnxRepairPlan(readOnnxFile(`${dir}vit_sep_a.onnx`).model);
  const matmuls = plan.layers.filter((l) => l.opType.startsWith('MatMul'));
  assert.deepEqual(
    matmuls.map((l) => l.bias),
    [0, 1].flatMap((b) => ['attn.q', 'attn.k', 'attn.v', 'attn.proj', 'mlp.fc1', 'mlp.fc2'].map((m) => `blocks.${b}.${m}.bias`)),
  );
  assert.deepEqual(
    matmuls.filter((l) => l.opType === 'MatMul+Add (GELU (Erf))').map((l) => l.bias),
    ['blocks.0.mlp.fc1.bias', 'blocks.1.mlp.fc1.bias'],
  );
  for (const l of matmuls) {
    assert.equal(l.axis, 1, `${l.name}: a MatMul weight is [in, out]`);
    assert.equal(l.unitAxis, -1, `${l.name}: tokens as rows`);
  }
  assert.deepEqual(plan.layers.filter((l) => !l.opType.startsWith('MatMul')).map((l) => l.opType), ['Conv']);
  // q·kᵀ and scores·v have no weight; the head's Gemm writes the logits.
  assert.equal(plan.skipped.filter((s) => /two activations/.test(s.reason)).length, 4);
  assert.ok(plan.skipped.some((s) => /head\/Gemm/.test(s.node) && /graph output/.test(s.reason)));
});

test('REPAIR plan of an nn.TransformerEncoderLayer ViT: linear1 (GELU) and linear2; the sequence-first in_proj and out_proj left alone', () => {
  const plan = onnxRepairPlan(readOnnxFile(`${dir}vit_fused_a.onnx`).model);
  assert.deepEqual(
    plan.skipped.filter((s) => /sequence-first/.test(s.reason)).map((s) => s.node),
    [0, 1].flatMap((b) => [`MatMul '/layers.${b}/self_attn/MatMul'`, `Gemm '/layers.${b}/self_attn/Gemm'`]),
  );
  assert.deepEqual(
    plan.layers.map((l) => [l.opType, l.bias]),
    [
      ['Conv', 'patch_embed.proj.bias'],
      ...[0, 1].flatMap((b) => [
        ['MatMul+Add (GELU (Erf))', `layers.${b}.linear1.bias`],
        ['MatMul+Add', `layers.${b}.linear2.bias`],
      ]),
    ],
  );
});

for (const style of ['sep', 'fused']) {
  test(`REPAIR of a merged ViT (${style}): every corrected unit's mean and std are the endpoints' interpolation, measured by ONNX Runtime`, async () => {
    const a = readOnnxFile(`${dir}vit_${style}_a.onnx`);
    const b = readOnnxFile(`${dir}vit_${style}_b.onnx`);
    const plan = onnxRepairPlan(a.model);
    const images = probeImages(PROBE, 7);
    const probe = { inputs: images, count: PROBE };
    const alpha = 0.3;
    const merged = interpolate(a.params, b.params, alpha);
    const { stats, dispose } = await onnxStats(a.model, plan.layers, probe);
    let repaired: Params;
    try {
      repaired = (await repairMerged({ merged, endpoints: [a.params, b.params], alpha, stats, layers: plan.layers })).params;
    } finally {
      await dispose();
    }
    const taps = plan.layers.map((l: OnnxRepairLayer) => ({ value: l.value, unitAxis: l.unitAxis }));
    const values = taps.map((t) => t.value);
    const [sa, sb, plain, fixed] = [
      await measured(a.model, a.params, taps, images),
      await measured(a.model, b.params, taps, images),
      await measured(a.model, merged, taps, images),
      await measured(a.model, repaired, taps, images),
    ];
    let plainOff = 0;
    for (const v of values) {
      const mean = sa[v].mean.map((m, c) => (1 - alpha) * m + alpha * sb[v].mean[c]);
      const std = sa[v].std.map((s, c) => (1 - alpha) * s + alpha * sb[v].std[c]);
      assert.ok(worstRelative(fixed[v].mean, mean) < 2e-4, `${v}: mean off by ${worstRelative(fixed[v].mean, mean)}`);
      assert.ok(worstRelative(fixed[v].std, std) < 2e-4, `${v}: std off by ${worstRelative(fixed[v].std, std)}`);
      plainOff = Math.max(plainOff, worstRelative(plain[v].std, std));
    }
    // The plain merge is far from the targets, so the agreement above is the repair's doing.
    assert.ok(plainOff > 0.05, `plain merge already within ${plainOff} of the targets`);
  });
}
