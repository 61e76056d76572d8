/**
 * specFromOnnx on the graph patterns that real exporters write and that once made the walk silently wrong
 * (an initializer reshaped on its way, If/Loop bodies reading outer values, initializers as graph outputs,
 * weights in Constant nodes, a class joined with a varying constant, a Transpose that is not its own
 * inverse), and on the ops a partial or runtime-shaped graph needs (Reshape to a shape built from Shape,
 * Pad, Resize, Slice, Split, Tile, Gather). The truth is ONNX Runtime on the original and permuted models.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { specFromOnnx } from '../src/permutation-spec/onnx-graph.js';
import { specFromAxes } from '../src/permutation-spec/spec.js';
import {
  type Attr, build, checkBrokenSpecChangesOutputs, checkInvariance, expectRefusal, int, ints, partition, randomInput, vi,
} from './helpers/onnx-graphs.js';

const floatConst = (name: string, output: string, dims: number[], data: number[]): Attr => ({
  name, op_type: 'Constant', output: [output], attribute: [{ name: 'value', type: 4, t: { dims, data_type: 1, float_data: data } }],
});

test('initializers reshaped on their way (Unsqueeze, Reshape, Transpose, Squeeze, Flatten) are permuted with the channels they meet', async () => {
  const { model, params } = build(
    'init-views',
    {
      'c1.w': [4, 2, 3, 3], b1: [4], 'c2.w': [3, 4, 1, 1], s2: [3], 'c3.w': [4, 3, 1, 1], t3: [1, 1, 4], q: [1, 4, 1, 1],
      fb: [4, 1, 1], 'fc.w': [2, 4],
    },
    [
      { name: 'c1', op_type: 'Conv', input: ['x', 'c1.w'], output: ['c1o'], attribute: [ints('pads', [1, 1, 1, 1])] },
      { name: 'ub1', op_type: 'Unsqueeze', input: ['b1', 'ax12'], output: ['b1u'] },
      { name: 'add1', op_type: 'Add', input: ['c1o', 'b1u'], output: ['a1'] },
      { name: 'r1', op_type: 'Relu', input: ['a1'], output: ['r1o'] },
      { name: 'c2', op_type: 'Conv', input: ['r1o', 'c2.w'], output: ['c2o'] },
      { name: 'rs2', op_type: 'Reshape', input: ['s2', 'shape1311'], output: ['s2r'] },
      { name: 'neg2', op_type: 'Neg', input: ['s2r'], output: ['s2n'] },
      { name: 'mul2', op_type: 'Mul', input: ['c2o', 's2n'], output: ['m2'] },
      { name: 'r2', op_type: 'Tanh', input: ['m2'], output: ['r2o'] },
      { name: 'c3', op_type: 'Conv', input: ['r2o', 'c3.w'], output: ['c3o'] },
      // [1, 1, 4] -> [4, 1, 1] with a permutation that is not its own inverse.
      { name: 'tt3', op_type: 'Transpose', input: ['t3'], output: ['t3t'], attribute: [ints('perm', [2, 0, 1])] },
      { name: 'add3', op_type: 'Add', input: ['c3o', 't3t'], output: ['a3'] },
      { name: 'sq', op_type: 'Squeeze', input: ['q', 'ax0'], output: ['qs'] },
      { name: 'sub3', op_type: 'Sub', input: ['a3', 'qs'], output: ['s3'] },
      { name: 'r3', op_type: 'Relu', input: ['s3'], output: ['r3o'] },
      { name: 'gap', op_type: 'GlobalAveragePool', input: ['r3o'], output: ['g'] },
      { name: 'flat', op_type: 'Flatten', input: ['g'], output: ['gf'] },
      { name: 'ffb', op_type: 'Flatten', input: ['fb'], output: ['fbf'], attribute: [int('axis', 0)] },
      { name: 'addf', op_type: 'Add', input: ['gf', 'fbf'], output: ['h'] },
      { name: 'fc', op_type: 'Gemm', input: ['h', 'fc.w'], output: ['y'], attribute: [int('transB', 1)] },
    ],
    vi('x', ['N', 2, 5, 5]),
    vi('y', ['N', 2]),
    { int64: { ax12: [1, 2], shape1311: [1, 3, 1, 1], ax0: [0] } },
  );
  const derived = specFromOnnx(model, { strict: true });
  const expected = specFromAxes({
    'c1.w': ['p1', null, null, null], b1: ['p1'], 'c2.w': ['p2', 'p1', null, null], s2: ['p2'],
    'c3.w': ['p3', 'p2', null, null], t3: [null, null, 'p3'], q: [null, 'p3', null, null], fb: ['p3', null, null],
    'fc.w': [null, 'p3'],
  });
  assert.deepEqual(partition(derived.spec), partition(expected));
  const feeds = { x: randomInput([3, 2, 5, 5], 1) };
  await checkInvariance(model, params, derived, feeds, 1e-5, 1);
  await checkBrokenSpecChangesOutputs(model, params, derived.spec, feeds, 1);
});

test('an initializer transformed in a way the walk does not follow is pinned, and the class it meets is fixed', async () => {
  const { model, params } = build(
    'init-opaque',
    { w1: [4, 3], k: [4, 3], w2: [2, 4] },
    [
      { name: 'fc1', op_type: 'Gemm', input: ['x', 'w1'], output: ['h'], attribute: [int('transB', 1)] },
      // Summing k over its columns gives a [4] vector: the walk does not follow it, so it must stay put.
      { name: 'rk', op_type: 'ReduceSum', input: ['k', 'ax1'], output: ['ks'], attribute: [int('keepdims', 0)] },
      { name: 'add', op_type: 'Add', input: ['h', 'ks'], output: ['a'] },
      { name: 'r', op_type: 'Relu', input: ['a'], output: ['ro'] },
      { name: 'fc2', op_type: 'Gemm', input: ['ro', 'w2'], output: ['y'], attribute: [int('transB', 1)] },
    ],
    vi('x', ['N', 3]),
    vi('y', ['N', 2]),
    { int64: { ax1: [1] } },
  );
  const derived = specFromOnnx(model);
  assert.deepEqual(partition(derived.spec), []);
  const fixedK = derived.fixed.find((f) => f.axes.some((a) => a.tensor === 'k'));
  assert.match(fixedK!.reason, /ReduceSum/);
  await checkInvariance(model, params, derived, { x: randomInput([4, 3], 2) }, 1e-5, 2);
});

/** fc1 -> relu -> fc2, plus an If whose branches read the hidden activation (or fc1's weight) from outside. */
function ifNet(reads: 'activation' | 'weight'): ReturnType<typeof build> {
  const branch = (name: string, scale: number): Attr => ({
    name,
    type: 5,
    g: {
      name,
      node:
        reads === 'activation'
          ? [{ name: `${name}_mm`, op_type: 'MatMul', input: ['r', `${name}_w`], output: [`${name}_z`] }]
          : [
              { name: `${name}_mm`, op_type: 'Gemm', input: ['x', 'w1'], output: [`${name}_h`], attribute: [int('transB', 1)] },
              { name: `${name}_mm2`, op_type: 'MatMul', input: [`${name}_h`, `${name}_w`], output: [`${name}_z`] },
            ],
      initializer: [{ name: `${name}_w`, dims: [4, 2], data_type: 1, float_data: [1, -2, 3, 0.5, -1, 2, 0.25, -3].map((v) => v * scale) }],
      output: [vi(`${name}_z`, ['N', 2])],
    },
  });
  return build(
    `if-${reads}`,
    { w1: [4, 3], b1: [4], w2: [2, 4] },
    [
      { name: 'fc1', op_type: 'Gemm', input: ['x', 'w1', 'b1'], output: ['h'], attribute: [int('transB', 1)] },
      { name: 'relu', op_type: 'Relu', input: ['h'], output: ['r'] },
      { name: 'fc2', op_type: 'Gemm', input: ['r', 'w2'], output: ['y'], attribute: [int('transB', 1)] },
      { name: 'branch', op_type: 'If', input: ['cond'], output: ['z'], attribute: [branch('then_branch', 1), branch('else_branch', -0.5)] },
    ],
    [vi('x', ['N', 3]), { name: 'cond', type: { tensor_type: { elem_type: 9, shape: { dim: [] } } } }],
    [vi('y', ['N', 2]), vi('z', ['N', 2])],
  );
}

for (const reads of ['activation', 'weight'] as const) {
  test(`an If whose branches read the hidden ${reads} from the outer graph keeps it unpermuted`, async () => {
    const { model, params } = ifNet(reads);
    const derived = specFromOnnx(model);
    // fc1's units are read by the branches (through the activation or the weight): they stay.
    assert.deepEqual(partition(derived.spec), []);
    assert.ok(derived.fixed.some((f) => f.axes.some((a) => a.tensor === 'w1' && a.axis === 0)));
    for (const c of [true, false]) {
      await checkInvariance(model, params, derived, { x: randomInput([3, 3], 3), cond: new ort.Tensor('bool', [c], []) }, 1e-5, 3);
    }
  });
}

test('an initializer combined with another constant (no activation involved) is pinned where it is also a weight', async () => {
  // z = w1 + k is computed from weights alone; if w1 were permuted as fc1's weight, z would change.
  const { model, params } = build(
    'init-join-init',
    { w1: [4, 3], k: [4, 3], w2: [2, 4] },
    [
      { name: 'fc1', op_type: 'Gemm', input: ['x', 'w1'], output: ['h'], attribute: [int('transB', 1)] },
      { name: 'r', op_type: 'Relu', input: ['h'], output: ['ro'] },
      { name: 'fc2', op_type: 'Gemm', input: ['ro', 'w2'], output: ['y'], attribute: [int('transB', 1)] },
      { name: 'wk', op_type: 'Add', input: ['w1', 'k'], output: ['z'] },
    ],
    vi('x', ['N', 3]),
    [vi('y', ['N', 2]), vi('z', [4, 3])],
  );
  const derived = specFromOnnx(model);
  assert.deepEqual(partition(derived.spec), []);
  await checkInvariance(model, params, derived, { x: randomInput([4, 3], 3) }, 1e-5, 3);
});

test('initializers that are graph outputs (directly or through Identity) stay as they are', async () => {
  const { model, params } = build(
    'init-outputs',
    { w1: [4, 3], b1: [4], w2: [2, 4], w3: [5, 2], w4: [2, 5] },
    [
      { name: 'fc1', op_type: 'Gemm', input: ['x', 'w1', 'b1'], output: ['h'], attribute: [int('transB', 1)] },
      { name: 'relu', op_type: 'Relu', input: ['h'], output: ['r'] },
      { name: 'fc2', op_type: 'Gemm', input: ['r', 'w2'], output: ['y0'], attribute: [int('transB', 1)] },
      { name: 'fc3', op_type: 'Gemm', input: ['y0', 'w3'], output: ['h3'], attribute: [int('transB', 1)] },
      { name: 'relu3', op_type: 'Relu', input: ['h3'], output: ['r3'] },
      { name: 'fc4', op_type: 'Gemm', input: ['r3', 'w4'], output: ['y'], attribute: [int('transB', 1)] },
      { name: 'alias', op_type: 'Identity', input: ['b1'], output: ['b1_out'] },
    ],
    vi('x', ['N', 3]),
    [vi('y', ['N', 2]), vi('w4', [2, 5]), vi('b1_out', [4])],
  );
  const derived = specFromOnnx(model);
  // fc1's units reach an output through b1, fc3's through w4; only fc2's stay free.
  assert.deepEqual(partition(derived.spec), ['w2:0 w3:1']);
  assert.ok(derived.fixed.some((f) => f.axes.some((a) => a.tensor === 'w4') && /graph output 'w4'/.test(f.reason)));
  assert.ok(derived.fixed.some((f) => f.axes.some((a) => a.tensor === 'b1') && /graph output 'b1_out'/.test(f.reason)));
  await checkInvariance(model, params, derived, { x: randomInput([3, 3], 4) }, 1e-5, 4);
});

test('weights held in Constant nodes are never permuted, and the spaces they touch stay fixed', async () => {
  const { model, params } = build(
    'constant-weights',
    { w2: [2, 4], w3: [4, 2], w4: [2, 4] },
    [
      floatConst('cw', 'W1', [4, 3], Array.from({ length: 12 }, (_, i) => Math.sin(i + 1))),
      { name: 'fc1', op_type: 'Gemm', input: ['x', 'W1'], output: ['h'], attribute: [int('transB', 1)] },
      { name: 'relu', op_type: 'Relu', input: ['h'], output: ['r'] },
      { name: 'fc2', op_type: 'Gemm', input: ['r', 'w2'], output: ['h2'], attribute: [int('transB', 1)] },
      { name: 'fc3', op_type: 'Gemm', input: ['h2', 'w3'], output: ['h3'], attribute: [int('transB', 1)] },
      floatConst('cb', 'B3', [4], [0.5, -1, 2, 0.25]),
      { name: 'add3', op_type: 'Add', input: ['h3', 'B3'], output: ['a3'] },
      { name: 'relu3', op_type: 'Relu', input: ['a3'], output: ['r3'] },
      { name: 'fc4', op_type: 'Gemm', input: ['r3', 'w4'], output: ['y'], attribute: [int('transB', 1)] },
    ],
    vi('x', ['N', 3]),
    vi('y', ['N', 2]),
  );
  const derived = specFromOnnx(model);
  // fc1's weight is a Constant: its units stay. fc3's units meet a Constant bias that varies along them: fixed.
  // Only fc2's units are free.
  assert.deepEqual(partition(derived.spec), ['w2:0 w3:1']);
  assert.ok(derived.fixed.some((f) => f.axes.some((a) => a.tensor === 'w3' && a.axis === 0) && /add3.*a constant/.test(f.reason)));
  await checkInvariance(model, params, derived, { x: randomInput([3, 3], 5) }, 1e-5, 5);
});

test('a class joined with a constant that varies along the channels is fixed; one constant along them is not', async () => {
  const net = (bias: number[]): ReturnType<typeof build> =>
    build(
      'join-constant',
      { w1: [4, 3], w2: [2, 4] },
      [
        { name: 'fc1', op_type: 'Gemm', input: ['x', 'w1'], output: ['h'], attribute: [int('transB', 1)] },
        floatConst('c', 'bias', [bias.length], bias),
        { name: 'add', op_type: 'Add', input: ['h', 'bias'], output: ['a'] },
        { name: 'relu', op_type: 'Relu', input: ['a'], output: ['r'] },
        { name: 'fc2', op_type: 'Gemm', input: ['r', 'w2'], output: ['y'], attribute: [int('transB', 1)] },
      ],
      vi('x', ['N', 3]),
      vi('y', ['N', 2]),
    );
  const varying = net([1, -2, 3, -4]);
  const fixed = specFromOnnx(varying.model);
  assert.deepEqual(partition(fixed.spec), []);
  await checkInvariance(varying.model, varying.params, fixed, { x: randomInput([5, 3], 6) }, 1e-5, 6);
  const scalar = net([0.5]);
  const free = specFromOnnx(scalar.model);
  assert.deepEqual(partition(free.spec), ['w1:0 w2:1']);
  await checkInvariance(scalar.model, scalar.params, free, { x: randomInput([5, 3], 6) }, 1e-5, 6);
  await checkBrokenSpecChangesOutputs(scalar.model, scalar.params, free.spec, { x: randomInput([5, 3], 6) }, 6);
});

test('a Transpose that is not its own inverse moves the channel axis where the runtime puts it', async () => {
  const { model, params } = build(
    'transpose',
    { 'c1.w': [4, 3, 1, 1], w2: [4, 6], 'c3.w': [2, 6, 1, 1] },
    [
      { name: 'c1', op_type: 'Conv', input: ['x', 'c1.w'], output: ['c1o'] },
      { name: 'nhwc', op_type: 'Transpose', input: ['c1o'], output: ['t'], attribute: [ints('perm', [0, 2, 3, 1])] },
      { name: 'mm', op_type: 'MatMul', input: ['t', 'w2'], output: ['m'] },
      { name: 'relu', op_type: 'Relu', input: ['m'], output: ['r'] },
      { name: 'nchw', op_type: 'Transpose', input: ['r'], output: ['u'], attribute: [ints('perm', [0, 3, 1, 2])] },
      { name: 'c3', op_type: 'Conv', input: ['u', 'c3.w'], output: ['y'] },
    ],
    vi('x', ['N', 3, 5, 5]),
    vi('y', ['N', 2, 5, 5]),
  );
  const derived = specFromOnnx(model, { strict: true });
  assert.deepEqual(partition(derived.spec), partition(specFromAxes({
    'c1.w': ['a', null, null, null], w2: ['a', 'b'], 'c3.w': [null, 'b', null, null],
  })));
  assert.deepEqual(derived.taps.mm, { value: 'r', axis: 3 });
  const feeds = { x: randomInput([2, 3, 5, 5], 7) };
  await checkInvariance(model, params, derived, feeds, 1e-5, 7);
  await checkBrokenSpecChangesOutputs(model, params, derived.spec, feeds, 7);
});

/** conv -> relu -> [GAP] -> Reshape to [Gather(Shape(x), 0), -1] (torch's x.view(x.size(0), -1)) -> Gemm. */
function runtimeFlatten(pool: boolean): ReturnType<typeof build> {
  return build(
    'runtime-flatten',
    { 'c.w': [4, 2, 3, 3], 'c.b': [4], 'fc.w': [3, pool ? 4 : 16] },
    [
      { name: 'conv', op_type: 'Conv', input: ['x', 'c.w', 'c.b'], output: ['co'] },
      { name: 'relu', op_type: 'Relu', input: ['co'], output: ['ro'] },
      ...(pool ? [{ name: 'gap', op_type: 'GlobalAveragePool', input: ['ro'], output: ['po'] }] : []),
      { name: 'shape', op_type: 'Shape', input: [pool ? 'po' : 'ro'], output: ['s'] },
      { name: 'g', op_type: 'Gather', input: ['s', 'idx0'], output: ['n'], attribute: [int('axis', 0)] },
      { name: 'un', op_type: 'Unsqueeze', input: ['n', 'ax0'], output: ['n1'] },
      { name: 'cat', op_type: 'Concat', input: ['n1', 'minus1'], output: ['target'], attribute: [int('axis', 0)] },
      { name: 'view', op_type: 'Reshape', input: [pool ? 'po' : 'ro', 'target'], output: ['f'] },
      { name: 'fc', op_type: 'Gemm', input: ['f', 'fc.w'], output: ['y'], attribute: [int('transB', 1)] },
    ],
    vi('x', ['N', 2, 4, 4]),
    vi('y', ['N', 3]),
    { int64: { ax0: [0], minus1: [-1], idx0: 0 } },
  );
}

test('a Reshape whose target is computed from Shape (a dynamic flatten) is followed; flattening spatial positions is refused clearly', async () => {
  const pooled = runtimeFlatten(true);
  const derived = specFromOnnx(pooled.model, { strict: true });
  assert.deepEqual(partition(derived.spec), ['c.b:0 c.w:0 fc.w:1']);
  await checkInvariance(pooled.model, pooled.params, derived, { x: randomInput([3, 2, 4, 4], 8) }, 1e-5, 8);
  // 4 channels x 2x2 positions flattened: a channel permutation would act on blocks of 4 inputs of fc.
  expectRefusal(() => specFromOnnx(runtimeFlatten(false).model, { strict: true }), /node 'view' \(Reshape\)/, /4 channels/, /blocks of 4/);
});

test('Pad, Resize, Slice, Split, Tile and Gather on other axes keep the channels; on the channel axis they fix them', async () => {
  const { model, params } = build(
    'spatial-ops',
    { 'c1.w': [4, 2, 1, 1], 'c1.b': [4], 'fc.w': [3, 4] },
    [
      { name: 'c1', op_type: 'Conv', input: ['x', 'c1.w', 'c1.b'], output: ['c1o'] },
      { name: 'r1', op_type: 'Relu', input: ['c1o'], output: ['r1o'] },
      { name: 'pad', op_type: 'Pad', input: ['r1o', 'pads'], output: ['p'], attribute: [{ name: 'mode', type: 3, s: new TextEncoder().encode('reflect') }] },
      floatConst('sc', 'scales', [4], [1, 1, 2, 2]),
      { name: 'up', op_type: 'Resize', input: ['p', '', 'scales'], output: ['u'] },
      { name: 'crop', op_type: 'Slice', input: ['u', 'starts', 'ends', 'axes23'], output: ['c'] },
      { name: 'split', op_type: 'Split', input: ['c'], output: ['top', 'bottom'], attribute: [int('axis', 2)] },
      { name: 'join', op_type: 'Add', input: ['top', 'bottom'], output: ['j'] },
      { name: 'tile', op_type: 'Tile', input: ['j', 'reps'], output: ['t'] },
      { name: 'row', op_type: 'Gather', input: ['t', 'idx1'], output: ['g'], attribute: [int('axis', 2)] },
      { name: 'mean', op_type: 'ReduceMean', input: ['g'], output: ['m'], attribute: [ints('axes', [2]), int('keepdims', 0)] },
      { name: 'fc', op_type: 'Gemm', input: ['m', 'fc.w'], output: ['y'], attribute: [int('transB', 1)] },
    ],
    vi('x', ['N', 2, 3, 3]),
    vi('y', ['N', 3]),
    { int64: { pads: [0, 0, 1, 1, 0, 0, 1, 1], starts: [1, 0], ends: [9, 8], axes23: [2, 3], reps: [1, 1, 1, 2], idx1: 1 } },
  );
  const derived = specFromOnnx(model, { strict: true });
  assert.deepEqual(partition(derived.spec), ['c1.b:0 c1.w:0 fc.w:1']);
  const feeds = { x: randomInput([2, 2, 3, 3], 9) };
  await checkInvariance(model, params, derived, feeds, 1e-5, 9);
  await checkBrokenSpecChangesOutputs(model, params, derived.spec, feeds, 9);
});

test('a one-channel gate multiplied into many channels (spatial attention) broadcasts and leaves them permutable', async () => {
  const { model, params } = build(
    'spatial-gate',
    { 'c1.w': [6, 2, 3, 3], 'g.w': [1, 6, 1, 1], 'c2.w': [3, 6, 1, 1] },
    [
      { name: 'c1', op_type: 'Conv', input: ['x', 'c1.w'], output: ['c1o'], attribute: [ints('pads', [1, 1, 1, 1])] },
      { name: 'r1', op_type: 'Relu', input: ['c1o'], output: ['r1o'] },
      { name: 'g', op_type: 'Conv', input: ['r1o', 'g.w'], output: ['go'] },
      { name: 'sig', op_type: 'Sigmoid', input: ['go'], output: ['gate'] },
      { name: 'mul', op_type: 'Mul', input: ['r1o', 'gate'], output: ['m'] },
      { name: 'c2', op_type: 'Conv', input: ['m', 'c2.w'], output: ['y'] },
    ],
    vi('x', ['N', 2, 4, 4]),
    vi('y', ['N', 3, 4, 4]),
  );
  const derived = specFromOnnx(model, { strict: true });
  assert.deepEqual(partition(derived.spec), ['c1.w:0 c2.w:1 g.w:1']);
  const feeds = { x: randomInput([2, 2, 4, 4], 10) };
  await checkInvariance(model, params, derived, feeds, 1e-5, 10);
  await checkBrokenSpecChangesOutputs(model, params, derived.spec, feeds, 10);
});
