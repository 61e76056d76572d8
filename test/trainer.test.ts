import { test } from 'node:test';
import assert from 'node:assert/strict';
import { trainMlp, mlpGradients } from '../src/train/mlp-trainer.js';
import { mlpArch, mlpForward, crossEntropy, initMlp, relu } from '../src/model/mlp.js';
import { jsMatmul } from '../src/engine/matmul.js';
import { createOrtMatmul } from '../src/engine/ort-matmul.js';
import { threeClusters } from '../src/data/synthetic.js';
import { createRng } from '../src/random.js';
import type { Params } from '../src/tensor.js';

async function meanLoss(params: Params, x: Float32Array, y: Int32Array, n: number): Promise<number> {
  const arch = mlpArch(['fc1', 'fc2', 'fc3']);
  const { logits } = await mlpForward(arch, params, x, n, jsMatmul);
  return crossEntropy(logits, y, n, 3).loss;
}

test('backpropagation matches finite differences of the loss', async () => {
  const data = threeClusters({ count: 64, seed: 3 });
  const rng = createRng(11);
  const arch = mlpArch(['fc1', 'fc2', 'fc3']);
  const init = initMlp([2, 5, 4, 3], ['fc1', 'fc2', 'fc3'], () => rng.next());
  const { grads } = await mlpGradients(arch, init, data.inputs, data.labels, 64, jsMatmul);
  const fd = async (name: string, i: number, h: number) => {
    const t = init[name];
    const at = (d: number) => ({ ...init, [name]: { shape: t.shape, data: t.data.map((v, j) => (j === i ? v + d : v)) } });
    return ((await meanLoss(at(h), data.inputs, data.labels, 64)) - (await meanLoss(at(-h), data.inputs, data.labels, 64))) / (2 * h);
  };
  // ReLU kinks make a few finite differences inexact, so compare whole gradients: direction and size.
  for (const [name, t] of Object.entries(init)) {
    const numeric: number[] = [];
    for (let i = 0; i < t.data.length; i++) numeric.push(await fd(name, i, 5e-4));
    const analytic = Array.from(grads[name]);
    const dotp = numeric.reduce((s, v, i) => s + v * analytic[i], 0);
    const [nn, na] = [Math.hypot(...numeric), Math.hypot(...analytic)];
    assert.ok(dotp / (nn * na) > 0.995, `${name}: cosine ${dotp / (nn * na)} between backprop and finite differences`);
    assert.ok(Math.abs(na - nn) < 0.03 * nn, `${name}: |backprop| ${na} vs |finite differences| ${nn}`);
  }
});

test('training on the 3-cluster task learns it, deterministically, on both engines', async () => {
  const train = threeClusters({ count: 900, seed: 1 });
  const data = { inputs: train.inputs, labels: train.labels, count: train.count, features: 2, numClasses: 3 };
  const ort = await createOrtMatmul();
  const a = await trainMlp(data, { hidden: [12, 12], epochs: 10, seed: 5, engine: jsMatmul });
  const b = await trainMlp(data, { hidden: [12, 12], epochs: 10, seed: 5, engine: ort });
  const c = await trainMlp(data, { hidden: [12, 12], epochs: 10, seed: 6, engine: jsMatmul });
  assert.ok(a.losses[a.losses.length - 1] < 0.6 * a.losses[0], `losses ${a.losses.join(', ')}`);
  const test = threeClusters({ count: 900, seed: 2 });
  const { logits } = await mlpForward(a.arch, a.params, test.inputs, 900, jsMatmul);
  const acc = crossEntropy(logits, test.labels, 900, 3).correct / 900;
  assert.ok(acc > 0.85, `test accuracy ${acc}`);
  // Same seed, different engine: the same net up to float rounding; different seed: a different net.
  for (const k of Object.keys(a.params)) {
    const d = a.params[k].data.reduce((m, v, i) => Math.max(m, Math.abs(v - b.params[k].data[i])), 0);
    assert.ok(d < 1e-3, `${k}: engines differ by ${d}`);
  }
  assert.notDeepEqual(a.params['fc1.weight'].data, c.params['fc1.weight'].data);
  await ort.dispose?.();
});

test('relu clears exactly the negative values', () => {
  const x = Float32Array.from([-2, -1e-30, -0, 0, 1e-30, 3, -Infinity, Infinity, -1e38]);
  relu(x);
  assert.deepEqual(Array.from(x), [0, 0, 0, 0, 1e-30, 3, 0, Infinity, 0].map((v) => Math.fround(v)));
  assert.ok(Object.is(x[2], 0), '−0 becomes +0');
});
