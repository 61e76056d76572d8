/**
 * Matrix products for matching. Weight matching spends nearly all its time in products of the form
 * A·Bᵀ (both operands row-major, rows = units), so that is the one operation an engine provides.
 * The pure-TypeScript engine here runs anywhere (browser, no native binding); the ONNX Runtime engine
 * (ort-matmul.ts) is ~30× faster and is used by the Node entry points.
 */
export interface MatmulEngine {
  readonly name: string;
  /** C = A·Bᵀ for A (m×k) and B (n×k), row-major; returns C (m×n) row-major in float32, a new array the caller owns. */
  abt(a: Float32Array, m: number, b: Float32Array, n: number, k: number): Promise<Float32Array>;
  /**
   * A·Bᵀ with `row` (length n) added to every row of the result — a dense layer with its bias — where the
   * engine does that inside the product (ONNX Runtime's Gemm takes it as its C input, saving a pass over
   * the output in JS). Engines without it leave it out; callers then add the row themselves.
   */
  abtAddRow?(a: Float32Array, m: number, b: Float32Array, n: number, k: number, row: Float32Array): Promise<Float32Array>;
  /**
   * The outputs (batch × last layer's width) of dense layers applied in turn to x (batch × first layer's
   * inputs), with ReLU between them and none after the last: an MLP's forward pass, where the engine runs
   * the whole chain in one call (ONNX Runtime: one graph, so the activations stay in the runtime instead of
   * crossing into JS once per layer, and ReLU runs there too). Engines without it leave it out; callers
   * then go layer by layer.
   */
  denseChain?(layers: readonly DenseLayer[], x: Float32Array, batch: number): Promise<Float32Array>;
  /** Release native resources, if any. */
  dispose?(): Promise<void>;
}

/** One dense layer: y = x·Wᵀ + bias, W row-major `outputs` × `inputs` (PyTorch's Linear layout). */
export interface DenseLayer {
  readonly weight: Float32Array;
  readonly outputs: number;
  readonly inputs: number;
  readonly bias: Float32Array | null;
}

/** Pure TypeScript A·Bᵀ: row-by-row dot products (both operands read contiguously), 4 columns at a time. */
export const jsMatmul: MatmulEngine = {
  name: 'js',
  async abt(a, m, b, n, k) {
    return abtSync(a, m, b, n, k);
  },
};

export function abtSync(a: Float32Array, m: number, b: Float32Array, n: number, k: number): Float32Array {
  checkSizes(a, m, b, n, k);
  const c = new Float32Array(m * n);
  for (let i = 0; i < m; i++) {
    const ai = i * k;
    let j = 0;
    for (; j + 3 < n; j += 4) {
      const b0 = j * k;
      const b1 = b0 + k;
      const b2 = b1 + k;
      const b3 = b2 + k;
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      for (let t = 0; t < k; t++) {
        const x = a[ai + t];
        s0 += x * b[b0 + t];
        s1 += x * b[b1 + t];
        s2 += x * b[b2 + t];
        s3 += x * b[b3 + t];
      }
      c[i * n + j] = s0;
      c[i * n + j + 1] = s1;
      c[i * n + j + 2] = s2;
      c[i * n + j + 3] = s3;
    }
    for (; j < n; j++) {
      const bj = j * k;
      let s = 0;
      for (let t = 0; t < k; t++) s += a[ai + t] * b[bj + t];
      c[i * n + j] = s;
    }
  }
  return c;
}

export function checkSizes(a: Float32Array, m: number, b: Float32Array, n: number, k: number): void {
  if (a.length < m * k || b.length < n * k) {
    throw new Error(`abt: operands of length ${a.length} and ${b.length} are too short for ${m}×${k} and ${n}×${k}`);
  }
}

/** The transpose of a row-major rows × cols matrix. */
export function transpose(m: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let c = 0; c < cols; c++) t[c * rows + r] = m[base + c];
  }
  return t;
}
