/**
 * Merging that holds up: MergeMany (N models into one basin) and REPAIR (renormalising the merged net),
 * checked against exact identities (permuted copies merge back to the model; a corrected layer has exactly
 * the target statistics; α = 0 changes nothing) and against ONNX Runtime's measurements on the real ResNet
 * pair (repair must lower the aligned midpoint's loss).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { readOnnxFile } from '../src/io/onnx-file.js';
import { readSafetensorsFile } from '../src/io/safetensors-fs.js';
import { toParams } from '../src/io/safetensors.js';
import { specFromOnnx } from '../src/permutation-spec/onnx-graph.js';
import { permSizes } from '../src/permutation-spec/spec.js';
import { createOnnxRunner } from '../src/engine/onnx-runner.js';
import { jsMatmul } from '../src/engine/matmul.js';
import { applyPermutation, randomPerms, isIdentity } from '../src/permute.js';
import { weightMatching } from '../src/match/weight-matching.js';
import { interpolate, sweep, barrierOf } from '../src/measure/barrier.js';
import { loadIdxPair } from '../src/data/load.js';
import { maxAbsDiff, type Params, type Tensor } from '../src/tensor.js';
import { mergeMany, averageParams } from '../src/merge/merge-many.js';
import { columnStats, correctLayer, repairMerged, targetStats, type LayerStats, type StatsFn } from '../src/merge/repair.js';
import { onnxRepairPlan, onnxStats } from '../src/merge/onnx-repair.js';
import { mlpRepairPlan, mlpStats } from '../src/merge/mlp-repair.js';
import { repairedSweep } from '../src/merge/repair-sweep.js';
import { resetBatchNormStats } from '../src/merge/batchnorm.js';
import { createRng } from '../src/random.js';

const dir = fileURLToPath(new URL('../../test/fixtures/models/', import.meta.url));
const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const sliceArg = `${dir}fmnist_test256-images-idx3-ubyte.gz,${dir}fmnist_test256-labels-idx1-ubyte.gz`;

function slice256() {
  const ds = loadIdxPair(`${dir}fmnist_test256-images-idx3-ubyte.gz`, `${dir}fmnist_test256-labels-idx1-ubyte.gz`);
  return { inputs: ds.inputs, labels: ds.labels, count: ds.count };
}

function probeOf(n: number) {
  const d = slice256();
  return { inputs: d.inputs.subarray(0, n * 784), count: n };
}

function maxParamDiff(a: Params, b: Params): number {
  let m = 0;
  for (const k of Object.keys(a)) m = Math.max(m, maxAbsDiff(a[k].data, b[k].data));
  return m;
}

function relClose(a: Float64Array, b: Float64Array, tol: number, what: string): void {
  for (let i = 0; i < a.length; i++) {
    assert.ok(Math.abs(a[i] - b[i]) <= tol * Math.max(1, Math.abs(b[i])), `${what}[${i}]: ${a[i]} vs ${b[i]}`);
  }
}

// ---------------------------------------------------------------------------------------------- statistics

test('columnStats: mean and population std per column, and a constant column has std 0', () => {
  // Columns: [1, 2, 3, 4] (mean 2.5, var 1.25) and a constant 7.
  const data = Float32Array.from([1, 7, 2, 7, 3, 7, 4, 7]);
  const s = columnStats(data, 4, 2);
  assert.deepEqual(Array.from(s.mean), [2.5, 7]);
  assert.ok(Math.abs(s.std[0] - Math.sqrt(1.25)) < 1e-12);
  assert.equal(s.std[1], 0);
});

/**
 * A linear layer y = β·b + W·x evaluated in float64 for random inputs, with W's output units on `axis`
 * (0: W is [out, in]; 1: W is [in, out]).
 */
function linearStats(w: Tensor, b: Tensor, axis: number, beta: number, x: Float64Array, rows: number): LayerStats {
  const [d0, d1] = w.shape;
  const [outN, inN] = axis === 0 ? [d0, d1] : [d1, d0];
  const y = new Float32Array(rows * outN);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < outN; o++) {
      let s = beta * b.data[o];
      for (let i = 0; i < inN; i++) s += (axis === 0 ? w.data[o * inN + i] : w.data[i * outN + o]) * x[r * inN + i];
      y[r * outN + o] = s;
    }
  }
  return { layer: columnStats(y, rows, outN) };
}

test('correctLayer: the corrected layer’s outputs have exactly the target mean and std (both weight layouts, any bias multiplier)', () => {
  const rng = createRng(3);
  for (const [axis, beta] of [[0, 1], [1, 1], [1, 0.5], [0, -2]] as const) {
    const [outN, inN, rows] = [5, 4, 200];
    const shape = axis === 0 ? [outN, inN] : [inN, outN];
    const w: Tensor = { shape, data: Float32Array.from({ length: outN * inN }, () => rng.normal()) };
    const b: Tensor = { shape: [outN], data: Float32Array.from({ length: outN }, () => rng.normal()) };
    const x = Float64Array.from({ length: rows * inN }, () => rng.normal() + 0.3);
    const params = { w, b };
    const before = linearStats(w, b, axis, beta, x, rows).layer;
    const target = { mean: Float64Array.from({ length: outN }, () => rng.normal()), std: Float64Array.from({ length: outN }, () => 0.1 + rng.next()) };
    const { params: fixed, correction } = correctLayer(params, { name: 'layer', weight: 'w', bias: 'b', axis, biasScale: beta }, before, target);
    const after = linearStats(fixed.w, fixed.b, axis, beta, x, rows).layer;
    relClose(after.mean, target.mean, 1e-5, `axis ${axis} beta ${beta} mean`);
    relClose(after.std, target.std, 1e-5, `axis ${axis} beta ${beta} std`);
    assert.equal(correction.deadUnits, 0);
    // Inputs are never modified.
    assert.equal(params.w, w);
    assert.notEqual(fixed.w.data, w.data);
  }
});

test('targetStats interpolates the endpoints’ means and stds', () => {
  const s = (m: number[], d: number[]): LayerStats => ({ l: { mean: Float64Array.from(m), std: Float64Array.from(d) } });
  const t = targetStats([s([0, 2], [1, 4]), s([4, 2], [3, 0])], [0.75, 0.25], 'l');
  assert.deepEqual(Array.from(t.mean), [1, 2]);
  assert.deepEqual(Array.from(t.std), [1.5, 3]);
});

// ------------------------------------------------------------------------------------------------ MergeMany

for (const name of ['mlp_a', 'resnet_a']) {
  test(`MergeMany: 3 randomly permuted copies of ${name} merge back to its function (both initialisations)`, async () => {
    const m = readOnnxFile(`${dir}${name}.onnx`);
    const { spec } = specFromOnnx(m.model);
    const sizes = permSizes(spec, m.params);
    const models = [11, 12, 13].map((s) => applyPermutation(spec, randomPerms(sizes, s), m.params));
    const runner = await createOnnxRunner(m.model);
    const probe = probeOf(64);
    const want = await runner.outputs(m.params, probe);
    for (const init of ['identity', 'first'] as const) {
      const r = await mergeMany({ spec, models, init, seed: 5 });
      assert.ok(r.converged, `${init}: converged in ${r.iterations} rounds`);
      // Model 0 fixes the basin; every copy lands exactly on it.
      assert.ok(Object.values(r.perms[0]).every(isIdentity));
      for (let i = 1; i < 3; i++) assert.equal(maxParamDiff(models[0], applyPermutation(spec, r.perms[i], models[i])), 0, `${init}: copy ${i} aligned exactly`);
      const got = await runner.outputs(r.merged, probe);
      assert.ok(maxAbsDiff(got, want) < 1e-4, `${init}: merged outputs differ by ${maxAbsDiff(got, want)}`);
    }
    await runner.dispose();
  });
}

test('MergeMany of three different real MLPs beats their naive average; per-model and merged accuracy', async () => {
  const a = readOnnxFile(`${dir}mlp_a.onnx`);
  const b = readOnnxFile(`${dir}mlp_b.onnx`);
  const { spec } = specFromOnnx(a.model);
  // A third model: the midpoint of A and aligned B, randomly permuted (so the three start in different bases).
  const { perms } = await weightMatching({ spec, paramsA: a.params, paramsB: b.params });
  const mid = interpolate(a.params, applyPermutation(spec, perms, b.params), 0.5);
  const c = applyPermutation(spec, randomPerms(permSizes(spec, a.params), 99), mid);
  const models = [a.params, b.params, c];
  const r = await mergeMany({ spec, models, seed: 1 });
  const runner = await createOnnxRunner(a.model);
  const data = slice256();
  const each = await Promise.all(models.map((p) => runner.evaluate(p, data)));
  const merged = await runner.evaluate(r.merged, data);
  const naive = await runner.evaluate(averageParams(models), data);
  console.log(`per model ${each.map((e) => `${e.loss.toFixed(4)}/${(100 * e.accuracy).toFixed(1)}%`).join(', ')}; MergeMany ${merged.loss.toFixed(4)}/${(100 * merged.accuracy).toFixed(1)}% (${r.iterations} rounds); naive average ${naive.loss.toFixed(4)}/${(100 * naive.accuracy).toFixed(1)}%`);
  assert.ok(merged.loss < naive.loss, `MergeMany loss ${merged.loss} vs naive ${naive.loss}`);
  assert.ok(merged.accuracy > naive.accuracy);
  await runner.dispose();
});

// --------------------------------------------------------------------------------------------------- REPAIR

async function resnetPair() {
  const a = readOnnxFile(`${dir}resnet_a.onnx`);
  const b = readOnnxFile(`${dir}resnet_b.onnx`);
  const { spec } = specFromOnnx(a.model);
  const { perms } = await weightMatching({ spec, paramsA: a.params, paramsB: b.params });
  return { a, b, spec, pb: applyPermutation(spec, perms, b.params) };
}

test('the ResNet’s repair plan: every BN-folded conv, not the logits Gemm', () => {
  const a = readOnnxFile(`${dir}resnet_a.onnx`);
  const plan = onnxRepairPlan(a.model);
  const convs = a.model.graph.nodes.filter((n) => n.opType === 'Conv');
  assert.deepEqual(plan.layers.map((l) => l.weight), convs.map((n) => n.inputs[1]));
  assert.deepEqual(plan.layers.map((l) => l.value), convs.map((n) => n.outputs[0]));
  assert.ok(plan.layers.every((l) => l.axis === 0));
  assert.equal(plan.skipped.length, 1);
  assert.match(plan.skipped[0].reason, /graph output/);
});

test('REPAIR on the real ResNet pair: α = 0 changes nothing; sequential repair hits every target; it lowers the aligned midpoint loss', async () => {
  const { a, pb } = await resnetPair();
  const plan = onnxRepairPlan(a.model);
  const probe = probeOf(128);
  const { stats, dispose } = await onnxStats(a.model, plan.layers, probe);
  try {
    // α = 0: the merged net is A, whose statistics are the targets: every scale is 1, every shift 0.
    const r0 = await repairMerged({ merged: a.params, endpoints: [a.params, pb], alpha: 0, stats, layers: plan.layers });
    assert.ok(maxParamDiff(r0.params, a.params) < 1e-6, `α = 0 moved params by ${maxParamDiff(r0.params, a.params)}`);

    const ends = [await stats(a.params), await stats(pb)];
    const merged = interpolate(a.params, pb, 0.5);
    const r = await repairMerged({ merged, endpoints: [a.params, pb], alpha: 0.5, stats, layers: plan.layers, endpointStats: ends });
    // Later corrections do not change earlier layers' inputs, so after the sequential pass every layer's
    // output statistics are its targets (float32 forward passes: to 1e-3 relative).
    const after = await stats(r.params);
    for (const l of plan.layers) {
      const t = targetStats(ends, [0.5, 0.5], l.name);
      relClose(after[l.name].mean, t.mean, 2e-3, `${l.name} mean`);
      relClose(after[l.name].std, t.std, 2e-3, `${l.name} std`);
    }
    // The interpolated net had collapsed variance: it was scaled up on average.
    assert.ok(r.corrections.every((c) => c.meanScale > 1), JSON.stringify(r.corrections.map((c) => c.meanScale)));
  } finally {
    await dispose();
  }

  // The measured curves, without and with repair, on the 256-image slice (probe: its first 128 images).
  const runner = await createOnnxRunner(a.model);
  const data = slice256();
  const evaluate = (p: Params) => runner.evaluate(p, data);
  const plain = await sweep(a.params, pb, 2, evaluate);
  const rs = await onnxStats(a.model, plan.layers, probe);
  const repaired = await repairedSweep({ a: a.params, b: pb, points: 2, evaluate, stats: rs.stats, layers: plan.layers });
  await rs.dispose();
  console.log(`ResNet aligned midpoint: loss ${plain[1].loss.toFixed(4)} (acc ${(100 * plain[1].accuracy).toFixed(1)}%) -> with repair ${repaired[1].loss.toFixed(4)} (acc ${(100 * repaired[1].accuracy).toFixed(1)}%)`);
  assert.equal(repaired[0].loss, plain[0].loss);
  assert.equal(repaired[2].loss, plain[2].loss);
  assert.ok(repaired[1].loss < plain[1].loss, `repaired midpoint loss ${repaired[1].loss} vs aligned ${plain[1].loss}`);
  assert.ok(barrierOf(repaired).loss < barrierOf(plain).loss);
  await runner.dispose();
});

test('MLP repair statistics (plain JS forward) agree with ONNX Runtime’s on the same model', async () => {
  const onnx = readOnnxFile(`${dir}mlp_a.onnx`);
  const st = toParams(readSafetensorsFile(`${dir}mlp_a.safetensors`)).params;
  const probe = probeOf(64);
  const arch = { layers: [1, 2, 3].map((i) => ({ weight: `fc${i}.weight`, bias: `fc${i}.bias` })) };
  const mlpPlan = mlpRepairPlan(arch);
  const onnxPlan = onnxRepairPlan(onnx.model);
  assert.deepEqual(mlpPlan.layers.map((l) => l.weight), ['fc1.weight', 'fc2.weight']);
  assert.deepEqual(onnxPlan.layers.map((l) => l.weight), ['fc1.weight', 'fc2.weight']);
  assert.deepEqual(onnxPlan.layers.map((l) => l.axis), [0, 0]); // Gemm with transB = 1
  const js = await mlpStats(arch, mlpPlan.layers, probe, jsMatmul)(st);
  const o = await onnxStats(onnx.model, onnxPlan.layers, probe);
  const ortStats = await o.stats(onnx.params);
  await o.dispose();
  mlpPlan.layers.forEach((l, i) => {
    relClose(js[l.name].mean, ortStats[onnxPlan.layers[i].name].mean, 1e-4, `${l.name} mean`);
    relClose(js[l.name].std, ortStats[onnxPlan.layers[i].name].std, 1e-4, `${l.name} std`);
  });
});

test('oneshot repair measures once; sequential once per layer', async () => {
  let calls = 0;
  const stats: StatsFn = async () => {
    calls++;
    return { l1: { mean: Float64Array.from([1]), std: Float64Array.from([2]) }, l2: { mean: Float64Array.from([0]), std: Float64Array.from([1]) } };
  };
  const p: Params = { w1: { shape: [1, 1], data: Float32Array.from([1]) }, b1: { shape: [1], data: Float32Array.from([0]) }, w2: { shape: [1, 1], data: Float32Array.from([1]) }, b2: { shape: [1], data: Float32Array.from([0]) } };
  const layers = [{ name: 'l1', weight: 'w1', bias: 'b1', axis: 0 }, { name: 'l2', weight: 'w2', bias: 'b2', axis: 0 }];
  for (const [mode, want] of [['oneshot', 1], ['sequential', 2]] as const) {
    calls = 0;
    await repairMerged({ merged: p, endpoints: [p, p], alpha: 0.5, stats, layers, mode, endpointStats: [await stats(p), await stats(p)] });
    assert.equal(calls - 2, want, mode);
  }
});

// ------------------------------------------------------------------------------------------------------ CLI

function run(args: string[]) {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('CLI: merge --repair writes an ONNX model that ONNX Runtime loads and that beats the unrepaired merge; barrier --repair reports both curves', async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'rebasin-merge-'));
  try {
    const out = join(tmp, 'merged.onnx');
    const r = run(['merge', `${dir}resnet_a.onnx`, `${dir}resnet_b.onnx`, '-o', out, '--repair', '--data', sliceArg, '--probe', '128', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.equal(j.repair.corrections.length, 9);
    const byLabel = Object.fromEntries(j.evaluation.map((e: { label: string; loss: number }) => [e.label, e.loss]));
    const session = await ort.InferenceSession.create(out);
    const data = slice256();
    const res = await session.run({ input: new ort.Tensor('float32', data.inputs, [data.count, 1, 28, 28]) });
    await session.release();
    // The written file, run by ORT itself: its loss is what the command reported for 'merged + repair'.
    const logits = res.logits.data as Float32Array;
    let loss = 0;
    for (let n = 0; n < data.count; n++) {
      const row = logits.subarray(n * 10, n * 10 + 10);
      const m = Math.max(...row);
      const lse = m + Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0));
      loss += lse - row[data.labels[n]];
    }
    loss /= data.count;
    assert.ok(Math.abs(loss - byLabel['merged + repair']) < 1e-4, `ORT loss ${loss} vs reported ${byLabel['merged + repair']}`);
    assert.ok(byLabel['merged + repair'] < byLabel['merged (before repair)']);

    const bar = run(['barrier', `${dir}resnet_a.onnx`, `${dir}resnet_b.onnx`, '--data', sliceArg, '--align', '--repair', '--points', '2', '--probe', '64', '--json']);
    assert.equal(bar.code, 0, bar.stderr);
    const bj = JSON.parse(bar.stdout);
    assert.equal(bj.repaired.of, 'aligned');
    assert.equal(bj.repaired.curve.length, 3);
    assert.equal(bj.repaired.midpoint.without.loss, bj.aligned.curve[1].loss);
    assert.ok(bj.repaired.midpoint.with.loss < bj.repaired.midpoint.without.loss);

    // Three models: MergeMany, with per-model and merged evaluation.
    const three = run(['merge', `${dir}mlp_a.onnx`, `${dir}mlp_b.onnx`, `${dir}mlp_a.onnx`, '-o', join(tmp, 'three.onnx'), '--data', sliceArg, '--json']);
    assert.equal(three.code, 0, three.stderr);
    const tj = JSON.parse(three.stdout);
    assert.match(tj.how, /MergeMany/);
    assert.deepEqual(tj.evaluation.map((e: { label: string }) => e.label), [`${dir}mlp_a.onnx`, `${dir}mlp_b.onnx`, `${dir}mlp_a.onnx`, 'merged']);
    assert.ok(tj.evaluation.every((e: { accuracy: number }) => e.accuracy > 0.5));

    // A safetensors ResNet has BatchNorm but no graph to run: refused with one clear line, nothing written.
    const bad = run(['merge', `${dir}resnet_a.safetensors`, `${dir}resnet_b.safetensors`, '-o', join(tmp, 'x.safetensors'), '--repair', '--data', sliceArg]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /running_mean.*no graph/);
    const noData = run(['merge', `${dir}mlp_a.onnx`, `${dir}mlp_b.onnx`, '-o', join(tmp, 'y.onnx'), '--repair']);
    assert.equal(noData.code, 2);
    assert.match(noData.stderr, /--repair needs --data/);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

// ------------------------------------------------------------------------------------- BatchNorm state dicts

test('resetBatchNormStats: every BN’s running stats become its pre-BN statistics under the reset net', async () => {
  // x → W1 → BN1 → ReLU → W2 → BN2, eval mode, written out here as the evaluator.
  const rng = createRng(8);
  const [inN, h, outN, rows] = [3, 4, 2, 50];
  const t = (shape: number[], f: () => number): Tensor => ({ shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, f) });
  const params: Params = {
    w1: t([h, inN], () => rng.normal()), g1: t([h], () => 1 + rng.next()), b1: t([h], () => rng.normal()), m1: t([h], () => 5), v1: t([h], () => 9),
    w2: t([outN, h], () => rng.normal()), g2: t([outN], () => 1), b2: t([outN], () => 0), m2: t([outN], () => -3), v2: t([outN], () => 0.1),
  };
  const x = Float32Array.from({ length: rows * inN }, () => rng.normal());
  const linear = (inp: Float32Array, w: Tensor, n: number, k: number) => {
    const y = new Float32Array(rows * n);
    for (let r = 0; r < rows; r++) for (let o = 0; o < n; o++) for (let i = 0; i < k; i++) y[r * n + o] += w.data[o * k + i] * inp[r * k + i];
    return y;
  };
  const bn = (y: Float32Array, p: Params, g: string, b: string, m: string, v: string, n: number) =>
    y.map((val, i) => p[g].data[i % n] * (val - p[m].data[i % n]) / Math.sqrt(p[v].data[i % n] + 1e-5) + p[b].data[i % n]);
  const stats: StatsFn = async (p) => {
    const pre1 = linear(x, p.w1, h, inN);
    const a1 = bn(pre1, p, 'g1', 'b1', 'm1', 'v1', h).map((v) => Math.max(0, v));
    const pre2 = linear(a1, p.w2, outN, h);
    return { bn1: columnStats(pre1, rows, h), bn2: columnStats(pre2, rows, outN) };
  };
  const layers = [{ name: 'bn1', runningMean: 'm1', runningVar: 'v1' }, { name: 'bn2', runningMean: 'm2', runningVar: 'v2' }];
  const reset = await resetBatchNormStats({ params, layers, stats, samples: rows });
  const after = await stats(reset);
  for (const [l, m, v] of [['bn1', 'm1', 'v1'], ['bn2', 'm2', 'v2']]) {
    relClose(Float64Array.from(reset[m].data), after[l].mean, 1e-5, `${l} mean`);
    relClose(Float64Array.from(reset[v].data), after[l].std.map((s) => (s * s * rows) / (rows - 1)), 1e-5, `${l} var`);
  }
  assert.equal(params.m1.data[0], 5); // input untouched
});
