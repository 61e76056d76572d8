/**
 * Dense float32 tensors as plain data, and the few shape operations the algorithms need.
 * Everything here is pure: inputs are never written to.
 */

export interface Tensor {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

/** Named tensors of one model, e.g. a PyTorch state dict. */
export type Params = Readonly<Record<string, Tensor>>;

export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function tensor(shape: readonly number[], data?: Float32Array | readonly number[]): Tensor {
  const n = sizeOf(shape);
  const values = data === undefined ? new Float32Array(n) : Float32Array.from(data);
  if (values.length !== n) {
    throw new Error(`tensor: shape [${shape.join(', ')}] needs ${n} values, got ${values.length}`);
  }
  return { shape: [...shape], data: values };
}

export function shapeToString(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Sizes of the dimensions before `axis`, at `axis`, and after it (row-major). */
export function axisSplit(shape: readonly number[], axis: number): { outer: number; n: number; inner: number } {
  let outer = 1;
  let inner = 1;
  for (let i = 0; i < axis; i++) outer *= shape[i];
  for (let i = axis + 1; i < shape.length; i++) inner *= shape[i];
  return { outer, n: shape[axis], inner };
}

/**
 * `take(t, index, axis)`: result[..., i, ...] = t[..., index[i], ...] along `axis` (numpy's take,
 * torch's index_select); the result's `axis` is index.length long (a permutation keeps the shape, a
 * shorter index selects). `out`, when given, receives the result and must not alias `t`.
 */
export function take(t: Tensor, index: Int32Array, axis: number, out?: Float32Array): Tensor {
  const { outer, n, inner } = axisSplit(t.shape, axis);
  const k = index.length;
  const dst = out ?? new Float32Array(outer * k * inner);
  // Bit patterns, as in the layout kernels below: an exact copy of every value, NaN payloads included.
  const src = bitsOf(t.data);
  const bits = bitsOf(dst);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < k; i++) copyRun(src, (o * n + index[i]) * inner, bits, (o * k + i) * inner, inner);
  }
  if (k === n) return { shape: t.shape, data: dst };
  const shape = [...t.shape];
  shape[axis] = k;
  return { shape, data: dst };
}

/**
 * The `axis`-first matrix view of `t`: an n × (size/n) row-major matrix whose row i holds every
 * element with index i on `axis` (numpy's `moveaxis(t, axis, 0).reshape(n, -1)`).
 * For axis 0 this is the data itself, without a copy.
 */
export function axisFirstMatrix(t: Tensor, axis: number, out?: Float32Array): { rows: number; cols: number; data: Float32Array } {
  const { outer, n, inner } = axisSplit(t.shape, axis);
  const cols = outer * inner;
  if (axis === 0) return { rows: n, cols, data: t.data };
  const dst = out ?? new Float32Array(t.data.length);
  writeAxisFirst(t, axis, dst, cols, 0);
  return { rows: n, cols, data: dst };
}

/**
 * Writes the axis-first view of `t` (see axisFirstMatrix) into the row-major matrix `dst` whose rows are
 * `ld` wide, starting at column `col`: so several tensors' views can sit side by side in one matrix.
 */
export function writeAxisFirst(t: Tensor, axis: number, dst: Float32Array, ld: number, col: number): void {
  // As outer × n blocks of `inner` values, row i of the view is the blocks (o, i) for o = 0, 1, ...: a
  // transpose of the blocks (a plain transpose when `inner` is 1, row copies when `outer` is 1).
  const { outer, n, inner } = axisSplit(t.shape, axis);
  transposeBlocks(bitsOf(t.data), outer, n, inner, null, bitsOf(dst), ld, col);
}

/**
 * writeAxisFirst of `t` after gathering its other axes: `index[d]` (or null for none) is applied to axis d
 * as by take(), and `index[axis]` is ignored. Matrices and conv-shaped tensors are gathered and laid out in
 * one pass, without the intermediate copies take() would make; other layouts take that route.
 */
export function writeGatheredAxisFirst(
  t: Tensor,
  axis: number,
  index: readonly (Int32Array | null)[],
  dst: Float32Array,
  ld: number,
  col: number,
): void {
  // Matrices, and tensors whose permuted axes are among the first two (conv weights O×I×kH×kW): view them
  // as d0 × d1 × block and gather the two leading axes while copying whole blocks.
  const rank = t.shape.length;
  if (rank >= 2 && axis <= 1 && index.slice(2).every((q) => q === null)) {
    const [d0, d1] = t.shape;
    let block = 1;
    for (let d = 2; d < rank; d++) block *= t.shape[d];
    if (axis === 0) gatherBlocks(bitsOf(t.data), d0, d1, block, index[1] ?? null, bitsOf(dst), ld, col);
    else transposeBlocks(bitsOf(t.data), d0, d1, block, index[0] ?? null, bitsOf(dst), ld, col);
    return;
  }
  let gathered = t;
  index.forEach((q, d) => {
    if (q && d !== axis) gathered = take(gathered, q, d);
  });
  writeAxisFirst(gathered, axis, dst, ld, col);
}

/**
 * Writes the axis-first view (see writeAxisFirst) of take(t, index, other), or of
 * take(t, index, other) − take(t, minus, other) (in float32) when `minus` is given, into `dst` (rows `ld`
 * wide, from column `col`): a few of `t`'s units along `other`, or the difference of two such selections,
 * as the operands of a low-rank update of a cost matrix (cost-cache.ts). Tensors whose two axes are their
 * first two (matrices, conv weights O×I×kH×kW) are done in one pass without intermediate copies; other
 * layouts go through take().
 */
export function writeTakenAxisFirst(
  t: Tensor,
  axis: number,
  other: number,
  index: Int32Array,
  minus: Int32Array | null,
  dst: Float32Array,
  ld: number,
  col: number,
): void {
  if (minus !== null && minus.length !== index.length) throw new Error(`writeTakenAxisFirst: ${minus.length} indices to subtract for ${index.length}`);
  const rank = t.shape.length;
  if (rank >= 2 && axis + other === 1 && axis !== other) {
    const [d0, d1] = t.shape;
    let block = 1;
    for (let d = 2; d < rank; d++) block *= t.shape[d];
    if (axis === 0) takeColumnBlocks(t.data, d0, d1, block, index, minus, dst, ld, col);
    else takeRowBlocksTransposed(t.data, d1, block, index, minus, dst, ld, col);
    return;
  }
  const taken = take(t, index, other);
  if (minus !== null) {
    const less = take(t, minus, other).data;
    const data = taken.data;
    for (let i = 0; i < data.length; i++) data[i] -= less[i];
  }
  writeAxisFirst(taken, axis, dst, ld, col);
}

/**
 * dst[r·ld + col + s·block + e] = src[(r·cols + index[s])·block + e] (− the same at minus[s]) for r < rows,
 * s < index.length, e < block: columns of a rows × cols matrix of blocks, selected row by row.
 */
function takeColumnBlocks(
  src: Float32Array,
  rows: number,
  cols: number,
  block: number,
  index: Int32Array,
  minus: Int32Array | null,
  dst: Float32Array,
  ld: number,
  col: number,
): void {
  const k = index.length;
  // Plain copies move bit patterns (see the note on the layout kernels below); differences are float32.
  const sb = bitsOf(src);
  const db = bitsOf(dst);
  for (let r = 0; r < rows; r++) {
    const from = r * cols * block;
    let to = r * ld + col;
    if (block === 1) {
      if (minus) for (let s = 0; s < k; s++) dst[to + s] = src[from + index[s]] - src[from + minus[s]];
      else for (let s = 0; s < k; s++) db[to + s] = sb[from + index[s]];
      continue;
    }
    for (let s = 0; s < k; s++, to += block) {
      const f = from + index[s] * block;
      if (minus) {
        const g = from + minus[s] * block;
        for (let e = 0; e < block; e++) dst[to + e] = src[f + e] - src[g + e];
      } else {
        for (let e = 0; e < block; e++) db[to + e] = sb[f + e];
      }
    }
  }
}

/**
 * dst[c·ld + col + s·block + e] = src[(index[s]·cols + c)·block + e] (− the same at minus[s]) for
 * c < cols, s < index.length, e < block: rows of a matrix of blocks, selected and transposed. Four
 * selected rows at a time, so each destination row receives four blocks side by side per visit.
 */
function takeRowBlocksTransposed(
  src: Float32Array,
  cols: number,
  block: number,
  index: Int32Array,
  minus: Int32Array | null,
  dst: Float32Array,
  ld: number,
  col: number,
): void {
  const k = index.length;
  const stride = cols * block;
  const full = k - (k % 4);
  const sb = bitsOf(src);
  const db = bitsOf(dst);
  let s = 0;
  if (block === 1) {
    for (; s < full; s += 4) {
      const f0 = index[s] * stride;
      const f1 = index[s + 1] * stride;
      const f2 = index[s + 2] * stride;
      const f3 = index[s + 3] * stride;
      let to = col + s;
      if (minus) {
        const g0 = minus[s] * stride;
        const g1 = minus[s + 1] * stride;
        const g2 = minus[s + 2] * stride;
        const g3 = minus[s + 3] * stride;
        for (let c = 0; c < cols; c++, to += ld) {
          dst[to] = src[f0 + c] - src[g0 + c];
          dst[to + 1] = src[f1 + c] - src[g1 + c];
          dst[to + 2] = src[f2 + c] - src[g2 + c];
          dst[to + 3] = src[f3 + c] - src[g3 + c];
        }
      } else {
        for (let c = 0; c < cols; c++, to += ld) {
          db[to] = sb[f0 + c];
          db[to + 1] = sb[f1 + c];
          db[to + 2] = sb[f2 + c];
          db[to + 3] = sb[f3 + c];
        }
      }
    }
  }
  for (; s < k; s++) {
    const f0 = index[s] * stride;
    const g0 = minus ? minus[s] * stride : 0;
    let to = col + s * block;
    for (let c = 0; c < cols; c++, to += ld) {
      const f = f0 + c * block;
      if (minus) {
        const g = g0 + c * block;
        for (let e = 0; e < block; e++) dst[to + e] = src[f + e] - src[g + e];
      } else {
        for (let e = 0; e < block; e++) db[to + e] = sb[f + e];
      }
    }
  }
}

/*
 * The layout kernels below move float32 values as their int32 bit patterns: a pure copy then keeps every
 * bit (NaN payloads included), which a float load/store does not promise (V8's interpreter quiets
 * signalling NaNs, its optimised code does not), and it costs the same.
 *
 * Their speed comes from two measured things (bench/layout.ts): loops unrolled 8 (or 4) ways, since V8
 * neither unrolls nor vectorises and a one-element loop spends most of its time on loop overhead; and
 * touching memory in runs, so that a transpose's strided side stays within 8 cache lines at a time (an
 * 8-row band: 8 source rows read in step, 8 contiguous values written per destination row).
 * Square tiles (8×8 to 64×64, with a one-element inner loop) gained 1.2–1.7× over the plain loops at their
 * best size, which moved with the shape; the unrolled 8-row band gains 2–4× (8–11× where ld is a power of
 * two, which made the plain loop's strided writes collide in cache sets). A 16-row band was a little
 * faster on narrow sources and much slower on 2048-wide ones (16 read streams 8 KiB apart share cache
 * sets); tiling the band's columns as well gained nothing up to 2048 columns.
 */

/** A bit-for-bit int32 view of a float32 array's elements (no copy). */
function bitsOf(a: Float32Array): Int32Array {
  return new Int32Array(a.buffer, a.byteOffset, a.length);
}

/** Above this block length a block is copied with TypedArray.set (a memcpy) rather than element by element. */
const LONG_RUN = 48;

/** gatherBlocks stages source rows of block-1 gathers for sources of at least this many values (16 MiB). */
const STAGE_ABOVE = 1 << 22;

/**
 * dst[c·ld + col + r·block + e] = src[(row(r)·cols + c)·block + e] for r < rows, c < cols, e < block, where
 * row(r) = rowIndex[r] (or r when null): src seen as a rows × cols matrix of `block`-long blocks, its rows
 * gathered, transposed into dst.
 */
function transposeBlocks(
  src: Int32Array,
  rows: number,
  cols: number,
  block: number,
  rowIndex: Int32Array | null,
  dst: Int32Array,
  ld: number,
  col: number,
): void {
  if (block === 1) transposeBand8(src, rows, cols, rowIndex, dst, ld, col);
  else if (block < LONG_RUN) transposeBlocksBand8(src, rows, cols, block, rowIndex, dst, ld, col);
  else {
    // Long blocks: each is a memcpy already, and the order of the copies hardly matters.
    for (let r = 0; r < rows; r++) {
      const from = (rowIndex ? rowIndex[r] : r) * cols * block;
      for (let c = 0; c < cols; c++) copyRun(src, from + c * block, dst, c * ld + col + r * block, block);
    }
  }
}

/** transposeBlocks for block 1: a plain (row-gathered) transpose, 8 source rows at a time. */
function transposeBand8(
  src: Int32Array,
  rows: number,
  cols: number,
  q: Int32Array | null,
  dst: Int32Array,
  ld: number,
  col: number,
): void {
  const full = rows - (rows % 8);
  for (let r = 0; r < full; r += 8) {
    const s0 = (q ? q[r] : r) * cols;
    const s1 = (q ? q[r + 1] : r + 1) * cols;
    const s2 = (q ? q[r + 2] : r + 2) * cols;
    const s3 = (q ? q[r + 3] : r + 3) * cols;
    const s4 = (q ? q[r + 4] : r + 4) * cols;
    const s5 = (q ? q[r + 5] : r + 5) * cols;
    const s6 = (q ? q[r + 6] : r + 6) * cols;
    const s7 = (q ? q[r + 7] : r + 7) * cols;
    let to = col + r;
    for (let c = 0; c < cols; c++, to += ld) {
      dst[to] = src[s0 + c];
      dst[to + 1] = src[s1 + c];
      dst[to + 2] = src[s2 + c];
      dst[to + 3] = src[s3 + c];
      dst[to + 4] = src[s4 + c];
      dst[to + 5] = src[s5 + c];
      dst[to + 6] = src[s6 + c];
      dst[to + 7] = src[s7 + c];
    }
  }
  // The last rows % 8 source rows, one at a time.
  for (let r = full; r < rows; r++) {
    const from = (q ? q[r] : r) * cols;
    let to = col + r;
    for (let c = 0; c < cols; c++, to += ld) dst[to] = src[from + c];
  }
}

/** transposeBlocks for short blocks (2 ≤ block < LONG_RUN, e.g. a 3×3 kernel's 9): 8 source rows at a time. */
function transposeBlocksBand8(
  src: Int32Array,
  rows: number,
  cols: number,
  block: number,
  q: Int32Array | null,
  dst: Int32Array,
  ld: number,
  col: number,
): void {
  const stride = cols * block;
  const b2 = 2 * block;
  const b3 = 3 * block;
  const b4 = 4 * block;
  const b5 = 5 * block;
  const b6 = 6 * block;
  const b7 = 7 * block;
  const full = rows - (rows % 8);
  for (let r = 0; r < full; r += 8) {
    const s0 = (q ? q[r] : r) * stride;
    const s1 = (q ? q[r + 1] : r + 1) * stride;
    const s2 = (q ? q[r + 2] : r + 2) * stride;
    const s3 = (q ? q[r + 3] : r + 3) * stride;
    const s4 = (q ? q[r + 4] : r + 4) * stride;
    const s5 = (q ? q[r + 5] : r + 5) * stride;
    const s6 = (q ? q[r + 6] : r + 6) * stride;
    const s7 = (q ? q[r + 7] : r + 7) * stride;
    let to = col + r * block;
    for (let cb = 0; cb < stride; cb += block, to += ld) {
      // Destination row c gets the 8 rows' blocks c side by side: element e of each, in step.
      for (let e = 0; e < block; e++) {
        const t = to + e;
        const f = cb + e;
        dst[t] = src[s0 + f];
        dst[t + block] = src[s1 + f];
        dst[t + b2] = src[s2 + f];
        dst[t + b3] = src[s3 + f];
        dst[t + b4] = src[s4 + f];
        dst[t + b5] = src[s5 + f];
        dst[t + b6] = src[s6 + f];
        dst[t + b7] = src[s7 + f];
      }
    }
  }
  for (let r = full; r < rows; r++) {
    const from = (q ? q[r] : r) * stride;
    let to = col + r * block;
    for (let cb = 0; cb < stride; cb += block, to += ld) {
      for (let e = 0; e < block; e++) dst[to + e] = src[from + cb + e];
    }
  }
}

/**
 * dst[r·ld + col + c·block + e] = src[(r·cols + col(c))·block + e] for r < rows, c < cols, e < block, where
 * col(c) = colIndex[c] (or c when null): src seen as a rows × cols matrix of `block`-long blocks, its
 * columns gathered, row by row into dst.
 */
function gatherBlocks(
  src: Int32Array,
  rows: number,
  cols: number,
  block: number,
  q: Int32Array | null,
  dst: Int32Array,
  ld: number,
  col: number,
): void {
  const width = cols * block;
  if (!q) {
    for (let r = 0; r < rows; r++) copyRun(src, r * width, dst, r * ld + col, width);
  } else if (block === 1) {
    // A source far larger than the caches is read row by row in a random order: staging each row with one
    // memcpy first makes those first touches sequential (2× on 2048 × 2048; a few % slower when the source
    // fits in cache, hence the threshold).
    const staged = rows * cols >= STAGE_ABOVE ? new Int32Array(cols) : null;
    const full = cols - (cols % 8);
    for (let r = 0; r < rows; r++) {
      let row = src;
      let from = r * cols;
      if (staged) {
        staged.set(src.subarray(from, from + cols));
        row = staged;
        from = 0;
      }
      const to = r * ld + col;
      let c = 0;
      for (; c < full; c += 8) {
        const t = to + c;
        dst[t] = row[from + q[c]];
        dst[t + 1] = row[from + q[c + 1]];
        dst[t + 2] = row[from + q[c + 2]];
        dst[t + 3] = row[from + q[c + 3]];
        dst[t + 4] = row[from + q[c + 4]];
        dst[t + 5] = row[from + q[c + 5]];
        dst[t + 6] = row[from + q[c + 6]];
        dst[t + 7] = row[from + q[c + 7]];
      }
      for (; c < cols; c++) dst[to + c] = row[from + q[c]];
    }
  } else if (block < LONG_RUN) {
    // Short blocks: 4 rows at a time share each gathered column's offset and loop overhead.
    const l2 = 2 * ld;
    const l3 = 3 * ld;
    const w2 = 2 * width;
    const w3 = 3 * width;
    const full = rows - (rows % 4);
    for (let r = 0; r < full; r += 4) {
      const from = r * width;
      let to = r * ld + col;
      for (let c = 0; c < cols; c++, to += block) {
        const f0 = from + q[c] * block;
        for (let e = 0; e < block; e++) {
          const t = to + e;
          const f = f0 + e;
          dst[t] = src[f];
          dst[t + ld] = src[f + width];
          dst[t + l2] = src[f + w2];
          dst[t + l3] = src[f + w3];
        }
      }
    }
    for (let r = full; r < rows; r++) {
      const from = r * width;
      let to = r * ld + col;
      for (let c = 0; c < cols; c++, to += block) {
        const f = from + q[c] * block;
        for (let e = 0; e < block; e++) dst[to + e] = src[f + e];
      }
    }
  } else {
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < cols; c++) copyRun(src, (r * cols + q[c]) * block, dst, r * ld + col + c * block, block);
    }
  }
}

/** dst[to .. to+len) = src[from .. from+len): a loop for short runs, where a subarray would cost more. */
function copyRun(src: Int32Array, from: number, dst: Int32Array, to: number, len: number): void {
  if (len < LONG_RUN) {
    for (let k = 0; k < len; k++) dst[to + k] = src[from + k];
  } else {
    dst.set(src.subarray(from, from + len), to);
  }
}

/** True when a and b hold the same float32 bit patterns (so −0 ≠ +0 and equal NaN payloads match). */
export function sameBits(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const ua = bitsOf(a);
  const ub = bitsOf(b);
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) return false;
  return true;
}

/** (1 − α)·a + α·b, element by element. */
export function lerp(a: Tensor, b: Tensor, alpha: number): Tensor {
  if (!sameShape(a.shape, b.shape)) {
    throw new Error(`lerp: shapes ${shapeToString(a.shape)} and ${shapeToString(b.shape)} differ`);
  }
  const out = new Float32Array(a.data.length);
  const wa = 1 - alpha;
  for (let i = 0; i < out.length; i++) out[i] = wa * a.data[i] + alpha * b.data[i];
  return { shape: a.shape, data: out };
}

/** Σ a·b over all elements, accumulated in float64. */
export function dot(a: Float32Array, b: Float32Array): number {
  return gatheredRowDot(a, 0, b, 0, null, a.length);
}

/**
 * Σ a[af + j] · b[bf + (q ? q[j] : j)] for j < len, in float64 with four partial sums: one running sum
 * waits on each addition before the next (about 4 cycles each); four independent ones overlap.
 */
function gatheredRowDot(a: Float32Array, af: number, b: Float32Array, bf: number, q: Int32Array | null, len: number): number {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  const full = len - (len % 4);
  let j = 0;
  if (q) {
    for (; j < full; j += 4) {
      s0 += a[af + j] * b[bf + q[j]];
      s1 += a[af + j + 1] * b[bf + q[j + 1]];
      s2 += a[af + j + 2] * b[bf + q[j + 2]];
      s3 += a[af + j + 3] * b[bf + q[j + 3]];
    }
    for (; j < len; j++) s0 += a[af + j] * b[bf + q[j]];
  } else {
    for (; j < full; j += 4) {
      s0 += a[af + j] * b[bf + j];
      s1 += a[af + j + 1] * b[bf + j + 1];
      s2 += a[af + j + 2] * b[bf + j + 2];
      s3 += a[af + j + 3] * b[bf + j + 3];
    }
    for (; j < len; j++) s0 += a[af + j] * b[bf + j];
  }
  return s0 + s1 + (s2 + s3);
}

/**
 * ⟨a, b gathered⟩: Σ a·take(b) where `index[d]` (or null) gathers axis d of b, as by take(); in float64.
 * Vectors and matrices are summed in place without materialising the gathered tensor.
 */
export function gatheredDot(a: Tensor, b: Tensor, index: readonly (Int32Array | null)[]): number {
  if (b.shape.length === 1) return gatheredRowDot(a.data, 0, b.data, 0, index[0] ?? null, b.data.length);
  if (b.shape.length === 2) {
    const [rows, cols] = b.shape;
    const [r, c] = index;
    let s = 0;
    for (let i = 0; i < rows; i++) s += gatheredRowDot(a.data, i * cols, b.data, (r ? r[i] : i) * cols, c ?? null, cols);
    return s;
  }
  let g = b;
  index.forEach((q, d) => {
    if (q) g = take(g, q, d);
  });
  return dot(a.data, g.data);
}

export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (d > m || Number.isNaN(d)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}
