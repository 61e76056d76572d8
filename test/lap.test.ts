import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { leaseSolver, solveSquareWasm } from '../src/match/lap-wasm.js';
import { solveAssignment, type AssignmentResult, type WarmStart } from '../src/match/lap.js';
import { solveSquareOracle } from './helpers/lap-oracle.js';
import { naiveAssignment } from './helpers/lap-naive.js';
import { InputError } from '../src/errors.js';
import { createRng, type Rng } from '../src/random.js';
import { pythonSkipReason, runPython, withTempDir } from './python.js';

type Kind = 'uniform' | 'int' | 'intWide';

function randomMatrix(rng: Rng, rows: number, cols: number, kind: Kind): Float64Array {
  const a = new Float64Array(rows * cols);
  for (let k = 0; k < a.length; k++) {
    if (kind === 'uniform') a[k] = rng.next() * 2 - 1;
    else if (kind === 'int') a[k] = rng.int(7) - 3; // many ties, negative values
    else a[k] = rng.int(201) - 100;
  }
  return a;
}

/** Best objective over every injective pairing of the shorter side into the longer one. */
function bruteForce(cost: Float64Array, rows: number, cols: number, maximize: boolean): number {
  const short = Math.min(rows, cols);
  const long = Math.max(rows, cols);
  const at = (s: number, l: number): number => (rows <= cols ? cost[s * cols + l] : cost[l * cols + s]);
  const used = new Uint8Array(long);
  let best = maximize ? -Infinity : Infinity;
  const go = (s: number, acc: number): void => {
    if (s === short) {
      if (maximize ? acc > best : acc < best) best = acc;
      return;
    }
    for (let l = 0; l < long; l++) {
      if (used[l]) continue;
      used[l] = 1;
      go(s + 1, acc + at(s, l));
      used[l] = 0;
    }
  };
  go(0, 0);
  return best;
}

/** The matching is consistent both ways, uses min(rows, cols) pairs, and its objective adds up. */
function assertValidMatching(res: AssignmentResult, cost: Float64Array, rows: number, cols: number): void {
  assert.equal(res.rowToCol.length, rows);
  assert.equal(res.colToRow.length, cols);
  let pairs = 0;
  let sum = 0;
  for (let i = 0; i < rows; i++) {
    const j = res.rowToCol[i];
    if (j === -1) continue;
    assert.ok(j >= 0 && j < cols, `rowToCol[${i}] = ${j} out of range`);
    assert.equal(res.colToRow[j], i, `colToRow[${j}] should be ${i}`);
    pairs++;
    sum += cost[i * cols + j];
  }
  for (let j = 0; j < cols; j++) {
    const i = res.colToRow[j];
    if (i !== -1) assert.equal(res.rowToCol[i], j);
  }
  assert.equal(pairs, Math.min(rows, cols));
  assert.equal(res.objective, sum);
}

/**
 * LP optimality certificate, independent of how the solver got there: dual feasibility
 * (u_i + v_j ≤ c'_ij), tightness on matched pairs, and on the longer side every unmatched line holds a
 * potential at least as large as any matched one (the dual sign condition of the rectangular problem).
 */
function assertCertificate(res: AssignmentResult, cost: Float64Array, rows: number, cols: number, maximize: boolean): void {
  const s = maximize ? -1 : 1;
  let scale = 1;
  for (const x of cost) if (Number.isFinite(x)) scale = Math.max(scale, Math.abs(x));
  const tol = 1e-9 * scale;
  const u = res.rowPotential;
  const v = res.colPotential;
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      const r = s * cost[i * cols + j] - u[i] - v[j];
      assert.ok(r >= -tol, `reduced cost [${i}][${j}] = ${r} < 0`);
      if (res.rowToCol[i] === j) assert.ok(Math.abs(r) <= tol, `matched pair [${i}][${j}] not tight: ${r}`);
    }
  }
  const sideCheck = (pot: Float64Array, matched: (k: number) => boolean): void => {
    let maxMatched = -Infinity;
    for (let k = 0; k < pot.length; k++) if (matched(k)) maxMatched = Math.max(maxMatched, pot[k]);
    for (let k = 0; k < pot.length; k++) if (!matched(k)) assert.ok(pot[k] >= maxMatched - tol, `free ${k}: ${pot[k]} < ${maxMatched} (${rows}x${cols})`);
  };
  if (cols > rows) sideCheck(v, (j) => res.colToRow[j] >= 0);
  if (rows > cols) sideCheck(u, (i) => res.rowToCol[i] >= 0);
}

function closeTo(actual: number, expected: number, rel = 1e-9, msg?: string): void {
  assert.ok(
    Math.abs(actual - expected) <= rel * Math.max(1, Math.abs(expected)),
    `${msg ?? 'objective'}: ${actual} vs ${expected}`,
  );
}

test('square n ≤ 7: optimal versus brute force over all permutations, min and max', () => {
  const rng = createRng(1);
  for (let n = 0; n <= 7; n++) {
    for (const kind of ['uniform', 'int', 'intWide'] as const) {
      for (let rep = 0; rep < (n <= 5 ? 6 : 3); rep++) {
        const c = randomMatrix(rng, n, n, kind);
        const before = Float64Array.from(c);
        for (const maximize of [false, true]) {
          const res = solveAssignment(c, n, n, { maximize });
          assertValidMatching(res, c, n, n);
          closeTo(res.objective, bruteForce(c, n, n, maximize), 1e-12, `n=${n} ${kind} max=${maximize}`);
          assertCertificate(res, c, n, n, maximize);
        }
        assert.deepEqual(c, before, 'input was modified');
      }
    }
  }
});

test('rectangular both ways: optimal versus brute force', () => {
  const rng = createRng(2);
  const shapes: Array<[number, number]> = [[1, 5], [5, 1], [2, 7], [3, 6], [6, 3], [4, 7], [7, 4], [5, 7], [7, 5], [6, 7], [0, 3], [3, 0]];
  for (const [rows, cols] of shapes) {
    for (const kind of ['uniform', 'int'] as const) {
      for (let rep = 0; rep < 4; rep++) {
        const c = randomMatrix(rng, rows, cols, kind);
        for (const maximize of [false, true]) {
          const res = solveAssignment(c, rows, cols, { maximize });
          assertValidMatching(res, c, rows, cols);
          closeTo(res.objective, bruteForce(c, rows, cols, maximize), 1e-12, `${rows}x${cols} ${kind} max=${maximize}`);
          assertCertificate(res, c, rows, cols, maximize);
        }
      }
    }
  }
});

test('Float32Array input gives the same answer as its Float64 copy', () => {
  const rng = createRng(3);
  const c32 = Float32Array.from(randomMatrix(rng, 6, 6, 'uniform'));
  const a = solveAssignment(c32, 6, 6);
  const b = solveAssignment(Float64Array.from(c32), 6, 6);
  assert.deepEqual(a.rowToCol, b.rowToCol);
  assert.equal(a.objective, bruteForce(Float64Array.from(c32), 6, 6, false));
});

test('forbidden pairs (+Infinity; −Infinity when maximising) are avoided', () => {
  const rng = createRng(4);
  for (let rep = 0; rep < 30; rep++) {
    const rows = 2 + rng.int(5);
    const cols = 2 + rng.int(5);
    const c = randomMatrix(rng, rows, cols, 'int');
    // Forbid a few pairs but keep a guaranteed feasible diagonal.
    for (let k = 0; k < c.length; k++) if (rng.next() < 0.3) c[k] = Infinity;
    for (let d = 0; d < Math.min(rows, cols); d++) c[d * cols + d] = rng.int(7) - 3;
    const res = solveAssignment(c, rows, cols);
    assertValidMatching(res, c, rows, cols);
    assert.equal(res.objective, bruteForce(c, rows, cols, false));
    const neg = c.map((x) => -x);
    const resMax = solveAssignment(neg, rows, cols, { maximize: true });
    assert.equal(resMax.objective, -res.objective);
  }
});

test('bad input is rejected with a one-line InputError', () => {
  const isInput = (re: RegExp) => (e: unknown) => e instanceof InputError && re.test(e.message) && !e.message.includes('\n');
  assert.throws(() => solveAssignment(new Float64Array([1, NaN, 2, 3]), 2, 2), isInput(/cost\[0\]\[1\].*NaN/));
  assert.throws(() => solveAssignment(new Float64Array([1, -Infinity, 2, 3]), 2, 2), isInput(/-Infinity/));
  assert.throws(() => solveAssignment(new Float64Array([1, 2, NaN, 4, 5, 6]), 3, 2), isInput(/cost\[1\]\[0\] of the 3x2 matrix is NaN/));
  assert.throws(() => solveAssignment(new Float32Array([1, 2, 3, 4, 5, NaN]), 2, 3, { maximize: true }), isInput(/cost\[1\]\[2\]/));
  assert.throws(() => solveAssignment(new Float64Array([1, Infinity, 2, 3]), 2, 2, { maximize: true }), isInput(/Infinity/));
  assert.throws(() => solveAssignment(new Float64Array(5), 2, 3), isInput(/2x3.*needs 6.*got 5/));
  // Column 1 is forbidden for every row: no complete assignment exists.
  assert.throws(() => solveAssignment(new Float64Array([1, Infinity, 2, Infinity]), 2, 2), isInput(/infeasible/));
  // A row with every pair forbidden.
  assert.throws(() => solveAssignment(new Float64Array([Infinity, Infinity, Infinity, 1, 2, 3]), 2, 3), isInput(/infeasible/));
  // ... but a forbidden column is fine when there are spare columns.
  const ok = solveAssignment(new Float64Array([1, Infinity, 5, 2, Infinity, 1]), 2, 3);
  assert.deepEqual(Array.from(ok.rowToCol), [0, 2]);
  // Square problems of 16 and more (and any warm-started one) check entries inside their first pass.
  for (const [bad, maximize, label] of [[NaN, false, 'NaN'], [NaN, true, 'NaN'], [-Infinity, false, '-Infinity'], [Infinity, true, 'Infinity']] as const) {
    // Columns in either lane of the WebAssembly solver's pairs, and the last column of an odd n; a second
    // bad entry later in the row must not be the one reported.
    for (const [n, col] of [[16, 5], [17, 4], [17, 16], [20, 5]]) {
      const c = Float64Array.from({ length: n * n }, (_, k) => (k * 7919) % 101);
      c[3 * n + col] = bad;
      if (col + 1 < n) c[3 * n + col + 1] = maximize ? -Infinity : NaN;
      const first = solveAssignment(c.map((x) => (Number.isFinite(x) ? x : 0)), n, n, { maximize });
      for (const warmStart of [undefined, { colPotential: first.colPotential, rowToCol: first.rowToCol }, { rowPotential: first.rowPotential }]) {
        assert.throws(() => solveAssignment(c, n, n, { maximize, warmStart }), isInput(new RegExp(`cost\\[3\\]\\[${col}\\] of the ${n}x${n} matrix is ${label.replace('-', '\\-')}`)));
        assert.throws(() => solveAssignment(Float32Array.from(c), n, n, { maximize, warmStart }), isInput(new RegExp(`cost\\[3\\]\\[${col}\\]`)));
      }
    }
  }
  assert.throws(
    () => solveAssignment(new Float64Array(4), 2, 2, { warmStart: { rowToCol: new Int32Array([1, 1]) } }),
    isInput(/twice/),
  );
  assert.throws(
    () => solveAssignment(new Float64Array(4), 2, 2, { warmStart: { colPotential: new Float64Array(3) } }),
    isInput(/colPotential has length 3, expected 2/),
  );
});

test('warm start: same objective as a cold solve, whatever the start', () => {
  const rng = createRng(5);
  const shapes: Array<[number, number]> = [[7, 7], [5, 7], [7, 5], [40, 40], [30, 45], [45, 30]];
  for (const [rows, cols] of shapes) {
    for (const kind of ['uniform', 'int'] as const) {
      for (const maximize of [false, true]) {
        const c1 = randomMatrix(rng, rows, cols, kind);
        const first = solveAssignment(c1, rows, cols, { maximize });
        // The next problem is a perturbation of the first, as between passes of weight matching.
        const c2 = c1.map((x) => x + (kind === 'int' ? rng.int(3) - 1 : 0.1 * (rng.next() - 0.5)));
        const cold = solveAssignment(c2, rows, cols, { maximize });
        const starts = [
          { colPotential: first.colPotential, rowPotential: first.rowPotential, rowToCol: first.rowToCol },
          { colPotential: first.colPotential, rowToCol: first.rowToCol },
          { rowPotential: first.rowPotential, rowToCol: first.rowToCol },
          { rowToCol: first.rowToCol },
          // Arbitrary potentials and a random matching: still exact.
          { colPotential: Float64Array.from({ length: cols }, () => rng.normal() * 3), rowToCol: first.rowToCol },
        ];
        for (const warmStart of starts) {
          const warm = solveAssignment(c2, rows, cols, { maximize, warmStart });
          assertValidMatching(warm, c2, rows, cols);
          closeTo(warm.objective, cold.objective, 1e-12, `${rows}x${cols} ${kind} max=${maximize}`);
          assertCertificate(warm, c2, rows, cols, maximize);
          if (rows <= 7 && cols <= 7) closeTo(warm.objective, bruteForce(c2, rows, cols, maximize), 1e-12);
        }
        // Re-solving the same problem from its own solution keeps it.
        const again = solveAssignment(c1, rows, cols, {
          maximize,
          warmStart: { colPotential: first.colPotential, rowPotential: first.rowPotential, rowToCol: first.rowToCol },
        });
        assert.equal(again.objective, first.objective, `re-solve ${rows}x${cols} ${kind} max=${maximize}`);
      }
    }
  }
});

test('warm start on a square problem with forbidden pairs and a column forbidden everywhere but one row', () => {
  // Square problems take the Jonker–Volgenant start (cold or warm, n ≥ 16 or any warm start); forbidden
  // pairs must neither poison the potentials nor let a forbidden pair in.
  const rng = createRng(17);
  for (const n of [5, 16, 33]) {
    for (const maximize of [false, true]) {
      const bad = maximize ? -Infinity : Infinity;
      const c1 = randomMatrix(rng, n, n, 'uniform');
      for (let k = 0; k < c1.length; k++) if (rng.next() < 0.3) c1[k] = bad;
      // Keep a feasible diagonal, and make column 0 allowed for row 0 only.
      for (let i = 0; i < n; i++) c1[i * n + i] = rng.next();
      for (let i = 1; i < n; i++) c1[i * n] = bad;
      const first = solveAssignment(c1, n, n, { maximize });
      const c2 = c1.map((x) => (Number.isFinite(x) ? x + 0.2 * (rng.next() - 0.5) : x));
      const cold = solveAssignment(c2, n, n, { maximize });
      const starts = [
        { colPotential: first.colPotential, rowPotential: first.rowPotential, rowToCol: first.rowToCol },
        { rowPotential: first.rowPotential },
        { colPotential: Float64Array.from({ length: n }, () => rng.normal()), rowToCol: first.rowToCol },
      ];
      for (const warmStart of starts) {
        const warm = solveAssignment(c2, n, n, { maximize, warmStart });
        assertValidMatching(warm, c2, n, n);
        for (let i = 0; i < n; i++) assert.ok(Number.isFinite(c2[i * n + warm.rowToCol[i]]), 'a forbidden pair was used');
        closeTo(warm.objective, cold.objective, 1e-12, `n=${n} max=${maximize}`);
        if (n <= 7) closeTo(warm.objective, bruteForce(c2, n, n, maximize), 1e-12);
      }
    }
  }
});

test('the WebAssembly solver gives its JavaScript twin\'s answer bit for bit, cold and warm', () => {
  const rng = createRng(31);
  // It is really there and really used (forbidden pairs are left to JavaScript).
  assert.notEqual(solveSquareWasm(randomMatrix(rng, 20, 20, 'uniform'), 20, 1, undefined), null);
  assert.equal(solveSquareWasm(Float64Array.from({ length: 400 }, (_, k) => (k === 7 ? Infinity : k)), 20, 1, undefined), null);
  const same = (a: AssignmentResult, b: AssignmentResult, what: string) => {
    assert.deepEqual(a.rowToCol, b.rowToCol, what);
    assert.deepEqual(a.colToRow, b.colToRow, what);
    assert.deepEqual(a.rowPotential, b.rowPotential, what);
    assert.deepEqual(a.colPotential, b.colPotential, what);
    assert.equal(a.objective, b.objective, what);
  };
  for (const n of [16, 33, 128, 257]) {
    for (const kind of ['uniform', 'int'] as const) {
      for (const maximize of [false, true]) {
        for (const float32 of [false, true]) {
          const what = `n=${n} ${kind} max=${maximize} f32=${float32}`;
          let c: Float64Array | Float32Array = randomMatrix(rng, n, n, kind);
          if (float32) c = Float32Array.from(c);
          let js = solveSquareOracle(c, n, { maximize });
          let wasm = solveAssignment(c, n, n, { maximize });
          same(wasm, js, `${what} cold`);
          for (let step = 0; step < 3; step++) {
            const next = c.map((x) => x + (kind === 'int' ? rng.int(3) - 1 : 0.05 * rng.normal()));
            const warmStart = { colPotential: js.colPotential, rowPotential: js.rowPotential, rowToCol: js.rowToCol };
            js = solveSquareOracle(next, n, { maximize, warmStart });
            wasm = solveAssignment(next, n, n, { maximize, warmStart });
            same(wasm, js, `${what} warm step ${step}`);
            // A partial matching and potentials alone, too.
            const partial = Int32Array.from(js.rowToCol, (j, i) => (i % 3 === 0 ? -1 : j));
            same(
              solveAssignment(next, n, n, { maximize, warmStart: { colPotential: js.colPotential, rowToCol: partial } }),
              solveSquareOracle(next, n, { maximize, warmStart: { colPotential: js.colPotential, rowToCol: partial } }),
              `${what} partial step ${step}`,
            );
            same(
              solveAssignment(next, n, n, { maximize, warmStart: { colPotential: js.colPotential } }),
              solveSquareOracle(next, n, { maximize, warmStart: { colPotential: js.colPotential } }),
              `${what} potentials only step ${step}`,
            );
            // Row potentials alone: the column potentials derived from them, alike on both sides.
            const rowsOnly: WarmStart = { rowPotential: js.rowPotential, rowToCol: partial };
            same(solveAssignment(next, n, n, { maximize, warmStart: rowsOnly }), solveSquareOracle(next, n, { maximize, warmStart: rowsOnly }), `${what} row potentials step ${step}`);
            c = next;
          }
        }
      }
    }
  }
});

// Matrices of random continuous values have a unique optimum (with probability 1), so the assignment
// itself must match scipy's, not only the objective.
const SCIPY = `
import sys, json, numpy as np
from scipy.optimize import linear_sum_assignment
out = []
for line in open(sys.argv[1]):
    path, rows, cols, maximize = line.split()
    c = np.fromfile(path, dtype='<f8').reshape(int(rows), int(cols))
    r, k = linear_sum_assignment(c, maximize=maximize == '1')
    row_to_col = [-1] * int(rows)
    for a, b in zip(r.tolist(), k.tolist()):
        row_to_col[a] = b
    out.append({'objective': float(c[r, k].sum()), 'rowToCol': row_to_col})
print(json.dumps(out))
`;

test('matches scipy linear_sum_assignment up to n = 1024', { skip: pythonSkipReason(['numpy', 'scipy.optimize']) }, () => {
  const rng = createRng(6);
  const cases: Array<[number, number, boolean]> = [
    [10, 10, false], [100, 100, true], [500, 500, false], [1024, 1024, false], [300, 500, false], [500, 300, true],
  ];
  withTempDir((dir) => {
    const mats = cases.map(([rows, cols], k) => {
      const c = new Float64Array(rows * cols);
      for (let t = 0; t < c.length; t++) c[t] = rng.normal();
      const path = join(dir, `c${k}.f64`);
      writeFileSync(path, new Uint8Array(c.buffer));
      return { c, path };
    });
    const list = join(dir, 'list.txt');
    writeFileSync(list, cases.map(([r, c, m], k) => `${mats[k].path} ${r} ${c} ${m ? 1 : 0}`).join('\n') + '\n');
    const ref = JSON.parse(runPython(SCIPY, list)) as Array<{ objective: number; rowToCol: number[] }>;
    cases.forEach(([rows, cols, maximize], k) => {
      const res = solveAssignment(mats[k].c, rows, cols, { maximize });
      assertValidMatching(res, mats[k].c, rows, cols);
      closeTo(res.objective, ref[k].objective, 1e-9, `${rows}x${cols}`);
      assert.deepEqual(Array.from(res.rowToCol), ref[k].rowToCol, `${rows}x${cols}: assignment differs from scipy`);
    });
  });
});

// Square problems of n ≥ 16 start from Jonker–Volgenant's column reduction and augmenting row reduction,
// where ties (equal costs, repeated rows, all-equal matrices) are the hard cases: the optimum must still be
// exact, as scipy computes it, and the result a certified matching.
test('tie-heavy square problems of n ≥ 16 reach scipy’s optimum', { skip: pythonSkipReason(['numpy', 'scipy.optimize']) }, () => {
  const rng = createRng(21);
  const cases: Array<{ n: number; maximize: boolean; c: Float64Array }> = [];
  for (let t = 0; t < 24; t++) {
    const n = 16 + (t % 4) * 16;
    const kind = t % 4;
    const c = new Float64Array(n * n);
    for (let k = 0; k < c.length; k++) {
      c[k] = kind === 0 ? 0 : kind === 1 ? Math.floor(rng.next() * 3) : kind === 2 ? Math.floor(k / n) % 2 : Math.round(4 * rng.normal()) / 4;
    }
    cases.push({ n, maximize: t % 2 === 0, c });
  }
  withTempDir((dir) => {
    const list = join(dir, 'list.txt');
    writeFileSync(
      list,
      cases
        .map(({ n, maximize, c }, k) => {
          const path = join(dir, `t${k}.f64`);
          writeFileSync(path, new Uint8Array(c.buffer));
          return `${path} ${n} ${n} ${maximize ? 1 : 0}`;
        })
        .join('\n') + '\n',
    );
    const ref = JSON.parse(runPython(SCIPY, list)) as Array<{ objective: number }>;
    cases.forEach(({ n, maximize, c }, k) => {
      const res = solveAssignment(c, n, n, { maximize });
      assertValidMatching(res, c, n, n);
      assertCertificate(res, c, n, n, maximize);
      closeTo(res.objective, ref[k].objective, 1e-9, `case ${k} (${n}×${n})`);
    });
  });
});

/** Every matrix of the shape with entries from `values`, as row-major arrays (values.length ** (rows·cols) of them). */
function* everyMatrix(rows: number, cols: number, values: readonly number[]): Generator<Float64Array> {
  const size = rows * cols;
  const count = values.length ** size;
  for (let code = 0; code < count; code++) {
    const c = new Float64Array(size);
    for (let k = 0, rest = code; k < size; k++, rest = Math.floor(rest / values.length)) c[k] = values[rest % values.length];
    yield c;
  }
}

// Which optimum is chosen when several tie matters beyond optimality: weight matching keeps a step's choice
// and the next steps build on it. Two oracles pin it: the JavaScript search against its documented tie
// rules (helpers/lap-naive.ts, written plainly from them), and the WebAssembly solver against its
// JavaScript twin, on small integer matrices full of ties, every one of some shapes.
test('ties: the JavaScript search picks the optimum its documented rules pick (every 0/1 matrix up to 3 × 4, random 0..2 ones up to 6 × 7)', () => {
  const rng = createRng(41);
  const check = (c: Float64Array, rows: number, cols: number, maximize: boolean, what: string) => {
    const res = solveAssignment(c, rows, cols, { maximize });
    assert.deepEqual(Array.from(res.rowToCol), naiveAssignment(c, rows, cols, { maximize }).rowToCol, `${what} max=${maximize}`);
    assert.equal(res.objective, bruteForce(c, rows, cols, maximize), `${what} max=${maximize}`);
    if (rows === cols) return res;
    // Warm-started from the solve of a changed matrix (rectangular: the JavaScript route).
    const changed = c.map((x) => (rng.next() < 0.3 ? x + rng.int(3) - 1 : x));
    const before = solveAssignment(changed, rows, cols, { maximize });
    for (const warmStart of [
      { colPotential: before.colPotential, rowPotential: before.rowPotential, rowToCol: before.rowToCol },
      { rowPotential: before.rowPotential, rowToCol: before.rowToCol },
      { colPotential: before.colPotential },
    ]) {
      const warm = solveAssignment(c, rows, cols, { maximize, warmStart });
      assert.deepEqual(Array.from(warm.rowToCol), naiveAssignment(c, rows, cols, { maximize, warmStart }).rowToCol, `${what} warm max=${maximize}`);
      assert.equal(warm.objective, res.objective);
    }
    return res;
  };
  for (const [rows, cols] of [[2, 2], [3, 3], [1, 4], [2, 3], [3, 2], [2, 4], [4, 2], [3, 4], [4, 3]]) {
    for (const c of everyMatrix(rows, cols, [0, 1])) for (const maximize of [false, true]) check(c, rows, cols, maximize, `${rows}x${cols} [${c}]`);
  }
  for (let trial = 0; trial < 600; trial++) {
    const rows = 3 + rng.int(4);
    const cols = 3 + rng.int(5);
    const c = Float64Array.from({ length: rows * cols }, () => rng.int(3));
    check(c, rows, cols, trial % 2 === 0, `${rows}x${cols} trial ${trial}`);
  }
});

test('ties: the WebAssembly solver picks its JavaScript twin\'s optimum on every 0/1 matrix up to 3 × 3 and random 4 × 4 and 5 × 5 ones, cold and warm', () => {
  const rng = createRng(43);
  const random = (n: number, count: number) => Array.from({ length: count }, () => Float64Array.from({ length: n * n }, () => rng.int(2)));
  for (const [n, matrices] of [[2, everyMatrix(2, 2, [0, 1])], [3, everyMatrix(3, 3, [0, 1])], [4, random(4, 1500)], [5, random(5, 500)]] as const) {
    for (const c of matrices) {
      for (const sign of [1, -1]) {
        const maximize = sign < 0;
        const twin = solveSquareOracle(c, n, { maximize });
        const wasm = solveSquareWasm(c, n, sign, undefined);
        assert.ok(wasm !== null && typeof wasm === 'object', `n=${n}`);
        assert.deepEqual(wasm.rowToCol, twin.rowToCol, `n=${n} [${c}] max=${maximize}`);
        assert.deepEqual(wasm.colPotential, twin.colPotential, `n=${n} [${c}] max=${maximize}`);
        assert.equal(twin.objective, bruteForce(c, n, n, maximize));
        // From the duals of a changed matrix, as weight matching's next step for the same permutation.
        const changed = c.map((x) => (rng.next() < 0.3 ? 1 - x : x));
        const start = solveSquareOracle(changed, n, { maximize });
        const warmTwin = solveSquareOracle(c, n, { maximize, warmStart: start });
        const warm = solveAssignment(c, n, n, { maximize, warmStart: start });
        assert.deepEqual(warm.rowToCol, warmTwin.rowToCol, `n=${n} [${c}] warm max=${maximize}`);
        assert.equal(warm.objective, twin.objective);
      }
    }
  }
});

test('a leased solver: matrices solved in place, kept apart from other solves, updates added as in JavaScript', () => {
  const rng = createRng(77);
  const lease = leaseSolver({ matrices: [33, 20], largest: 33, updates: true });
  assert.ok(lease !== null);
  const big = lease.matrix(33)!;
  const small = lease.matrix(20)!;
  assert.equal(lease.matrix(2), null, 'beyond the reservation');
  big.set(randomMatrix(rng, 33, 33, 'uniform'));
  small.set(randomMatrix(rng, 20, 20, 'int'));
  const bigCopy = Float64Array.from(big);
  const smallCopy = Float64Array.from(small);
  // Solves of other matrices, larger ones too, borrow another instance: the leased matrices stay as they were.
  solveAssignment(randomMatrix(rng, 64, 64, 'uniform'), 64, 64);
  assert.deepEqual(big, bigCopy);
  assert.deepEqual(small, smallCopy);
  const inPlace = solveAssignment(big, 33, 33, { maximize: true });
  const copied = solveSquareOracle(Float64Array.from(big), 33, { maximize: true });
  assert.deepEqual(inPlace.rowToCol, copied.rowToCol);
  assert.deepEqual(inPlace.colPotential, copied.colPotential);
  // addInto: float64 += float32, bit for bit the sums of a JavaScript loop, odd lengths included.
  for (const m of [big, small]) {
    const delta = Float32Array.from({ length: m.length }, () => rng.normal() * 1e-3);
    const want = Float64Array.from(m, (x, k) => x + delta[k]);
    lease.addInto(m, delta);
    assert.deepEqual(m, want);
  }
  lease.release();
  lease.release();
});

test('a lease larger than WebAssembly can address is refused (the caller keeps its matrices in JavaScript)', () => {
  // 3 × 24 000² float64 = 13.8 GB: nothing is allocated, the answer is null at once.
  assert.equal(leaseSolver({ matrices: [24000, 24000, 24000], largest: 24000 }), null);
  // And a small lease still works afterwards.
  const lease = leaseSolver({ matrices: [4], largest: 4 });
  assert.ok(lease !== null && lease.matrix(4) !== null);
  lease.release();
});

test('entries near ±1e308 whose reduced costs overflow: the WebAssembly route ends as the JavaScript one does', () => {
  const isInput = (re: RegExp) => (e: unknown) => e instanceof InputError && re.test(e.message);
  // A 17 × 17 matrix found by fuzzing, which made the WebAssembly solver loop for ever (a = −9e307,
  // b = 9e307): JavaScript reports it infeasible, and so must the default route now.
  const code = 'ababbbbbbbbbbaabbbabbbbbabbbbbbababbabbbbbbbbbbbbabbbbbbbbbbbbbbbbbbbbbbbbbbbabbbbabbbbbbabbbbbbbabbbabbbababbbbaababbbbbabababbabbb1bbbabbbbbb0abbbbabbbbbbbbbbbabbabbabbabbbaabbbbabbbbbbbbbbbbbbbabbbbbbbbbababbbbbbab2bbbbbbabbabaabbabbbabababbbaabbabbbbbbbbbbbabaabbabbbbbabbaabbbbbbbbbab';
  const value: Record<string, number> = { a: -9e307, b: 9e307, '0': 0, '1': 1, '2': 2 };
  const c = Float64Array.from(code, (ch) => value[ch]);
  assert.throws(() => solveSquareOracle(c, 17), isInput(/infeasible/));
  assert.throws(() => solveAssignment(c, 17, 17), isInput(/infeasible/));
  // And a seeded sweep of such matrices: the same outcome on both routes, error or answer bit for bit.
  const rng = createRng(3);
  for (let trial = 0; trial < 400; trial++) {
    const n = 16 + rng.int(4);
    const big = [1.7e308, 1e308, 9e307][rng.int(3)];
    const pBig = rng.next();
    const pNeg = rng.next() * (1 - pBig);
    const m = Float64Array.from({ length: n * n }, () => {
      const u = rng.next();
      return u < pBig ? big : u < pBig + pNeg ? -big : rng.int(3);
    });
    const run = (solve: () => AssignmentResult) => {
      try {
        return solve();
      } catch (e) {
        return (e as Error).message;
      }
    };
    const js = run(() => solveSquareOracle(m, n));
    const wasm = run(() => solveAssignment(m, n, n));
    if (typeof js === 'string' || typeof wasm === 'string') assert.equal(wasm, js, `trial ${trial}`);
    else {
      assert.deepEqual(wasm.rowToCol, js.rowToCol, `trial ${trial}`);
      assert.deepEqual(wasm.colPotential, js.colPotential, `trial ${trial}`);
    }
  }
});
