// The WebAssembly layout kernels of a leased solver (asm/layout.ts through lap-wasm.ts) against the
// JavaScript ones of tensor.ts, which have their own tests against the definitions (core.test.ts): on
// random shapes, axes, selections, ld and col offsets, every bit of the destination must match, nothing
// outside the view may be written, and the calls must really have run as WebAssembly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { leaseSolver, type SolverLease } from '../src/match/lap-wasm.js';
import { jsLayoutKernels, sameBits, type Tensor } from '../src/tensor.js';
import { createRng, shuffledRange, type Rng } from '../src/random.js';
import { weightMatching } from '../src/match/weight-matching.js';
import { mlpSpec } from '../src/spec/mlp.js';
import { randomMlp } from './helpers/mlp.js';

const AREA = 1 << 18;

function randomShape(rng: Rng): number[] {
  const rank = 1 + rng.int(4);
  let shape: number[];
  do shape = Array.from({ length: rank }, () => (rng.next() < 0.2 ? 1 + rng.int(3) : 2 + rng.int(rank > 2 ? 9 : 40)));
  while (shape.reduce((x, y) => x * y, 1) > 6000);
  return shape;
}

/** Normal values of mixed scale, a few exact zeros and negative zeros (the sign of a zero is a bit too). */
function fill(data: Float32Array, rng: Rng): void {
  for (let i = 0; i < data.length; i++) {
    const u = rng.next();
    data[i] = u < 0.05 ? 0 : u < 0.1 ? -0 : rng.normal() * 10 ** (rng.int(5) - 2);
  }
}

/** A tensor with its values in the lease's float area at `at`. */
function inArea(lease: SolverLease, shape: number[], at: number, rng: Rng): Tensor {
  const size = shape.reduce((x, y) => x * y, 1);
  const data = lease.floats!.subarray(at, at + size);
  fill(data, rng);
  return { shape, data };
}

function withLease(body: (lease: SolverLease) => void): void {
  const lease = leaseSolver({ matrices: [], largest: 4, floats: AREA, indices: 1024 });
  assert.ok(lease !== null && lease.floats !== null);
  try {
    body(lease);
  } finally {
    lease.release();
  }
}

type Write = (kernels: typeof jsLayoutKernels, dst: Float32Array, ld: number, col: number) => void;

/** Runs `write` with both kernel sets into identical destinations (the WebAssembly one inside the area). */
function compareWrites(lease: SolverLease, label: string, rows: number, width: number, write: Write, rng: Rng): void {
  const extra = rng.int(6);
  const ld = width + extra;
  const col = rng.int(extra + 1);
  const size = rows * ld + 3;
  const dst = lease.floats!.subarray(AREA - size, AREA);
  fill(dst, rng);
  const want = Float32Array.from(dst);
  write(jsLayoutKernels, want, ld, col);
  write(lease.kernels, dst, ld, col);
  assert.ok(sameBits(dst, want), `${label} ld ${ld} col ${col}`);
}

test('WebAssembly layout kernels write what the JavaScript ones write, bit for bit', () => {
  const rng = createRng(606);
  withLease((lease) => {
    const before = { ...lease.kernelRuns };
    for (let trial = 0; trial < 400; trial++) {
      const shape = randomShape(rng);
      const rank = shape.length;
      const t = inArea(lease, shape, 0, rng);
      const input = Float32Array.from(t.data);
      const axis = rng.int(Math.min(rank, rng.next() < 0.85 ? 2 : 4));
      const n = shape[axis];
      const width = t.data.length / n;
      const label = `shape [${shape.join(', ')}] axis ${axis}`;
      compareWrites(lease, `writeAxisFirst ${label}`, n, width, (k, dst, ld, col) => k.writeAxisFirst(t, axis, dst, ld, col), rng);
      const index = shape.map((d, k) => (rng.next() < 0.6 ? shuffledRange(d, rng) : null));
      compareWrites(lease, `writeGatheredAxisFirst ${label}`, n, width, (k, dst, ld, col) => k.writeGatheredAxisFirst(t, axis, index, dst, ld, col), rng);
      if (rank >= 2) {
        let other: number;
        do other = rng.next() < 0.85 ? 1 - Math.min(axis, 1) : rng.int(rank);
        while (other === axis);
        const count = 1 + rng.int(shape[other]);
        const pick = Int32Array.from({ length: count }, () => rng.int(shape[other]));
        const minus = rng.next() < 0.6 ? Int32Array.from({ length: count }, () => rng.int(shape[other])) : null;
        const takenWidth = (width / shape[other]) * count;
        compareWrites(
          lease,
          `writeTakenAxisFirst ${label} other ${other} k ${count} minus ${minus !== null}`,
          n,
          takenWidth,
          (k, dst, ld, col) => k.writeTakenAxisFirst(t, axis, other, pick, minus, dst, ld, col),
          rng,
        );
      }
      assert.ok(sameBits(t.data, input), `${label}: input changed`);
    }
    assert.ok(lease.kernelRuns.wasm - before.wasm > 600, `only ${lease.kernelRuns.wasm - before.wasm} calls ran as WebAssembly`);
    assert.ok(lease.kernelRuns.javascript - before.javascript > 20, 'the fallback was never taken');
  });
});

test('WebAssembly gathered dot products equal the JavaScript ones exactly', () => {
  const rng = createRng(707);
  withLease((lease) => {
    const before = lease.kernelRuns.wasm;
    for (let trial = 0; trial < 300; trial++) {
      const shape = randomShape(rng);
      const size = shape.reduce((x, y) => x * y, 1);
      const a = inArea(lease, shape, 0, rng);
      const b = inArea(lease, shape, size, rng);
      const index = shape.map((d) => (rng.next() < 0.6 ? shuffledRange(d, rng) : null));
      const want = jsLayoutKernels.gatheredDot(a, b, index);
      const got = lease.kernels.gatheredDot(a, b, index);
      assert.ok(Object.is(got, want), `shape [${shape.join(', ')}]: ${got} vs ${want}`);
    }
    assert.ok(lease.kernelRuns.wasm - before > 100);
  });
});

test('kernels fall back to JavaScript for arrays outside the area, and after release', () => {
  const rng = createRng(808);
  const lease = leaseSolver({ matrices: [], largest: 4, floats: 4096, indices: 64 });
  assert.ok(lease !== null);
  const t = inArea(lease, [6, 5], 0, rng);
  const outside = new Float32Array(30);
  lease.kernels.writeAxisFirst(t, 1, outside, 6, 0);
  const want = new Float32Array(30);
  jsLayoutKernels.writeAxisFirst(t, 1, want, 6, 0);
  assert.ok(sameBits(outside, want));
  assert.equal(lease.kernelRuns.wasm, 0);
  // Indices longer than the staging area: JavaScript again, same result.
  const long = { shape: [80], data: lease.floats!.subarray(100, 180) };
  fill(long.data, rng);
  const q = shuffledRange(80, rng);
  assert.ok(Object.is(lease.kernels.gatheredDot(long, long, [q]), jsLayoutKernels.gatheredDot(long, long, [q])));
  assert.equal(lease.kernelRuns.wasm, 0);
  assert.equal(lease.kernelRuns.javascript, 2);
  lease.release();
  const dst = new Float32Array(30);
  lease.kernels.writeAxisFirst(t, 1, dst, 6, 0);
  assert.equal(lease.kernelRuns.wasm, 0);
});

test('weight matching with the models copied into the solver equals matching without (same path, same numbers)', async () => {
  const spec = mlpSpec(3);
  const a = randomMlp([20, 48, 48, 48, 5], 'torch', 31);
  const b = randomMlp([20, 48, 48, 48, 5], 'torch', 32);
  // A second thread keeps everything in JavaScript memory (no lease): the reference here.
  const copied = await weightMatching({ spec, paramsA: a, paramsB: b, seed: 2 });
  const { createAssignmentThread } = await import('../src/match/assignment-thread.js');
  const thread = createAssignmentThread();
  try {
    const plainMemory = await weightMatching({ spec, paramsA: a, paramsB: b, seed: 2, assignmentThread: thread });
    assert.deepEqual(copied.perms, plainMemory.perms);
    assert.ok(Object.is(copied.objectiveBefore, plainMemory.objectiveBefore));
    assert.ok(Object.is(copied.objectiveAfter, plainMemory.objectiveAfter));
    assert.deepEqual(copied.history, plainMemory.history);
  } finally {
    await thread.close();
  }
});

test('scalars and NaN bit patterns: the WebAssembly kernels still give what the JavaScript ones give', () => {
  const rng = createRng(909);
  withLease((lease) => {
    // A rank-0 tensor (a scalar parameter such as a logit scale): its product, not 0.
    const a = { shape: [], data: lease.floats!.subarray(0, 1) };
    const b = { shape: [], data: lease.floats!.subarray(1, 2) };
    a.data[0] = 3;
    b.data[0] = 5;
    assert.equal(lease.kernels.gatheredDot(a, b, []), jsLayoutKernels.gatheredDot(a, b, []));
    assert.equal(lease.kernels.gatheredDot(a, b, []), 15);
    // Plain copies move bits: signalling NaNs with payloads, −0, subnormals survive either way.
    for (let trial = 0; trial < 100; trial++) {
      const shape = [2 + rng.int(20), 2 + rng.int(20)];
      const size = shape[0] * shape[1];
      const t = { shape, data: lease.floats!.subarray(0, size) };
      const bits = new Int32Array(t.data.buffer, t.data.byteOffset, size);
      for (let i = 0; i < size; i++) bits[i] = (rng.next() * 4294967296) | 0;
      for (let i = 0; i < size; i += 7) bits[i] = 0x7f800001 + rng.int(1000);
      const axis = rng.int(2);
      const other = 1 - axis;
      const pick = Int32Array.from({ length: 1 + rng.int(shape[other]) }, () => rng.int(shape[other]));
      compareWrites(lease, `copy ${shape} axis ${axis}`, shape[axis], (size / shape[other]) * pick.length, (k, dst, ld, col) => k.writeTakenAxisFirst(t, axis, other, pick, null, dst, ld, col), rng);
    }
  });
});

test('a matching that fails while copying its models in still releases its solver', async () => {
  const { liveLeases } = await import('../src/match/lap-wasm.js');
  const { paramsSource } = await import('../src/match/param-source.js');
  const { weightMatchingFrom } = await import('../src/match/weight-matching.js');
  const spec = mlpSpec(3);
  const a = randomMlp([8, 16, 16, 16, 3], 'torch', 1);
  const b = randomMlp([8, 16, 16, 16, 3], 'torch', 2);
  const failing = { ...paramsSource(b, 'model B'), use: () => { throw new Error('disk gone'); } };
  const before = liveLeases();
  for (let k = 0; k < 3; k++) {
    await assert.rejects(weightMatchingFrom({ spec, sourceA: paramsSource(a, 'model A'), sourceB: failing, seed: 0 }), /disk gone/);
  }
  assert.equal(liveLeases(), before);
  // A model with a scalar parameter: the objective counts it as the JavaScript kernels do.
  const withScale = (p: typeof a, x: number) => ({ ...p, scale: { shape: [], data: Float32Array.of(x) } });
  const r = await weightMatching({ spec, paramsA: withScale(a, 3), paramsB: withScale(b, 5), seed: 0 });
  const { matchingObjective } = await import('../src/match/weight-matching.js');
  assert.ok(Math.abs(r.objectiveAfter - matchingObjective(spec, r.perms, withScale(a, 3), withScale(b, 5))) < 1e-9);
});
