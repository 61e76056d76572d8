/**
 * The integer arithmetic the graph walk follows in Reshape targets and Slice bounds (src/permutation-spec/onnx-sizes.ts)
 * against ONNX Runtime computing the same int64 Add/Sub/Mul/Div (Div truncates toward zero there, unlike
 * Python's //), and the products of run-time sizes it keeps symbolic.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { onnxModelFromObject, serializeOnnx } from '../src/io/onnx.js';
import { intArithmetic } from '../src/permutation-spec/onnx-sizes.js';

const PAIRS: [number, number][] = [[7, 2], [-7, 2], [7, -2], [-7, -2], [48, 3], [50, 3], [0, 5], [16, 4], [-1, 3], [1, -3]];

test('int64 Add/Sub/Mul/Div of followed sizes agree with ONNX Runtime (Div truncates toward zero)', async () => {
  const a = PAIRS.map((p) => p[0]);
  const b = PAIRS.map((p) => p[1]);
  const ops = ['Add', 'Sub', 'Mul', 'Div'];
  const vi = (name: string): unknown => ({ name, type: { tensor_type: { elem_type: 7, shape: { dim: [{ dim_value: PAIRS.length }] } } } });
  const model = onnxModelFromObject(
    {
      ir_version: 8,
      opset_import: [{ domain: '', version: 17 }],
      graph: { name: 'int-arith', node: ops.map((op) => ({ name: op, op_type: op, input: ['a', 'b'], output: [op] })), input: [vi('a'), vi('b')], output: ops.map(vi) },
    },
    'int-arith',
  );
  const session = await ort.InferenceSession.create(serializeOnnx(model));
  const feeds = { a: new ort.Tensor('int64', BigInt64Array.from(a.map(BigInt)), [a.length]), b: new ort.Tensor('int64', BigInt64Array.from(b.map(BigInt)), [b.length]) };
  const out = await session.run(feeds);
  await session.release();
  for (const op of ops) {
    const expected = Array.from(out[op].data as BigInt64Array, Number);
    assert.deepEqual(intArithmetic(op, [a, b]), expected, op);
    // A scalar broadcasts against a vector, as `Mul(Div(c, 3), [1])` does.
    assert.deepEqual(intArithmetic(op, [a, [b[0]]]), a.map((x) => (op === 'Div' ? Math.trunc(x / b[0]) + 0 : op === 'Add' ? x + b[0] : op === 'Sub' ? x - b[0] : x * b[0])), `${op} broadcast`);
  }
});

test('products of run-time sizes stay followed; sums and quotients of them do not; division by zero is not followed', () => {
  const n = { of: 'x', axis: 0 };
  const t = { of: 'x', axis: 1 };
  assert.deepEqual(intArithmetic('Mul', [[n], [4]]), [{ k: 4, dims: [n] }]);
  assert.deepEqual(intArithmetic('Mul', [[{ k: 4, dims: [n] }], [t]]), [{ k: 4, dims: [n, t] }]);
  assert.equal(intArithmetic('Add', [[n], [1]]), null);
  assert.equal(intArithmetic('Div', [[n], [2]]), null);
  assert.equal(intArithmetic('Div', [[6], [0]]), null);
  assert.equal(intArithmetic('Pow', [[2], [3]]), null);
  assert.equal(intArithmetic('Add', [[1, 2], [1, 2, 3]]), null, 'shapes that do not broadcast');
});
