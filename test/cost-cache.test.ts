/**
 * Kept cost matrices brought up to date by low-rank updates (src/match/cost-cache.ts, issue 6).
 *
 * Truth: the cost matrix computed from its definition with naive loops (C[i, j] = Σ over p's terms of
 * Σ over every other index of A_t[…i…] · B_t[…j…] with B's other axes gathered by the current
 * permutations), and the matching run without the cache.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Params, Tensor } from '../src/tensor.js';
import { axisFirstMatrix, take } from '../src/tensor.js';
import { createRng, type Rng } from '../src/random.js';
import { specFromAxes, permSizes, permNames, type PermutationSpec } from '../src/permutation-spec/spec.js';
import { mlpSpec } from '../src/permutation-spec/mlp.js';
import { resnetSpec } from '../src/permutation-spec/resnet.js';
import { randomPerms, type Perms } from '../src/permute.js';
import { paramsSource } from '../src/match/param-source.js';
import { CostCache } from '../src/match/cost-cache.js';
import { weightMatching, type MatchProgress } from '../src/match/weight-matching.js';
import { jsMatmul } from '../src/engine/matmul.js';
import { createOrtMatmul } from '../src/engine/ort-matmul.js';
import { randomMlp } from './helpers/mlp.js';
import { randomResnet, resnet20Shapes } from '../bench/resnet.js';

function randomTensor(shape: number[], rng: Rng): Tensor {
  const size = shape.reduce((x, y) => x * y, 1);
  return { shape, data: Float32Array.from({ length: size }, () => rng.normal()) };
}

/** C for permutation p from the definition: no side-by-side layout, no gathered copies reused. */
function naiveCost(spec: PermutationSpec, p: string, n: number, perms: Perms, a: Params, b: Params): Float64Array {
  const c = new Float64Array(n * n);
  for (const { tensor, axis } of spec.permToAxes[p]) {
    let gathered = b[tensor];
    spec.axesToPerm[tensor].forEach((q, d) => {
      if (q !== null && d !== axis) gathered = take(gathered, perms[q], d);
    });
    const ma = axisFirstMatrix(a[tensor], axis);
    const mb = axisFirstMatrix(gathered, axis);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let k = 0; k < ma.cols; k++) s += ma.data[i * ma.cols + k] * mb.data[j * mb.cols + k];
        c[i * n + j] += s;
      }
    }
  }
  return c;
}

/** Swaps `count` random pairs of units of q (count 0: unchanged). */
function moveUnits(perm: Int32Array, count: number, rng: Rng): Int32Array {
  const out = Int32Array.from(perm);
  for (let k = 0; k < count; k++) {
    const i = rng.int(out.length);
    const j = rng.int(out.length);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

function assertClose(got: Float64Array, want: Float64Array, label: string): void {
  let scale = 1;
  for (const x of want) scale = Math.max(scale, Math.abs(x));
  for (let i = 0; i < want.length; i++) {
    assert.ok(Math.abs(got[i] - want[i]) <= 1e-4 * scale, `${label}: entry ${i} is ${got[i]}, expected ${want[i]}`);
  }
}

async function checkUpdates(spec: PermutationSpec, a: Params, b: Params, seed: number): Promise<{ updates: number; fresh: number }> {
  const rng = createRng(seed);
  const sizes = permSizes(spec, a);
  let perms: Record<string, Int32Array> = randomPerms(sizes, seed);
  const buffers: Record<string, Float32Array> = {};
  const scratch = (key: 'a' | 'b' | 'old', size: number) => (buffers[key] = buffers[key]?.length >= size ? buffers[key] : new Float32Array(size)).subarray(0, size);
  const cache = new CostCache(spec, paramsSource(a), paramsSource(b), jsMatmul, scratch);
  const fresh = async (p: string, into: Float64Array) => into.set(naiveCost(spec, p, sizes[p], perms, a, b));
  let updates = 0;
  let fresh_ = 0;
  for (let round = 0; round < 12; round++) {
    for (const p of permNames(spec)) {
      const got = await cache.cost(p, sizes[p], perms, fresh);
      if (got.how === 'update') updates++;
      else fresh_++;
      assertClose(got.cost, naiveCost(spec, p, sizes[p], perms, a, b), `round ${round} ${p} (${got.how})`);
      // Before the next step, move a few units of one or two permutations (now and then all of one), as
      // between the steps of weight matching; the moved ones may or may not be p's neighbours.
      const next: Record<string, Int32Array> = { ...perms };
      const names = permNames(spec);
      for (let k = 1 + rng.int(2); k > 0; k--) {
        const q = names[rng.int(names.length)];
        next[q] = moveUnits(next[q], rng.next() < 0.9 ? 1 : sizes[q], rng);
      }
      perms = next;
    }
  }
  return { updates, fresh: fresh_ };
}

test('a kept cost matrix brought up to date equals the matrix computed from its definition', async () => {
  const rng = createRng(1);
  // MLP (torch layout): 2-D terms on either axis, biases with no other permutation.
  const mlp = mlpSpec(3);
  const ma = randomMlp([7, 16, 12, 16, 3], 'torch', 1);
  const mb = randomMlp([7, 16, 12, 16, 3], 'torch', 2);
  const m = await checkUpdates(mlp, ma, mb, 3);
  assert.ok(m.updates > 10 && m.fresh > 3, `mlp: ${m.updates} updates, ${m.fresh} fresh`);

  // ResNet-20 shapes: conv weights (O×I×3×3, other permutation on axis 0 or 1), BN vectors, residual sums.
  const shapes = resnet20Shapes(1);
  const ra = randomResnet(shapes, 4);
  const rb = randomResnet(shapes, 5);
  const r = await checkUpdates(resnetSpec(ra), ra, rb, 6);
  assert.ok(r.updates > 20 && r.fresh > 10, `resnet: ${r.updates} updates, ${r.fresh} fresh`);

  // A hand-written spec with layouts the others lack: the other permutation on a trailing axis with a
  // spatial axis between (3-D), a permutation on the last axis only, and a tensor with two other
  // permutations (recomputed in full whenever either moves).
  const spec = specFromAxes({
    t3: ['P', null, 'Q'],
    sq: [null, 'Q'],
    multi: ['R', 'S', 'Q'],
    r: ['R', null],
  });
  const shapesOf: Record<string, number[]> = { t3: [12, 3, 10], sq: [3, 10], multi: [4, 3, 10], r: [4, 2] };
  const make = () => Object.fromEntries(Object.entries(shapesOf).map(([k, s]) => [k, randomTensor(s, rng)]));
  const h = await checkUpdates(spec, make(), make(), 7);
  assert.ok(h.updates > 5 && h.fresh > 5, `hand-written: ${h.updates} updates, ${h.fresh} fresh`);
});

test('matching with kept cost matrices takes the same path as without them', async () => {
  const ort = await createOrtMatmul();
  try {
    const cases: Array<{ label: string; spec: PermutationSpec; a: Params; b: Params }> = [
      { label: 'mlp', spec: mlpSpec(3), a: randomMlp([30, 64, 48, 64, 10], 'torch', 71), b: randomMlp([30, 64, 48, 64, 10], 'torch', 72) },
    ];
    const ra = randomResnet(resnet20Shapes(1), 8);
    cases.push({ label: 'resnet20', spec: resnetSpec(ra), a: ra, b: randomResnet(resnet20Shapes(1), 9) });
    for (const { label, spec, a, b } of cases) {
      for (const engine of [jsMatmul, ort]) {
        for (const score of ['dot', 'cosine'] as const) {
          const events: MatchProgress[] = [];
          const kept = await weightMatching({ spec, paramsA: a, paramsB: b, seed: 2, engine, score, onProgress: (e) => events.push(e) });
          const without = await weightMatching({ spec, paramsA: a, paramsB: b, seed: 2, engine, score, incremental: false });
          const what = `${label} ${engine.name} ${score}`;
          assert.deepEqual(kept.perms, without.perms, what);
          assert.equal(kept.iterations, without.iterations, what);
          assert.equal(kept.objectiveAfter, without.objectiveAfter, what);
          kept.history.forEach((h, i) => {
            assert.ok(Math.abs(h.objective - without.history[i].objective) <= 1e-6 * Math.abs(h.objective), `${what}: pass ${i}`);
          });
          // Not vacuous: later steps really were updates, and there were several passes.
          assert.ok(events.filter((e) => e.updated).length >= 2, `${what}: ${events.filter((e) => e.updated).length} updates`);
          assert.ok(kept.iterations >= 3, `${what}: ${kept.iterations} passes`);
        }
      }
    }
  } finally {
    await ort.dispose?.();
  }
});
