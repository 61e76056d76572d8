/**
 * Exact linear sum assignment (the rectangular "LAP"): choose min(rows, cols) row–column pairs, no row
 * or column used twice, minimising (or maximising) the summed cost.
 *
 * Method: shortest augmenting paths with dual potentials (the Jonker–Volgenant family, in the form
 * Crouse 2016 describes for rectangular problems). Rows are added one at a time; for each free row a
 * Dijkstra search over reduced costs c[i][j] − u[i] − v[j] (kept ≥ 0 by the potentials) finds the
 * cheapest way to reach a free column, the matching is flipped along that path, and the potentials are
 * moved so every matched pair stays at reduced cost 0. O(rows² · cols) in the worst case.
 *
 * The solver always works with rows ≤ cols (a taller problem is transposed first): then every row is
 * matched, and a free column keeps the largest column potential, which is what makes the rectangular
 * result optimal and not just a matching of the rows.
 *
 * Square problems of 16 and more, and warm-started square ones, go to the WebAssembly solver
 * (lap-wasm.ts, from asm/lap.ts), which starts from Jonker and Volgenant's column reduction (or the warm
 * start) and augmenting row reduction before the same search. Its JavaScript twin,
 * test/helpers/lap-oracle.ts, is the test oracle it must equal bit for bit. Everything else (rectangular
 * and small problems, forbidden pairs, no WebAssembly) runs the search here, from zero potentials or from
 * the warm start; it reaches the same optimum, though with tied optima it may choose another of them.
 *
 * Pure: the input cost array is never written to. No allocation happens inside the search loops.
 */
import { InputError } from '../errors.js';
import { solveSquareWasm, type SquareSolution } from './lap-wasm.js';

export interface WarmStart {
  /**
   * Column potentials v (length cols) from an earlier solve, in the *minimisation* form of the problem
   * (i.e. for −cost when maximising), as returned in `AssignmentResult.colPotential`.
   */
  readonly colPotential?: Float64Array;
  /**
   * Row potentials u (length rows), same convention. The solver works on the longer side's potentials
   * (v when rows ≤ cols, u when rows > cols); when only the other side is given, the best potentials
   * for it are derived (e.g. v[j] = min over i of c[i][j] − u[i]). Either one is enough.
   */
  readonly rowPotential?: Float64Array;
  /** A (partial) assignment to start from: rowToCol[i] = column or −1. */
  readonly rowToCol?: Int32Array;
}

export interface AssignmentOptions {
  /** Maximise the summed cost instead of minimising it. */
  readonly maximize?: boolean;
  /**
   * Start from the potentials and matching of an earlier, similar problem (e.g. the previous pass of
   * weight matching). The result is exactly optimal whatever is passed: pairs of the given matching that
   * are not tight under the given potentials are dropped, and only the remaining rows are searched.
   */
  readonly warmStart?: WarmStart;
}

export interface AssignmentResult {
  /** rowToCol[i] = column assigned to row i, or −1 (only possible when rows > cols). */
  readonly rowToCol: Int32Array;
  /** colToRow[j] = row assigned to column j, or −1 (only possible when cols > rows). */
  readonly colToRow: Int32Array;
  /** Sum of the original costs over the min(rows, cols) assigned pairs. */
  readonly objective: number;
  /**
   * Dual potentials of the minimisation form (cost, or −cost when maximising): u[i] + v[j] ≤ c'[i][j]
   * for all pairs, with equality on assigned pairs. Feed them back as a warm start.
   */
  readonly rowPotential: Float64Array;
  readonly colPotential: Float64Array;
}

/**
 * Solve the assignment problem for a dense row-major `rows × cols` cost matrix.
 * +Infinity (−Infinity when maximising) marks a forbidden pair; NaN and the opposite infinity are rejected.
 */
export function solveAssignment(
  cost: Float64Array | Float32Array,
  rows: number,
  cols: number,
  opts: AssignmentOptions = {},
): AssignmentResult {
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows < 0 || cols < 0) {
    throw new InputError(`assignment: bad matrix size ${rows}x${cols}`);
  }
  if (cost.length !== rows * cols) {
    throw new InputError(`assignment: a ${rows}x${cols} cost matrix needs ${rows * cols} values, got ${cost.length}`);
  }
  const maximize = opts.maximize === true;
  const transpose = rows > cols;
  const nr = transpose ? cols : rows;
  const nc = transpose ? rows : cols;
  const reject = () => checkEntries(cost, rows, cols, maximize);
  // Square problems (cold from 16 up, or warm-started) are solved by the WebAssembly solver, which checks
  // the entries in its first pass. Where it cannot (no WebAssembly, forbidden pairs, beyond its 4 GiB), and
  // for every other problem, the JavaScript search below solves it.
  if (nr === nc && (opts.warmStart !== undefined || nr >= 16)) {
    const solved = solveSquareInWasm(cost, nr, maximize, opts.warmStart);
    if (solved === 'reject') reject();
    if (solved === 'overflow') throw infeasible(nr, nc);
    if (solved !== null && solved !== 'reject') {
      let objective = 0;
      for (let i = 0; i < rows; i++) objective += cost[i * cols + solved.rowToCol[i]];
      return { ...solved, objective };
    }
  }
  reject();
  // The search reads sign · c[i][j] (the minimisation form) from an nr × nc matrix with nr ≤ nc: the
  // input itself when it is a Float64Array of that shape, else a transposed / widened copy. Not copying
  // matters on easy problems, where the copy costs as much as the solve.
  const direct = !transpose && cost instanceof Float64Array;
  const c = direct ? cost : workingCopy(cost, rows, cols, maximize, transpose);
  const sign = direct && maximize ? -1 : 1;

  const u = new Float64Array(nr);
  const v = new Float64Array(nc);
  const col4row = new Int32Array(nr).fill(-1);
  const row4col = new Int32Array(nc).fill(-1);
  if (opts.warmStart !== undefined) {
    prepareWarmStart(c, sign, nr, nc, rows, cols, transpose, opts.warmStart, u, v, col4row, row4col);
  }
  augmentAllFreeRows(c, sign, nr, nc, u, v, col4row, row4col);

  // Map back to the caller's orientation.
  const rowToCol = transpose ? row4col : col4row;
  const colToRow = transpose ? col4row : row4col;
  let objective = 0;
  for (let i = 0; i < rows; i++) {
    const j = rowToCol[i];
    if (j >= 0) objective += cost[i * cols + j];
  }
  return {
    rowToCol,
    colToRow,
    objective,
    rowPotential: transpose ? v : u,
    colPotential: transpose ? u : v,
  };
}

/**
 * The WebAssembly route for a square problem: cold, or warm with column potentials (given, or the best
 * ones for given row potentials, as the JavaScript twin derives them) and a valid matching. Anything else,
 * bad warm-start input included, takes the JavaScript route, which reports it.
 */
function solveSquareInWasm(
  cost: Float64Array | Float32Array,
  n: number,
  maximize: boolean,
  warm: WarmStart | undefined,
): SquareSolution | 'reject' | 'overflow' | null {
  const sign = maximize ? -1 : 1;
  if (warm === undefined) return solveSquareWasm(cost, n, sign, undefined);
  const { rowPotential, rowToCol } = warm;
  if (rowPotential !== undefined && rowPotential.length !== n) return null;
  let colPotential = warm.colPotential;
  if (colPotential === undefined && rowPotential !== undefined) colPotential = bestColumnPotentials(cost, sign, n, rowPotential);
  if (colPotential === undefined || colPotential.length !== n) return null;
  if (rowToCol !== undefined) {
    if (rowToCol.length !== n) return null;
    const used = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      const j = rowToCol[i];
      if (j === -1) continue;
      if (!(Number.isInteger(j) && j >= 0 && j < n) || used[j] === 1) return null;
      used[j] = 1;
    }
  }
  return solveSquareWasm(cost, n, sign, { colPotential, rowToCol });
}

/** v[j] = min over i of sign · c[i][j] − u[i]: the best column potentials for row potentials u. */
function bestColumnPotentials(cost: Float64Array | Float32Array, sign: number, n: number, u: Float64Array): Float64Array {
  const v = new Float64Array(n).fill(Infinity);
  for (let i = 0; i < n; i++) {
    const base = i * n;
    const ui = u[i];
    for (let j = 0; j < n; j++) {
      const r = sign * cost[base + j] - ui;
      if (r < v[j]) v[j] = r;
    }
  }
  return v;
}

/** Reject NaN and the infinity that would make a pair infinitely attractive (no optimum exists then). */
export function checkEntries(cost: Float64Array | Float32Array, rows: number, cols: number, maximize: boolean): void {
  const bad = maximize ? Infinity : -Infinity;
  for (let k = 0; k < cost.length; k++) {
    const x = cost[k];
    if (x !== x || x === bad) {
      // x !== x is the NaN test.
      throw new InputError(
        `assignment: cost[${Math.floor(k / cols)}][${k % cols}] of the ${rows}x${cols} matrix is ${x}; ` +
          `costs must be numbers (${maximize ? '-Infinity' : '+Infinity'} marks a forbidden pair)`,
      );
    }
  }
}

/** A Float64 copy in minimisation form (negated when maximising), transposed when asked. */
function workingCopy(
  cost: Float64Array | Float32Array,
  rows: number,
  cols: number,
  maximize: boolean,
  transpose: boolean,
): Float64Array {
  const sign = maximize ? -1 : 1;
  const out = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    const base = i * cols;
    if (transpose) for (let j = 0; j < cols; j++) out[j * rows + i] = sign * cost[base + j];
    else for (let j = 0; j < cols; j++) out[base + j] = sign * cost[base + j];
  }
  return out;
}

export function infeasible(nr: number, nc: number): InputError {
  return new InputError(
    `assignment: the ${nr}x${nc} cost matrix is infeasible (forbidden pairs leave no complete assignment)`,
  );
}

/**
 * The core: for each unmatched row, one Dijkstra search from that row to the nearest free column over
 * reduced costs, then augment along the path and update the potentials. Requires nr ≤ nc, reduced
 * costs ≥ 0 on the rows already matched, and (when nr < nc) every free column holding the largest v.
 */
export function augmentAllFreeRows(
  c: Float64Array,
  sign: number,
  nr: number,
  nc: number,
  u: Float64Array,
  v: Float64Array,
  col4row: Int32Array,
  row4col: Int32Array,
): void {
  // Work arrays, allocated once per solve.
  const dist = new Float64Array(nc); // shortest reduced-cost distance from the start row to each column
  const pred = new Int32Array(nc); // the row from which each column was best reached
  const settledCols = new Int32Array(nc); // columns in the order the search settled them ...
  const settledDist = new Float64Array(nc); // ... and their final distances
  const scannedRows = new Int32Array(nr);

  for (let start = 0; start < nr; start++) {
    if (col4row[start] >= 0) continue;
    dist.fill(Infinity);
    let numSettled = 0;
    let numScanned = 0;
    let minVal = 0; // distance of the column settled last
    let i = start;
    let sink = -1;

    while (sink < 0) {
      scannedRows[numScanned++] = i;
      // Relax every unsettled column through row i and pick the nearest one; on ties prefer a free
      // column, where the search can stop at once. A settled column has dist = NaN, which fails every
      // comparison below: that drops it from the scan without a branch or an index list, and keeps the
      // loop a sequential pass over the cost row, v and dist (faster than visiting a packed list of
      // unsettled columns, whose gathers from the cost row defeat the cache prefetcher).
      const base = i * nc;
      const offset = minVal - u[i];
      let lowest = Infinity;
      let best = -1;
      for (let j = 0; j < nc; j++) {
        const d = dist[j];
        const r = offset + sign * c[base + j] - v[j];
        // Two branches rather than "relax, then compare": each path does one comparison against lowest
        // in the common case.
        if (r < d) {
          dist[j] = r;
          pred[j] = i;
          if (r <= lowest && (r < lowest || row4col[j] < 0)) {
            lowest = r;
            best = j;
          }
        } else if (d <= lowest && (d < lowest || row4col[j] < 0)) {
          lowest = d;
          best = j;
        }
      }
      if (best < 0 || lowest === Infinity) throw infeasible(nr, nc);
      minVal = lowest;
      dist[best] = NaN;
      settledCols[numSettled] = best;
      settledDist[numSettled++] = lowest;
      if (row4col[best] < 0) sink = best;
      else i = row4col[best];
    }

    // Potentials: rows and columns settled before the sink move so that matched pairs and the new path
    // stay at reduced cost 0 and every other reduced cost stays ≥ 0. Scanned row k (k ≥ 1) was reached
    // through settled column k − 1, its matched column.
    u[start] += minVal;
    for (let k = 1; k < numScanned; k++) u[scannedRows[k]] += minVal - settledDist[k - 1];
    for (let k = 0; k < numSettled; k++) v[settledCols[k]] -= minVal - settledDist[k];

    // Flip the matching along the path sink ← … ← start.
    let j = sink;
    for (;;) {
      const r = pred[j];
      row4col[j] = r;
      const prev = col4row[r];
      col4row[r] = j;
      if (r === start) break;
      j = prev;
    }
  }
}

/**
 * Load a warm start into (u, v, col4row, row4col) so that the core's preconditions hold: u is set to the
 * best row potential for v (u[i] = min over j of c[i][j] − v[j], so all reduced costs are ≥ 0), given
 * pairs that are not tight (reduced cost 0) are dropped, and when nr < nc every free column is raised to
 * the largest v. Raising a column can untighten other pairs, so that repeats until nothing changes.
 */
function prepareWarmStart(
  c: Float64Array,
  sign: number,
  nr: number,
  nc: number,
  rows: number,
  cols: number,
  transpose: boolean,
  warm: WarmStart,
  u: Float64Array,
  v: Float64Array,
  col4row: Int32Array,
  row4col: Int32Array,
): void {
  // Potentials on the working matrix's column side: the caller's rows when transposed.
  const sameSide = transpose ? warm.rowPotential : warm.colPotential;
  const otherSide = transpose ? warm.colPotential : warm.rowPotential;
  checkLength(sameSide, nc, transpose ? 'rowPotential' : 'colPotential', rows, cols);
  checkLength(otherSide, nr, transpose ? 'colPotential' : 'rowPotential', rows, cols);
  checkLength(warm.rowToCol, rows, 'rowToCol', rows, cols);
  if (sameSide !== undefined) {
    v.set(sameSide);
  } else if (otherSide !== undefined) {
    // Best column potentials for the given row potentials: v[j] = min over i of c[i][j] − u[i].
    v.fill(Infinity);
    for (let i = 0; i < nr; i++) {
      const base = i * nc;
      const ui = otherSide[i];
      for (let j = 0; j < nc; j++) {
        const r = sign * c[base + j] - ui;
        if (r < v[j]) v[j] = r;
      }
    }
  }
  for (let j = 0; j < nc; j++) {
    // A non-finite v (a column forbidden everywhere, or bad input) would poison the reduced costs.
    if (!Number.isFinite(v[j])) v[j] = 0;
  }

  if (warm.rowToCol !== undefined) {
    const given = warm.rowToCol;
    for (let i = 0; i < rows; i++) {
      const j = given[i];
      if (j === -1) continue;
      if (!Number.isInteger(j) || j < 0 || j >= cols) {
        throw new InputError(`assignment warm start: rowToCol[${i}] = ${j} is not a column of a ${rows}x${cols} matrix`);
      }
      const r = transpose ? j : i;
      const k = transpose ? i : j;
      if (row4col[k] >= 0) {
        throw new InputError(`assignment warm start: rowToCol uses ${transpose ? 'row' : 'column'} ${k} twice`);
      }
      col4row[r] = k;
      row4col[k] = r;
    }
  }

  for (;;) {
    if (nr < nc) {
      let top = -Infinity;
      for (let j = 0; j < nc; j++) if (v[j] > top) top = v[j];
      for (let j = 0; j < nc; j++) if (row4col[j] < 0) v[j] = top;
    }
    for (let i = 0; i < nr; i++) {
      const base = i * nc;
      let m = Infinity;
      for (let j = 0; j < nc; j++) {
        const r = sign * c[base + j] - v[j];
        if (r < m) m = r;
      }
      if (m === Infinity) throw infeasible(nr, nc);
      u[i] = m;
    }
    let dropped = false;
    for (let i = 0; i < nr; i++) {
      const j = col4row[i];
      if (j >= 0 && sign * c[i * nc + j] - v[j] > u[i]) {
        col4row[i] = -1;
        row4col[j] = -1;
        dropped = true;
      }
    }
    if (!dropped || nr === nc) return;
  }
}

export function checkLength(a: ArrayLike<number> | undefined, n: number, name: string, rows: number, cols: number): void {
  if (a !== undefined && a.length !== n) {
    throw new InputError(`assignment warm start: ${name} has length ${a.length}, expected ${n} for a ${rows}x${cols} matrix`);
  }
}
