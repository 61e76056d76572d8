/**
 * Weight matching's layout kernels (tensor.ts's LayoutKernels) run by the WebAssembly module's
 * asm/layout.ts, for tensors and destinations inside a leased solver's float area (lap-wasm.ts): the same
 * values bit for bit (tested), without the warm-up JavaScript pays on a process's first calls. Anything
 * else (arrays elsewhere, layouts other than a tensor's two leading axes, more indices than the staging
 * area holds, a lease that ended) goes to tensor.ts's kernels, so callers need not care which ran.
 */
import { jsLayoutKernels, type LayoutKernels, type Tensor } from '../tensor.js';

/** The module's exports these kernels call (asm/layout.ts). */
export interface LayoutExports {
  readonly layoutTaken: (
    src: number, d0: number, d1: number, block: number, axis: number,
    index: number, hasIndex: number, k: number, minus: number, hasMinus: number,
    dst: number, ld: number, col: number,
  ) => void;
  readonly gatheredDot: (a: number, b: number, rows: number, cols: number, vector: number, rowIndex: number, hasRow: number, colIndex: number, hasCol: number) => number;
}

/** Where the kernels may work: byte offsets and lengths (in elements) of the float and index areas. */
export interface KernelArea {
  readonly buffer: ArrayBuffer;
  readonly floats: { readonly at: number; readonly count: number };
  readonly indices: { readonly at: number; readonly count: number };
  /** False once the lease ended: everything then goes to JavaScript. */
  readonly live: () => boolean;
}

/** The kernels, and how many calls ran in the module and how many in JavaScript (for tests and benchmarks). */
export function wasmLayoutKernels(wasm: LayoutExports, area: KernelArea): { kernels: LayoutKernels; runs: { wasm: number; javascript: number } } {
  const { buffer } = area;
  const floatEnd = area.floats.at + area.floats.count * 4;
  const inside = (x: Float32Array) => area.live() && x.buffer === buffer && x.byteOffset >= area.floats.at && x.byteOffset + x.byteLength <= floatEnd;
  /** Stages index arrays (null: none) back to back in the index area; their offsets, or null when they do not fit. */
  const stage = (...arrays: (Int32Array | null)[]): number[] | null => {
    let length = 0;
    for (const x of arrays) length += x?.length ?? 0;
    if (length > area.indices.count) return null;
    let at = area.indices.at;
    return arrays.map((x) => {
      if (x === null) return 0;
      new Int32Array(buffer, at, x.length).set(x);
      at += x.length * 4;
      return at - x.length * 4;
    });
  };
  /** d0 × d1 × block of a tensor of rank ≥ 1 (a vector is d0 × 1 × 1). */
  const view = (t: Tensor): [number, number, number] => {
    const [d0, d1 = 1] = t.shape;
    let block = 1;
    for (let d = 2; d < t.shape.length; d++) block *= t.shape[d];
    return [d0, d1, block];
  };
  const runs = { wasm: 0, javascript: 0 };
  const taken = (
    t: Tensor, axis: number, index: Int32Array | null, k: number, minus: Int32Array | null, dst: Float32Array, ld: number, col: number,
  ): boolean => {
    if (!inside(t.data) || !inside(dst)) return false;
    const [d0, d1, block] = view(t);
    const rows = axis === 0 ? d0 : d1;
    // Every write must land inside dst (the kernels trust their arguments).
    if (rows > 0 && (rows - 1) * ld + col + k * block > dst.length) return false;
    const at = stage(index, minus);
    if (at === null) return false;
    wasm.layoutTaken(t.data.byteOffset, d0, d1, block, axis, at[0], index ? 1 : 0, k, at[1], minus ? 1 : 0, dst.byteOffset, ld, col);
    runs.wasm++;
    return true;
  };
  const kernels: LayoutKernels = {
    writeAxisFirst(t, axis, dst, ld, col) {
      const rank = t.shape.length;
      if (axis <= 1 && axis < rank && taken(t, axis, null, axis === 0 ? (rank === 1 ? 1 : t.shape[1]) : t.shape[0], null, dst, ld, col)) return;
      runs.javascript++;
      jsLayoutKernels.writeAxisFirst(t, axis, dst, ld, col);
    },
    writeGatheredAxisFirst(t, axis, index, dst, ld, col) {
      const rank = t.shape.length;
      const other = 1 - axis;
      const q = rank >= 2 ? index[other] ?? null : null;
      const simple = axis <= 1 && axis < rank && index.every((x, d) => x === null || d === axis || d === other);
      if (simple && taken(t, axis, q, axis === 0 ? (rank === 1 ? 1 : t.shape[1]) : t.shape[0], null, dst, ld, col)) return;
      runs.javascript++;
      jsLayoutKernels.writeGatheredAxisFirst(t, axis, index, dst, ld, col);
    },
    writeTakenAxisFirst(t, axis, other, index, minus, dst, ld, col) {
      const simple = t.shape.length >= 2 && axis + other === 1 && axis !== other && (minus === null || minus.length === index.length);
      if (simple && taken(t, axis, index, index.length, minus, dst, ld, col)) return;
      runs.javascript++;
      jsLayoutKernels.writeTakenAxisFirst(t, axis, other, index, minus, dst, ld, col);
    },
    gatheredDot(a, b, index) {
      const rank = b.shape.length;
      if (rank >= 1 && rank <= 2 && inside(a.data) && inside(b.data) && a.data.length === b.data.length) {
        const rows = rank === 1 ? 1 : b.shape[0];
        const cols = rank === 1 ? b.shape[0] : b.shape[1];
        const r = rank === 2 ? index[0] ?? null : null;
        const c = (rank === 1 ? index[0] : index[1]) ?? null;
        const at = stage(r, c);
        if (at !== null) {
          runs.wasm++;
          return wasm.gatheredDot(a.data.byteOffset, b.data.byteOffset, rows, cols, rank === 1 ? 1 : 0, at[0], r ? 1 : 0, at[1], c ? 1 : 0);
        }
      }
      runs.javascript++;
      return jsLayoutKernels.gatheredDot(a, b, index);
    },
  };
  return { kernels, runs };
}
