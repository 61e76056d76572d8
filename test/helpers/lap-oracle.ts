/**
 * TEST ORACLE, not production code: the square assignment solver in JavaScript, the twin of asm/lap.ts
 * (which src/match/lap-wasm.ts runs for every square problem of 16 and more and every warm-started one).
 * Same algorithm, same float64 operations in the same order, so the two must agree bit for bit on every
 * matrix, ties included (test/lap.test.ts): Jonker–Volgenant column reduction (cold) or the warm start
 * (given column potentials, or the best ones for given row potentials; row minima; still-tight given
 * pairs; cheapest free columns), augmenting row reduction, then shortest augmenting paths. Readable where
 * the WebAssembly is fast: a change to the solver is made here first, tested, then mirrored there.
 */
import { InputError } from '../../src/errors.js';
import type { AssignmentResult, WarmStart } from '../../src/match/lap.js';
// The shortest-augmenting-path core and the input checks are the production solver's own (lap.ts): they
// are what the rectangular solve runs and is tested on by brute force; the oracle's twin of the
// WebAssembly is its start and row reduction.
import { augmentAllFreeRows, checkEntries, checkLength, infeasible } from '../../src/match/lap.js';

/** The square n × n problem, minimised (or maximised), from cold or from a warm start. */
export function solveSquareOracle(
  cost: Float64Array | Float32Array,
  n: number,
  opts: { maximize?: boolean; warmStart?: WarmStart } = {},
): AssignmentResult {
  const maximize = opts.maximize === true;
  const reject = () => checkEntries(cost, n, n, maximize);
  const c = Float64Array.from(cost);
  const sign = maximize ? -1 : 1;
  const u = new Float64Array(n);
  const v = new Float64Array(n);
  const col4row = new Int32Array(n).fill(-1);
  const row4col = new Int32Array(n).fill(-1);
  squareStart(c, sign, n, opts.warmStart, n, n, u, v, col4row, row4col, reject);
  augmentAllFreeRows(c, sign, n, n, u, v, col4row, row4col);
  let objective = 0;
  for (let i = 0; i < n; i++) objective += cost[i * n + col4row[i]];
  return { rowToCol: col4row, colToRow: row4col, objective, rowPotential: u, colPotential: v };
}


/**
 * The start of a square n × n minimisation problem (sign · c): potentials u, v and a partial matching with
 * every reduced cost c − u − v ≥ 0 and every matched pair at reduced cost 0, which is what the search
 * (augmentAllFreeRows) needs; it then matches the rows left free.
 *
 * Cold, Jonker and Volgenant's start: column reduction (each column's potential is its minimum; a row that
 * is some column's minimum takes it, u = 0) then augmenting row reduction, which
 * matches most of the remaining rows at a fraction of a search's cost.
 *
 * Warm (an earlier solve of a similar problem: weight matching's previous step for the same permutation):
 * the given column potentials (or the best ones for the given row potentials), u[i] = the row's minimum
 * reduced cost, the given pairs that are still tight, then augmenting row reduction for the rest. Without
 * that last step a changed matrix leaves nearly every pair untight (any change of a continuous cost breaks
 * equality) and the search would match every row from scratch, slower than a cold start.
 */
function squareStart(
  c: Float64Array,
  sign: number,
  n: number,
  warm: WarmStart | undefined,
  rows: number,
  cols: number,
  u: Float64Array,
  v: Float64Array,
  rowToCol: Int32Array,
  colToRow: Int32Array,
  reject: () => void,
): void {
  if (warm === undefined) {
    v.fill(Infinity);
    const argmin = new Int32Array(n).fill(-1);
    for (let i = 0; i < n; i++) {
      const base = i * n;
      for (let j = 0; j < n; j++) {
        const x = sign * c[base + j];
        // False for NaN and for −Infinity (an infinitely attractive pair): checkEntries names the entry.
        if (!(x > -Infinity)) reject();
        if (x < v[j]) {
          v[j] = x;
          argmin[j] = i;
        }
      }
    }
    // A column forbidden everywhere (potential +Infinity) would make c − v meaningless: leave it all to the search.
    if (!v.every(Number.isFinite)) {
      v.fill(0);
      rowMinima(c, sign, n, v, u, reject);
      return;
    }
    u.fill(0);
    // Later columns first, as Jonker and Volgenant do; a row already taken keeps its first column.
    for (let j = n - 1; j >= 0; j--) {
      const i = argmin[j];
      if (i >= 0 && rowToCol[i] < 0) {
        rowToCol[i] = j;
        colToRow[j] = i;
      }
    }
  } else {
    checkLength(warm.colPotential, n, 'colPotential', rows, cols);
    checkLength(warm.rowPotential, n, 'rowPotential', rows, cols);
    checkLength(warm.rowToCol, n, 'rowToCol', rows, cols);
    if (warm.colPotential !== undefined) v.set(warm.colPotential);
    else if (warm.rowPotential !== undefined) {
      v.fill(Infinity);
      for (let i = 0; i < n; i++) {
        const base = i * n;
        const ui = warm.rowPotential[i];
        for (let j = 0; j < n; j++) {
          const r = sign * c[base + j] - ui;
          if (r < v[j]) v[j] = r;
        }
      }
    }
    // A non-finite v (a column forbidden everywhere, or bad input) would poison the reduced costs.
    for (let j = 0; j < n; j++) if (!Number.isFinite(v[j])) v[j] = 0;
    const argmin = new Int32Array(n);
    rowMinima(c, sign, n, v, u, reject, argmin);
    if (u.some((x) => x === Infinity)) throw infeasible(n, n);
    const given = warm.rowToCol;
    if (given !== undefined) {
      for (let i = 0; i < n; i++) {
        const j = given[i];
        if (j === -1) continue;
        if (!Number.isInteger(j) || j < 0 || j >= n) {
          throw new InputError(`assignment warm start: rowToCol[${i}] = ${j} is not a column of a ${rows}x${cols} matrix`);
        }
        if (colToRow[j] >= 0) throw new InputError(`assignment warm start: rowToCol uses column ${j} twice`);
        // Reserve the column even if the pair is dropped, so a repeat is still caught.
        colToRow[j] = -2;
        if (sign * c[i * n + j] - v[j] <= u[i]) {
          rowToCol[i] = j;
          colToRow[j] = i;
        }
      }
      for (let j = 0; j < n; j++) if (colToRow[j] === -2) colToRow[j] = -1;
    }
    // A row whose pair was dropped takes its cheapest column when that one is free: tight at no cost, as in
    // column reduction; the rest go to augmenting row reduction.
    for (let i = 0; i < n; i++) {
      const j = argmin[i];
      if (rowToCol[i] < 0 && colToRow[j] < 0) {
        rowToCol[i] = j;
        colToRow[j] = i;
      }
    }
  }
  augmentingRowReduction(c, sign, n, u, v, rowToCol, colToRow);
}

/**
 * u[i] = min over j of sign · c[i][j] − v[j] (the best row potentials for a finite v), at column argmin[i];
 * `reject` is called on an entry that is NaN or −Infinity.
 */
function rowMinima(c: Float64Array, sign: number, n: number, v: Float64Array, u: Float64Array, reject: () => void, argmin?: Int32Array): void {
  for (let i = 0; i < n; i++) {
    const base = i * n;
    let m = Infinity;
    let at = 0;
    for (let j = 0; j < n; j++) {
      const r = sign * c[base + j] - v[j];
      if (!(r > -Infinity)) reject();
      if (r < m) {
        m = r;
        at = j;
      }
    }
    u[i] = m;
    if (argmin !== undefined) argmin[i] = at;
  }
}

/**
 * Jonker and Volgenant's augmenting row reduction, two rounds: each free row takes its cheapest column
 * under v, lowering that column's potential so the row is indifferent between it and its second best, and
 * the row it displaces becomes free. Assigned pairs stay tight and reduced costs stay ≥ 0 (lowering v[j]
 * only raises column j's reduced costs), and u stays feasible (at most each row's minimum). Writes u, v,
 * rowToCol and colToRow.
 */
function augmentingRowReduction(
  c: Float64Array,
  sign: number,
  n: number,
  u: Float64Array,
  v: Float64Array,
  rowToCol: Int32Array,
  colToRow: Int32Array,
): void {
  let free = Int32Array.from({ length: n }, (_, i) => i).filter((i) => rowToCol[i] < 0);
  // Near-ties can make rows trade a column back and forth by tiny price steps; a budget bounds that, and
  // whatever is still free then is left to the exact search.
  let budget = 4 * n;
  for (let round = 0; round < 2 && free.length > 0; round++) {
    const next: number[] = [];
    const queue = Array.from(free);
    for (let k = 0; k < queue.length && budget-- > 0; k++) {
      const i = queue[k];
      const base = i * n;
      let umin = Infinity;
      let usub = Infinity;
      let j1 = -1;
      let j2 = -1;
      for (let j = 0; j < n; j++) {
        const h = sign * c[base + j] - v[j];
        if (h < usub) {
          if (h >= umin) {
            usub = h;
            j2 = j;
          } else {
            usub = umin;
            j2 = j1;
            umin = h;
            j1 = j;
          }
        }
      }
      if (j1 < 0 || umin === Infinity) continue; // a row with no allowed column: the search reports it
      let displaced = colToRow[j1];
      if (umin < usub) {
        // Make j1 exactly as dear as the second best for this row; a displaced row retries at once. (No
        // second best, usub = Infinity: the row takes j1 as it is.)
        if (usub !== Infinity) v[j1] -= usub - umin;
      } else if (displaced >= 0 && j2 >= 0) {
        // A tie: take the second best instead, displacing its row (if any) to the next round.
        j1 = j2;
        displaced = colToRow[j2];
      }
      if (displaced >= 0) rowToCol[displaced] = -1;
      rowToCol[i] = j1;
      colToRow[j1] = i;
      // The row's minimum reduced cost is now usub (j1 was raised to it), or umin on a tie; taking the
      // pair's own reduced cost when rounding puts it below keeps that pair from going negative.
      u[i] = Math.min(usub, sign * c[base + j1] - v[j1]);
      if (displaced >= 0) {
        if (umin < usub) queue.splice(k + 1, 0, displaced);
        else next.push(displaced);
      }
    }
    free = Int32Array.from(next);
  }
}



