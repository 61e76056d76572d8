/**
 * Where the parts of a segmented tensor lie (permutation-spec/segments.ts partBounds, splitTensor), by hand: refusals
 * name the tensor and what does not fit, unequal sizes need not divide evenly, and a tensor the spec does not
 * segment is not split. Added for Stryker mutants of segments.js that survived segments.test (TESTING.md).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { partBounds, splitTensor } from '../src/permutation-spec/segments.js';
import { InputError } from '../src/errors.js';

const refused = (fn: () => unknown, message: string): void =>
  assert.throws(fn, (e: unknown) => e instanceof InputError && e.message === message);

test('partBounds: parts side by side along the axis; an axis past the rank or sizes that do not add up are refused', () => {
  assert.deepEqual(partBounds('w', { axis: 0, parts: ['q', 'k', 'v'] }, [6, 2]), [
    { name: 'q', start: 0, size: 2 },
    { name: 'k', start: 2, size: 2 },
    { name: 'v', start: 4, size: 2 },
  ]);
  // Given sizes need not be equal, nor divide the axis by the number of parts.
  assert.deepEqual(partBounds('w', { axis: 1, parts: ['a', 'b'], sizes: [1, 2] }, [4, 3]), [
    { name: 'a', start: 0, size: 1 },
    { name: 'b', start: 1, size: 2 },
  ]);
  refused(() => partBounds('w', { axis: 2, parts: ['a', 'b'] }, [4, 2], 'model A'), "spec segments 'w' along axis 2, but in model A it has rank 2 (shape [4, 2])");
  refused(() => partBounds('w', { axis: 1, parts: ['a', 'b'] }, [4, 3]), "spec cuts 'w' axis 1 (3 in params) into 2 equal parts, which 3 is not divisible into");
  refused(() => partBounds('w', { axis: 0, parts: ['a', 'b'], sizes: [1, 2] }, [4, 3]), "spec cuts 'w' axis 0 into parts of 1 + 2 = 3, but in params that axis has 4 (shape [4, 3])");
});

test('splitTensor: only a tensor the spec segments is split, into copies of its slices', () => {
  const t = { shape: [2, 2], data: Float32Array.from([1, 2, 3, 4]) };
  assert.equal(splitTensor(undefined, 'w', t), null);
  assert.equal(splitTensor({ other: { axis: 0, parts: ['a', 'b'] } }, 'w', t), null);
  // A name every object has is not a segmentation.
  assert.equal(splitTensor({ other: { axis: 0, parts: ['a', 'b'] } }, 'constructor', t), null);
  const parts = splitTensor({ w: { axis: 1, parts: ['a', 'b'] } }, 'w', t)!;
  assert.deepEqual(Object.keys(parts), ['a', 'b']);
  assert.deepEqual([Array.from(parts.a.data), parts.a.shape], [[1, 3], [2, 1]]);
  assert.deepEqual([Array.from(parts.b.data), parts.b.shape], [[2, 4], [2, 1]]);
  refused(() => splitTensor({ w: { axis: 3, parts: ['a', 'b'] } }, 'w', t), "spec segments 'w' along axis 3, but in params it has rank 2 (shape [2, 2])");
});
