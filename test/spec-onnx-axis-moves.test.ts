/**
 * specFromOnnx following a channel axis through Squeeze and Unsqueeze on ACTIVATIONS (not initializers),
 * where the channel axis moves by the number of axes added or dropped before it and not after it. The
 * graphs drop or add axes on both sides of the channel axis, so a shift counted from the wrong side lands on
 * another axis. The truth is ONNX Runtime: the original and permuted models give the same outputs, and each
 * tap carries its permutation on the axis the walk says (helpers/onnx-graphs.ts, checkInvariance).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { specFromOnnx } from '../src/permutation-spec/onnx-graph.js';
import { specFromAxes } from '../src/permutation-spec/spec.js';
import { build, checkBrokenSpecChangesOutputs, checkInvariance, int, partition, randomInput, vi } from './helpers/onnx-graphs.js';

test('a channel axis squeezed and unsqueezed on both sides keeps its permutation (axes after it do not shift it)', async () => {
  const { model, params } = build(
    'squeeze-both-sides',
    { w1: [4, 3], s: [4, 1], b: [4], w2: [2, 4] },
    [
      { name: 'fc1', op_type: 'Gemm', input: ['x', 'w1'], output: ['h'], attribute: [int('transB', 1)] },
      // [N, 4] -> [1, N, 4, 1]: one axis added before the channels, one after.
      { name: 'un', op_type: 'Unsqueeze', input: ['h', 'ax03'], output: ['hu'] },
      { name: 'scale', op_type: 'Mul', input: ['hu', 's'], output: ['hs'] },
      // [1, N, 4, 1] -> [1, N, 4]: the dropped axis comes after the channels, which stay at axis 2.
      { name: 'sqAfter', op_type: 'Squeeze', input: ['hs', 'ax3'], output: ['h3'] },
      { name: 'bias', op_type: 'Add', input: ['h3', 'b'], output: ['hb'] },
      // [1, N, 4] -> [N, 4]: the dropped axis comes before the channels, which move to axis 1.
      { name: 'sqBefore', op_type: 'Squeeze', input: ['hb', 'ax0'], output: ['h2'] },
      { name: 'relu', op_type: 'Relu', input: ['h2'], output: ['r'] },
      { name: 'fc2', op_type: 'Gemm', input: ['r', 'w2'], output: ['y'], attribute: [int('transB', 1)] },
    ],
    vi('x', ['N', 3]),
    vi('y', ['N', 2]),
    { int64: { ax03: [0, 3], ax3: [3], ax0: [0] } },
  );
  const derived = specFromOnnx(model, { strict: true });
  const expected = specFromAxes({ w1: ['p', null], s: ['p', null], b: ['p'], w2: [null, 'p'] });
  assert.deepEqual(partition(derived.spec), partition(expected));
  const feeds = { x: randomInput([5, 3], 1) };
  await checkInvariance(model, params, derived, feeds, 1e-5, 1);
  await checkBrokenSpecChangesOutputs(model, params, derived.spec, feeds, 1);
});

test('negative Squeeze/Unsqueeze axes count from the end, on each side of a convolution’s channel axis', async () => {
  const { model, params } = build(
    'squeeze-negative',
    { 'c1.w': [4, 2, 3], t: [4, 1, 1], 'c2.w': [3, 4, 1], 'fc.w': [2, 3] },
    [
      // Conv1d: [N, 2, 6] -> [N, 4, 4].
      { name: 'c1', op_type: 'Conv', input: ['x', 'c1.w'], output: ['c1o'] },
      // [N, 4, 4] -> [N, 4, 4, 1] (axis -1 is after the channels) -> [1, N, 4, 4, 1] (axis -5 before them).
      { name: 'u1', op_type: 'Unsqueeze', input: ['c1o', 'axm1'], output: ['u1o'] },
      { name: 'u2', op_type: 'Unsqueeze', input: ['u1o', 'axm5'], output: ['u2o'] },
      // [1, N, 4, 4, 1] -> [N, 4, 4, 1] (the channels move to axis 1), shifted per channel, -> [N, 4, 4].
      { name: 's1', op_type: 'Squeeze', input: ['u2o', 'axm5'], output: ['s1o'] },
      { name: 'shift', op_type: 'Add', input: ['s1o', 't'], output: ['a'] },
      { name: 's2', op_type: 'Squeeze', input: ['a', 'axm1'], output: ['s2o'] },
      { name: 'r', op_type: 'Relu', input: ['s2o'], output: ['ro'] },
      { name: 'c2', op_type: 'Conv', input: ['ro', 'c2.w'], output: ['c2o'] },
      { name: 'gap', op_type: 'GlobalAveragePool', input: ['c2o'], output: ['g'] },
      { name: 'flat', op_type: 'Flatten', input: ['g'], output: ['gf'] },
      { name: 'fc', op_type: 'Gemm', input: ['gf', 'fc.w'], output: ['y'], attribute: [int('transB', 1)] },
    ],
    vi('x', ['N', 2, 6]),
    vi('y', ['N', 2]),
    { int64: { axm1: [-1], axm5: [-5] } },
  );
  const derived = specFromOnnx(model, { strict: true });
  const expected = specFromAxes({ 'c1.w': ['p1', null, null], t: ['p1', null, null], 'c2.w': ['p2', 'p1', null], 'fc.w': [null, 'p2'] });
  assert.deepEqual(partition(derived.spec), partition(expected));
  const feeds = { x: randomInput([3, 2, 6], 2) };
  await checkInvariance(model, params, derived, feeds, 1e-5, 2);
  await checkBrokenSpecChangesOutputs(model, params, derived.spec, feeds, 2);
});
