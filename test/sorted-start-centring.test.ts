/**
 * sorted-start.ts solves its assignments on doubly centred costs (faster on the near rank-one matrices of
 * sorted features). Oracle: brute force over every permutation of the original matrix.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { doublyCentred } from '../src/match/sorted-start.js';
import { createRng } from '../src/random.js';

function permutations(n: number): number[][] {
  if (n === 0) return [[]];
  return permutations(n - 1).flatMap((p) => Array.from({ length: n }, (_, i) => [...p.slice(0, i), n - 1, ...p.slice(i)]));
}

const scoreOf = (c: Float64Array, n: number, p: readonly number[]) => p.reduce((s, j, i) => s + c[i * n + j], 0);

test('doubly centred costs: rows and columns sum to zero, every assignment moves by one constant, the input is not written', () => {
  const rng = createRng(3);
  for (let trial = 0; trial < 20; trial++) {
    const n = 2 + (trial % 5);
    // Near rank one plus a small signal, as sorted features give.
    const r = Array.from({ length: n }, () => 1 + rng.normal());
    const g = Array.from({ length: n }, () => 1 + rng.normal());
    const cost = Float64Array.from({ length: n * n }, (_, k) => 5 * r[Math.floor(k / n)] * g[k % n] + 0.1 * rng.normal());
    const before = Float64Array.from(cost);
    const centred = doublyCentred(cost, n);
    assert.deepEqual(cost, before);
    for (let i = 0; i < n; i++) {
      let row = 0;
      let col = 0;
      for (let j = 0; j < n; j++) {
        row += centred[i * n + j];
        col += centred[j * n + i];
      }
      assert.ok(Math.abs(row) < 1e-9 && Math.abs(col) < 1e-9, `trial ${trial}: row/column ${i} sums ${row}, ${col}`);
    }
    const all = permutations(n);
    const shift = scoreOf(cost, n, all[0]) - scoreOf(centred, n, all[0]);
    for (const p of all) assert.ok(Math.abs(scoreOf(cost, n, p) - scoreOf(centred, n, p) - shift) < 1e-9, `trial ${trial}: shift differs for ${p}`);
    const best = (c: Float64Array) => all.reduce((x, p) => (scoreOf(c, n, p) > scoreOf(c, n, x) ? p : x));
    assert.deepEqual(best(centred), best(cost), `trial ${trial}`);
  }
});
