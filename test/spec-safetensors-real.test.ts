/**
 * The built-in specs on the real safetensors state dicts exported from PyTorch: a plain forward pass over the
 * state dict reproduces PyTorch's logits, and keeps reproducing them after random permutations by the spec.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { readSafetensorsFile } from '../src/io/safetensors-fs.js';
import { toParams } from '../src/io/safetensors.js';
import { autoSpec } from '../src/permutation-spec/auto.js';
import { permSizes } from '../src/permutation-spec/spec.js';
import { applyPermutation, randomPerms } from '../src/permute.js';
import { loadIdxPair } from '../src/data/load.js';
import type { Params, Tensor } from '../src/tensor.js';
import { resnetForward, mlpForwardNamed } from './helpers/forward.js';

const dir = fileURLToPath(new URL('../../test/fixtures/models/', import.meta.url));
const images = loadIdxPair(`${dir}fmnist_test256-images-idx3-ubyte.gz`, `${dir}fmnist_test256-labels-idx1-ubyte.gz`, { limit: 16 });

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

for (const name of ['mlp_a', 'resnet_a']) {
  test(`${name}.safetensors: the ${name.startsWith('mlp') ? 'MLP' : 'ResNet'} spec from state-dict names keeps PyTorch's function under random permutations`, () => {
    const { params } = toParams(readSafetensorsFile(`${dir}${name}.safetensors`));
    const expected = JSON.parse(readFileSync(`${dir}${name}.expected.json`, 'utf8')).logits.flat() as number[];
    const { kind, spec } = autoSpec(params);
    assert.equal(kind, name.startsWith('mlp') ? 'mlp' : 'resnet');
    const forward = (p: Params): Float32Array => {
      if (kind === 'mlp') {
        const x: Tensor = { shape: [16, 784], data: images.inputs };
        return mlpForwardNamed(p, ['fc1', 'fc2', 'fc3'], x).data;
      }
      return resnetForward(p, { shape: [16, 1, 28, 28], data: images.inputs }).data;
    };
    // The plain forward pass over the state dict is PyTorch's function (independent truth) ...
    assert.ok(maxDiff(forward(params), expected) < 1e-4, 'forward pass of the state dict vs PyTorch logits');
    // ... and so is every random permutation of it by the derived spec.
    for (const seed of [1, 2]) {
      const permuted = applyPermutation(spec, randomPerms(permSizes(spec, params), seed), params);
      assert.notDeepEqual(permuted[Object.keys(spec.axesToPerm)[0]].data, params[Object.keys(spec.axesToPerm)[0]].data);
      assert.ok(maxDiff(forward(permuted), expected) < 1e-4, `seed ${seed}`);
    }
  });
}
