/**
 * The square assignment solver compiled to WebAssembly (asm/lap.ts), behind the same contract as the
 * JavaScript one in lap.ts: same algorithm, same float64 arithmetic, same answer bit for bit (tested).
 * WebAssembly is compiled before it first runs, so it skips the warm-up JavaScript pays on the first
 * solves of a process, and its loops measured ~1.6× faster (BENCHMARKS.md).
 *
 * One instance per thread, its memory grown to the largest problem solved so far (8·n² bytes for the
 * matrix, a few n-long work arrays). Browser-safe: the module ships as base64 text, compiled synchronously
 * (it is a few kilobytes).
 */
import { LAP_WASM_BASE64 } from './lap-wasm-module.js';

// The few WebAssembly names used here (the project compiles against ES2022 and Node's types only).
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
declare const WebAssembly: {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { readonly exports: Record<string, unknown> };
};

type Solve = (
  n: number, sign: number, warm: number,
  c: number, u: number, v: number, col4row: number, row4col: number,
  dist: number, pred: number, settledCols: number, settledDist: number, scannedRows: number,
  argmin: number, given: number, queue: number,
) => number;

interface Instance {
  readonly memory: WasmMemory;
  readonly solve: Solve;
}

let instance: Instance | null | undefined;

function load(): Instance | null {
  if (instance !== undefined) return instance;
  try {
    const bytes = Uint8Array.from(atob(LAP_WASM_BASE64), (ch) => ch.charCodeAt(0));
    const exports = new WebAssembly.Instance(new WebAssembly.Module(bytes), {}).exports;
    instance = { memory: exports.memory as WasmMemory, solve: exports.solve as Solve };
  } catch {
    // No WebAssembly here (or it is switched off): lap.ts solves in JavaScript.
    instance = null;
  }
  return instance;
}

/** Byte offsets of the solver's arrays for an n × n problem; the matrix comes first, at 0. */
function layout(n: number) {
  const f64 = n * 8;
  const i32 = n * 4;
  const u = n * n * 8;
  const v = u + f64;
  const dist = v + f64;
  const settledDist = dist + f64;
  const col4row = settledDist + f64;
  const row4col = col4row + i32;
  const pred = row4col + i32;
  const settledCols = pred + i32;
  const scannedRows = settledCols + i32;
  const argmin = scannedRows + i32;
  const given = argmin + i32;
  const queue = given + i32;
  return { f64, i32, u, v, dist, settledDist, col4row, row4col, pred, settledCols, scannedRows, argmin, given, queue, end: queue + 6 * i32 };
}

/** The instance with its memory grown to hold an n × n problem. */
function ready(wasm: Instance, n: number): ArrayBuffer {
  const { end } = layout(n);
  const memory = wasm.memory;
  if (memory.buffer.byteLength < end) memory.grow(Math.ceil((end - memory.buffer.byteLength) / 65536));
  return memory.buffer;
}

/**
 * n·n float64 values in the solver's own memory: a cost matrix built there is solved without being copied
 * in (the copy would cost 8·n² bytes more at the peak). Valid until a larger problem grows the memory:
 * take a new one for every matrix. Null where WebAssembly is not available.
 */
export function squareWorkspace(n: number): Float64Array | null {
  const wasm = load();
  return wasm === null ? null : new Float64Array(ready(wasm, n), 0, n * n);
}

/**
 * Lets the solver's memory go (a WebAssembly memory never shrinks; this drops the instance, and the next
 * solve makes a new one): for callers that keep the peak low, once their large problems are done.
 */
export function releaseSolverMemory(): void {
  if (instance) instance = undefined;
}

export interface SquareSolution {
  readonly rowToCol: Int32Array;
  readonly colToRow: Int32Array;
  readonly rowPotential: Float64Array;
  readonly colPotential: Float64Array;
}

/**
 * Solves the square minimisation problem sign · cost (n × n), cold or warm-started from column potentials
 * and a matching (−1 for an unmatched row; it must use no column twice). Returns the solution, 'reject'
 * for a NaN or −Infinity entry in sign · cost, or null where WebAssembly is not available or the matrix
 * holds +Infinity (forbidden pairs): the caller then solves in JavaScript.
 */
export function solveSquareWasm(
  cost: Float64Array | Float32Array,
  n: number,
  sign: number,
  warm: { colPotential: Float64Array; rowToCol?: Int32Array } | undefined,
): SquareSolution | 'reject' | null {
  const wasm = load();
  if (wasm === null) return null;
  const { f64, i32, u, v, dist, settledDist, col4row, row4col, pred, settledCols, scannedRows, argmin, given, queue } = layout(n);
  const c = 0;
  const buffer = ready(wasm, n);
  // A matrix built in squareWorkspace is in place already.
  if (!(cost instanceof Float64Array && cost.buffer === buffer && cost.byteOffset === c)) new Float64Array(buffer, c, n * n).set(cost);
  if (warm !== undefined) {
    new Float64Array(buffer, v, n).set(warm.colPotential);
    const g = new Int32Array(buffer, given, n);
    if (warm.rowToCol !== undefined) g.set(warm.rowToCol);
    else g.fill(-1);
  }
  const code = wasm.solve(n, sign, warm === undefined ? 0 : 1, c, u, v, col4row, row4col, dist, pred, settledCols, settledDist, scannedRows, argmin, given, queue);
  if (code === 2) return 'reject';
  if (code === 3) return null;
  return {
    rowToCol: new Int32Array(buffer.slice(col4row, col4row + i32)),
    colToRow: new Int32Array(buffer.slice(row4col, row4col + i32)),
    rowPotential: new Float64Array(buffer.slice(u, u + f64)),
    colPotential: new Float64Array(buffer.slice(v, v + f64)),
  };
}
