// Layout kernels of src/tensor.ts for float32 tensors in this module's memory (weight matching of models
// small enough to copy in, lap-wasm.ts): the same values, bit for bit (NaN payloads of differences aside),
// without the warm-up JavaScript pays on the first calls of a process. A tensor is seen as d0 × d1 × block (its two leading axes, then
// the rest); `axis` (0 or 1) is the axis laid first, the other leading axis is the one selected.

@inline function f32at(p: usize, i: i32): f32 {
  return load<f32>(p + (<usize>i << 2));
}
@inline function i32at(p: usize, i: i32): i32 {
  return load<i32>(p + (<usize>i << 2));
}

// writeTakenAxisFirst: for s < k, unit idx(s) = index[s] (or s when hasIndex is 0) of the other axis,
// minus unit minus[s] when hasMinus is 1 (float32 subtraction), laid axis-first into the rows of dst
// (ld floats wide, from column col).
//   axis 0: dst[r·ld + col + s·block + e] = src[(r·d1 + idx(s))·block + e]   for r < d0
//   axis 1: dst[c·ld + col + s·block + e] = src[(idx(s)·d1 + c)·block + e]   for c < d1
// Plain copies move bit patterns (i32), as tensor.ts does.
export function layoutTaken(
  src: usize, d0: i32, d1: i32, block: i32, axis: i32,
  index: usize, hasIndex: i32, k: i32, minus: usize, hasMinus: i32,
  dst: usize, ld: i32, col: i32,
): void {
  if (axis == 0) {
    for (let r = 0; r < d0; r++) {
      const from = <usize>r * <usize>d1 * <usize>block;
      const to = <usize>r * <usize>ld + <usize>col;
      if (hasIndex == 0 && hasMinus == 0) {
        memory.copy(dst + (to << 2), src + (from << 2), <usize>k * <usize>block << 2);
        continue;
      }
      for (let s = 0; s < k; s++) {
        const f = from + <usize>(hasIndex != 0 ? i32at(index, s) : s) * <usize>block;
        const t = to + <usize>s * <usize>block;
        if (hasMinus != 0) {
          const g = from + <usize>i32at(minus, s) * <usize>block;
          for (let e = 0; e < block; e++) {
            store<f32>(dst + ((t + <usize>e) << 2), load<f32>(src + ((f + <usize>e) << 2)) - load<f32>(src + ((g + <usize>e) << 2)));
          }
        } else if (block == 1) {
          store<i32>(dst + (t << 2), load<i32>(src + (f << 2)));
        } else {
          memory.copy(dst + (t << 2), src + (f << 2), <usize>block << 2);
        }
      }
    }
    return;
  }
  // axis 1: a transpose of the selected rows; four of them at a time when block is 1, so each destination
  // row receives four values side by side per visit.
  const stride = <usize>d1 * <usize>block;
  let s = 0;
  if (block == 1) {
    for (; s + 3 < k; s += 4) {
      const f0 = <usize>(hasIndex != 0 ? i32at(index, s) : s) * stride;
      const f1 = <usize>(hasIndex != 0 ? i32at(index, s + 1) : s + 1) * stride;
      const f2 = <usize>(hasIndex != 0 ? i32at(index, s + 2) : s + 2) * stride;
      const f3 = <usize>(hasIndex != 0 ? i32at(index, s + 3) : s + 3) * stride;
      let to = <usize>col + <usize>s;
      if (hasMinus != 0) {
        const g0 = <usize>i32at(minus, s) * stride;
        const g1 = <usize>i32at(minus, s + 1) * stride;
        const g2 = <usize>i32at(minus, s + 2) * stride;
        const g3 = <usize>i32at(minus, s + 3) * stride;
        for (let c = 0; c < d1; c++, to += <usize>ld) {
          const cc = <usize>c;
          store<f32>(dst + (to << 2), load<f32>(src + ((f0 + cc) << 2)) - load<f32>(src + ((g0 + cc) << 2)));
          store<f32>(dst + ((to + 1) << 2), load<f32>(src + ((f1 + cc) << 2)) - load<f32>(src + ((g1 + cc) << 2)));
          store<f32>(dst + ((to + 2) << 2), load<f32>(src + ((f2 + cc) << 2)) - load<f32>(src + ((g2 + cc) << 2)));
          store<f32>(dst + ((to + 3) << 2), load<f32>(src + ((f3 + cc) << 2)) - load<f32>(src + ((g3 + cc) << 2)));
        }
      } else {
        for (let c = 0; c < d1; c++, to += <usize>ld) {
          const cc = <usize>c;
          store<i32>(dst + (to << 2), load<i32>(src + ((f0 + cc) << 2)));
          store<i32>(dst + ((to + 1) << 2), load<i32>(src + ((f1 + cc) << 2)));
          store<i32>(dst + ((to + 2) << 2), load<i32>(src + ((f2 + cc) << 2)));
          store<i32>(dst + ((to + 3) << 2), load<i32>(src + ((f3 + cc) << 2)));
        }
      }
    }
  }
  // (The block copy below repeats the one of axis 0 on purpose: an @inline helper for both measured
  // 25% slower on 512 × 512 gathers.)
  for (; s < k; s++) {
    const f0 = <usize>(hasIndex != 0 ? i32at(index, s) : s) * stride;
    const g0 = hasMinus != 0 ? <usize>i32at(minus, s) * stride : 0;
    let to = <usize>col + <usize>s * <usize>block;
    for (let c = 0; c < d1; c++, to += <usize>ld) {
      const f = f0 + <usize>c * <usize>block;
      if (hasMinus != 0) {
        const g = g0 + <usize>c * <usize>block;
        for (let e = 0; e < block; e++) {
          store<f32>(dst + ((to + <usize>e) << 2), load<f32>(src + ((f + <usize>e) << 2)) - load<f32>(src + ((g + <usize>e) << 2)));
        }
      } else if (block == 1) {
        store<i32>(dst + (to << 2), load<i32>(src + (f << 2)));
      } else {
        memory.copy(dst + (to << 2), src + (f << 2), <usize>block << 2);
      }
    }
  }
}

// Σ a[af + j] · b[bf + q(j)] for j < len in float64 with four partial sums (j mod 4), added up as
// s0 + s1 + (s2 + s3): tensor.ts's gatheredRowDot, the same operations in the same order.
function rowDot(a: usize, af: i32, b: usize, bf: i32, q: usize, hasQ: i32, len: i32): f64 {
  const full = len - (len % 4);
  let j = 0;
  let s0: f64 = 0;
  let s1: f64 = 0;
  let s2: f64 = 0;
  let s3: f64 = 0;
  if (hasQ != 0) {
    for (; j < full; j += 4) {
      s0 += <f64>f32at(a, af + j) * <f64>f32at(b, bf + i32at(q, j));
      s1 += <f64>f32at(a, af + j + 1) * <f64>f32at(b, bf + i32at(q, j + 1));
      s2 += <f64>f32at(a, af + j + 2) * <f64>f32at(b, bf + i32at(q, j + 2));
      s3 += <f64>f32at(a, af + j + 3) * <f64>f32at(b, bf + i32at(q, j + 3));
    }
  } else {
    // (s0, s1) and (s2, s3) as two float64 pairs: four float32 values promoted, multiplied, added per step.
    let lo = f64x2.splat(0);
    let hi = f64x2.splat(0);
    const pa = a + (<usize>af << 2);
    const pb = b + (<usize>bf << 2);
    for (; j < full; j += 4) {
      const x = v128.load(pa + (<usize>j << 2));
      const y = v128.load(pb + (<usize>j << 2));
      lo = f64x2.add(lo, f64x2.mul(f64x2.promote_low_f32x4(x), f64x2.promote_low_f32x4(y)));
      const xh = i8x16.shuffle(x, x, 8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15);
      const yh = i8x16.shuffle(y, y, 8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15);
      hi = f64x2.add(hi, f64x2.mul(f64x2.promote_low_f32x4(xh), f64x2.promote_low_f32x4(yh)));
    }
    s0 = f64x2.extract_lane(lo, 0);
    s1 = f64x2.extract_lane(lo, 1);
    s2 = f64x2.extract_lane(hi, 0);
    s3 = f64x2.extract_lane(hi, 1);
  }
  for (; j < len; j++) s0 += <f64>f32at(a, af + j) * <f64>f32at(b, bf + (hasQ != 0 ? i32at(q, j) : j));
  return s0 + s1 + (s2 + s3);
}

// gatheredDot of tensor.ts for a vector (vector = 1: rowDot of the whole, cols long, no row index) or a
// matrix (a sum from 0 over rows i of rowDot(row i of a, row r(i) of b gathered by c)).
export function gatheredDot(
  a: usize, b: usize, rows: i32, cols: i32, vector: i32,
  rowIndex: usize, hasRow: i32, colIndex: usize, hasCol: i32,
): f64 {
  if (vector != 0) return rowDot(a, 0, b, 0, colIndex, hasCol, cols);
  let s: f64 = 0;
  for (let i = 0; i < rows; i++) {
    s += rowDot(a, i * cols, b, (hasRow != 0 ? i32at(rowIndex, i) : i) * cols, colIndex, hasCol, cols);
  }
  return s;
}
