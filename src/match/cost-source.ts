/**
 * Where weight matching's cost matrices come from, behind one small interface (CostSource), so the loop in
 * weight-matching.ts reads like the paper's algorithm. Permutation p's matrix is
 *
 *   C_p = Σ over p's (tensor, axis) terms of  A[tensor]ₐₓᵢₛ · (B[tensor] with every OTHER permutation applied)ₐₓᵢₛᵀ
 *
 * (Xₐₓᵢₛ: X moved axis-first and flattened to n × (size/n)), divided by the units' norms for the cosine
 * score. Three ways to get it, all giving the same matrix up to float32 rounding of the products:
 *  - fresh: one product over the terms' axis-first views laid side by side (the definition);
 *  - kept and updated: each C_p kept from its last step and brought up to date by a low-rank product over
 *    the units its neighbours moved since (cost-cache.ts; models in memory, the default there);
 *  - streamed: tensors loaded one at a time from files (param-source-fs.ts, param-source-onnx.ts) and the
 *    product computed a few terms and a block of rows at a time, so a step never holds a model
 *    (`lowMemory`, the default for sources not in memory).
 * The matrices live in a WebAssembly solver leased for the run (lap-wasm.ts), which solves them where they
 * are: no copy per step.
 */
import type { Params, Tensor } from '../tensor.js';
import { axisFirstMatrix, gatheredDot, sizeOf, writeAxisFirst, writeGatheredAxisFirst } from '../tensor.js';
import type { PermutationSpec } from '../permutation-spec/spec.js';
import type { Perms } from '../permute.js';
import type { MatmulEngine } from '../engine/matmul.js';
import { InputError } from '../errors.js';
import type { ParamSource } from './param-source.js';
import { CostCache } from './cost-cache.js';
import { leaseSolver } from './lap-wasm.js';

export interface StepCost {
  /** The n × n matrix, row-major float64: read it until the next call of `matrix`, never write it. */
  readonly cost: Float64Array;
  /** True when it is a kept matrix brought up to date by a low-rank update. */
  readonly updated: boolean;
}

export interface CostSource {
  /** C_p for the current permutations (finite: an overflowing product is refused naming p). */
  matrix(p: string, perms: Perms): Promise<StepCost>;
  /** Σ over the tensors both models have of ⟨A[t], P(B)[t]⟩, in float64. */
  objective(perms: Perms): number;
  /** Lets the solver's memory go; the matrices handed out must not be used after. */
  close(): void;
}

export interface CostSourceOptions {
  readonly engine: MatmulEngine;
  readonly score: 'dot' | 'cosine';
  /** Keep each C_p and update it (cost-cache.ts). */
  readonly incremental: boolean;
  /** Products a few terms and a block of rows at a time; the solver's memory let go at the end. */
  readonly lowMemory: boolean;
}

/** Σ over the tensors both sources have of ⟨A[t], P(B)[t]⟩ in float64, loading one pair at a time. */
export function sourceObjective(spec: PermutationSpec, perms: Perms, sourceA: ParamSource, sourceB: ParamSource): number {
  let total = 0;
  for (const name of sourceA.names) {
    if (!sourceB.has(name)) continue;
    const index = (spec.axesToPerm[name] ?? []).map((q) => (q === null ? null : perms[q]));
    total += sourceA.use(name, (a) => sourceB.use(name, (b) => gatheredDot(a, b, index)));
  }
  return total;
}

export function openCostSource(
  spec: PermutationSpec,
  sizes: Readonly<Record<string, number>>,
  sourceA: ParamSource,
  sourceB: ParamSource,
  options: CostSourceOptions,
): CostSource {
  const { engine, incremental, lowMemory } = options;
  const names = Object.keys(sizes);
  // Cosine scores divide by per-unit norms. Permuting a unit's other axes reorders its weights without
  // changing their length, so the norms are fixed for the whole run: computed once, a permutation at a time.
  const norms = options.score === 'cosine' ? unitNorms(spec, sizes, sourceA, sourceB) : null;

  let largestTensor = 0;
  let widest = 0;
  let largest = 0;
  for (const p of names) {
    let k = 0;
    for (const { tensor } of spec.permToAxes[p]) {
      const size = sizeOf(sourceA.shape(tensor));
      largestTensor = Math.max(largestTensor, size);
      k += size / sizes[p];
    }
    widest = Math.max(widest, sizes[p] * k);
    largest = Math.max(largest, sizes[p]);
  }
  // Low memory: operands no wider than the largest tensor, results a quarter of it per call.
  const limits: ProductLimits = lowMemory ? { operand: largestTensor, rows: (n) => Math.ceil(largestTensor / 4 / n) } : UNLIMITED;
  // The operands of the widest step, allocated once up front: growing them step by step would leave the
  // outgrown buffers as garbage on top of the new ones, raising the peak the low-memory path exists to lower.
  const scratch = new Scratch();
  const operand = Math.min(widest, limits.operand);
  scratch.get('a', operand);
  scratch.get('b', operand);

  // One float64 buffer reused by every step: the matrix itself, or with kept matrices only the
  // cosine-scaled copy of one (the kept matrix stays unscaled for its next update).
  const needBuffer = !incremental || norms !== null;
  const lease = leaseSolver({
    matrices: [...(incremental ? names.map((p) => sizes[p]) : []), ...(needBuffer ? [largest] : [])],
    largest,
    updates: incremental,
  });
  const allocate = (length: number): Float64Array => lease?.matrix(Math.sqrt(length)) ?? new Float64Array(length);
  const buffer = needBuffer ? allocate(largest * largest) : null;
  const fresh = (p: string, perms: Perms, into: Float64Array) =>
    freshCost(spec, p, sizes[p], perms, sourceA, sourceB, engine, scratch, into, limits);
  const cache = incremental
    ? new CostCache(spec, sourceA, sourceB, engine, (key, size) => scratch.get(key, size), allocate, lease ? (into, delta) => lease.addInto(into, delta) : undefined)
    : null;

  return {
    async matrix(p, perms) {
      const n = sizes[p];
      let cost: Float64Array;
      let updated = false;
      if (cache !== null) {
        const kept = await cache.cost(p, n, perms, (q, into) => fresh(q, perms, into));
        cost = kept.cost;
        updated = kept.how === 'update';
        if (norms !== null) {
          // Scaled in a copy: the kept matrix stays unscaled for its next update.
          cost = buffer!.subarray(0, n * n);
          cost.set(kept.cost);
        }
      } else {
        cost = buffer!.subarray(0, n * n);
        await fresh(p, perms, cost);
      }
      if (norms !== null) scaleByNorms(cost, n, norms[p].a, norms[p].b);
      assertFiniteCost(spec, p, cost, n);
      return { cost, updated };
    },
    objective: (perms) => sourceObjective(spec, perms, sourceA, sourceB),
    // Streamed models are matched to keep the peak low: the solver's memory (8·n² bytes for the largest
    // step) need not stay for what the caller does next (writing the aligned model).
    close: () => lease?.release({ keep: !lowMemory }),
  };
}

/** Bounds on a step's product: operand size (floats) per product, and rows of the result per call. */
interface ProductLimits {
  readonly operand: number;
  readonly rows: (n: number) => number;
}

const UNLIMITED: ProductLimits = { operand: Infinity, rows: (n) => n };

/**
 * Writes C_p from its definition into `cost`, in float64. The terms' axis-first views are laid side by
 * side, A's in one n × K matrix and B's in another, so C is a single product A·Bᵀ; each term's tensors are
 * loaded just before they are laid in and dropped right after. Under limits, consecutive terms are grouped
 * so the operands stay within `limits.operand` floats, and each group's product is computed
 * `limits.rows(n)` rows at a time and added up.
 */
async function freshCost(
  spec: PermutationSpec,
  p: string,
  n: number,
  perms: Perms,
  sourceA: ParamSource,
  sourceB: ParamSource,
  engine: MatmulEngine,
  scratch: Scratch,
  cost: Float64Array,
  limits: ProductLimits,
): Promise<void> {
  const terms = spec.permToAxes[p];
  const widthOf = (tensor: string) => sizeOf(sourceA.shape(tensor)) / n;
  const rows = Math.max(1, Math.min(n, limits.rows(n)));
  let first = true;
  for (let start = 0; start < terms.length; ) {
    let end = start + 1;
    let k = widthOf(terms[start].tensor);
    while (end < terms.length && n * (k + widthOf(terms[end].tensor)) <= limits.operand) k += widthOf(terms[end++].tensor);
    const a = scratch.get('a', n * k);
    const b = scratch.get('b', n * k);
    let col = 0;
    for (const { tensor, axis } of terms.slice(start, end)) {
      sourceA.use(tensor, (t) => writeAxisFirst(t, axis, a, k, col));
      const index = spec.axesToPerm[tensor].map((q) => (q === null ? null : perms[q]));
      sourceB.use(tensor, (t) => writeGatheredAxisFirst(t, axis, index, b, k, col));
      col += widthOf(tensor);
    }
    for (let r0 = 0; r0 < n; r0 += rows) {
      const r1 = Math.min(n, r0 + rows);
      const part = await engine.abt(a.subarray(r0 * k, r1 * k), r1 - r0, b, n, k);
      const into = cost.subarray(r0 * n, r1 * n);
      if (first) into.set(part);
      else for (let i = 0; i < into.length; i++) into[i] += part[i];
    }
    first = false;
    start = end;
  }
}

/** Growable scratch buffers, so matching allocates its working memory once, not once per step. */
class Scratch {
  private readonly buffers = new Map<string, Float32Array>();
  get(key: string, size: number): Float32Array {
    let buf = this.buffers.get(key);
    if (buf === undefined || buf.length < size) {
      buf = new Float32Array(size);
      this.buffers.set(key, buf);
    }
    return buf.length === size ? buf : buf.subarray(0, size);
  }
}

/**
 * The cost matrix is sums of float32 products of weights: weights near 1e19 overflow them to Infinity (NaN
 * when infinities cancel). The solver would refuse the matrix without saying whose it is; this names the
 * permutation and the tensors it is computed from.
 */
function assertFiniteCost(spec: PermutationSpec, p: string, cost: Float64Array, n: number): void {
  for (let k = 0; k < n * n; k++) {
    if (Number.isFinite(cost[k])) continue;
    const tensors = spec.permToAxes[p].map((ref) => `'${ref.tensor}' axis ${ref.axis}`).join(', ');
    throw new InputError(
      `weight matching: permutation '${p}' (${n} units, on ${tensors}): the similarity of A's unit ${Math.floor(k / n)} ` +
        `and B's unit ${k % n} is ${cost[k]}; the weights are too large for the float32 products it is summed from`,
    );
  }
}

/** For each permutation, the Euclidean norm of each unit's weights over all its tied axes, in A and in B. */
function unitNorms(
  spec: PermutationSpec,
  sizes: Readonly<Record<string, number>>,
  sourceA: ParamSource,
  sourceB: ParamSource,
): Record<string, { a: Float64Array; b: Float64Array }> {
  const out: Record<string, { a: Float64Array; b: Float64Array }> = Object.create(null);
  for (const p of Object.keys(sizes)) {
    const a = new Float64Array(sizes[p]);
    const b = new Float64Array(sizes[p]);
    const termsA = termParams(spec, p, sourceA);
    const termsB = termParams(spec, p, sourceB);
    for (const { tensor, axis } of spec.permToAxes[p]) {
      accumulateRowSquares(axisFirstMatrix(termsA[tensor], axis), a);
      accumulateRowSquares(axisFirstMatrix(termsB[tensor], axis), b);
    }
    for (let i = 0; i < a.length; i++) {
      a[i] = Math.sqrt(a[i]);
      b[i] = Math.sqrt(b[i]);
    }
    out[p] = { a, b };
  }
  return out;
}

/** The terms' tensors of permutation p from one source, as params. */
function termParams(spec: PermutationSpec, p: string, source: ParamSource): Params {
  const out: Record<string, Tensor> = Object.create(null);
  for (const { tensor } of spec.permToAxes[p]) out[tensor] ??= source.get(tensor);
  return out;
}

function accumulateRowSquares(m: { rows: number; cols: number; data: Float32Array }, into: Float64Array): void {
  for (let i = 0; i < m.rows; i++) {
    let s = 0;
    const base = i * m.cols;
    for (let j = 0; j < m.cols; j++) s += m.data[base + j] * m.data[base + j];
    into[i] += s;
  }
}

function scaleByNorms(cost: Float64Array, n: number, normA: Float64Array, normB: Float64Array): void {
  for (let i = 0; i < n; i++) {
    const ai = normA[i] > 0 ? 1 / normA[i] : 0;
    for (let j = 0; j < n; j++) {
      const bj = normB[j] > 0 ? 1 / normB[j] : 0;
      cost[i * n + j] *= ai * bj;
    }
  }
}
