/** readModel's check of weights: NaN never, infinity only as a one-value bound (Clip's max = +Inf). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readModel } from '../src/cli/model-file.js';
import { onnxModelFromObject, serializeOnnx } from '../src/io/onnx.js';
import { isInputError } from '../src/errors.js';

function clipModel(bound: number[]): Uint8Array {
  const model = onnxModelFromObject({
    ir_version: 8,
    opset_import: [{ domain: '', version: 17 }],
    graph: {
      name: 'clip',
      node: [{ op_type: 'Clip', input: ['x', 'lo', 'hi'], output: ['y'] }],
      initializer: [
        { name: 'lo', dims: [], data_type: 1, float_data: [0] },
        { name: 'hi', dims: bound.length === 1 ? [] : [bound.length], data_type: 1, float_data: bound },
      ],
      input: [{ name: 'x', type: { tensor_type: { elem_type: 1, shape: { dim: [{ dim_value: 2 }] } } } }],
      output: [{ name: 'y', type: { tensor_type: { elem_type: 1, shape: { dim: [{ dim_value: 2 }] } } } }],
    },
  });
  return serializeOnnx(model);
}

test('a one-value +Inf bound is read; NaN, or infinity in a tensor of several values, is refused naming it', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'rebasin-model-file-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const write = (name: string, bytes: Uint8Array): string => {
    const p = join(dir, name);
    writeFileSync(p, bytes);
    return p;
  };
  assert.equal(readModel(write('inf.onnx', clipModel([Infinity]))).params.hi.data[0], Infinity);
  for (const [name, bound, why] of [['nan.onnx', [NaN], /'hi' holds NaN/], ['inf2.onnx', [1, Infinity], /'hi' holds Infinity at flat index 1/]] as const) {
    const path = write(name, clipModel([...bound]));
    assert.throws(() => readModel(path), (e: unknown) => isInputError(e) && why.test((e as Error).message));
  }
});
