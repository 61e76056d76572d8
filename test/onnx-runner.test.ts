/**
 * The ONNX runner against independent truth: PyTorch's logits and losses stored with the fixtures, a plain
 * ONNX Runtime session on the unmodified model file, and forward passes computed here by hand from the weights.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { createOnnxRunner } from '../src/engine/onnx-runner.js';
import { InputError } from '../src/errors.js';
import { readOnnxFile } from '../src/io/onnx-file.js';
import { onnxModelFromObject } from '../src/io/onnx.js';
import { encodeF16, encodeF64, floatToHalfBits, halfBitsToFloat } from '../src/io/dtype.js';
import { loadIdxPair } from '../src/data/load.js';
import type { Params } from '../src/tensor.js';
import type { LabelledData } from '../src/measure/runner.js';

const MODELS = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', 'test', 'fixtures', 'models');
const at = (name: string): string => join(MODELS, name);
const FMNIST = '/usr/share/datasets/fashion-mnist';

interface Expected {
  logits: number[][];
  test: { n: number; loss: number; accuracy: number };
  test256: { n: number; loss: number; accuracy: number };
}
const expected = (name: string): Expected => JSON.parse(readFileSync(at(`${name}.expected.json`), 'utf8')) as Expected;

// The 256-image slice of the Fashion-MNIST test set, pixels / 255, flat 784 (the runner reshapes for the CNN).
const slice = loadIdxPair(at('fmnist_test256-images-idx3-ubyte.gz'), at('fmnist_test256-labels-idx1-ubyte.gz'));
const first = (n: number): LabelledData => ({ inputs: slice.inputs.subarray(0, n * 784), labels: slice.labels.subarray(0, n), count: n });

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, 'lengths');
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Mean softmax cross-entropy and accuracy in float64, written here independently of the library. */
function lossOf(logits: Float32Array, labels: Int32Array, classes: number): { loss: number; accuracy: number } {
  const n = labels.length;
  let loss = 0;
  let correct = 0;
  for (let r = 0; r < n; r++) {
    const z = Array.from(logits.subarray(r * classes, (r + 1) * classes));
    const m = Math.max(...z);
    loss += Math.log(z.reduce((s, v) => s + Math.exp(v - m), 0)) + m - z[labels[r]];
    if (z.indexOf(m) === labels[r]) correct++;
  }
  return { loss: loss / n, accuracy: correct / n };
}

/** The unmodified model file in a plain ONNX Runtime session (weights inside the graph). */
async function plainLogits(file: string, inputs: Float32Array, shape: number[]): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(file);
  try {
    const out = await s.run({ input: new ort.Tensor('float32', inputs, shape) });
    return out.logits.data as Float32Array;
  } finally {
    await s.release();
  }
}

const sha256 = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');

test('reproduces PyTorch logits on the first 16 test images (MLP, ResNet, ResNet with external data)', async () => {
  for (const [file, name] of [['mlp_a.onnx', 'mlp_a'], ['resnet_a.onnx', 'resnet_a'], ['resnet_a.ext.onnx', 'resnet_a'], ['mlp_a.ext.onnx', 'mlp_a']]) {
    const { model, params } = readOnnxFile(at(file));
    const runner = await createOnnxRunner(model, { batchSize: 7 }); // 16 = 7 + 7 + 2: batches are stitched
    try {
      const logits = await runner.outputs(params, first(16));
      const d = maxDiff(logits, expected(name).logits.flat());
      assert.ok(d < 1e-4, `${file}: max |logit - PyTorch| = ${d}`);
    } finally {
      await runner.dispose();
    }
  }
});

test('the weights-as-inputs session evaluates exactly like the original file in a plain session', async () => {
  for (const [name, shape] of [['mlp_a', [256, 784]], ['resnet_a', [256, 1, 28, 28]]] as const) {
    const file = at(`${name}.onnx`);
    const { model, params } = readOnnxFile(file);
    const runner = await createOnnxRunner(model, { batchSize: 100 });
    try {
      assert.deepEqual(runner.inputShape, ['N', ...shape.slice(1)]);
      const got = await runner.evaluate(params, slice);
      const plain = lossOf(await plainLogits(file, slice.inputs, [...shape]), slice.labels, 10);
      assert.ok(Math.abs(got.loss - plain.loss) < 1e-6, `${name}: loss ${got.loss} vs plain session ${plain.loss}`);
      assert.equal(got.accuracy, plain.accuracy);
      // And PyTorch's own numbers for the slice.
      const torch = expected(name).test256;
      assert.ok(Math.abs(got.loss - torch.loss) < 1e-4, `${name}: loss ${got.loss} vs PyTorch ${torch.loss}`);
      assert.equal(got.accuracy, torch.accuracy);
    } finally {
      await runner.dispose();
    }
  }
});

test('full Fashion-MNIST test set: loss and accuracy equal PyTorch\'s', { skip: existsSync(FMNIST) ? false : `${FMNIST} not installed` }, async () => {
  const full = loadIdxPair(join(FMNIST, 't10k-images-idx3-ubyte.gz'), join(FMNIST, 't10k-labels-idx1-ubyte.gz'));
  for (const name of ['mlp_a', 'resnet_a']) {
    const { model, params } = readOnnxFile(at(`${name}.onnx`));
    const runner = await createOnnxRunner(model);
    try {
      const got = await runner.evaluate(params, full);
      const torch = expected(name).test;
      assert.equal(full.count, torch.n);
      assert.ok(Math.abs(got.loss - torch.loss) < 1e-4, `${name}: loss ${got.loss} vs PyTorch ${torch.loss}`);
      assert.ok(Math.abs(got.accuracy - torch.accuracy) < 1e-4, `${name}: accuracy ${got.accuracy} vs PyTorch ${torch.accuracy}`);
    } finally {
      await runner.dispose();
    }
  }
});

test("one session serves another model's weights: B's params in A's session give B's outputs; files and params untouched", async () => {
  for (const kind of ['mlp', 'resnet']) {
    const files = kind === 'mlp' ? [at('mlp_a.onnx')] : [at('resnet_a.ext.onnx'), at('resnet_a.ext.onnx.data')];
    const before = files.map(sha256);
    const a = readOnnxFile(files[0]);
    const b = readOnnxFile(at(`${kind}_b.onnx`));
    const paramBits = (p: Params): string[] => Object.values(p).map((t) => createHash('sha256').update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)).digest('hex'));
    const bBefore = paramBits(b.params);
    const runner = await createOnnxRunner(a.model, { batchSize: 64 });
    try {
      // Both at once: calls on one runner are queued, so neither sees the other's weights.
      const [la, lb] = await Promise.all([runner.outputs(a.params, first(16)), runner.outputs(b.params, first(16))]);
      assert.ok(maxDiff(lb, expected(`${kind}_b`).logits.flat()) < 1e-4, `${kind}: B's logits through A's session`);
      assert.ok(maxDiff(la, expected(`${kind}_a`).logits.flat()) < 1e-4, `${kind}: A's logits`);
      const evB = await runner.evaluate(b.params, slice);
      assert.ok(Math.abs(evB.loss - expected(`${kind}_b`).test256.loss) < 1e-4, `${kind}: B's loss ${evB.loss}`);
      assert.equal(evB.accuracy, expected(`${kind}_b`).test256.accuracy);
    } finally {
      await runner.dispose();
    }
    assert.deepEqual(files.map(sha256), before, `${kind}: model files changed on disk`);
    assert.deepEqual(paramBits(b.params), bBefore, `${kind}: the params fed were modified`);
  }
});

test('data that does not fit the model input, and params that do not fit the weights, are InputErrors', async () => {
  const { model, params } = readOnnxFile(at('resnet_a.onnx'));
  const runner = await createOnnxRunner(model);
  try {
    const wrong: LabelledData = { inputs: new Float32Array(4 * 100), labels: new Int32Array(4), count: 4 };
    await assert.rejects(runner.evaluate(params, wrong), (e: unknown) => e instanceof InputError && /input 'input'.*\[1, 28, 28\].*784 values.*4 examples of 100 values/.test(e.message));
    const ragged: LabelledData = { inputs: new Float32Array(4 * 784 + 3), labels: new Int32Array(4), count: 4 };
    await assert.rejects(runner.outputs(params, ragged), InputError);
    const { 'linear.bias': _, ...missing } = params;
    await assert.rejects(runner.outputs(missing, first(2)), /lack weight 'linear.bias'/);
    const reshaped = { ...params, 'linear.weight': { shape: [64, 10], data: params['linear.weight'].data } };
    await assert.rejects(runner.outputs(reshaped, first(2)), /weight 'linear.weight' has shape \[10, 64\]/);
    await assert.rejects(runner.activations(params, first(2)), /taps/);
  } finally {
    await runner.dispose();
  }
  await assert.rejects(createOnnxRunner(model, { taps: { P0: { value: 'nope', axis: 1 } } }), InputError);
  await assert.rejects(createOnnxRunner(model, { input: 'linear.weight' }), InputError);
});

test('MLP taps on the Relu outputs equal a forward pass computed by hand from the params', async () => {
  const { model, params } = readOnnxFile(at('mlp_a.onnx'));
  // The Relu outputs, found in the graph rather than assumed.
  const relus = model.graph.nodes.filter((n) => n.opType === 'Relu').map((n) => n.outputs[0]);
  assert.equal(relus.length, 2);
  const runner = await createOnnxRunner(model, { batchSize: 16, taps: { P_0: { value: relus[0], axis: 1 }, P_1: { value: relus[1], axis: -1 } } });
  try {
    const probe = first(40);
    const acts = await runner.activations(params, probe);
    let x = probe.inputs;
    let din = 784;
    for (const [i, layer] of ['fc1', 'fc2'].entries()) {
      const W = params[`${layer}.weight`].data;
      const bias = params[`${layer}.bias`].data;
      const dout = bias.length;
      const h = new Float32Array(probe.count * dout);
      for (let r = 0; r < probe.count; r++) {
        for (let j = 0; j < dout; j++) {
          let s = bias[j];
          for (let k = 0; k < din; k++) s += x[r * din + k] * W[j * din + k];
          h[r * dout + j] = Math.max(0, s);
        }
      }
      const got = acts[`P_${i}`];
      assert.equal(got.width, dout);
      assert.equal(got.rows ?? probe.count, probe.count);
      const d = maxDiff(got.data, h);
      assert.ok(d < 1e-4, `P_${i}: max diff ${d}`);
      [x, din] = [h, dout];
    }
  } finally {
    await runner.dispose();
  }
});

test('a convolution tap gives one row per example and pixel, channels as columns', async () => {
  const { model, params } = readOnnxFile(at('resnet_a.onnx'));
  const conv = model.graph.nodes[0];
  const relu = model.graph.nodes.find((n) => n.opType === 'Relu' && n.inputs[0] === conv.outputs[0])!;
  assert.equal(conv.opType, 'Conv');
  assert.deepEqual([conv.attributes.pads, conv.attributes.strides, conv.attributes.kernel_shape], [[1, 1, 1, 1], [1, 1], [3, 3]]);
  const runner = await createOnnxRunner(model, { batchSize: 2, taps: { P_stem: { value: relu.outputs[0], axis: 1 } } });
  try {
    const probe = first(3);
    const { P_stem: got } = await runner.activations(params, probe);
    const W = params[conv.inputs[1]].data; // [16, 1, 3, 3]
    const bias = params[conv.inputs[2]].data;
    const C = bias.length;
    assert.equal(got.width, C);
    assert.equal(got.rows, 3 * 28 * 28);
    const want = new Float32Array(3 * 28 * 28 * C);
    for (let n = 0; n < 3; n++) {
      for (let h = 0; h < 28; h++) {
        for (let w = 0; w < 28; w++) {
          for (let c = 0; c < C; c++) {
            let s = bias[c];
            for (let kh = 0; kh < 3; kh++) {
              for (let kw = 0; kw < 3; kw++) {
                const [y, z] = [h + kh - 1, w + kw - 1];
                if (y >= 0 && y < 28 && z >= 0 && z < 28) s += W[c * 9 + kh * 3 + kw] * probe.inputs[n * 784 + y * 28 + z];
              }
            }
            want[((n * 28 + h) * 28 + w) * C + c] = Math.max(0, s);
          }
        }
      }
    }
    const d = maxDiff(got.data, want);
    assert.ok(d < 1e-4, `max diff ${d}`);
  } finally {
    await runner.dispose();
  }
});

test('float16 and float64 weights are fed in their own dtype; a fixed batch dimension is padded', async () => {
  const w = Float32Array.from([0.1, -0.7, 0.3333, 1.5, 0.2, -0.05]); // [2, 3]
  const b = Float32Array.from([0.25, -1.125]);
  const vi = (name: string, type: number, dims: (number | string)[]) => ({
    name,
    type: { tensor_type: { elem_type: type, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: d })) } } },
  });
  const model = onnxModelFromObject(
    {
      ir_version: 8,
      opset_import: [{ domain: '', version: 13 }],
      graph: {
        name: 'tiny',
        initializer: [
          { name: 'W', dims: [2, 3], data_type: 10, raw_data: encodeF16(w) },
          { name: 'b', dims: [2], data_type: 11, raw_data: encodeF64(b) },
        ],
        node: [
          { op_type: 'Cast', input: ['W'], output: ['Wf'], attribute: [{ name: 'to', type: 2, i: 1 }] },
          { op_type: 'Cast', input: ['b'], output: ['bf'], attribute: [{ name: 'to', type: 2, i: 1 }] },
          { op_type: 'Gemm', input: ['x', 'Wf', 'bf'], output: ['y'], attribute: [{ name: 'transB', type: 2, i: 1 }] },
        ],
        input: [vi('x', 1, [4, 3])],
        output: [vi('y', 1, [4, 2])],
      },
    },
    'tiny.onnx',
  );
  const runner = await createOnnxRunner(model, { batchSize: 100 });
  try {
    const x = Float32Array.from({ length: 6 * 3 }, (_, i) => Math.sin(i + 1));
    const labels = Int32Array.from([0, 1, 1, 0, 1, 0]);
    const params: Params = { W: { shape: [2, 3], data: w }, b: { shape: [2], data: b } };
    const logits = await runner.outputs(params, { inputs: x, count: 6 });
    const w16 = w.map((v) => halfBitsToFloat(floatToHalfBits(v)));
    const want = new Float32Array(12);
    for (let r = 0; r < 6; r++) for (let j = 0; j < 2; j++) want[r * 2 + j] = b[j] + x[r * 3] * w16[j * 3] + x[r * 3 + 1] * w16[j * 3 + 1] + x[r * 3 + 2] * w16[j * 3 + 2];
    assert.ok(maxDiff(logits, want) < 1e-6, `max diff ${maxDiff(logits, want)}`);
    const ev = await runner.evaluate(params, { inputs: x, labels, count: 6 });
    const truth = lossOf(want, labels, 2);
    assert.ok(Math.abs(ev.loss - truth.loss) < 1e-6);
    assert.equal(ev.accuracy, truth.accuracy);
    // Other weights through the same session: the conversion buffers are refilled, not stale.
    const w2 = w.map((v) => -2 * v);
    const logits2 = await runner.outputs({ ...params, W: { shape: [2, 3], data: w2 } }, { inputs: x, count: 6 });
    assert.ok(Math.abs(logits2[0] - (b[0] - 2 * (logits[0] - b[0]))) < 1e-5);
  } finally {
    await runner.dispose();
  }
});
