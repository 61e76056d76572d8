/**
 * Align-to-self runs in every report, on A: the report's own matcher on (A, A) must return identity
 * permutations and a flat path. Checked on the committed real MLP pair (B is not A) for both methods,
 * (activation matching may reorder only units with no variance on the probe), and shown to FAIL when the matcher is fed activations whose units are rotated between the two reads of
 * A (so the real matching finds a non-identity permutation).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { readOnnxFile } from '../src/io/onnx-file.js';
import { createOnnxRunner } from '../src/engine/onnx-runner.js';
import { specFromOnnx } from '../src/permutation-spec/onnx-graph.js';
import { alignmentReport } from '../src/pipeline/alignment-report.js';
import { loadIdxPair } from '../src/data/load.js';
import { sliceDataset } from '../src/data/dataset.js';
import { jsMatmul } from '../src/engine/matmul.js';
import type { ModelRunner, UnitActivations } from '../src/measure/runner.js';

const dir = fileURLToPath(new URL('../../test/fixtures/models/', import.meta.url));

async function setup() {
  const a = readOnnxFile(`${dir}mlp_a.onnx`);
  const b = readOnnxFile(`${dir}mlp_b.onnx`);
  const { spec, taps } = specFromOnnx(a.model);
  const runner = await createOnnxRunner(a.model, { taps });
  const ds = sliceDataset(loadIdxPair(`${dir}fmnist_test256-images-idx3-ubyte.gz`, `${dir}fmnist_test256-labels-idx1-ubyte.gz`), 0, 64);
  const data = { inputs: ds.inputs, labels: ds.labels, count: ds.count };
  const common = { a: a.params, b: b.params, spec, data, probe: { inputs: ds.inputs, count: ds.count }, points: 2, seed: 0, engine: jsMatmul };
  return { runner, common };
}

test('align-to-self on a real pair: identity permutations and a flat path, for weight and activation matching', async () => {
  const { runner, common } = await setup();
  try {
    for (const method of ['weight', 'activation'] as const) {
      const r = await alignmentReport({ ...common, runner, method });
      assert.deepEqual(r.selfAlignment.nonIdentity, [], method);
      // Weight matching recovers the identity exactly; activation matching may only reorder units that
      // never vary on the 64 probe examples (this pair has some), and says how many.
      if (method === 'weight') assert.equal(r.selfAlignment.indistinct, 0);
      assert.ok(Math.abs(r.selfAlignment.barrier.loss) <= 1e-6, `${method}: self barrier ${r.selfAlignment.barrier.loss}`);
      assert.deepEqual(r.selfAlignment.curve.map((p) => p.alpha), [0, 0.5, 1]);
      assert.equal(r.selfAlignment.curve[0].loss, r.endpoints.a.loss);
      const check = r.checks.find((c) => c.name === 'align-to-self');
      assert.equal(check?.status, 'PASS', `${method}: ${check?.detail}`);
      // B is not A: the aligned pair is a different measurement (its permutations move units).
      assert.ok(r.churn.every((c) => c.churn > 0.5));
    }
  } finally {
    await runner.dispose();
  }
});

test('align-to-self FAILS when the matcher does not return the identity on (A, A)', async () => {
  const { runner, common } = await setup();
  // Every second read of activations has its units rotated by one: A then looks permuted against itself.
  let reads = 0;
  const rotate = (u: UnitActivations): UnitActivations => {
    const rows = u.rows ?? common.probe.count;
    const out = new Float32Array(u.data.length);
    for (let r = 0; r < rows; r++) for (let j = 0; j < u.width; j++) out[r * u.width + ((j + 1) % u.width)] = u.data[r * u.width + j];
    return { ...u, data: out };
  };
  const lying: ModelRunner = {
    evaluate: (p, d) => runner.evaluate(p, d),
    outputs: (p, d) => runner.outputs(p, d),
    activations: async (p, probe) => {
      const acts = await runner.activations!(p, probe);
      return reads++ % 2 === 0 ? acts : Object.fromEntries(Object.entries(acts).map(([k, u]) => [k, rotate(u)]));
    },
  };
  try {
    const r = await alignmentReport({ ...common, runner: lying, method: 'activation' });
    assert.deepEqual(r.selfAlignment.nonIdentity, ['fc1', 'fc2']);
    const check = r.checks.find((c) => c.name === 'align-to-self');
    assert.equal(check?.status, 'FAIL');
    assert.match(check?.detail ?? '', /2 permutations NOT the identity \(fc1, fc2\)/);
    // P(A) differs from A, so the path is measured to it, and it is not flat.
    assert.ok(r.selfAlignment.barrier.loss > 1e-3, `self barrier ${r.selfAlignment.barrier.loss}`);
  } finally {
    await runner.dispose();
  }
});
