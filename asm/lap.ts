// The square assignment solver of src/match/lap.ts, compiled to WebAssembly (AssemblyScript; built by
// scripts/build-wasm.mjs). Same algorithm, same float64 operations in the same order, so the same answer
// bit for bit (tested): Jonker–Volgenant column reduction (cold) or the warm start (column potentials,
// row minima, still-tight pairs, cheapest free columns), augmenting row reduction, then shortest
// augmenting paths. It runs without JavaScript's warm-up and measured ~1.6× faster (BENCHMARKS.md).
//
// Memory is laid out by the caller (lap-wasm.ts): c f64[n·n] holds the matrix; u, v, dist, settledDist
// are f64[n]; col4row, row4col, pred, settledCols, scannedRows, argmin, given are i32[n]; queue is i32[6n].
// Warm starts pass their column potentials in v and their matching (−1 for none) in `given`.
// Returns 0 when solved, 2 for a NaN or −Infinity entry (the caller names it), 3 for a +Infinity entry
// (forbidden pairs are left to the JavaScript solver).

@inline function ld(p: usize, i: i32): f64 {
  return load<f64>(p + (<usize>i << 3));
}
@inline function st(p: usize, i: i32, x: f64): void {
  store<f64>(p + (<usize>i << 3), x);
}
@inline function li(p: usize, i: i32): i32 {
  return load<i32>(p + (<usize>i << 2));
}
@inline function si(p: usize, i: i32, x: i32): void {
  store<i32>(p + (<usize>i << 2), x);
}
@inline function entry(c: usize, n: i32, i: i32, j: i32): f64 {
  return load<f64>(c + ((<usize>i * <usize>n + <usize>j) << 3));
}

export function solve(
  n: i32, sign: f64, warm: i32,
  c: usize, u: usize, v: usize, col4row: usize, row4col: usize,
  dist: usize, pred: usize, settledCols: usize, settledDist: usize, scannedRows: usize,
  argmin: usize, given: usize, queue: usize,
): i32 {
  for (let j = 0; j < n; j++) {
    si(col4row, j, -1);
    si(row4col, j, -1);
  }
  if (warm == 0) {
    for (let j = 0; j < n; j++) {
      st(v, j, Infinity);
      si(argmin, j, -1);
    }
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        const x = sign * entry(c, n, i, j);
        if (!(x > -Infinity)) return 2;
        if (x == Infinity) return 3;
        if (x < ld(v, j)) {
          st(v, j, x);
          si(argmin, j, i);
        }
      }
    }
    for (let i = 0; i < n; i++) st(u, i, 0);
    for (let j = n - 1; j >= 0; j--) {
      const i = li(argmin, j);
      if (i >= 0 && li(col4row, i) < 0) {
        si(col4row, i, j);
        si(row4col, j, i);
      }
    }
  } else {
    for (let j = 0; j < n; j++) {
      const x = ld(v, j);
      if (!(x > -Infinity && x < Infinity)) st(v, j, 0);
    }
    // Row minima under v, at argmin.
    for (let i = 0; i < n; i++) {
      let m = Infinity;
      let at = 0;
      for (let j = 0; j < n; j++) {
        const x = sign * entry(c, n, i, j);
        if (x == Infinity) return 3;
        const r = x - ld(v, j);
        if (!(r > -Infinity)) return 2;
        if (r < m) {
          m = r;
          at = j;
        }
      }
      st(u, i, m);
      si(argmin, i, at);
    }
    for (let i = 0; i < n; i++) {
      const j = li(given, i);
      if (j == -1) continue;
      if (sign * entry(c, n, i, j) - ld(v, j) <= ld(u, i)) {
        si(col4row, i, j);
        si(row4col, j, i);
      }
    }
    for (let i = 0; i < n; i++) {
      const j = li(argmin, i);
      if (li(col4row, i) < 0 && li(row4col, j) < 0) {
        si(col4row, i, j);
        si(row4col, j, i);
      }
    }
  }
  augmentingRowReduction(n, sign, c, u, v, col4row, row4col, queue);
  augmentAllFreeRows(n, sign, c, u, v, col4row, row4col, dist, pred, settledCols, settledDist, scannedRows);
  return 0;
}

function augmentingRowReduction(n: i32, sign: f64, c: usize, u: usize, v: usize, rowToCol: usize, colToRow: usize, queue: usize): void {
  // queue[0, qlen) is this round's rows; the next round's collect at queue + 5n.
  const next = queue + (<usize>(5 * n) << 2);
  let qlen = 0;
  for (let i = 0; i < n; i++) if (li(rowToCol, i) < 0) si(queue, qlen++, i);
  let budget = 4 * n;
  for (let round = 0; round < 2 && qlen > 0; round++) {
    let nextLen = 0;
    let k = 0;
    while (k < qlen && budget-- > 0) {
      const i = li(queue, k);
      let umin = Infinity;
      let usub = Infinity;
      let j1 = -1;
      let j2 = -1;
      for (let j = 0; j < n; j++) {
        const h = sign * entry(c, n, i, j) - ld(v, j);
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
      if (j1 < 0 || umin == Infinity) {
        k++;
        continue;
      }
      let displaced = li(colToRow, j1);
      if (umin < usub) {
        if (usub != Infinity) st(v, j1, ld(v, j1) - (usub - umin));
      } else if (displaced >= 0 && j2 >= 0) {
        j1 = j2;
        displaced = li(colToRow, j2);
      }
      if (displaced >= 0) si(rowToCol, displaced, -1);
      si(rowToCol, i, j1);
      si(colToRow, j1, i);
      const own = sign * entry(c, n, i, j1) - ld(v, j1);
      st(u, i, Math.min(usub, own));
      if (displaced >= 0) {
        if (umin < usub) {
          // Retry the displaced row at once: it takes this row's place in the queue.
          si(queue, k, displaced);
          continue;
        }
        si(next, nextLen++, displaced);
      }
      k++;
    }
    for (let t = 0; t < nextLen; t++) si(queue, t, li(next, t));
    qlen = nextLen;
  }
}

function augmentAllFreeRows(
  n: i32, sign: f64, c: usize, u: usize, v: usize, col4row: usize, row4col: usize,
  dist: usize, pred: usize, settledCols: usize, settledDist: usize, scannedRows: usize,
): void {
  for (let start = 0; start < n; start++) {
    if (li(col4row, start) >= 0) continue;
    for (let j = 0; j < n; j++) st(dist, j, Infinity);
    let numSettled = 0;
    let numScanned = 0;
    let minVal = 0.0;
    let i = start;
    let sink = -1;
    while (sink < 0) {
      si(scannedRows, numScanned++, i);
      const offset = minVal - ld(u, i);
      let lowest = Infinity;
      let best = -1;
      for (let j = 0; j < n; j++) {
        const d = ld(dist, j);
        const r = offset + sign * entry(c, n, i, j) - ld(v, j);
        if (r < d) {
          st(dist, j, r);
          si(pred, j, i);
          if (r <= lowest && (r < lowest || li(row4col, j) < 0)) {
            lowest = r;
            best = j;
          }
        } else if (d <= lowest && (d < lowest || li(row4col, j) < 0)) {
          lowest = d;
          best = j;
        }
      }
      // All entries are finite here, so a free column is always reached.
      minVal = lowest;
      st(dist, best, NaN);
      si(settledCols, numSettled, best);
      st(settledDist, numSettled++, lowest);
      if (li(row4col, best) < 0) sink = best;
      else i = li(row4col, best);
    }
    st(u, start, ld(u, start) + minVal);
    for (let k = 1; k < numScanned; k++) {
      const r = li(scannedRows, k);
      st(u, r, ld(u, r) + (minVal - ld(settledDist, k - 1)));
    }
    for (let k = 0; k < numSettled; k++) {
      const j = li(settledCols, k);
      st(v, j, ld(v, j) - (minVal - ld(settledDist, k)));
    }
    let j = sink;
    while (true) {
      const r = li(pred, j);
      si(row4col, j, r);
      const prev = li(col4row, r);
      si(col4row, r, j);
      if (r == start) break;
      j = prev;
    }
  }
}
