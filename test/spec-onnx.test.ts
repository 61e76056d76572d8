/**
 * specFromOnnx: the spec derived from an ONNX graph must leave the network's function unchanged when
 * random permutations are applied (truth: ONNX Runtime running both models), must tie exactly what the
 * built-in name-based specs tie on the real PyTorch fixtures, its taps must carry the permutations, and
 * graphs it cannot follow must be refused naming the node and op type.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { specFromOnnx } from '../src/permutation-spec/onnx-graph.js';
import { readOnnxFile } from '../src/io/onnx-file.js';
import type { OnnxModel } from '../src/io/onnx.js';
import { readSafetensorsFile } from '../src/io/safetensors-fs.js';
import { toParams } from '../src/io/safetensors.js';
import { loadIdxPair } from '../src/data/load.js';
import { inferMlpSpec } from '../src/permutation-spec/auto.js';
import { mlpSpec } from '../src/permutation-spec/mlp.js';
import { resnetSpec } from '../src/permutation-spec/resnet.js';
import { permSizes, specFromAxes } from '../src/permutation-spec/spec.js';
import {
  type Built, build, checkBrokenSpecChangesOutputs, checkInvariance, expectRefusal, float, int, ints, partition, randomInput, vi,
} from './helpers/onnx-graphs.js';

const MODELS = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', 'test', 'fixtures', 'models');
const fixture = (name: string): string => join(MODELS, name);

const images = fixture('fmnist_test256-images-idx3-ubyte.gz');
const labels = fixture('fmnist_test256-labels-idx1-ubyte.gz');

function fmnistFeeds(kind: 'mlp' | 'resnet'): Record<string, ort.Tensor> {
  const ds = loadIdxPair(images, labels, { flatten: kind === 'mlp' });
  const shape = kind === 'mlp' ? [ds.count, 784] : [ds.count, 1, 28, 28];
  return { input: new ort.Tensor('float32', ds.inputs, shape) };
}

// ---------------------------------------------------------------------------------------------------------
// Real PyTorch exports

test('mlp_a.onnx: the derived spec is the name-based MLP spec and keeps the logits', async () => {
  const { model, params } = readOnnxFile(fixture('mlp_a.onnx'));
  const derived = specFromOnnx(model);
  assert.deepEqual(partition(derived.spec), partition(inferMlpSpec(params)));
  assert.deepEqual(partition(derived.spec), partition(mlpSpec(2, { names: ['fc1', 'fc2', 'fc3'] })));
  // Named after the layers that write them; the input and output axes stay fixed.
  assert.deepEqual(Object.keys(derived.spec.permToAxes).sort(), ['fc1', 'fc2']);
  const fixedAxes = derived.fixed.flatMap((f) => f.axes.map((a) => `${a.tensor}:${a.axis}`)).sort();
  assert.deepEqual(fixedAxes, ['fc1.weight:1', 'fc3.bias:0', 'fc3.weight:0']);
  assert.match(derived.fixed.find((f) => f.axes.some((a) => a.tensor === 'fc3.weight'))!.reason, /graph output 'logits'/);
  assert.deepEqual(derived.taps.fc1, { value: '/Relu_output_0', axis: 1 });

  const feeds = fmnistFeeds('mlp');
  await checkInvariance(model, params, derived, feeds, 1e-4, 11);
  await checkBrokenSpecChangesOutputs(model, params, derived.spec, feeds, 11);
});

/** The ResNet fixture's ONNX conv weights → the state-dict modules they come from (BN folded into the bias). */
const RESNET_CONVS: Readonly<Record<string, readonly [string, string]>> = {
  '/conv1/Conv': ['conv1', 'bn1'],
  '/layer1/layer1.0/conv1/Conv': ['layer1.0.conv1', 'layer1.0.bn1'],
  '/layer1/layer1.0/conv2/Conv': ['layer1.0.conv2', 'layer1.0.bn2'],
  '/layer2/layer2.0/conv1/Conv': ['layer2.0.conv1', 'layer2.0.bn1'],
  '/layer2/layer2.0/conv2/Conv': ['layer2.0.conv2', 'layer2.0.bn2'],
  '/layer2/layer2.0/shortcut/shortcut.0/Conv': ['layer2.0.shortcut.0', 'layer2.0.shortcut.1'],
  '/layer3/layer3.0/conv1/Conv': ['layer3.0.conv1', 'layer3.0.bn1'],
  '/layer3/layer3.0/conv2/Conv': ['layer3.0.conv2', 'layer3.0.bn2'],
  '/layer3/layer3.0/shortcut/shortcut.0/Conv': ['layer3.0.shortcut.0', 'layer3.0.shortcut.1'],
};

function resnetRename(model: OnnxModel): (t: string) => readonly string[] {
  const map = new Map<string, readonly string[]>([['linear.weight', ['linear.weight']], ['linear.bias', ['linear.bias']]]);
  for (const node of model.graph.nodes) {
    const mod = RESNET_CONVS[node.name];
    if (mod === undefined) continue;
    const [conv, bn] = mod;
    map.set(node.inputs[1], [`${conv}.weight`]);
    // The folded bias stands for every per-channel BatchNorm tensor of the module.
    map.set(node.inputs[2], ['weight', 'bias', 'running_mean', 'running_var'].map((l) => `${bn}.${l}`));
  }
  return (t) => {
    const m = map.get(t);
    assert.ok(m !== undefined, `no state-dict name for ONNX initializer '${t}'`);
    return m;
  };
}

for (const file of ['resnet_a.onnx', 'resnet_a.ext.onnx']) {
  test(`${file}: the derived spec ties the residual streams as resnetSpec does and keeps the logits`, async () => {
    const { model, params } = readOnnxFile(fixture(file));
    const derived = specFromOnnx(model);
    const sd = toParams(readSafetensorsFile(fixture('resnet_a.safetensors'))).params;
    const builtin = resnetSpec(sd);
    // Same partition of (tensor, axis) once ONNX names are mapped back to the state dict.
    assert.deepEqual(partition(derived.spec, resnetRename(model)), partition(builtin));
    const sizes = Object.values(permSizes(derived.spec, params)).sort((x, y) => x - y);
    assert.deepEqual(sizes, Object.values(permSizes(builtin, sd)).sort((x, y) => x - y));
    // The stage-1 stream is written by the stem and is named after it.
    const stem = model.graph.nodes.find((n) => n.name === '/conv1/Conv')!;
    assert.equal(derived.spec.axesToPerm[stem.inputs[1]][0], 'conv1');
    for (const tap of Object.values(derived.taps)) assert.equal(tap.axis, 1);

    const feeds = fmnistFeeds('resnet');
    await checkInvariance(model, params, derived, feeds, 1e-4, 12);
    if (file === 'resnet_a.onnx') await checkBrokenSpecChangesOutputs(model, params, derived.spec, feeds, 12);
  });
}

// ---------------------------------------------------------------------------------------------------------
// Hand-built graphs

/** Flax/Keras layout: x @ kernel + bias, kernel (in, out). */
function flaxMlp(): Built {
  return build(
    'flax-mlp',
    { 'l0.kernel': [4, 8], 'l0.bias': [8], 'l1.kernel': [8, 6], 'l1.bias': [6], 'l2.kernel': [6, 3], 'l2.bias': [3] },
    [
      { name: 'mm0', op_type: 'MatMul', input: ['x', 'l0.kernel'], output: ['h0'] },
      { name: 'add0', op_type: 'Add', input: ['h0', 'l0.bias'], output: ['a0'] },
      { name: 'relu0', op_type: 'Relu', input: ['a0'], output: ['r0'] },
      { name: 'mm1', op_type: 'MatMul', input: ['r0', 'l1.kernel'], output: ['h1'] },
      { name: 'add1', op_type: 'Add', input: ['l1.bias', 'h1'], output: ['a1'] },
      { name: 'tanh1', op_type: 'Tanh', input: ['a1'], output: ['r1'] },
      { name: 'mm2', op_type: 'MatMul', input: ['r1', 'l2.kernel'], output: ['h2'] },
      { name: 'add2', op_type: 'Add', input: ['h2', 'l2.bias'], output: ['y'] },
    ],
    vi('x', ['N', 4]),
    vi('y', ['N', 3]),
  );
}

test('MatMul+Add (flax layout): same partition as mlpSpec, outputs unchanged in ONNX Runtime', async () => {
  const { model, params } = flaxMlp();
  const derived = specFromOnnx(model);
  const expected = mlpSpec(2, { layout: 'flax', names: ['l0', 'l1', 'l2'], weight: '.kernel' });
  assert.deepEqual(partition(derived.spec), partition(expected));
  assert.deepEqual(partition(derived.spec), partition(inferMlpSpec(params)));
  assert.deepEqual(derived.taps.l0, { value: 'r0', axis: 1 });
  assert.deepEqual(derived.taps.l1, { value: 'r1', axis: 1 });
  const feeds = { x: randomInput([7, 4], 1) };
  await checkInvariance(model, params, derived, feeds, 1e-5, 3);
  await checkBrokenSpecChangesOutputs(model, params, derived.spec, feeds, 3);
});

/**
 * Conv+BN, MaxPool, depthwise conv, residual Add, broadcast Mul by a [1,C,1,1] initializer,
 * GlobalAveragePool, Reshape to a constant shape, Gemm (transB=0), LayerNorm, Sigmoid, MatMul+Add.
 */
function convNet(): Built {
  return build(
    'conv-net',
    {
      'c1.w': [8, 3, 3, 3], 'c1.b': [8], 'bn.scale': [8], 'bn.B': [8], 'bn.mean': [8], 'bn.var': [8],
      'c2.w': [8, 8, 3, 3], 'c2.b': [8], 'dw.w': [8, 1, 3, 3], 'c3.w': [8, 8, 1, 1], 'gain': [1, 8, 1, 1],
      'g1.w': [8, 6], 'g1.b': [6], 'ln.scale': [6], 'ln.bias': [6], 'mm.w': [6, 3], 'mm.b': [3],
    },
    [
      { name: 'c1', op_type: 'Conv', input: ['x', 'c1.w', 'c1.b'], output: ['c1o'], attribute: [ints('pads', [1, 1, 1, 1])] },
      { name: 'bn', op_type: 'BatchNormalization', input: ['c1o', 'bn.scale', 'bn.B', 'bn.mean', 'bn.var'], output: ['bno'] },
      { name: 'r1', op_type: 'Relu', input: ['bno'], output: ['r1o'] },
      { name: 'mp', op_type: 'MaxPool', input: ['r1o'], output: ['mpo'], attribute: [ints('kernel_shape', [2, 2]), ints('strides', [2, 2])] },
      { name: 'c2', op_type: 'Conv', input: ['mpo', 'c2.w', 'c2.b'], output: ['c2o'], attribute: [ints('pads', [1, 1, 1, 1])] },
      { name: 'r2', op_type: 'LeakyRelu', input: ['c2o'], output: ['r2o'], attribute: [float('alpha', 0.1)] },
      { name: 'dw', op_type: 'Conv', input: ['r2o', 'dw.w'], output: ['dwo'], attribute: [int('group', 8), ints('pads', [1, 1, 1, 1])] },
      { name: 'c3', op_type: 'Conv', input: ['dwo', 'c3.w'], output: ['c3o'] },
      { name: 'res', op_type: 'Add', input: ['c3o', 'mpo'], output: ['reso'] },
      { name: 'gain', op_type: 'Mul', input: ['reso', 'gain'], output: ['gaino'] },
      { name: 'gap', op_type: 'GlobalAveragePool', input: ['gaino'], output: ['gapo'] },
      { name: 'rs', op_type: 'Reshape', input: ['gapo', 'rs.shape'], output: ['rso'] },
      { name: 'g1', op_type: 'Gemm', input: ['rso', 'g1.w', 'g1.b'], output: ['g1o'] },
      { name: 'ln', op_type: 'LayerNormalization', input: ['g1o', 'ln.scale', 'ln.bias'], output: ['lno'] },
      { name: 'sg', op_type: 'Sigmoid', input: ['lno'], output: ['sgo'] },
      { name: 'mm', op_type: 'MatMul', input: ['sgo', 'mm.w'], output: ['mmo'] },
      { name: 'out', op_type: 'Add', input: ['mmo', 'mm.b'], output: ['y'] },
    ],
    vi('x', ['N', 3, 8, 8]),
    vi('y', ['N', 3]),
    { positive: ['bn.var'], int64: { 'rs.shape': [0, 8] } },
  );
}

test('a conv net with BN, depthwise conv, residual, LayerNorm: expected ties, ONNX Runtime agrees', async () => {
  const { model, params } = convNet();
  const derived = specFromOnnx(model);
  const expected = specFromAxes({
    'c1.w': ['stream', null, null, null], 'c1.b': ['stream'],
    'bn.scale': ['stream'], 'bn.B': ['stream'], 'bn.mean': ['stream'], 'bn.var': ['stream'],
    'c2.w': ['inner', 'stream', null, null], 'c2.b': ['inner'], 'dw.w': ['inner', null, null, null],
    'c3.w': ['stream', 'inner', null, null], gain: [null, 'stream', null, null],
    'g1.w': ['stream', 'hidden'], 'g1.b': ['hidden'], 'ln.scale': ['hidden'], 'ln.bias': ['hidden'],
    'mm.w': ['hidden', null], 'mm.b': [null],
  });
  assert.deepEqual(partition(derived.spec), partition(expected));
  assert.deepEqual(Object.keys(derived.spec.permToAxes).sort(), ['c1', 'c2', 'g1']);
  const feeds = { x: randomInput([5, 3, 8, 8], 2) };
  await checkInvariance(model, params, derived, feeds, 1e-4, 4);
  await checkBrokenSpecChangesOutputs(model, params, derived.spec, feeds, 4);
});

/**
 * A LayerNorm decomposed into ReduceMean/Sub/Mul/Sqrt/Div (as older exporters write it), a weight aliased
 * through Identity, Transpose, Unsqueeze, a ReduceMean over other axes and a Reshape to a Constant shape.
 */
function miscNet(): Built {
  return build(
    'misc',
    { w1: [4, 6], b1: [6], eps: [], gamma: [6], beta: [6], w2: [6, 5], w3: [2, 5] },
    [
      { name: 'mm1', op_type: 'MatMul', input: ['x', 'w1'], output: ['h1'] },
      { name: 'add1', op_type: 'Add', input: ['h1', 'b1'], output: ['a1'] },
      { name: 'mu', op_type: 'ReduceMean', input: ['a1'], output: ['mu'], attribute: [ints('axes', [-1])] },
      { name: 'd', op_type: 'Sub', input: ['a1', 'mu'], output: ['d'] },
      { name: 'sq', op_type: 'Mul', input: ['d', 'd'], output: ['sq'] },
      { name: 'var', op_type: 'ReduceMean', input: ['sq'], output: ['var'], attribute: [ints('axes', [-1])] },
      { name: 've', op_type: 'Add', input: ['var', 'eps'], output: ['ve'] },
      { name: 'sd', op_type: 'Sqrt', input: ['ve'], output: ['sd'] },
      { name: 'n', op_type: 'Div', input: ['d', 'sd'], output: ['n'] },
      { name: 'g', op_type: 'Mul', input: ['n', 'gamma'], output: ['g'] },
      { name: 'bt', op_type: 'Add', input: ['g', 'beta'], output: ['bt'] },
      { name: 'r', op_type: 'Relu', input: ['bt'], output: ['r'] },
      { name: 'alias', op_type: 'Identity', input: ['w2'], output: ['w2a'] },
      { name: 'mm2', op_type: 'MatMul', input: ['r', 'w2a'], output: ['h2'] },
      { name: 'tr', op_type: 'Transpose', input: ['h2'], output: ['tr'], attribute: [ints('perm', [0, 2, 1])] },
      { name: 'us', op_type: 'Unsqueeze', input: ['tr', 'ax3'], output: ['us'] },
      { name: 'rm', op_type: 'ReduceMean', input: ['us'], output: ['rm'], attribute: [ints('axes', [2, 3]), int('keepdims', 0)] },
      { name: 'cst', op_type: 'Constant', output: ['shp'], attribute: [{ name: 'value', type: 4, t: { dims: [2], data_type: 7, int64_data: [-1, 5] } }] },
      { name: 'rs', op_type: 'Reshape', input: ['rm', 'shp'], output: ['rso'] },
      { name: 'th', op_type: 'Tanh', input: ['rso'], output: ['t'] },
      { name: 'fc', op_type: 'Gemm', input: ['t', 'w3'], output: ['y'], attribute: [int('transB', 1)] },
    ],
    vi('x', ['N', 3, 4]),
    vi('y', ['N', 2]),
    { positive: ['eps'], int64: { ax3: [3] } },
  );
}

test('decomposed LayerNorm, Identity-aliased weight, Transpose/Unsqueeze/ReduceMean/Reshape: ONNX Runtime agrees', async () => {
  const { model, params } = miscNet();
  const derived = specFromOnnx(model);
  const expected = specFromAxes({
    w1: [null, 'p'], b1: ['p'], gamma: ['p'], beta: ['p'], w2: ['p', 'q'], w3: [null, 'q'], eps: [],
  });
  assert.deepEqual(partition(derived.spec), partition(expected));
  assert.deepEqual(derived.taps.mm1, { value: 'r', axis: 2 });
  assert.deepEqual(derived.taps.mm2, { value: 't', axis: 1 });
  const feeds = { x: randomInput([4, 3, 4], 6) };
  await checkInvariance(model, params, derived, feeds, 1e-5, 7);
  await checkBrokenSpecChangesOutputs(model, params, derived.spec, feeds, 7);
});

test('an op it does not understand on a permutable channel space: fixed in a partial spec, refused with strict', () => {
  const mlp = (after: 'hidden' | 'output'): OnnxModel =>
    build(
      'cumsum',
      { 'fc1.weight': [5, 4], 'fc2.weight': [3, 5] },
      [
        { name: 'fc1', op_type: 'Gemm', input: ['x', 'fc1.weight'], output: ['h'], attribute: [int('transB', 1)] },
        ...(after === 'hidden'
          ? [
              { name: 'scan', op_type: 'CumSum', input: ['h', 'ax'], output: ['c'] },
              { name: 'fc2', op_type: 'Gemm', input: ['c', 'fc2.weight'], output: ['y'], attribute: [int('transB', 1)] },
            ]
          : [
              { name: 'fc2', op_type: 'Gemm', input: ['h', 'fc2.weight'], output: ['z'], attribute: [int('transB', 1)] },
              { name: 'scan', op_type: 'CumSum', input: ['z', 'ax'], output: ['y'] },
            ]),
      ],
      vi('x', ['N', 4]),
      vi('y', ['N', 3]),
      { int64: { ax: [1] } },
    ).model;
  expectRefusal(() => specFromOnnx(mlp('hidden'), { strict: true }), /node 'scan' \(CumSum\)/, /--spec FILE/);
  // Without strict, the hidden space the CumSum reads is left fixed and named.
  const partial = specFromOnnx(mlp('hidden'));
  assert.deepEqual(partition(partial.spec), []);
  assert.deepEqual(partial.unsupported.map((u) => [u.node, u.opType, u.followOn]), [["'scan' (CumSum)", 'CumSum', false]]);
  const fixedHidden = partial.fixed.find((f) => f.axes.some((a) => a.tensor === 'fc1.weight' && a.axis === 0));
  assert.match(fixedHidden!.reason, /node 'scan' \(CumSum\) is not supported/);
  // On the output's (fixed) channels the same op is harmless: the hidden layer is still permuted.
  for (const strict of [false, true]) {
    const ok = specFromOnnx(mlp('output'), { strict });
    assert.deepEqual(partition(ok.spec), ['fc1.weight:0 fc2.weight:1']);
    assert.deepEqual(ok.unsupported, []);
  }
});

test('Flatten of a conv output with spatial size > 1 is refused clearly; with spatial size 1 it is followed', () => {
  const net = (pool: boolean): OnnxModel =>
    build(
      'flatten',
      { 'conv.w': [4, 1, 3, 3], 'conv.b': [4], 'fc.w': [3, pool ? 4 : 64] },
      [
        { name: 'conv', op_type: 'Conv', input: ['x', 'conv.w', 'conv.b'], output: ['co'] },
        { name: 'relu', op_type: 'Relu', input: ['co'], output: ['ro'] },
        ...(pool ? [{ name: 'gap', op_type: 'GlobalAveragePool', input: ['ro'], output: ['po'] }] : []),
        { name: 'flat', op_type: 'Flatten', input: [pool ? 'po' : 'ro'], output: ['fo'] },
        { name: 'fc', op_type: 'Gemm', input: ['fo', 'fc.w'], output: ['y'], attribute: [int('transB', 1)] },
      ],
      vi('x', ['N', 1, 6, 6]),
      vi('y', ['N', 3]),
    ).model;
  // 6×6 input, 3×3 kernel, no padding: 4 channels × 4×4 positions.
  expectRefusal(() => specFromOnnx(net(false), { strict: true }), /node 'flat' \(Flatten\)/, /4 channels/, /blocks of 16/, /--spec FILE/);
  const partial = specFromOnnx(net(false));
  assert.deepEqual(partition(partial.spec), []);
  assert.match(partial.unsupported[0].why, /blocks of 16/);
  const ok = specFromOnnx(net(true));
  assert.deepEqual(partition(ok.spec), ['conv.b:0 conv.w:0 fc.w:1']);
  assert.deepEqual(ok.taps.conv, { value: 'ro', axis: 1 });
});

test('Concat along the channel axis and a grouped convolution: refused with strict, their spaces fixed without', () => {
  const concat = build(
    'concat',
    { 'a.weight': [4, 2], 'b.weight': [4, 2], 'c.weight': [3, 8] },
    [
      { name: 'a', op_type: 'Gemm', input: ['x', 'a.weight'], output: ['ha'], attribute: [int('transB', 1)] },
      { name: 'b', op_type: 'Gemm', input: ['x', 'b.weight'], output: ['hb'], attribute: [int('transB', 1)] },
      { name: 'cat', op_type: 'Concat', input: ['ha', 'hb'], output: ['h'], attribute: [int('axis', 1)] },
      { name: 'c', op_type: 'Gemm', input: ['h', 'c.weight'], output: ['y'], attribute: [int('transB', 1)] },
    ],
    vi('x', ['N', 2]),
    vi('y', ['N', 3]),
  ).model;
  expectRefusal(() => specFromOnnx(concat, { strict: true }), /node 'cat' \(Concat\)/, /channel axis/);
  assert.deepEqual(partition(specFromOnnx(concat).spec), []);
  const grouped = build(
    'grouped',
    // 'grp' has 4 input channels in 2 groups of 2.
    { 'g.w': [4, 2, 1, 1], 'h.w': [2, 2, 1, 1], 'i.w': [2, 2, 1, 1] },
    [
      { name: 'in', op_type: 'Conv', input: ['x', 'g.w'], output: ['a'] },
      { name: 'grp', op_type: 'Conv', input: ['a', 'h.w'], output: ['y0'], attribute: [int('group', 2)] },
      { name: 'out', op_type: 'Conv', input: ['y0', 'i.w'], output: ['y'] },
    ],
    vi('x', ['N', 2, 3, 3]),
    vi('y', ['N', 2, 3, 3]),
  ).model;
  expectRefusal(() => specFromOnnx(grouped, { strict: true }), /node 'grp' \(Conv\)/, /group=2/);
  const partial = specFromOnnx(grouped);
  assert.deepEqual(partition(partial.spec), []);
  assert.deepEqual(partial.unsupported.map((u) => u.node), ["'grp' (Conv)"]);
});
