/**
 * Evaluation on constant-weight sessions, the sweep's reuse of known endpoints, and per-batch progress.
 * Oracles: the weight-fed session (the path outputs() and activations() take, an independent graph build),
 * PyTorch's losses stored with the fixtures, and counts of the passes made.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createOnnxRunner } from '../src/engine/onnx-runner.js';
import { readOnnxFile } from '../src/io/onnx-file.js';
import { onnxParams } from '../src/io/onnx.js';
import { loadIdxPair } from '../src/data/load.js';
import { interpolate, sweep, type Evaluation } from '../src/measure/barrier.js';
import { alignmentReport } from '../src/pipeline/alignment-report.js';
import { specFromOnnx } from '../src/permutation-spec/onnx-graph.js';
import type { LabelledData, ModelRunner } from '../src/measure/runner.js';
import type { Params } from '../src/tensor.js';

const MODELS = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', 'test', 'fixtures', 'models');
const at = (name: string): string => join(MODELS, name);
const slice = loadIdxPair(at('fmnist_test256-images-idx3-ubyte.gz'), at('fmnist_test256-labels-idx1-ubyte.gz'));
const data: LabelledData = { inputs: slice.inputs, labels: slice.labels, count: slice.count };
const torch256 = (name: string): Evaluation => (JSON.parse(readFileSync(at(`${name}.expected.json`), 'utf8')) as { test256: Evaluation }).test256;

for (const name of ['resnet', 'resnet_bn', 'mlp'] as const) {
  test(`${name}: evaluate on constant weights gives the weight-fed session's numbers, and PyTorch's at the endpoints`, async () => {
    const [fa, fb] = name === 'resnet_bn' ? ['resnet_a.bn.onnx', 'resnet_b.bn.onnx'] : [`${name}_a.onnx`, `${name}_b.onnx`];
    const a = readOnnxFile(at(fa)).model;
    const b = readOnnxFile(at(fb)).model;
    const pa = onnxParams(a);
    const pb = onnxParams(b);
    const constant = await createOnnxRunner(a, { batchSize: 100 });
    const fed = await createOnnxRunner(a, { batchSize: 100, constantWeights: false });
    try {
      // Interpolated weights are what a sweep evaluates: a session that kept A's weights would fail here.
      for (const [label, params] of [['A', pa], ['B', pb], ['mid', interpolate(pa, pb, 0.5)], ['0.25', interpolate(pa, pb, 0.25)]] as [string, Params][]) {
        const got = await constant.evaluate(params, data);
        const want = await fed.evaluate(params, data);
        assert.ok(Math.abs(got.loss - want.loss) < 1e-5 * Math.max(1, want.loss), `${label}: loss ${got.loss} vs fed ${want.loss}`);
        assert.equal(got.accuracy, want.accuracy, `${label}: accuracy`);
      }
      for (const [params, model] of [[pa, 'a'], [pb, 'b']] as const) {
        const torch = torch256(`${name === 'resnet_bn' ? 'resnet' : name}_${model}`);
        const got = await constant.evaluate(params, data);
        assert.ok(Math.abs(got.loss - torch.loss) < 1e-4, `${model}: ${got.loss} vs PyTorch ${torch.loss}`);
        assert.equal(got.accuracy, torch.accuracy);
      }
    } finally {
      await constant.dispose();
      await fed.dispose();
    }
  });
}

test('evaluate reports each batch: done counts examples up to the total, in order', async () => {
  const a = readOnnxFile(at('resnet_a.onnx')).model;
  const runner = await createOnnxRunner(a, { batchSize: 100 });
  try {
    const heard: [number, number][] = [];
    await runner.evaluate(onnxParams(a), data, (done, total) => heard.push([done, total]));
    assert.deepEqual(heard, [[100, 256], [200, 256], [256, 256]]);
  } finally {
    await runner.dispose();
  }
});

test('sweep: known endpoints are taken as given, not evaluated; progress is in passes, fractional within one', async () => {
  const a = readOnnxFile(at('resnet_a.onnx')).model;
  const b = readOnnxFile(at('resnet_b.onnx')).model;
  const pa = onnxParams(a);
  const pb = onnxParams(b);
  const runner = await createOnnxRunner(a, { batchSize: 100 });
  try {
    const evaluated: number[] = [];
    const evaluate = (p: Params, alpha: number, onBatch?: (n: number, t: number) => void) => {
      evaluated.push(alpha);
      return runner.evaluate(p, data, onBatch);
    };
    const progress: [number, number][] = [];
    const full = await sweep(pa, pb, 4, evaluate, (d, t) => progress.push([d, t]));
    assert.deepEqual(evaluated, [0, 0.25, 0.5, 0.75, 1]);
    // Each pass: three batches (100, 200, 256 of 256), then the pass itself.
    assert.equal(progress.length, 5 * 4);
    assert.deepEqual(progress.slice(0, 4), [[100 / 256, 5], [200 / 256, 5], [1, 5], [1, 5]]);
    assert.deepEqual(progress[progress.length - 1], [5, 5]);
    for (let i = 1; i < progress.length; i++) assert.ok(progress[i][0] >= progress[i - 1][0], 'progress never goes back');

    evaluated.length = 0;
    progress.length = 0;
    const known = { a: { loss: full[0].loss, accuracy: full[0].accuracy }, b: { loss: full[4].loss, accuracy: full[4].accuracy } };
    const reused = await sweep(pa, pb, 4, evaluate, (d, t) => progress.push([d, t]), known);
    assert.deepEqual(evaluated, [0.25, 0.5, 0.75]);
    assert.deepEqual(reused, full);
    assert.deepEqual(progress[progress.length - 1], [3, 3]);

    // A planted wrong known value shows up in the curve: known endpoints are really used, not re-measured.
    evaluated.length = 0;
    const planted = await sweep(pa, pb, 4, evaluate, undefined, { a: { loss: 123, accuracy: 0.5 } });
    assert.deepEqual(evaluated, [0.25, 0.5, 0.75, 1]);
    assert.equal(planted[0].loss, 123);
  } finally {
    await runner.dispose();
  }
});

test('alignment report: 2K + 1 passes over the data, not 2K + 2 (A once), and the aligned curve starts at A exactly', async () => {
  const a = readOnnxFile(at('resnet_a.onnx')).model;
  const b = readOnnxFile(at('resnet_b.onnx')).model;
  const pa = onnxParams(a);
  const pb = onnxParams(b);
  const spec = specFromOnnx(a);
  const inner = await createOnnxRunner(a, { batchSize: 128, taps: spec.taps });
  let passes = 0;
  const counting: ModelRunner = {
    evaluate: (p, d, onBatch) => {
      passes++;
      return inner.evaluate(p, d, onBatch);
    },
    outputs: (p, probe) => inner.outputs(p, probe),
    activations: (p, probe) => inner.activations(p, probe),
  };
  try {
    const fresh = await inner.evaluate(pa, data);
    const K = 6;
    const report = await alignmentReport({ a: pa, b: pb, spec: spec.spec, runner: counting, data, probe: { inputs: data.inputs.subarray(0, 64 * 784), count: 64 }, method: 'weight', points: K });
    // Naive path K + 1, aligned path K (A reused), align-to-self one midpoint (identity perms: P(A) is A).
    assert.equal(report.selfAlignment.nonIdentity.length, 0);
    assert.equal(passes, K + 1 + K + 1);
    assert.deepEqual(report.aligned.curve[0], report.naive.curve[0]);
    assert.equal(report.aligned.curve[0].loss, fresh.loss);
    // P(B) is evaluated, not copied from B: same function, so equal to float rounding, through its own pass.
    assert.ok(Math.abs(report.aligned.curve[K].loss - report.naive.curve[K].loss) < 1e-5);
  } finally {
    await inner.dispose();
  }
});
