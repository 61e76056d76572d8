/**
 * Micro-benchmark: the axis-first layout kernels of src/tensor.ts (writeAxisFirst, writeGatheredAxisFirst),
 * which weight matching calls for every tensor of every step, against the plain loops they replaced (kept
 * below, verbatim, as the baseline).
 *
 * Cases: the realistic shapes [512,784], [512,512], [10,512], [2048,2048], [2048,784] and conv
 * [256,128,3,3], [2048,512,1,1]; axis 0 and axis 1; writeAxisFirst, writeGatheredAxisFirst without gather
 * indices, and writeGatheredAxisFirst with a random permutation on the other permuted axis. The view is
 * laid side by side (ld = its width + 513, col = 17) as weight matching does, or alone (ld = width, col 0)
 * with --layout exact. Then the whole layout work of one step of weight matching on a 784-512-512-512-10
 * MLP pair, per permutation, as src/match/weight-matching.ts's costMatrix does it.
 *
 * Each time is the best of `reps` calls, in runs of old and of new calls alternating (see timePair),
 * after warm-up calls of both (V8 has compiled them). `same` says whether old and new wrote bit-identical
 * destinations (checked on the whole destination, untouched margins included).
 *
 * --tiles adds the experiment behind the kernels' design: square-tiled transposes (T×T tiles, T = 8..64,
 * a one-element inner loop) against the new 8-row band, on the transposing shapes.
 *
 *   node dist/bench/layout.js [--layout side|exact] [--quick] [--tiles]
 */
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { axisSplit, sizeOf, take, writeAxisFirst, writeGatheredAxisFirst, type Tensor } from '../src/tensor.js';
import { createRng, shuffledRange, type Rng } from '../src/random.js';
import { mlpSpec } from '../src/permutation-spec/mlp.js';

// ---------------------------------------------------------------------------------------------------
// The baseline: src/tensor.ts's functions as they were before the tiled kernels (commit 124e8a9). Their
// fallback route (other axes gathered) calls today's take(); none of the cases below takes that route.

function oldWriteAxisFirst(t: Tensor, axis: number, dst: Float32Array, ld: number, col: number): void {
  const { outer, n, inner } = axisSplit(t.shape, axis);
  const src = t.data;
  if (inner === 1) {
    for (let o = 0; o < outer; o++) {
      const from = o * n;
      const to = col + o;
      for (let i = 0; i < n; i++) dst[i * ld + to] = src[from + i];
    }
    return;
  }
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < n; i++) oldCopyRun(src, (o * n + i) * inner, dst, i * ld + col + o * inner, inner);
  }
}

function oldWriteGatheredAxisFirst(
  t: Tensor,
  axis: number,
  index: readonly (Int32Array | null)[],
  dst: Float32Array,
  ld: number,
  col: number,
): void {
  const src = t.data;
  const rank = t.shape.length;
  if (rank >= 2 && axis <= 1 && index.slice(2).every((q) => q === null)) {
    const [d0, d1] = t.shape;
    let block = 1;
    for (let d = 2; d < rank; d++) block *= t.shape[d];
    if (axis === 0) {
      const q = index[1];
      for (let i = 0; i < d0; i++) {
        const to = i * ld + col;
        for (let j = 0; j < d1; j++) oldCopyRun(src, (i * d1 + (q ? q[j] : j)) * block, dst, to + j * block, block);
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
        for (let i = 0; i < d1; i++) oldCopyRun(src, (from + i) * block, dst, i * ld + col + o * block, block);
      }
    }
    return;
  }
  let gathered = t;
  index.forEach((q, d) => {
    if (q && d !== axis) gathered = take(gathered, q, d);
  });
  oldWriteAxisFirst(gathered, axis, dst, ld, col);
}

function oldCopyRun(src: Float32Array, from: number, dst: Float32Array, to: number, len: number): void {
  if (len < 48) {
    for (let k = 0; k < len; k++) dst[to + k] = src[from + k];
  } else {
    dst.set(src.subarray(from, from + len), to);
  }
}

// ---------------------------------------------------------------------------------------------------

type Layout = 'side' | 'exact';

interface Timing {
  readonly oldMs: number;
  readonly newMs: number;
  readonly reps: number;
}

/**
 * Best-of times of two calls: runs of consecutive calls of one, then of the other, alternating which goes
 * first. Runs rather than strict alternation because a call leaves the caches as it used them (its own
 * destination dirty, the source partly evicted): each side is timed in its own steady state.
 */
function timePair(oldCall: () => void, newCall: () => void, work: number, quick: boolean): Timing {
  // Enough calls for ~0.2 s per side on the largest cases (~0.05 s with --quick), at least 6.
  const reps = Math.max(6, Math.min(400, Math.round((quick ? 2e7 : 8e7) / Math.max(1, work))));
  const rounds = 3;
  const perRun = Math.ceil(reps / rounds);
  let oldMs = Infinity;
  let newMs = Infinity;
  const run = (call: () => void): number => {
    call(); // the first call of a run settles the caches
    let best = Infinity;
    for (let r = 0; r < perRun; r++) best = Math.min(best, timed(call));
    return best;
  };
  for (let round = 0; round < rounds; round++) {
    if (round % 2 === 0) {
      oldMs = Math.min(oldMs, run(oldCall));
      newMs = Math.min(newMs, run(newCall));
    } else {
      newMs = Math.min(newMs, run(newCall));
      oldMs = Math.min(oldMs, run(oldCall));
    }
  }
  return { oldMs, newMs, reps: rounds * perRun };
}

function timed(call: () => void): number {
  const t0 = performance.now();
  call();
  return performance.now() - t0;
}

/** Best-of time of one call (for the --tiles experiment). */
function timeOne(call: () => void, work: number, quick: boolean): number {
  return timePair(call, () => undefined, work, quick).oldMs;
}

function randomTensor(shape: readonly number[], rng: Rng): Tensor {
  const data = new Float32Array(sizeOf(shape));
  for (let i = 0; i < data.length; i++) data[i] = rng.normal();
  return { shape, data };
}

function bitsEqual(a: Float32Array, b: Float32Array): boolean {
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

export interface LayoutRow {
  readonly fn: string;
  readonly shape: readonly number[];
  readonly axis: number;
  readonly gather: boolean;
  readonly ld: number;
  readonly col: number;
  readonly timing: Timing;
  readonly same: boolean;
}

const SHAPES: readonly (readonly number[])[] = [
  [512, 784],
  [512, 512],
  [10, 512],
  [2048, 2048],
  [2048, 784],
  [256, 128, 3, 3],
  [2048, 512, 1, 1],
];

export function runLayoutCases(layout: Layout, quick: boolean, seed = 1): LayoutRow[] {
  const rng = createRng(seed);
  const rows: LayoutRow[] = [];
  for (const shape of SHAPES) {
    const t = randomTensor(shape, rng);
    for (const axis of [0, 1]) {
      const n = shape[axis];
      const width = t.data.length / n;
      const ld = layout === 'side' ? width + 513 : width;
      const col = layout === 'side' ? 17 : 0;
      // The other of the two leading (permuted) axes, gathered by a random permutation.
      const other = 1 - axis;
      const perm = shuffledRange(shape[other], rng);
      const none = shape.map(() => null);
      const some = shape.map((_, d) => (d === other ? perm : null));
      const variants: [string, boolean, (dst: Float32Array) => void, (dst: Float32Array) => void][] = [
        ['writeAxisFirst', false, (d) => oldWriteAxisFirst(t, axis, d, ld, col), (d) => writeAxisFirst(t, axis, d, ld, col)],
        ['writeGatheredAxisFirst', false, (d) => oldWriteGatheredAxisFirst(t, axis, none, d, ld, col), (d) => writeGatheredAxisFirst(t, axis, none, d, ld, col)],
        ['writeGatheredAxisFirst', true, (d) => oldWriteGatheredAxisFirst(t, axis, some, d, ld, col), (d) => writeGatheredAxisFirst(t, axis, some, d, ld, col)],
      ];
      for (const [fn, gather, oldCall, newCall] of variants) {
        // A sentinel-filled margin around the view: `same` then also covers what must stay untouched.
        const dstOld = new Float32Array(n * ld + col).fill(-7);
        const dstNew = new Float32Array(n * ld + col).fill(-7);
        const timing = timePair(() => oldCall(dstOld), () => newCall(dstNew), t.data.length, quick);
        rows.push({ fn, shape, axis, gather, ld, col, timing, same: bitsEqual(dstOld, dstNew) });
      }
    }
  }
  return rows;
}

export interface StepRow {
  readonly perm: string;
  readonly n: number;
  readonly k: number;
  readonly timing: Timing;
  readonly same: boolean;
}

/**
 * One step's layout per permutation of a 784-512-512-512-10 MLP (torch layout), as costMatrix does it:
 * every term's A view with writeAxisFirst and its B view gathered by the other permutations with
 * writeGatheredAxisFirst, side by side in the n × k operands.
 */
export function runMlpStep(quick: boolean, seed = 2): StepRow[] {
  const widths = [784, 512, 512, 512, 10];
  const spec = mlpSpec(widths.length - 2);
  const rng = createRng(seed);
  const shapes: Record<string, number[]> = {};
  for (let i = 0; i + 1 < widths.length; i++) {
    shapes[`layer${i}.weight`] = [widths[i + 1], widths[i]];
    shapes[`layer${i}.bias`] = [widths[i + 1]];
  }
  const a: Record<string, Tensor> = {};
  const b: Record<string, Tensor> = {};
  for (const [name, shape] of Object.entries(shapes)) {
    a[name] = randomTensor(shape, rng);
    b[name] = randomTensor(shape, rng);
  }
  const perms: Record<string, Int32Array> = {};
  for (const p of Object.keys(spec.permToAxes)) {
    const { tensor, axis } = spec.permToAxes[p][0];
    perms[p] = shuffledRange(shapes[tensor][axis], rng);
  }
  const out: StepRow[] = [];
  for (const [p, terms] of Object.entries(spec.permToAxes)) {
    const { tensor, axis } = terms[0];
    const n = shapes[tensor][axis];
    let k = 0;
    for (const term of terms) k += sizeOf(shapes[term.tensor]) / n;
    const step = (writeA: typeof writeAxisFirst, writeB: typeof writeGatheredAxisFirst, bufA: Float32Array, bufB: Float32Array) => {
      let col = 0;
      for (const term of terms) {
        writeA(a[term.tensor], term.axis, bufA, k, col);
        const index = spec.axesToPerm[term.tensor].map((q) => (q === null ? null : perms[q]));
        writeB(b[term.tensor], term.axis, index, bufB, k, col);
        col += sizeOf(shapes[term.tensor]) / n;
      }
    };
    const oldA = new Float32Array(n * k);
    const oldB = new Float32Array(n * k);
    const newA = new Float32Array(n * k);
    const newB = new Float32Array(n * k);
    const timing = timePair(
      () => step(oldWriteAxisFirst, oldWriteGatheredAxisFirst, oldA, oldB),
      () => step(writeAxisFirst, writeGatheredAxisFirst, newA, newB),
      2 * n * k,
      quick,
    );
    out.push({ perm: p, n, k, timing, same: bitsEqual(oldA, newA) && bitsEqual(oldB, newB) });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// --tiles: the square-tile transposes the 8-row band was measured against.

/** dst[c·ld + col + r] = src[q(r)·cols + c] in T × T tiles, reading each tile's source rows in turn. */
function squareTileTranspose(T: number, src: Float32Array, rows: number, cols: number, q: Int32Array | null, dst: Float32Array, ld: number, col: number): void {
  for (let r0 = 0; r0 < rows; r0 += T) {
    const r1 = Math.min(r0 + T, rows);
    for (let c0 = 0; c0 < cols; c0 += T) {
      const c1 = Math.min(c0 + T, cols);
      for (let r = r0; r < r1; r++) {
        const from = (q ? q[r] : r) * cols;
        let to = c0 * ld + col + r;
        for (let c = c0; c < c1; c++, to += ld) dst[to] = src[from + c];
      }
    }
  }
}

export function runTiles(quick: boolean, seed = 3): string[] {
  const rng = createRng(seed);
  const lines: string[] = [];
  const sizes = [8, 16, 32, 64];
  lines.push(`| transpose (gathered rows) | ld | ${['plain loop', ...sizes.map((T) => `${T}×${T} tiles`), '8-row band (new)'].join(' | ')} |`);
  lines.push(`| --- | ---: | ${Array(sizes.length + 2).fill('---:').join(' | ')} |`);
  for (const [rows, cols] of [[512, 784], [512, 512], [2048, 2048], [2048, 784], [784, 512]]) {
    const t = randomTensor([rows, cols], rng);
    const q = shuffledRange(rows, rng);
    const ld = rows + 513;
    const col = 17;
    const base = new Float32Array(cols * ld + col);
    const dst = new Float32Array(cols * ld + col);
    const cells: string[] = [];
    const plain = timePair(() => oldWriteGatheredAxisFirst(t, 1, [q, null], base, ld, col), () => writeGatheredAxisFirst(t, 1, [q, null], dst, ld, col), rows * cols, quick);
    cells.push(plain.oldMs.toFixed(3));
    for (const T of sizes) {
      const ms = timeOne(() => squareTileTranspose(T, t.data, rows, cols, q, dst, ld, col), rows * cols, quick);
      if (!bitsEqual(base, dst)) throw new Error(`tiles: ${T}×${T} transpose differs from the baseline`);
      cells.push(ms.toFixed(3));
    }
    cells.push(plain.newMs.toFixed(3));
    lines.push(`| [${rows}, ${cols}] axis 1 | ${ld} | ${cells.join(' | ')} |`);
  }
  return lines;
}

// ---------------------------------------------------------------------------------------------------

function fmt(t: Timing): string {
  return `${t.oldMs.toFixed(3)} | ${t.newMs.toFixed(3)} | ${(t.oldMs / t.newMs).toFixed(2)}×`;
}

function main(args: readonly string[]): void {
  const quick = args.includes('--quick');
  const li = args.indexOf('--layout');
  const layout = (li >= 0 ? args[li + 1] : 'side') as Layout;
  if (layout !== 'side' && layout !== 'exact') throw new Error(`layout: --layout must be side or exact, got ${layout}`);
  console.log(`node ${process.version}; times in ms, best of reps; layout ${layout === 'side' ? 'side by side (ld = width + 513, col = 17)' : 'alone (ld = width, col = 0)'}`);
  console.log('');
  console.log('| function | shape | axis | gather | ld | old ms | new ms | speed-up | same |');
  console.log('| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | --- |');
  let logSum = 0;
  const rows = runLayoutCases(layout, quick);
  for (const r of rows) {
    logSum += Math.log(r.timing.oldMs / r.timing.newMs);
    console.log(`| ${r.fn} | [${r.shape.join(', ')}] | ${r.axis} | ${r.gather ? 'perm' : '–'} | ${r.ld} | ${fmt(r.timing)} | ${r.same ? 'yes' : 'NO'} |`);
  }
  console.log(`\ngeometric-mean speed-up over ${rows.length} cases: ${Math.exp(logSum / rows.length).toFixed(2)}×`);
  console.log('\nOne weight-matching step\'s layout (A and B operands) per permutation, MLP 784-512-512-512-10:\n');
  console.log('| permutation | n | k | old ms | new ms | speed-up | same |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | --- |');
  const steps = runMlpStep(quick);
  for (const s of steps) console.log(`| ${s.perm} | ${s.n} | ${s.k} | ${fmt(s.timing)} | ${s.same ? 'yes' : 'NO'} |`);
  const oldMean = steps.reduce((x, s) => x + s.timing.oldMs, 0) / steps.length;
  const newMean = steps.reduce((x, s) => x + s.timing.newMs, 0) / steps.length;
  console.log(`| mean per step | | | ${oldMean.toFixed(3)} | ${newMean.toFixed(3)} | ${(oldMean / newMean).toFixed(2)}× | |`);
  if (args.includes('--tiles')) {
    console.log('\nTranspose strategies, ms (best of reps), ld = rows + 513, col = 17:\n');
    for (const line of runTiles(quick)) console.log(line);
  }
  if (rows.some((r) => !r.same) || steps.some((s) => !s.same)) {
    console.error('layout: old and new results differ');
    process.exitCode = 1;
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) main(process.argv.slice(2));
