/**
 * Measuring on the committed real pair (PyTorch MLPs trained on Fashion-MNIST): the naive curve must equal
 * PyTorch's own interpolation of the state dicts, and weight matching must cut the barrier by a large factor.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { readOnnxFile } from '../src/io/onnx-file.js';
import { createOnnxRunner } from '../src/engine/onnx-runner.js';
import { specFromOnnx } from '../src/permutation-spec/onnx-graph.js';
import { alignmentReport } from '../src/pipeline/alignment-report.js';
import { sweep, barrierOf } from '../src/measure/barrier.js';
import { createOrtMatmul } from '../src/engine/ort-matmul.js';
import { loadIdxPair, loadFashionMnist, FASHION_MNIST_ROOT } from '../src/data/load.js';
import { sliceDataset } from '../src/data/dataset.js';

const dir = fileURLToPath(new URL('../../test/fixtures/models/', import.meta.url));
const expected = JSON.parse(readFileSync(`${dir}mlp_interp.expected.json`, 'utf8'));

function slice256() {
  return loadIdxPair(`${dir}fmnist_test256-images-idx3-ubyte.gz`, `${dir}fmnist_test256-labels-idx1-ubyte.gz`);
}

test('the naive interpolation curve of the real MLP pair equals PyTorch’s', async () => {
  const a = readOnnxFile(`${dir}mlp_a.onnx`);
  const b = readOnnxFile(`${dir}mlp_b.onnx`);
  const runner = await createOnnxRunner(a.model);
  const ds = slice256();
  const data = { inputs: ds.inputs, labels: ds.labels, count: ds.count };
  const curve = await sweep(a.params, b.params, 10, (p) => runner.evaluate(p, data));
  expected.test256.curve.forEach((want: { alpha: number; loss: number; accuracy: number }, i: number) => {
    assert.ok(Math.abs(curve[i].alpha - want.alpha) < 1e-12);
    assert.ok(Math.abs(curve[i].loss - want.loss) < 1e-4, `alpha ${want.alpha}: loss ${curve[i].loss} vs PyTorch ${want.loss}`);
    assert.equal(Math.round(curve[i].accuracy * 256), Math.round(want.accuracy * 256));
  });
  assert.ok(Math.abs(barrierOf(curve).loss - expected.test256.barrier) < 1e-4);
  await runner.dispose();
});

test('weight matching cuts the real MLP pair’s barrier by a large factor', async () => {
  const a = readOnnxFile(`${dir}mlp_a.onnx`);
  const b = readOnnxFile(`${dir}mlp_b.onnx`);
  const { spec, taps } = specFromOnnx(a.model);
  const runner = await createOnnxRunner(a.model, { taps });
  const full = existsSync(FASHION_MNIST_ROOT);
  // The whole test set when Debian's package is installed (the paper's setting), else the committed slice.
  const ds = full ? loadFashionMnist('test') : slice256();
  const data = { inputs: ds.inputs, labels: ds.labels, count: ds.count };
  const probeSet = sliceDataset(ds, 0, 256);
  const engine = await createOrtMatmul();
  const common = { a: a.params, b: b.params, spec, runner, data, probe: { inputs: probeSet.inputs, count: probeSet.count }, points: 10, seed: 0, engine };
  const weight = await alignmentReport({ ...common, method: 'weight' });
  const naiveBarrier = full ? expected.test.barrier : expected.test256.barrier;
  assert.ok(Math.abs(weight.naive.barrier.loss - naiveBarrier) < 1e-4, 'naive barrier as PyTorch measured it');
  // A large factor: the aligned barrier is under a quarter of the naive one ("collapsed").
  assert.ok(weight.aligned.barrier.loss < 0.25 * naiveBarrier, `aligned barrier ${weight.aligned.barrier.loss} vs naive ${naiveBarrier}`);
  assert.equal(weight.verdict, 'collapsed');
  assert.ok(weight.checks.every((c) => c.status !== 'FAIL'));
  // Activation matching on the same pair also reduces it (less reliably: assert only that it helps).
  const activation = await alignmentReport({ ...common, method: 'activation' });
  assert.ok(activation.aligned.barrier.loss < naiveBarrier);
  await runner.dispose();
});
