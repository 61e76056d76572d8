/** Barrier definitions, checks and the verdict, against hand-computed values on small curves. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { alphaGrid, barrierOf, interpolate, reduction, sweep, type CurvePoint } from '../src/measure/barrier.js';
import { formatNumber, invarianceCheck, monotonicityCheck, selfCheck, THRESHOLDS } from '../src/measure/checks.js';
import { InputError } from '../src/errors.js';

const curve = (losses: number[], accs: number[]): CurvePoint[] =>
  losses.map((loss, i) => ({ alpha: i / (losses.length - 1), loss, accuracy: accs[i] }));

test('alphaGrid has K+1 points from 0 to 1', () => {
  assert.deepEqual(alphaGrid(4), [0, 0.25, 0.5, 0.75, 1]);
  assert.deepEqual(alphaGrid(1), [0, 1]);
  assert.throws(() => alphaGrid(0));
});

test('barrierOf: the paper’s barrier is measured against the line between the endpoint losses', () => {
  // Endpoints 1 and 3: the line is 1, 1.5, 2, 2.5, 3. Losses 1, 2, 2.2, 2.6, 3 → excess 0, 0.5, 0.2, 0.1, 0.
  const c = curve([1, 2, 2.2, 2.6, 3], [0.9, 0.6, 0.5, 0.7, 0.8]);
  const b = barrierOf(c);
  assert.ok(Math.abs(b.loss - 0.5) < 1e-12);
  assert.equal(b.argmaxAlpha, 0.25);
  // The endpoint-max barrier: max L − max(L(0), L(1)) = 3 − 3 = 0 (clamped, never negative).
  assert.equal(b.lossOverEndpoints, 0);
  // Accuracy line 0.9 → 0.8: 0.875 at α = 0.25, 0.85 at 0.5, 0.825 at 0.75; shortfalls 0.275, 0.35, 0.125.
  assert.ok(Math.abs(b.accuracy - 0.35) < 1e-12);
});

test('barrierOf: the accuracy chord runs from acc(A) at α = 0 to acc(B) at α = 1 (an asymmetric curve)', () => {
  // Accuracy line 0.95 → 0.5: 0.95, 0.8375, 0.725, 0.6125, 0.5; accuracies 0.95, 0.9, 0.7, 0.45, 0.5 →
  // shortfalls 0, −0.0625, 0.025, 0.1625, 0. (The chord drawn from B to A would give 0.45 at α = 1.)
  const b = barrierOf(curve([0.2, 0.3, 0.9, 1.8, 1.2], [0.95, 0.9, 0.7, 0.45, 0.5]));
  assert.ok(Math.abs(b.accuracy - 0.1625) < 1e-12, `accuracy barrier ${b.accuracy}`);
  // Loss line 0.2 → 1.2: 0.2, 0.45, 0.7, 0.95, 1.2; excess 0, −0.15, 0.2, 0.85, 0 → 0.85 at α = 0.75.
  assert.ok(Math.abs(b.loss - 0.85) < 1e-12, `loss barrier ${b.loss}`);
  assert.equal(b.argmaxAlpha, 0.75);
  // Endpoint-max: 1.8 − max(0.2, 1.2) = 0.6.
  assert.ok(Math.abs(b.lossOverEndpoints - 0.6) < 1e-12);
});

test('barrierOf: a curve below its chord has zero barrier, and the endpoint-max form sees a bump above both ends', () => {
  const convex = barrierOf(curve([2, 1, 0.5, 1, 2], [0.5, 0.6, 0.7, 0.6, 0.5]));
  assert.equal(convex.loss, 0);
  assert.equal(convex.accuracy, 0);
  const bump = barrierOf(curve([1, 1.5, 4, 1.5, 2], [1, 1, 1, 1, 1]));
  assert.ok(Math.abs(bump.lossOverEndpoints - 2) < 1e-12);
  assert.ok(Math.abs(bump.loss - 2.5) < 1e-12);
});

test('barrierOf refuses non-finite points; sweep stops on them with a user error', async () => {
  assert.throws(() => barrierOf(curve([1, NaN, 1], [1, 1, 1])), /non-finite/);
  const a = { w: { shape: [1], data: Float32Array.from([0]) } };
  const b = { w: { shape: [1], data: Float32Array.from([1]) } };
  await assert.rejects(
    sweep(a, b, 2, async (p) => ({ loss: p.w.data[0] === 0.5 ? NaN : 1, accuracy: 1 })),
    (e: unknown) => e instanceof InputError && /α = 0.5/.test(e.message),
  );
});

test('sweep evaluates the exact endpoints and the lerp between them', async () => {
  const a = { w: { shape: [2], data: Float32Array.from([0, 10]) } };
  const b = { w: { shape: [2], data: Float32Array.from([4, 2]) } };
  const seen: number[][] = [];
  const c = await sweep(a, b, 4, async (p) => {
    seen.push(Array.from(p.w.data));
    return { loss: p.w.data[0], accuracy: 1 };
  });
  assert.deepEqual(seen, [[0, 10], [1, 8], [2, 6], [3, 4], [4, 2]]);
  assert.deepEqual(c.map((p) => p.alpha), [0, 0.25, 0.5, 0.75, 1]);
  assert.deepEqual(Array.from(interpolate(a, b, 0.5).w.data), [2, 6]);
});

test('sweep evaluates each endpoint on the model itself: a lerp would turn a shared -Infinity (a mask) into NaN', async () => {
  // 1·(−∞) + 0·(−∞) is NaN: only the exact endpoint keeps the mask; interior points are lerps (and NaN here).
  const a = { w: { shape: [2], data: Float32Array.from([-Infinity, 1]) } };
  const b = { w: { shape: [2], data: Float32Array.from([-Infinity, 3]) } };
  const seen: { alpha: number; mask: number }[] = [];
  await sweep(a, b, 2, async (p, alpha, onBatch) => {
    seen.push({ alpha, mask: p.w.data[0] });
    onBatch?.(1, 1); // a runner reporting its batches to a sweep that listens to nothing
    return { loss: 1, accuracy: 1 };
  });
  assert.deepEqual(seen.map((s) => s.alpha), [0, 0.5, 1]);
  assert.equal(seen[0].mask, -Infinity);
  assert.equal(seen[2].mask, -Infinity);
});

test('sweep takes known endpoint evaluations as given and counts progress in passes over the data', async () => {
  const a = { w: { shape: [1], data: Float32Array.from([0]) } };
  const b = { w: { shape: [1], data: Float32Array.from([4]) } };
  const evaluated: number[] = [];
  const progress: [number, number][] = [];
  const c = await sweep(
    a,
    b,
    4,
    async (p, alpha, onBatch) => {
      evaluated.push(alpha);
      onBatch?.(1, 4); // a quarter of the data
      onBatch?.(4, 4);
      return { loss: p.w.data[0], accuracy: 0.5 };
    },
    (done, total) => progress.push([done, total]),
    { a: { loss: 10, accuracy: 0.9 }, b: { loss: 20, accuracy: 0.8 } },
  );
  assert.deepEqual(evaluated, [0.25, 0.5, 0.75]);
  assert.deepEqual(c.map((p) => [p.alpha, p.loss, p.accuracy]), [[0, 10, 0.9], [0.25, 1, 0.5], [0.5, 2, 0.5], [0.75, 3, 0.5], [1, 20, 0.8]]);
  // Three passes (the endpoints are not passes): within pass k, k + 1/4 then k + 1, then the pass's end.
  assert.deepEqual(progress, [[0.25, 3], [1, 3], [1, 3], [1.25, 3], [2, 3], [2, 3], [2.25, 3], [3, 3], [3, 3]]);
  // Only one endpoint known: it is still evaluated at the other; an empty data pass reports no fraction.
  const one: [number, number][] = [];
  const evaluatedOne: number[] = [];
  await sweep(a, b, 1, async (_p, alpha, onBatch) => {
    evaluatedOne.push(alpha);
    onBatch?.(0, 0);
    return { loss: 1, accuracy: 1 };
  }, (done, total) => one.push([done, total]), { b: { loss: 2, accuracy: 1 } });
  assert.deepEqual(evaluatedOne, [0]);
  assert.deepEqual(one, [[0, 1], [1, 1]]);
});

test('barrierOf: a curve needs both endpoints; on a tie the first α where the barrier is attained is reported', () => {
  assert.throws(() => barrierOf([{ alpha: 0, loss: 1, accuracy: 1 }]), /two endpoints/);
  // The endpoints alone (alphaGrid(1)) are a curve: no barrier above its own chord.
  assert.deepEqual(barrierOf(curve([1, 3], [0.9, 0.7])), { loss: 0, lossOverEndpoints: 0, accuracy: 0, argmaxAlpha: 0 });
  assert.throws(() => alphaGrid(1.5), /integer ≥ 1/);
  const tie = barrierOf(curve([0, 1, 1, 0], [1, 1, 1, 1]));
  assert.equal(tie.loss, 1);
  assert.equal(tie.argmaxAlpha, 1 / 3);
});

test('reduction is a fraction of the barrier before; none when there was no barrier', () => {
  assert.equal(reduction(2, 0.5), 0.75);
  assert.equal(reduction(2, 2.5), -0.25);
  assert.equal(reduction(0, 0), null);
  assert.equal(reduction(THRESHOLDS.zero, 0), null);
});

test('checks pass and fail at their tolerances', () => {
  assert.equal(invarianceCheck(0).status, 'PASS');
  assert.equal(invarianceCheck(THRESHOLDS.invarianceDrift * 2).status, 'FAIL');
  assert.equal(invarianceCheck(NaN).status, 'FAIL');
  assert.equal(selfCheck([], 0).status, 'PASS');
  assert.equal(selfCheck([], THRESHOLDS.selfBarrier).status, 'PASS');
  assert.equal(selfCheck(['fc1'], 0).status, 'FAIL');
  assert.equal(selfCheck([], 1e-3).status, 'FAIL');
  assert.equal(selfCheck([], NaN).status, 'FAIL');
  assert.match(selfCheck([], 0, 5).detail, /5 units with no variance on the probe moved among themselves/);
  assert.equal(selfCheck([], 0, 5).status, 'PASS');
  assert.equal(selfCheck([], 1e-3, 5).status, 'FAIL');
  assert.equal(monotonicityCheck(1, 0.5).status, 'PASS');
  assert.equal(monotonicityCheck(1, 1 + 1e-7).status, 'PASS');
  assert.equal(monotonicityCheck(1, 1.01).status, 'FAIL');
  assert.equal(monotonicityCheck(1, NaN).status, 'FAIL');
});

test('checks at their exact tolerances, with the values and words a report prints', () => {
  // A tolerance is inclusive: drift equal to it passes.
  const inv = invarianceCheck(THRESHOLDS.invarianceDrift);
  assert.deepEqual(inv, {
    name: 'permutation invariance',
    status: 'PASS',
    value: 1e-4,
    requirement: 'max |B(x) − P(B)(x)| ≤ 0.0001',
    detail: 'random permutation of B changes its outputs by at most 1.00e-4 on the probe batch',
  });
  const mono = monotonicityCheck(0.5, 0.5 + THRESHOLDS.monotonicity);
  assert.equal(mono.status, 'PASS');
  assert.ok(Math.abs(mono.value! - 1e-6) < 1e-12);
  assert.equal(mono.name, 'monotonicity');
  assert.equal(mono.requirement, 'barrier after ≤ barrier before + 0.000001');
  assert.equal(mono.detail, 'before 0.5000, after 0.5000');
  assert.equal(monotonicityCheck(2, 1.5).value, -0.5);
  const self = selfCheck([], 0);
  assert.equal(self.name, 'align-to-self');
  assert.equal(self.requirement, 'A aligned to A: identity permutations and barrier ≤ 0.000001');
  assert.equal(self.detail, 'all permutations are the identity, barrier 0');
  assert.equal(selfCheck(['a', 'b', 'c'], 0).detail, '3 permutations NOT the identity (a, b, c), barrier 0');
  assert.equal(selfCheck(['a', 'b', 'c', 'd'], 2e-3).detail, '4 permutations NOT the identity (a, b, c, ...), barrier 0.0020');
  assert.equal(selfCheck(['P_1'], 0).detail, '1 permutation NOT the identity (P_1), barrier 0');
});

test('formatNumber: fixed between 1e-3 and 1e5, exponential outside, and a bare 0', () => {
  assert.equal(formatNumber(0), '0');
  assert.equal(formatNumber(1e-3), '0.0010');
  assert.equal(formatNumber(-1e-3), '-0.0010');
  assert.equal(formatNumber(9.99e-4), '9.99e-4');
  assert.equal(formatNumber(99999.5), '99999.5000');
  assert.equal(formatNumber(1e5), '1.00e+5');
  assert.equal(formatNumber(-2.5e7), '-2.50e+7');
});
