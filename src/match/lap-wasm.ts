/**
 * The square assignment solver, compiled to WebAssembly from asm/lap.ts: the production solver of every
 * square problem lap.ts hands it (cold of 16 and more, or warm-started). Its JavaScript twin,
 * test/helpers/lap-oracle.ts, is the test oracle: same algorithm, same float64 arithmetic, same answer bit
 * for bit (tested, ties included). WebAssembly is compiled before it first runs, so it skips the warm-up
 * JavaScript pays on the first solves of a process; its scans use 128-bit SIMD (two float64 columns per
 * step). Where WebAssembly or its SIMD is missing, lap.ts solves in JavaScript (its rectangular path).
 *
 * Each instance has its own memory, never shared by two callers at once: a solve of a matrix from outside
 * borrows the spare instance for the length of the (synchronous) call and copies the matrix in; a caller
 * that builds its matrices in the solver's memory (weight matching: no copy per solve, 8·n² bytes less at
 * the peak) leases an instance for as long as it needs them (leaseSolver); the same module also carries
 * the float64 += float32 update of a kept matrix. Browser-safe: the module ships as base64 text, compiled
 * synchronously.
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
  readonly addFloat32: (dst: number, src: number, len: number) => void;
}

let compiled: object | null | undefined;

/** A fresh instance (its own memory) of the compiled module, or null where WebAssembly is not available. */
function instantiate(): Instance | null {
  if (compiled === undefined) {
    try {
      compiled = new WebAssembly.Module(decodeBase64(LAP_WASM_BASE64));
    } catch {
      // No WebAssembly here (or no SIMD, or it is switched off): lap.ts solves in JavaScript.
      compiled = null;
    }
  }
  if (compiled === null) return null;
  const exports = new WebAssembly.Instance(compiled, {}).exports;
  return {
    memory: exports.memory as WasmMemory,
    solve: exports.solve as Solve,
    addFloat32: exports.addFloat32 as Instance['addFloat32'],
  };
}

/** The bytes of base64 text (atob, then a plain loop: cheaper than a callback per character). */
function decodeBase64(text: string): Uint8Array {
  const chars = atob(text);
  const bytes = new Uint8Array(chars.length);
  for (let i = 0; i < chars.length; i++) bytes[i] = chars.charCodeAt(i);
  return bytes;
}

/**
 * Byte offsets of the solver's work arrays for an n × n problem, from 0; `end` is rounded up to 16 so a
 * matrix can follow.
 */
function layout(n: number) {
  const f64 = n * 8;
  const i32 = n * 4;
  const u = 0;
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
  const end = Math.ceil((queue + 6 * i32) / 16) * 16;
  return { f64, i32, u, v, dist, settledDist, col4row, row4col, pred, settledCols, scannedRows, argmin, given, queue, end };
}

/**
 * Grows the instance's memory to at least `bytes`; returns its (new) buffer, or null when it cannot: past
 * WebAssembly's 4 GiB (a matrix over ~23 000 wide, or kept matrices of very wide models) or out of memory.
 * Callers then keep their numbers in JavaScript and solve there.
 */
function reserve(wasm: Instance, bytes: number): ArrayBuffer | null {
  const memory = wasm.memory;
  if (bytes > MAX_BYTES) return null;
  try {
    if (memory.buffer.byteLength < bytes) memory.grow(Math.ceil((bytes - memory.buffer.byteLength) / 65536));
  } catch {
    return null;
  }
  return memory.buffer;
}
const MAX_BYTES = 2 ** 32 - 65536;

/**
 * An instance for solves of matrices copied in, kept between calls while its memory stays small (a
 * WebAssembly memory never shrinks: a large one is dropped instead, and the next solve makes a new one).
 */
let spare: Instance | null = null;
const KEEP_BYTES = 64 << 20;

function takeSpare(): Instance | null {
  const wasm = spare ?? instantiate();
  spare = null;
  return wasm;
}

function giveBack(wasm: Instance, keep: boolean): void {
  if (keep && spare === null && wasm.memory.buffer.byteLength <= KEEP_BYTES) spare = wasm;
}

/** Leased instances by the memory their matrices live in: a solve of such a matrix runs there, in place. */
const leased = new Map<ArrayBuffer, { wasm: Instance; workN: number }>();

/** How many leases are live (not yet released): for tests and diagnostics. */
export function liveLeases(): number {
  return leased.size;
}

/**
 * A solver instance of one's own: float64 matrices in its memory, which a solve reads in place (no copy
 * in: 8·n² bytes and a pass less per solve). Its memory is sized once, when leased, for every matrix asked
 * for, so the views `matrix` hands out stay valid until `release`; concurrent callers (two matchings
 * interleaving their awaits) each lease their own, so nothing they keep there is overwritten by the other.
 */
export interface SolverLease {
  /**
   * An n·n float64 matrix in the solver's memory, not cleared (a reused instance's memory holds earlier
   * numbers: write it before reading it); null when the reservation is used up.
   */
  matrix(n: number): Float64Array | null;
  /**
   * into[k] += delta[k] for a matrix from `matrix` (float64 += float32, the same sums as a JavaScript loop),
   * with delta staged in the solver's memory (leases made with `updates`; else a JavaScript loop): a
   * low-rank update of a kept cost matrix.
   */
  addInto(into: Float64Array, delta: Float32Array): void;
  /** Ends the lease: the matrices must not be used after. `keep: false` lets the memory go at once. */
  release(options?: { keep?: boolean }): void;
}

/** What a lease reserves besides the work arrays: matrices (n each, n·n float64). */
export interface LeaseSizes {
  readonly matrices: readonly number[];
  /** The largest problem to be solved (n × n). */
  readonly largest: number;
  /** Room to stage a float32 update of the largest matrix for addInto (4·largest² bytes); default false. */
  readonly updates?: boolean;
}

const align16 = (bytes: number) => Math.ceil(bytes / 16) * 16;

/** Leases an instance sized for `sizes`. Null where WebAssembly is not available or cannot hold that much. */
export function leaseSolver(sizes: LeaseSizes): SolverLease | null {
  const wasm = takeSpare();
  if (wasm === null) return null;
  const { largest } = sizes;
  // Work arrays, then room to stage a float32 update of the largest matrix, then the matrices.
  const staging = layout(largest).end;
  const stagingFloats = sizes.updates === true ? largest * largest : 0;
  const matrixAt = staging + align16(stagingFloats * 4);
  let total = matrixAt;
  for (const n of sizes.matrices) total += n * n * 8;
  const buffer = reserve(wasm, total);
  if (buffer === null) {
    giveBack(wasm, true);
    return null;
  }
  leased.set(buffer, { wasm, workN: largest });
  let next = matrixAt;
  let live = true;
  return {
    addInto(into: Float64Array, delta: Float32Array): void {
      if (!live || into.buffer !== buffer || delta.length !== into.length || delta.length > stagingFloats) {
        for (let k = 0; k < into.length; k++) into[k] += delta[k];
        return;
      }
      new Float32Array(buffer, staging, delta.length).set(delta);
      wasm.addFloat32(into.byteOffset, staging, into.length);
    },
    matrix(n: number): Float64Array | null {
      if (!live || next + n * n * 8 > total) return null;
      const view = new Float64Array(buffer, next, n * n);
      next += n * n * 8;
      return view;
    },
    release(options: { keep?: boolean } = {}): void {
      if (!live) return;
      live = false;
      leased.delete(buffer);
      giveBack(wasm, options.keep !== false);
    },
  };
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
 * for a NaN or −Infinity entry in sign · cost, 'overflow' where reduced costs overflowed to infinity
 * (entries near ±1e308: the JavaScript twin reports such a problem infeasible), or null where WebAssembly
 * is not available, the problem does not fit in its memory, or the matrix holds +Infinity (forbidden
 * pairs): the caller then solves in JavaScript.
 */
export function solveSquareWasm(
  cost: Float64Array | Float32Array,
  n: number,
  sign: number,
  warm: { colPotential: Float64Array; rowToCol?: Int32Array } | undefined,
): SquareSolution | 'reject' | 'overflow' | null {
  const lease = cost instanceof Float64Array ? leased.get(cost.buffer as ArrayBuffer) : undefined;
  if (lease !== undefined && lease.workN >= n && cost.length === n * n) {
    return solveIn(lease.wasm, cost.byteOffset, n, sign, warm);
  }
  const wasm = takeSpare();
  if (wasm === null) return null;
  try {
    const c = layout(n).end;
    const buffer = reserve(wasm, c + n * n * 8);
    if (buffer === null) return null;
    new Float64Array(buffer, c, n * n).set(cost);
    return solveIn(wasm, c, n, sign, warm);
  } finally {
    giveBack(wasm, true);
  }
}

/** Solves the matrix at byte offset c of the instance's memory, with the work arrays at 0. */
function solveIn(
  wasm: Instance,
  c: number,
  n: number,
  sign: number,
  warm: { colPotential: Float64Array; rowToCol?: Int32Array } | undefined,
): SquareSolution | 'reject' | 'overflow' | null {
  const { f64, i32, u, v, dist, settledDist, col4row, row4col, pred, settledCols, scannedRows, argmin, given, queue } = layout(n);
  const buffer = wasm.memory.buffer;
  if (warm !== undefined) {
    new Float64Array(buffer, v, n).set(warm.colPotential);
    const g = new Int32Array(buffer, given, n);
    if (warm.rowToCol !== undefined) g.set(warm.rowToCol);
    else g.fill(-1);
  }
  const code = wasm.solve(n, sign, warm === undefined ? 0 : 1, c, u, v, col4row, row4col, dist, pred, settledCols, settledDist, scannedRows, argmin, given, queue);
  if (code === 2) return 'reject';
  if (code === 4) return 'overflow';
  // 3: forbidden pairs, left to the JavaScript search.
  if (code !== 0) return null;
  return {
    rowToCol: new Int32Array(buffer.slice(col4row, col4row + i32)),
    colToRow: new Int32Array(buffer.slice(row4col, row4col + i32)),
    rowPotential: new Float64Array(buffer.slice(u, u + f64)),
    colPotential: new Float64Array(buffer.slice(v, v + f64)),
  };
}
