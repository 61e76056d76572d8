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
 * torch's index_select). `out`, when given, receives the result and must not alias `t`.
 */
export function take(t: Tensor, index: Int32Array, axis: number, out?: Float32Array): Tensor {
  const { outer, n, inner } = axisSplit(t.shape, axis);
  if (index.length !== n) {
    throw new Error(`take: index of length ${index.length} on axis ${axis} of size ${n}`);
  }
  const src = t.data;
  const dst = out ?? new Float32Array(src.length);
  for (let o = 0; o < outer; o++) {
    const base = o * n * inner;
    for (let i = 0; i < n; i++) copyRun(src, base + index[i] * inner, dst, base + i * inner, inner);
  }
  return { shape: t.shape, data: dst };
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
  const { outer, n, inner } = axisSplit(t.shape, axis);
  const src = t.data;
  if (inner === 1) {
    // A plain transpose (the last axis first): read rows of src, scatter down columns of dst.
    for (let o = 0; o < outer; o++) {
      const from = o * n;
      const to = col + o;
      for (let i = 0; i < n; i++) dst[i * ld + to] = src[from + i];
    }
    return;
  }
  // Row i is the concatenation over o of the inner-block src[o, i, :].
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < n; i++) copyRun(src, (o * n + i) * inner, dst, i * ld + col + o * inner, inner);
  }
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
  const src = t.data;
  // Matrices, and tensors whose permuted axes are among the first two (conv weights O×I×kH×kW): view them
  // as d0 × d1 × block and gather the two leading axes while copying whole blocks.
  const rank = t.shape.length;
  if (rank >= 2 && axis <= 1 && index.slice(2).every((q) => q === null)) {
    const [d0, d1] = t.shape;
    let block = 1;
    for (let d = 2; d < rank; d++) block *= t.shape[d];
    if (axis === 0) {
      const q = index[1];
      for (let i = 0; i < d0; i++) {
        const to = i * ld + col;
        for (let j = 0; j < d1; j++) copyRun(src, (i * d1 + (q ? q[j] : j)) * block, dst, to + j * block, block);
      }
    } else if (block === 1) {
      const q = index[0];
      for (let o = 0; o < d0; o++) {
        const from = (q ? q[o] : o) * d1;
        const to = col + o;
        for (let i = 0; i < d1; i++) dst[i * ld + to] = src[from + i];
      }
    } else {
      const q = index[0];
      for (let o = 0; o < d0; o++) {
        const from = (q ? q[o] : o) * d1;
        for (let i = 0; i < d1; i++) copyRun(src, (from + i) * block, dst, i * ld + col + o * block, block);
      }
    }
    return;
  }
  let gathered = t;
  index.forEach((q, d) => {
    if (q && d !== axis) gathered = take(gathered, q, d);
  });
  writeAxisFirst(gathered, axis, dst, ld, col);
}

/** dst[to .. to+len) = src[from .. from+len): a loop for short runs, where a subarray would cost more. */
function copyRun(src: Float32Array, from: number, dst: Float32Array, to: number, len: number): void {
  if (len < 48) {
    for (let k = 0; k < len; k++) dst[to + k] = src[from + k];
  } else {
    dst.set(src.subarray(from, from + len), to);
  }
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
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/**
 * ⟨a, b gathered⟩: Σ a·take(b) where `index[d]` (or null) gathers axis d of b, as by take(); in float64.
 * Vectors and matrices are summed in place without materialising the gathered tensor.
 */
export function gatheredDot(a: Tensor, b: Tensor, index: readonly (Int32Array | null)[]): number {
  if (b.shape.length === 1) {
    const q = index[0];
    if (!q) return dot(a.data, b.data);
    let s = 0;
    for (let i = 0; i < q.length; i++) s += a.data[i] * b.data[q[i]];
    return s;
  }
  if (b.shape.length === 2) {
    const [rows, cols] = b.shape;
    const [r, c] = index;
    let s = 0;
    for (let i = 0; i < rows; i++) {
      const ai = i * cols;
      const bi = (r ? r[i] : i) * cols;
      if (c) for (let j = 0; j < cols; j++) s += a.data[ai + j] * b.data[bi + c[j]];
      else for (let j = 0; j < cols; j++) s += a.data[ai + j] * b.data[bi + j];
    }
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
