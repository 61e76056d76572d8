// The production square assignment solver (AssemblyScript, compiled to WebAssembly by
// scripts/build-wasm.mjs, run through src/match/lap-wasm.ts). Its JavaScript twin, the test oracle
// test/helpers/lap-oracle.ts, runs the same algorithm with the same float64 operations in the same order,
// so the answer is the same bit for bit, ties included (tested): Jonker–Volgenant column reduction (cold)
// or the warm start (column potentials, row minima, still-tight pairs, cheapest free columns), augmenting
// row reduction, then shortest augmenting paths. Change the twin first, then mirror it here. The scans
// run in 128-bit SIMD (two float64 columns per step), the scalar loop's order-dependent bookkeeping kept
// exactly. BENCHMARKS.md has the figures.
//
// Memory is laid out by the caller (lap-wasm.ts): c f64[n·n] holds the matrix; u, v, dist, settledDist
// are f64[n]; col4row, row4col, pred, settledCols, scannedRows, argmin, given are i32[n]; queue is i32[6n].
// Warm starts pass their column potentials in v and their matching (−1 for none) in `given`.
// Returns 0 when solved, 2 for a NaN or −Infinity entry (the caller names it), 3 for a +Infinity entry
// (forbidden pairs are left to lap.ts's JavaScript search), 4 where a reduced cost overflowed to infinity
// (entries near ±1e308): the JavaScript twin, reaching the same state, reports the problem infeasible.

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
    const sg = f64x2.splat(sign);
    const lowest = f64x2.splat(-Infinity);
    const highest = f64x2.splat(Infinity);
    for (let i = 0; i < n; i++) {
      const row = c + ((<usize>i * <usize>n) << 3);
      const rowIndex = i32x4.splat(i);
      let j = 0;
      for (; j + 1 < n; j += 2) {
        const at = <usize>j << 3;
        const x = f64x2.mul(sg, v128.load(row + at));
        // Any NaN or infinite entry: checked one at a time below, in order, for the right code.
        if (!i64x2.all_true(v128.and(f64x2.gt(x, lowest), f64x2.lt(x, highest)))) break;
        const vj = v128.load(v + at);
        const lt = f64x2.lt(x, vj);
        v128.store(v + at, v128.bitselect(x, vj, lt));
        const pa = argmin + (<usize>j << 2);
        const narrow = i8x16.shuffle(lt, lt, 0, 1, 2, 3, 8, 9, 10, 11, 0, 1, 2, 3, 8, 9, 10, 11);
        v128.store64_lane(pa, v128.bitselect(rowIndex, v128.load64_zero(pa), narrow), 0);
      }
      for (; j < n; j++) {
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
    // Two columns at a time; one at a time (in order) only where one of them may lower the minimum or is
    // not a finite number.
    const sg = f64x2.splat(sign);
    const lowest = f64x2.splat(-Infinity);
    const highest = f64x2.splat(Infinity);
    for (let i = 0; i < n; i++) {
      const row = c + ((<usize>i * <usize>n) << 3);
      let m = Infinity;
      let at = 0;
      let mm = f64x2.splat(m);
      let j = 0;
      for (; j + 1 < n; j += 2) {
        const jo = <usize>j << 3;
        const x = f64x2.mul(sg, v128.load(row + jo));
        const r = f64x2.sub(x, v128.load(v + jo));
        const fine = v128.and(f64x2.lt(x, highest), f64x2.gt(r, lowest));
        if (!v128.any_true(v128.or(v128.not(fine), f64x2.lt(r, mm)))) continue;
        for (let t = j; t < j + 2; t++) {
          const xt = sign * entry(c, n, i, t);
          if (xt == Infinity) return 3;
          const rt = xt - ld(v, t);
          if (!(rt > -Infinity)) return 2;
          if (rt < m) {
            m = rt;
            at = t;
          }
        }
        mm = f64x2.splat(m);
      }
      for (; j < n; j++) {
        const x = sign * entry(c, n, i, j);
        if (x == Infinity) return 3;
        const r = x - ld(v, j);
        if (!(r > -Infinity)) return 2;
        if (r < m) {
          m = r;
          at = j;
        }
      }
      // Every reduced cost of the row overflowed (the JavaScript twin throws 'infeasible' here).
      if (m == Infinity) return 4;
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
  return augmentAllFreeRows(n, sign, c, u, v, col4row, row4col, dist, pred, settledCols, settledDist, scannedRows);
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
      // Four columns at a time; the bookkeeping (rarely needed once the two smallest are near) in order, one
      // column at a time, only where one of the four beats the second smallest so far.
      const row = c + ((<usize>i * <usize>n) << 3);
      const sg = f64x2.splat(sign);
      let sub = f64x2.splat(usub);
      let j = 0;
      for (; j + 3 < n; j += 4) {
        const at = <usize>j << 3;
        const h01 = f64x2.sub(f64x2.mul(sg, v128.load(row + at)), v128.load(v + at));
        const h23 = f64x2.sub(f64x2.mul(sg, v128.load(row + at + 16)), v128.load(v + at + 16));
        if (!v128.any_true(v128.or(f64x2.lt(h01, sub), f64x2.lt(h23, sub)))) continue;
        for (let t = j; t < j + 4; t++) {
          const h = sign * entry(c, n, i, t) - ld(v, t);
          if (h < usub) {
            if (h >= umin) {
              usub = h;
              j2 = t;
            } else {
              usub = umin;
              j2 = j1;
              umin = h;
              j1 = t;
            }
          }
        }
        sub = f64x2.splat(usub);
      }
      // The same bookkeeping again for the last columns: written out twice on purpose (sharing it through
      // module globals, the only way without closures, was slower).
      for (; j < n; j++) {
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
): i32 {
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
      const row = c + ((<usize>i * <usize>n) << 3);
      const off = f64x2.splat(offset);
      const sg = f64x2.splat(sign);
      const rowIndex = i32x4.splat(i);
      // Settled columns hold NaN: no comparison with it is true, so they neither update nor count.
      let low = f64x2.splat(Infinity);
      let j = 0;
      for (; j + 1 < n; j += 2) {
        const at = <usize>j << 3;
        const d = v128.load(dist + at);
        const r = f64x2.sub(f64x2.add(off, f64x2.mul(sg, v128.load(row + at))), v128.load(v + at));
        const lt = f64x2.lt(r, d);
        const nd = v128.bitselect(r, d, lt);
        v128.store(dist + at, nd);
        // pred[j], pred[j + 1] ← i where the distance dropped: the two 64-bit masks narrowed to 32 bits.
        const pp = pred + (<usize>j << 2);
        const narrow = i8x16.shuffle(lt, lt, 0, 1, 2, 3, 8, 9, 10, 11, 0, 1, 2, 3, 8, 9, 10, 11);
        v128.store64_lane(pp, v128.bitselect(rowIndex, v128.load64_zero(pp), narrow), 0);
        low = f64x2.pmin(low, nd);
      }
      if (j < n) {
        const d = ld(dist, j);
        const r = offset + sign * entry(c, n, i, j) - ld(v, j);
        if (r < d) {
          st(dist, j, r);
          si(pred, j, i);
        }
      }
      let lowest = Math.min(f64x2.extract_lane(low, 0), f64x2.extract_lane(low, 1));
      if (j < n) {
        const d = ld(dist, j);
        if (d < lowest) lowest = d;
      }
      // The column taken: among those at the lowest distance, the last free one, else the first one (the
      // choice of the twin's scalar loop, which updates on a strictly lower value or an equal free one).
      let best = -1;
      const eq = f64x2.splat(lowest);
      for (let k = 0; k < n; k += 2) {
        if (k + 1 < n) {
          if (!v128.any_true(f64x2.eq(v128.load(dist + (<usize>k << 3)), eq))) continue;
        }
        for (let t = k; t < k + 2 && t < n; t++) {
          if (ld(dist, t) == lowest && (best < 0 || li(row4col, t) < 0)) best = t;
        }
      }
      // No column within reach: only where reduced costs overflowed (entries are finite here). The
      // JavaScript twin throws 'infeasible' at this point; so does the caller.
      if (best < 0 || lowest == Infinity) return 4;
      // Its own value (of the same magnitude; the scalar loop keeps the taken column's, sign of zero included).
      lowest = ld(dist, best);
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
  return 0;
}

// dst[k] += src[k] for k < len: float64 += float32 (a low-rank update added into a kept cost matrix, in
// place where the solver reads it), two at a time.
export function addFloat32(dst: usize, src: usize, len: i32): void {
  let k = 0;
  for (; k + 1 < len; k += 2) {
    const at = dst + (<usize>k << 3);
    v128.store(at, f64x2.add(v128.load(at), f64x2.promote_low_f32x4(v128.load64_zero(src + (<usize>k << 2)))));
  }
  if (k < len) st(dst, k, ld(dst, k) + <f64>load<f32>(src + (<usize>k << 2)));
}
