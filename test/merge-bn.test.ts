/**
 * REPAIR on ONNX graphs that keep their BatchNormalization nodes (test/fixtures/models/resnet_{a,b}.bn.onnx:
 * the committed ResNet pair exported with constant folding off): the fixtures match PyTorch, the spec and
 * the runner cope with them, and resetting the merged net's BN statistics lowers its loss.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { readOnnxFile } from '../src/io/onnx-file.js';
import { specFromOnnx } from '../src/permutation-spec/onnx-graph.js';
import { permSizes } from '../src/permutation-spec/spec.js';
import { createOnnxRunner } from '../src/engine/onnx-runner.js';
import { applyPermutation, randomPerms } from '../src/permute.js';
import { weightMatching } from '../src/match/weight-matching.js';
import { interpolate } from '../src/measure/barrier.js';
import { loadIdxPair } from '../src/data/load.js';
import { maxAbsDiff, type Params, type Tensor } from '../src/tensor.js';
import { onnxBatchNormPlan, onnxBatchNormStats, repairOnnxBatchNorm, hasBatchNorm, type OnnxBatchNormPlan } from '../src/merge/onnx-bn-repair.js';
import { onnxModelFromObject, type OnnxModel } from '../src/io/onnx.js';
import { createRng } from '../src/random.js';
import { targetStats } from '../src/merge/repair.js';

const dir = fileURLToPath(new URL('../../test/fixtures/models/', import.meta.url));
const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const sliceArg = `${dir}fmnist_test256-images-idx3-ubyte.gz,${dir}fmnist_test256-labels-idx1-ubyte.gz`;
const data = (() => {
  const ds = loadIdxPair(`${dir}fmnist_test256-images-idx3-ubyte.gz`, `${dir}fmnist_test256-labels-idx1-ubyte.gz`);
  return { inputs: ds.inputs, labels: ds.labels, count: ds.count };
})();
const probe = { inputs: data.inputs, count: data.count };

const a = readOnnxFile(`${dir}resnet_a.bn.onnx`);
const b = readOnnxFile(`${dir}resnet_b.bn.onnx`);

/** Mean cross-entropy of row-major logits [n, 10], in float64. */
function meanLoss(logits: Float32Array, labels: Int32Array): number {
  let loss = 0;
  for (let n = 0; n < labels.length; n++) {
    const row = logits.subarray(n * 10, n * 10 + 10);
    const m = Math.max(...row);
    loss += m + Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0)) - row[labels[n]];
  }
  return loss / labels.length;
}

/**
 * Per-channel mean and population variance of every BN's input under `params`, from one ORT run with the BN
 * inputs tapped: computed here ([N, C, H, W] → over N·H·W), independent of repair.ts's columnStats.
 */
async function preBnStats(model: OnnxModel, plan: OnnxBatchNormPlan, params: Params) {
  const taps = Object.fromEntries(plan.batchNorm.map((l) => [l.name, { value: l.value, axis: 1 }]));
  const runner = await createOnnxRunner(model, { taps });
  try {
    const acts = await runner.activations(params, probe);
    const out: Record<string, { mean: number[]; variance: number[] }> = {};
    for (const l of plan.batchNorm) {
      const { data: d, width } = acts[l.name];
      const rows = d.length / width;
      const mean = new Array<number>(width).fill(0);
      const sq = new Array<number>(width).fill(0);
      for (let r = 0; r < rows; r++) for (let c = 0; c < width; c++) mean[c] += d[r * width + c];
      for (let c = 0; c < width; c++) mean[c] /= rows;
      for (let r = 0; r < rows; r++) for (let c = 0; c < width; c++) sq[c] += (d[r * width + c] - mean[c]) ** 2;
      out[l.name] = { mean, variance: sq.map((s) => s / rows) };
    }
    return out;
  } finally {
    await runner.dispose();
  }
}

test('the .bn.onnx fixtures keep 9 BatchNormalization nodes and reproduce PyTorch’s logits in ONNX Runtime', async () => {
  for (const [f, name] of [[a, 'resnet_a'], [b, 'resnet_b']] as const) {
    assert.equal(f.model.graph.nodes.filter((n) => n.opType === 'BatchNormalization').length, 9);
    assert.ok(hasBatchNorm(f.model));
    const expected = JSON.parse(readFileSync(`${dir}${name}.expected.json`, 'utf8')) as { logits: number[][] };
    const session = await ort.InferenceSession.create(`${dir}${name}.bn.onnx`);
    const res = await session.run({ input: new ort.Tensor('float32', data.inputs.slice(0, 16 * 784), [16, 1, 28, 28]) });
    await session.release();
    const got = res.logits.data as Float32Array;
    assert.ok(maxAbsDiff(got, Float32Array.from(expected.logits.flat())) < 1e-4, `${name}.bn.onnx logits`);
  }
  // Folded and kept-BN exports are the same function.
  const folded = readOnnxFile(`${dir}resnet_a.onnx`);
  const [r1, r2] = [await createOnnxRunner(a.model), await createOnnxRunner(folded.model)];
  assert.ok(maxAbsDiff(await r1.outputs(a.params, probe), await r2.outputs(folded.params, probe)) < 1e-4);
  await r1.dispose();
  await r2.dispose();
});

test('specFromOnnx on the kept-BN graph: every BN tensor joins its channel permutation; a random permutation keeps the function', async () => {
  const { spec } = specFromOnnx(a.model);
  for (const n of a.model.graph.nodes.filter((x) => x.opType === 'BatchNormalization')) {
    for (const t of [n.inputs[1], n.inputs[3], n.inputs[4]]) assert.ok(spec.axesToPerm[t]?.[0], `${t} is not permuted`);
  }
  const perms = randomPerms(permSizes(spec, a.params), 11);
  const permuted = applyPermutation(spec, perms, a.params);
  assert.ok(maxAbsDiff(permuted['bn1.running_mean'].data, a.params['bn1.running_mean'].data) > 0, 'the permutation moved nothing');
  const runner = await createOnnxRunner(a.model);
  try {
    assert.ok(maxAbsDiff(await runner.outputs(permuted, probe), await runner.outputs(a.params, probe)) < 1e-4);
  } finally {
    await runner.dispose();
  }
});

test('the plan: every BN node in graph order with its input and its mean/var initializers; its convs are left to the BNs', () => {
  const plan = onnxBatchNormPlan(a.model);
  const bns = a.model.graph.nodes.filter((n) => n.opType === 'BatchNormalization');
  assert.deepEqual(plan.batchNorm.map((l) => [l.value, l.runningMean, l.runningVar]), bns.map((n) => [n.inputs[0], n.inputs[3], n.inputs[4]]));
  assert.ok(plan.batchNorm.every((l) => Math.abs(l.epsilon - 1e-5) < 1e-9));
  assert.equal(plan.layers.length, 0); // every Conv feeds a BN; the Gemm gives the logits
  assert.deepEqual(plan.steps.map((s) => s.layer.name), plan.batchNorm.map((l) => l.name));
  assert.deepEqual(plan.skipped.map((s) => s.node), [`Gemm '/linear/Gemm'`]);
});

test('BN reset: at α = 0 the stored statistics become the probe’s pre-BN statistics; at the aligned midpoint the loss drops', async () => {
  const plan = onnxBatchNormPlan(a.model);
  const { stats, dispose } = await onnxBatchNormStats(a.model, plan, probe);
  const runner = await createOnnxRunner(a.model);
  try {
    // α = 0: the merge is A. Sequential reset: measured under the final params in one pass (a reset only
    // changes later layers), every BN's stored mean/var are its input's probe mean/population variance.
    const r0 = await repairOnnxBatchNorm({ merged: a.params, endpoints: [a.params, a.params], alpha: 0, plan, stats });
    const measured = await preBnStats(a.model, plan, r0.params);
    for (const l of plan.batchNorm) {
      const { mean, variance } = measured[l.name];
      for (let c = 0; c < mean.length; c++) {
        assert.ok(Math.abs(r0.params[l.runningMean].data[c] - mean[c]) <= 1e-4 * Math.max(1, Math.abs(mean[c])), `${l.name} mean[${c}]`);
        assert.ok(Math.abs(r0.params[l.runningVar].data[c] - variance[c]) <= 1e-3 * Math.max(1, variance[c]), `${l.name} var[${c}]`);
      }
    }
    // Only mean/var changed; A's function moves only as far as the probe's statistics differ from the
    // training set's running ones.
    const statNames = new Set(plan.batchNorm.flatMap((l) => [l.runningMean, l.runningVar]));
    for (const k of Object.keys(a.params)) if (!statNames.has(k)) assert.equal(r0.params[k], a.params[k], k);
    const lossA = (await runner.evaluate(a.params, data)).loss;
    const lossA0 = (await runner.evaluate(r0.params, data)).loss;
    let drift = 0;
    for (const l of plan.batchNorm) drift = Math.max(drift, maxAbsDiff(r0.params[l.runningMean].data, a.params[l.runningMean].data));
    console.log(`A: loss ${lossA.toFixed(4)}; with its BN statistics reset on the 256-image probe ${lossA0.toFixed(4)} (max mean drift ${drift.toFixed(3)})`);
    assert.ok(drift > 0);
    // A was trained for 2 epochs: its running statistics (momentum 0.1) lag its final weights, so statistics
    // measured on data (here the evaluation slice itself) do not hurt it; they help.
    assert.ok(lossA0 <= lossA + 0.02, `resetting A's statistics moved its loss from ${lossA} to ${lossA0}`);
    // Reset statistics are a fixed point: resetting again leaves them (float32 passes: to 1e-5).
    const again = await repairOnnxBatchNorm({ merged: r0.params, endpoints: [a.params, a.params], alpha: 0, plan, stats });
    for (const k of statNames) assert.ok(maxAbsDiff(again.params[k].data, r0.params[k].data) <= 1e-5 * Math.max(1, ...r0.params[k].data.map(Math.abs)), k);

    // The aligned midpoint, with its averaged statistics, and with them reset.
    const { spec } = specFromOnnx(a.model);
    const { perms } = await weightMatching({ spec, paramsA: a.params, paramsB: b.params });
    const pb = applyPermutation(spec, perms, b.params);
    const merged = interpolate(a.params, pb, 0.5);
    const r = await repairOnnxBatchNorm({ merged, endpoints: [a.params, pb], alpha: 0.5, plan, stats });
    const plain = await runner.evaluate(merged, data);
    const reset = await runner.evaluate(r.params, data);
    console.log(`aligned midpoint: loss ${plain.loss.toFixed(4)} (acc ${(100 * plain.accuracy).toFixed(1)}%) -> BN statistics reset ${reset.loss.toFixed(4)} (acc ${(100 * reset.accuracy).toFixed(1)}%)`);
    assert.ok(reset.loss < plain.loss - 0.3, `reset midpoint loss ${reset.loss} vs ${plain.loss}`);
    assert.ok(reset.accuracy > plain.accuracy);
    // Variance collapse: the merged net's pre-BN activations vary less than the averaged statistics say.
    assert.ok(r.corrections.every((c) => c.meanScale > 1), JSON.stringify(r.corrections.map((c) => c.meanScale)));
  } finally {
    await dispose();
    await runner.dispose();
  }
});

test('CLI: merge --repair on the kept-BN pair resets only the BN statistics and writes a model whose ORT loss is the reported one', async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'rebasin-merge-bn-'));
  const run = (args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
  try {
    const out = join(tmp, 'repaired.onnx');
    const plainOut = join(tmp, 'plain.onnx');
    const r = run(['merge', `${dir}resnet_a.bn.onnx`, `${dir}resnet_b.bn.onnx`, '-o', out, '--repair', '--data', sliceArg, '--json']);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(run(['merge', `${dir}resnet_a.bn.onnx`, `${dir}resnet_b.bn.onnx`, '-o', plainOut]).status, 0);
    const j = JSON.parse(r.stdout);
    assert.equal(j.repair.corrections.length, 9);
    const byLabel = Object.fromEntries(j.evaluation.map((e: { label: string; loss: number }) => [e.label, e.loss]));
    assert.ok(byLabel['merged + repair'] < byLabel['merged (before repair)']);

    const repaired = readOnnxFile(out);
    const plain = readOnnxFile(plainOut);
    const plan = onnxBatchNormPlan(repaired.model);
    const statNames = new Set(plan.batchNorm.flatMap((l) => [l.runningMean, l.runningVar]));
    for (const k of Object.keys(plain.params)) {
      const d = maxAbsDiff(repaired.params[k].data, plain.params[k].data);
      if (statNames.has(k)) assert.ok(d > 1e-3, `${k} unchanged`);
      else assert.equal(d, 0, `${k} changed`);
    }
    const session = await ort.InferenceSession.create(out);
    const res = await session.run({ input: new ort.Tensor('float32', data.inputs, [data.count, 1, 28, 28]) });
    await session.release();
    const loss = meanLoss(res.logits.data as Float32Array, data.labels);
    assert.ok(Math.abs(loss - byLabel['merged + repair']) < 1e-4, `ORT loss ${loss} vs reported ${byLabel['merged + repair']}`);

    // barrier --repair takes the same path: the repaired midpoint beats the aligned one.
    const bar = run(['barrier', `${dir}resnet_a.bn.onnx`, `${dir}resnet_b.bn.onnx`, '--data', sliceArg, '--align', '--repair', '--points', '2', '--probe', '128', '--json']);
    assert.equal(bar.status, 0, bar.stderr);
    const bj = JSON.parse(bar.stdout);
    assert.equal(bj.repaired.midpoint.without.loss, bj.aligned.curve[1].loss);
    assert.ok(bj.repaired.midpoint.with.loss < bj.repaired.midpoint.without.loss);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

/** x → c1(bias) → bn1 → Relu → c2(bias) → Relu → c3(bias) → bn2 → GAP → Flatten → Gemm: BNs beside a folded conv. */
function mixedNet(seed: number): { model: OnnxModel; params: Params } {
  const rng = createRng(seed);
  const shapes: Record<string, number[]> = {
    'c1.w': [4, 2, 3, 3], 'c1.b': [4], 'bn1.s': [4], 'bn1.b': [4], 'bn1.m': [4], 'bn1.v': [4],
    'c2.w': [5, 4, 3, 3], 'c2.b': [5], 'c3.w': [3, 5, 1, 1], 'c3.b': [3], 'bn2.s': [3], 'bn2.b': [3], 'bn2.m': [3], 'bn2.v': [3],
    'fc.w': [3, 2], 'fc.b': [2],
  };
  const params: Record<string, Tensor> = {};
  const initializer = Object.entries(shapes).map(([name, shape]) => {
    const data = Float32Array.from({ length: shape.reduce((x, y) => x * y, 1) }, () => (name.endsWith('.v') ? 0.5 + rng.next() : rng.normal() * 0.5));
    params[name] = { shape, data };
    return { name, dims: shape, data_type: 1, raw_data: new Uint8Array(data.buffer.slice(0)) };
  });
  const pads = { name: 'pads', type: 7, ints: [1, 1, 1, 1] };
  const vi = (name: string, dims: (number | string)[]) => ({ name, type: { tensor_type: { elem_type: 1, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: d })) } } } });
  const node = [
    { name: 'c1', op_type: 'Conv', input: ['x', 'c1.w', 'c1.b'], output: ['c1o'], attribute: [pads] },
    { name: 'bn1', op_type: 'BatchNormalization', input: ['c1o', 'bn1.s', 'bn1.b', 'bn1.m', 'bn1.v'], output: ['bn1o'] },
    { name: 'r1', op_type: 'Relu', input: ['bn1o'], output: ['r1o'] },
    { name: 'c2', op_type: 'Conv', input: ['r1o', 'c2.w', 'c2.b'], output: ['c2o'], attribute: [pads] },
    { name: 'r2', op_type: 'Relu', input: ['c2o'], output: ['r2o'] },
    { name: 'c3', op_type: 'Conv', input: ['r2o', 'c3.w', 'c3.b'], output: ['c3o'] },
    { name: 'bn2', op_type: 'BatchNormalization', input: ['c3o', 'bn2.s', 'bn2.b', 'bn2.m', 'bn2.v'], output: ['bn2o'] },
    { name: 'gap', op_type: 'GlobalAveragePool', input: ['bn2o'], output: ['gapo'] },
    { name: 'fl', op_type: 'Flatten', input: ['gapo'], output: ['flo'] },
    { name: 'fc', op_type: 'Gemm', input: ['flo', 'fc.w', 'fc.b'], output: ['y'] },
  ];
  const model = onnxModelFromObject(
    { ir_version: 8, opset_import: [{ domain: '', version: 13 }], graph: { name: 'mixed', node, initializer, input: [vi('x', ['N', 2, 6, 6])], output: [vi('y', ['N', 2])] } },
    'mixed',
  );
  return { model, params };
}

test('a graph with BNs beside a BN-less conv: BN resets and REPAIR interleave in graph order, each hitting its target', async () => {
  const { model, params: pa } = mixedNet(1);
  const pb = mixedNet(2).params;
  const plan = onnxBatchNormPlan(model);
  // c1 and c3 feed only BNs; c2 (bias, then Relu) is corrected by REPAIR; the Gemm gives the logits.
  assert.deepEqual(plan.steps.map((st) => `${st.kind}:${st.layer.name}`), ['batchnorm:bn1', 'repair:c2o', 'batchnorm:bn2']);
  assert.deepEqual(plan.skipped.map((st) => st.node), [`Gemm 'fc'`]);
  const rng = createRng(3);
  const localProbe = { inputs: Float32Array.from({ length: 40 * 72 }, () => rng.normal()), count: 40 };
  const { stats, dispose } = await onnxBatchNormStats(model, plan, localProbe);
  try {
    const ends = [await stats(pa), await stats(pb)];
    const r = await repairOnnxBatchNorm({ merged: interpolate(pa, pb, 0.5), endpoints: [pa, pb], alpha: 0.5, plan, stats });
    const after = await stats(r.params);
    // bn2 comes after c2: its statistics are those of the corrected c2, so all hold at once.
    for (const l of plan.batchNorm) {
      const m = after[l.name];
      for (let c = 0; c < m.mean.length; c++) {
        assert.ok(Math.abs(r.params[l.runningMean].data[c] - m.mean[c]) <= 1e-4 * Math.max(1, Math.abs(m.mean[c])), `${l.name} mean[${c}]`);
        assert.ok(Math.abs(r.params[l.runningVar].data[c] - m.std[c] ** 2) <= 1e-3 * Math.max(1, m.std[c] ** 2), `${l.name} var[${c}]`);
      }
    }
    const t = targetStats(ends, [0.5, 0.5], 'c2o');
    for (let c = 0; c < t.mean.length; c++) {
      assert.ok(Math.abs(after.c2o.mean[c] - t.mean[c]) <= 2e-3 * Math.max(1, Math.abs(t.mean[c])), `c2o mean[${c}]`);
      assert.ok(Math.abs(after.c2o.std[c] - t.std[c]) <= 2e-3 * Math.max(1, t.std[c]), `c2o std[${c}]`);
    }
    assert.equal(r.corrections.length, 3);
  } finally {
    await dispose();
  }
});
