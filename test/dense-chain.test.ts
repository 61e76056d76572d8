import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createOrtMatmul } from '../src/engine/ort-matmul.js';
import { jsMatmul, type DenseLayer } from '../src/engine/matmul.js';
import { mlpArch, mlpLogits } from '../src/model/mlp.js';
import { mlpRunner } from '../src/model/mlp-runner.js';
import { createRng } from '../src/random.js';
import type { Params, Tensor } from '../src/tensor.js';
import { mlpForward, randomInputs, randomMlp } from './helpers/mlp.js';

/** The helper's params as dense layers (torch layout), the biases of the layers in `noBias` left out. */
function layersOf(params: Params, widths: readonly number[], noBias: ReadonlySet<number> = new Set()): DenseLayer[] {
  return widths.slice(1).map((outputs, l) => ({
    weight: params[`layer${l}.weight`].data,
    outputs,
    inputs: widths[l],
    bias: noBias.has(l) ? null : params[`layer${l}.bias`].data,
  }));
}

function withZeroBiases(params: Params, layers: ReadonlySet<number>): Record<string, Tensor> {
  const out: Record<string, Tensor> = { ...params };
  for (const l of layers) out[`layer${l}.bias`] = { shape: params[`layer${l}.bias`].shape, data: new Float32Array(params[`layer${l}.bias`].data.length) };
  return out;
}

function assertClose(got: Float32Array, want: Float32Array, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    assert.ok(Math.abs(got[i] - want[i]) <= 1e-4 * (1 + Math.abs(want[i])), `${what} [${i}]: ${got[i]} vs ${want[i]}`);
  }
}

test('the ONNX Runtime engine runs a chain of dense layers with ReLU between them like a plain forward pass', async () => {
  const ort = await createOrtMatmul();
  try {
    const cases: { widths: number[]; batch: number; noBias?: number[] }[] = [
      { widths: [7, 5], batch: 3 },
      { widths: [12, 16, 9, 4], batch: 1 },
      { widths: [12, 16, 9, 4], batch: 37, noBias: [1] },
      { widths: [30, 64, 64, 64, 10], batch: 50, noBias: [0, 3] },
    ];
    for (const [i, c] of cases.entries()) {
      const noBias = new Set(c.noBias ?? []);
      // Two sets of weights per shape: the second goes through the session the first one made.
      for (const seed of [10 + i, 20 + i]) {
        const params = randomMlp(c.widths, 'torch', seed);
        const x = randomInputs(c.batch * c.widths[0], seed + 1);
        const got = await ort.denseChain!(layersOf(params, c.widths, noBias), x, c.batch);
        const want = mlpForward(withZeroBiases(params, noBias), c.widths.length - 1, 'torch', x, c.batch);
        assertClose(got, want, `${c.widths.join('-')} batch ${c.batch} seed ${seed}`);
      }
    }
    // A longer input than batch × width is read from its start.
    const params = randomMlp([6, 8, 3], 'torch', 5);
    const x = randomInputs(4 * 6 + 5, 6);
    assertClose(await ort.denseChain!(layersOf(params, [6, 8, 3]), x, 4), mlpForward(params, 2, 'torch', x.subarray(0, 24), 4), 'longer input');
    assert.equal((await ort.denseChain!(layersOf(params, [6, 8, 3]), x, 0)).length, 0);
  } finally {
    await ort.dispose?.();
  }
});

test('the dense chain refuses layers that do not chain, wrong sizes and short inputs', async () => {
  const ort = await createOrtMatmul();
  try {
    const params = randomMlp([6, 8, 3], 'torch', 7);
    const layers = layersOf(params, [6, 8, 3]);
    const x = randomInputs(12, 8);
    await assert.rejects(ort.denseChain!([layers[0], { ...layers[1], inputs: 7, weight: new Float32Array(21) }], x, 2), /layer 1 takes 7 inputs but layer 0 gives 8/);
    await assert.rejects(ort.denseChain!([{ ...layers[0], weight: new Float32Array(47) }, layers[1]], x, 2), /layer 0's weight holds 47 values, not 8 × 6/);
    await assert.rejects(ort.denseChain!([layers[0], { ...layers[1], bias: new Float32Array(4) }], x, 2), /layer 1's bias holds 4 values, not 3/);
    await assert.rejects(ort.denseChain!(layers, x, 3), /input of 12 values is too short for 3 × 6/);
    await assert.rejects(ort.denseChain!([], x, 2), /no layers/);
  } finally {
    await ort.dispose?.();
  }
});

test('MLP evaluation gives the same logits, loss and accuracy through the dense chain as layer by layer', async () => {
  const ort = await createOrtMatmul();
  try {
    assert.equal(jsMatmul.denseChain, undefined, 'the JS engine goes layer by layer');
    const widths = [20, 32, 32, 5];
    const params = randomMlp(widths, 'torch', 31);
    const arch = mlpArch(['layer0', 'layer1', 'layer2']);
    const count = 230;
    const inputs = randomInputs(count * widths[0], 32);
    const rng = createRng(33);
    const labels = Int32Array.from({ length: count }, () => rng.int(5));
    assertClose(await mlpLogits(arch, params, inputs, count, ort), await mlpLogits(arch, params, inputs, count, jsMatmul), 'logits');
    // Batches of 64 leave a last, shorter one.
    const data = { inputs, labels, count };
    const viaChain = await mlpRunner(arch, ort, { batchSize: 64 }).evaluate(params, data);
    const layered = await mlpRunner(arch, jsMatmul, { batchSize: 64 }).evaluate(params, data);
    assert.ok(Math.abs(viaChain.loss - layered.loss) <= 1e-5 * layered.loss, `${viaChain.loss} vs ${layered.loss}`);
    assert.equal(viaChain.accuracy, layered.accuracy);
    await assert.rejects(mlpLogits(arch, params, inputs.subarray(1), count, ort), /expected 230 × 20 values/);
  } finally {
    await ort.dispose?.();
  }
});
