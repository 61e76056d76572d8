/**
 * Weight matching (Ainsworth et al., Algorithm 1): coordinate descent over permutations. Each step fixes
 * every permutation but one, p, and solves one linear assignment for p exactly:
 *
 *   C = Σ over (tensor, axis) of p:  A[tensor]ₐₓᵢₛ · (B[tensor] with every OTHER permutation applied)ₐₓᵢₛᵀ
 *   p ← argmax_P trace(C · Pᵀ)   i.e.  maximise Σᵢ C[i, p[i]]
 *
 * where Xₐₓᵢₛ is X moved axis-first and flattened to n × (size/n). Passes visit the permutations in an
 * order drawn from the seed and stop after a full pass without improvement (or maxIter passes).
 *
 * The loop works on ParamSources (param-source.ts): in memory (weightMatching) or loaded tensor by tensor
 * from files (weightMatchingFrom), so a model larger than memory runs the same code. Each step loads only
 * its permutation's tensors, lays them into the product's operands and lets them go; what is held is the
 * two operands of the widest step and one cost matrix, both allocated once. With both models in memory,
 * each permutation's cost matrix is kept instead and brought up to date by low-rank updates when its
 * neighbours moved few units (cost-cache.ts): in later passes a step costs a fraction of a full product.
 * The matrices live in a WebAssembly solver leased for the run (lap-wasm.ts), solved where they are; small
 * models in memory are copied in beside them, so the layouts run there too (layout-wasm.ts).
 */
import type { Params, Tensor } from '../tensor.js';
import { axisFirstMatrix, jsLayoutKernels, sizeOf, type LayoutKernels } from '../tensor.js';
import type { PermutationSpec } from '../spec/spec.js';
import { permNames, permSizes, validateSpec } from '../spec/spec.js';
import type { Perms } from '../permute.js';
import { identityPerms, isPermutation } from '../permute.js';
import { createRng, shuffledRange } from '../random.js';
import { solveAssignment, type AssignmentResult, type WarmStart } from './lap.js';
import { solveHeadGroup, type HeadGroupCost } from './head-assignment.js';
import { checkHeadPerms, headGroupOf } from '../spec/heads.js';
import { leaseSolver } from './lap-wasm.js';
import type { MatmulEngine } from '../engine/matmul.js';
import { jsMatmul } from '../engine/matmul.js';
import { InputError } from '../errors.js';
import { paramsSource, shapeStubs, type ParamSource } from './param-source.js';
import { CostCache, type FreshCost } from './cost-cache.js';

/**
 * 'dot': the paper's objective Σ⟨A, P(B)⟩ over every tied axis.
 * 'cosine': the same units and axes, but each unit's concatenated weights are normalised to unit length
 * first, so C[i, j] is the cosine similarity of unit i of A and unit j of B (the second seed's ScoreMode 0,
 * extended to all tied axes).
 */
export type WeightScore = 'dot' | 'cosine';

export interface WeightMatchingOptions {
  spec: PermutationSpec;
  paramsA: Params;
  paramsB: Params;
  /** Upper bound on full passes; default 100. */
  maxIter?: number;
  /** Seed of the permutation visiting order; default 0. */
  seed?: number;
  /** Starting permutations (default: identity). Not modified. */
  initPerms?: Perms;
  score?: WeightScore;
  engine?: MatmulEngine;
  /** Called after every assignment step. */
  onProgress?: (event: MatchProgress) => void;
  /**
   * Start each assignment from the previous solve's duals for the same permutation (default true): exact
   * either way, and much faster over many passes (ResNet-50-shaped random pair: 10 s instead of 18 s). Where
   * a step has several optimal assignments, a warm start may pick another one than a cold solve, so the
   * path can differ from a plain run's; with unique optima (continuous weights) it never does (tested).
   */
  warmStart?: boolean;
  /**
   * Run the algorithm exactly as written: every step solved cold, none skipped. The default skips steps
   * whose cost matrix cannot have changed, which never changes the path (tested, ties included).
   */
  plain?: boolean;
  /**
   * Keep each permutation's cost matrix and bring it up to date by low-rank updates when its neighbours
   * moved few units (cost-cache.ts), instead of recomputing it: same matrices up to float32 rounding, a
   * fraction of the work in later passes, Σ n² float64 of memory. Default: on when both models are in
   * memory (not for models streamed from files, which are matched to hold as little as possible); off
   * with `plain`.
   */
  incremental?: boolean;
  /**
   * Hold as little as possible: no kept cost matrices, and each step's product computed a few terms at a
   * time (operands no wider than the largest tensor) and in blocks of rows (a fraction of it), summed in
   * float64, instead of one product over side-by-side operands. Same matrices up to float32 rounding.
   * Default: on for sources that are not in memory (models streamed from files), off otherwise.
   */
  lowMemory?: boolean;
  /**
   * A second thread for assignments (createAssignmentThread in assignment-thread.ts, Node). Two consecutive
   * steps whose permutations share no tensor do not depend on each other: the first one's assignment then
   * runs on the thread while this one builds and solves the second. Same result as without (tested).
   */
  assignmentThread?: AssignmentThread;
  /** A step counts as progress when it improves its linear objective by more than tol · max(1, |objective|). */
  tol?: number;
}

/** Solves assignments on another thread; cost matrices from `allocate` reach it without a copy. */
export interface AssignmentThread {
  allocate(length: number): Float64Array;
  /** solveAssignment(cost, n, n, { maximize: true, warmStart }), on the other thread. */
  solve(cost: Float64Array, n: number, warmStart: WarmStart | undefined): Promise<AssignmentResult>;
}

export interface MatchProgress {
  pass: number;
  step: number;
  stepsPerPass: number;
  perm: string;
  /** Improvement of this step's linear objective (new − old, ≥ 0 up to rounding). */
  gain: number;
  /** True when no permutation sharing a tensor with this one changed since it was last solved: skipped. */
  reused: boolean;
  /** True when the cost matrix was a kept one brought up to date by a low-rank update (`incremental`). */
  updated: boolean;
}

export interface PassRecord {
  pass: number;
  /**
   * Σ⟨A, P(B)⟩ after the pass. With the 'dot' score it is tracked as the objective before plus the step
   * gains (a step changes exactly the tensors its permutation touches, by exactly its gain), which saves
   * permuting every tensor of B after each pass; the result's objectiveAfter is computed exactly.
   */
  objective: number;
  /** Number of permutations that changed in this pass. */
  changed: number;
  /** Sum of the step gains in this pass. */
  gain: number;
  /** The order in which the pass visited the permutations. */
  order: string[];
}

export interface WeightMatchingResult {
  perms: Record<string, Int32Array>;
  /** Full passes run (the last one found no improvement unless maxIter was reached). */
  iterations: number;
  converged: boolean;
  /** Σ over all tensors of ⟨A, P(B)⟩, before (initial permutations) and after. */
  objectiveBefore: number;
  objectiveAfter: number;
  history: PassRecord[];
}

/** Σ over all tensors of ⟨A[t], P(B)[t]⟩ in float64. */
export function matchingObjective(spec: PermutationSpec, perms: Perms, paramsA: Params, paramsB: Params): number {
  return sourceObjective(spec, perms, paramsSource(paramsA), paramsSource(paramsB));
}

/** Σ over all tensors of ⟨A[t], P(B)[t]⟩ in float64, loading one pair of tensors at a time. */
export function sourceObjective(
  spec: PermutationSpec,
  perms: Perms,
  sourceA: ParamSource,
  sourceB: ParamSource,
  kernels: LayoutKernels = jsLayoutKernels,
): number {
  let total = 0;
  for (const name of sourceA.names) {
    if (!sourceB.has(name)) continue;
    const index = (spec.axesToPerm[name] ?? []).map((q) => (q === null ? null : perms[q]));
    total += sourceA.use(name, (a) => sourceB.use(name, (b) => kernels.gatheredDot(a, b, index)));
  }
  return total;
}

/** Row width k of permutation p's operands: Σ over its terms of (tensor size / n). */
function operandWidth(spec: PermutationSpec, p: string, n: number, source: ParamSource): number {
  let k = 0;
  for (const { tensor } of spec.permToAxes[p]) k += sizeOf(source.shape(tensor)) / n;
  return k;
}

/** Bounds on a step's product: operand size (floats) per product, and rows of the result per call. */
interface ProductLimits {
  readonly operand: number;
  readonly rows: (n: number) => number;
}

const UNLIMITED: ProductLimits = { operand: Infinity, rows: (n) => n };

/** Models in memory are copied into the solver's memory (with the operands) when that takes at most this. */
const COPY_IN_BYTES = 64 << 20;

/**
 * Writes the n × n matrix C of one assignment step (see the module comment) into `cost`, in float64. The
 * terms' axis-first views are laid side by side, A's in one n × K matrix and B's in another, so C is a
 * single product A·Bᵀ; each term's tensors are loaded just before they are laid in and dropped right
 * after. Under limits, consecutive terms are grouped so the operands stay within `limits.operand` floats,
 * and each group's product is computed `limits.rows(n)` rows at a time and added up.
 */
async function costMatrix(
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
  kernels: LayoutKernels,
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
      sourceA.use(tensor, (t) => kernels.writeAxisFirst(t, axis, a, k, col));
      const index = spec.axesToPerm[tensor].map((q) => (q === null ? null : perms[q]));
      sourceB.use(tensor, (t) => kernels.writeGatheredAxisFirst(t, axis, index, b, k, col));
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

/** The terms' tensors of permutation p from one source, as params (for the cosine norms, computed once). */
function termParams(spec: PermutationSpec, p: string, source: ParamSource): Params {
  const out: Record<string, Tensor> = Object.create(null);
  for (const { tensor } of spec.permToAxes[p]) out[tensor] ??= source.get(tensor);
  return out;
}

export interface SourceMatchingOptions extends Omit<WeightMatchingOptions, 'paramsA' | 'paramsB'> {
  sourceA: ParamSource;
  sourceB: ParamSource;
}

/** Weight matching of params in memory. */
export async function weightMatching(options: WeightMatchingOptions): Promise<WeightMatchingResult> {
  const { paramsA, paramsB, ...rest } = options;
  return weightMatchingFrom({ ...rest, sourceA: paramsSource(paramsA, 'model A'), sourceB: paramsSource(paramsB, 'model B') });
}

/** Weight matching of params from sources (e.g. safetensors files read tensor by tensor). */
export async function weightMatchingFrom(options: SourceMatchingOptions): Promise<WeightMatchingResult> {
  const { spec, sourceA, sourceB } = options;
  const maxIter = options.maxIter ?? 100;
  const score = options.score ?? 'dot';
  const engine = options.engine ?? jsMatmul;
  const tol = options.tol ?? 1e-12;
  const shapesA = shapeStubs(sourceA);
  validateSpec(spec, { label: 'model A', params: shapesA }, { label: 'model B', params: shapeStubs(sourceB) });

  const sizes = permSizes(spec, shapesA);
  const names = permNames(spec);
  const perms: Record<string, Int32Array> = identityPerms(sizes);
  if (options.initPerms) {
    for (const [p, init] of Object.entries(options.initPerms)) {
      if (!Object.hasOwn(sizes, p)) throw new InputError(`initial permutation '${p}' is not in the spec`);
      if (init.length !== sizes[p] || !isPermutation(init)) {
        throw new InputError(`initial permutation '${p}' is not a permutation of 0..${sizes[p] - 1}`);
      }
      perms[p] = Int32Array.from(init);
    }
    checkHeadPerms(spec, perms, 'initial permutations');
  }

  // Cosine scores divide by per-unit norms. Permuting a unit's other axes reorders its weights without
  // changing their length, so the norms are fixed for the whole run: computed once, a permutation at a time.
  let unitNorms: Record<string, { a: Float64Array; b: Float64Array }> | null = null;
  if (score === 'cosine') {
    unitNorms = Object.create(null) as Record<string, { a: Float64Array; b: Float64Array }>;
    for (const p of names) {
      Object.assign(unitNorms, computeUnitNorms(spec, [p], sizes, termParams(spec, p, sourceA), termParams(spec, p, sourceB)));
    }
  }

  const lowMemory = options.lowMemory ?? !(sourceA.resident === true && sourceB.resident === true);
  let largestTensor = 0;
  for (const p of names) for (const { tensor } of spec.permToAxes[p]) largestTensor = Math.max(largestTensor, sizeOf(sourceA.shape(tensor)));
  // Low memory: operands no wider than the largest tensor, results a quarter of it per call.
  const limits: ProductLimits = lowMemory ? { operand: largestTensor, rows: (n) => Math.ceil(largestTensor / 4 / n) } : UNLIMITED;
  // The operands of the widest step, allocated once up front: growing them step by step would leave the
  // outgrown buffers as garbage on top of the new ones, raising the peak this module exists to lower.
  const scratch = new Scratch();
  let widest = 0;
  for (const p of names) widest = Math.max(widest, sizes[p] * operandWidth(spec, p, sizes[p], sourceA));
  let largest = 0;
  for (const p of names) largest = Math.max(largest, sizes[p]);
  const incremental = options.incremental ?? (!options.plain && !lowMemory);
  // Head groups are solved jointly in one step (head-assignment.ts), which the two-step overlap of the
  // assignment thread does not model: such specs run on one thread.
  const thread = spec.heads === undefined ? options.assignmentThread : undefined;
  // A float64 buffer reused by every step (the solver keeps no reference to it): the cost matrix, or with
  // a cost cache only the cosine-scaled copy of a kept one. With a second thread two steps are in flight
  // at once: each needs its own, in memory the thread can see.
  const needBuffer = !incremental || unitNorms !== null;
  // Without a second thread, the matrices (kept ones too) live in a solver of our own (lap-wasm.ts), which
  // solves them where they are: no copy per step, and 8·n² bytes less at the peak for a streamed model.
  // Models in memory and small enough are copied in beside them, with the operands: the layouts and dot
  // products then run there too (the same values; no JavaScript warm-up on the first call in a process).
  let shared = 0;
  let longestAxis = 0;
  const bothResident = sourceA.resident === true && sourceB.resident === true;
  for (const name of sourceA.names) {
    if (!bothResident || !sourceB.has(name)) continue;
    shared += sizeOf(sourceA.shape(name)) + sizeOf(sourceB.shape(name));
    longestAxis = Math.max(longestAxis, ...sourceA.shape(name), ...sourceB.shape(name));
  }
  const operand = Math.min(widest, limits.operand);
  const copyIn = !thread && !lowMemory && bothResident && (shared + 2 * operand) * 4 <= COPY_IN_BYTES;
  const lease = thread
    ? null
    : leaseSolver({
        matrices: [...(incremental ? names.map((p) => sizes[p]) : []), ...(needBuffer ? [largest] : [])],
        largest,
        floats: copyIn ? shared + 2 * operand : 0,
        indices: 2 * longestAxis,
        updates: incremental,
      });
  let srcA = sourceA;
  let srcB = sourceB;
  let kernels = jsLayoutKernels;
  let bufferFor!: (n: number, which: number) => Float64Array;
  let fresh!: FreshCost;
  let cache: CostCache | null = null;
  // From here on the lease is released whatever happens (its memory would stay for the process otherwise).
  try {
    if (lease?.floats) {
      const area = lease.floats;
      let at = 0;
      [srcA, at] = copyInto(area, at, sourceA, sourceB);
      [srcB, at] = copyInto(area, at, sourceB, sourceA);
      scratch.preset('a', area.subarray(at, at + operand));
      scratch.preset('b', area.subarray(at + operand, at + 2 * operand));
      kernels = lease.kernels;
    } else {
      scratch.get('a', operand);
      scratch.get('b', operand);
    }
    const allocate = (length: number): Float64Array => {
      if (thread) return thread.allocate(length);
      return lease?.matrix(Math.sqrt(length)) ?? new Float64Array(length);
    };
    const costBuffers = Array.from({ length: thread ? 2 : 1 }, () => (needBuffer ? allocate(largest * largest) : null));
    bufferFor = (n, which) => costBuffers[which]!.subarray(0, n * n);
    fresh = (p, into) => costMatrix(spec, p, sizes[p], perms, srcA, srcB, engine, scratch, into, limits, kernels);
    if (incremental) {
      const add = lease ? (into: Float64Array, delta: Float32Array) => lease.addInto(into, delta) : undefined;
      cache = new CostCache(spec, srcA, srcB, engine, (key, size) => scratch.get(key, size), allocate, add, kernels);
    }
    return await matchSteps();
  } finally {
    // Streamed models are matched to keep the peak low: the solver's memory (8·n² bytes for the largest
    // step) need not stay for what the caller does next (writing the aligned model).
    lease?.release({ keep: !lowMemory });
  }

  async function matchSteps(): Promise<WeightMatchingResult> {
    const objectiveBefore = sourceObjective(spec, perms, srcA, srcB, kernels);
    let tracked = objectiveBefore;
    const rng = createRng(options.seed ?? 0);
    const history: PassRecord[] = [];
    // A step's cost matrix depends only on the permutations that share a tensor with p. When none of them
    // changed since p was last solved, the matrix is the same, p is already optimal for it, and the step
    // can be skipped without changing the result.
    const neighbours = neighbourPerms(spec, names);
    const changedAt = new Map<string, number>();
    const solvedAt = new Map<string, number>();
    let clock = 0;
    const warm = new Map<string, WarmStart>();
    let converged = false;
    let iterations = 0;

    for (let pass = 0; pass < maxIter; pass++) {
      iterations = pass + 1;
      const order = shuffledRange(names.length, rng);
      let changed = 0;
      let passGain = 0;
      let progress = false;
      // One step in three phases: prepare (skip or build its cost matrix), solve, apply (in step order).
      type Prepared =
        | { step: number; p: string; skipped: true }
        | { step: number; p: string; skipped: false; n: number; cost: Float64Array; oldL: number; warmStart: WarmStart | undefined; updated: boolean };
      const prepare = async (step: number, which: number): Promise<Prepared> => {
        const p = names[order[step]];
        const n = sizes[p];
        clock++;
        const last = solvedAt.get(p);
        if (!options.plain && last !== undefined && neighbours[p].every((q) => (changedAt.get(q) ?? -1) < last)) {
          return { step, p, skipped: true };
        }
        solvedAt.set(p, clock);
        let cost: Float64Array;
        let updated = false;
        if (cache) {
          const kept = await cache.cost(p, n, perms, fresh);
          cost = kept.cost;
          updated = kept.how === 'update';
          if (unitNorms) {
            // Scaled in a copy: the kept matrix stays unscaled for its next update.
            const scaled = bufferFor(n, which);
            scaled.set(cost);
            cost = scaled;
          }
        } else {
          cost = bufferFor(n, which);
          await fresh(p, cost);
        }
        if (unitNorms) scaleByNorms(cost, n, unitNorms[p].a, unitNorms[p].b);
        assertFiniteCost(spec, p, cost, n);
        const current = perms[p];
        let oldL = 0;
        for (let i = 0; i < n; i++) oldL += cost[i * n + current[i]];
        const warmStart = options.plain || options.warmStart === false ? undefined : warm.get(p);
        return { step, p, skipped: false, n, cost, oldL, warmStart, updated };
      };
      const solveHere = (s: Prepared & { skipped: false }) => solveAssignment(s.cost, s.n, s.n, { maximize: true, warmStart: s.warmStart });
      const apply = (s: Prepared, solved: AssignmentResult | null) => {
        if (s.skipped || solved === null) {
          options.onProgress?.({ pass, step: s.step, stepsPerPass: order.length, perm: s.p, gain: 0, reused: true, updated: false });
          return;
        }
        const { p } = s;
        warm.set(p, { colPotential: solved.colPotential, rowPotential: solved.rowPotential, rowToCol: solved.rowToCol });
        const gain = solved.objective - s.oldL;
        if (gain > tol * Math.max(1, Math.abs(s.oldL))) {
          progress = true;
          perms[p] = Int32Array.from(solved.rowToCol);
          // The step's own clock tick: a step run beside its predecessor keeps its place in the order.
          changedAt.set(p, solvedAt.get(p)!);
          changed++;
          passGain += gain;
        }
        options.onProgress?.({ pass, step: s.step, stepsPerPass: order.length, perm: p, gain, reused: false, updated: s.updated });
      };

      // A head group's permutations share their head order: whichever member the order visits, the step
      // chooses all of them together, on all their cost matrices.
      const headGroupStep = async (step: number, group: { count: number; perms: readonly string[] }): Promise<void> => {
        const p = names[order[step]];
        clock++;
        const last = solvedAt.get(p);
        const reads = group.perms.flatMap((m) => neighbours[m]).filter((q) => !group.perms.includes(q));
        if (!options.plain && last !== undefined && reads.every((q) => (changedAt.get(q) ?? -1) < last)) {
          options.onProgress?.({ pass, step, stepsPerPass: order.length, perm: p, gain: 0, reused: true, updated: false });
          return;
        }
        const members: HeadGroupCost[] = [];
        let oldL = 0;
        for (const m of group.perms) {
          const n = sizes[m];
          let cost: Float64Array;
          if (cache) cost = Float64Array.from((await cache.cost(m, n, perms, fresh)).cost);
          else {
            cost = new Float64Array(n * n);
            await fresh(m, cost);
          }
          if (unitNorms) scaleByNorms(cost, n, unitNorms[m].a, unitNorms[m].b);
          for (let i = 0; i < n; i++) oldL += cost[i * n + perms[m][i]];
          members.push({ cost, n });
        }
        for (const m of group.perms) solvedAt.set(m, clock);
        const solved = solveHeadGroup(members, group.count);
        const gain = solved.objective - oldL;
        if (gain > tol * Math.max(1, Math.abs(oldL))) {
          progress = true;
          group.perms.forEach((m, k) => {
            perms[m] = solved.perms[k];
            changedAt.set(m, clock);
          });
          changed++;
          passGain += gain;
        }
        options.onProgress?.({ pass, step, stepsPerPass: order.length, perm: p, gain, reused: false, updated: false });
      };

      for (let step = 0; step < order.length; ) {
        const group = headGroupOf(spec, names[order[step]]);
        if (group !== null) {
          await headGroupStep(step, group);
          step++;
          continue;
        }
        const first = await prepare(step, 0);
        const next = step + 1 < order.length ? names[order[step + 1]] : null;
        if (first.skipped) {
          apply(first, null);
          step++;
        } else if (thread && next !== null && next !== first.p && !neighbours[first.p].includes(next)) {
          // The next step does not read this one's permutation: solve this one on the thread meanwhile.
          const away = thread.solve(first.cost, first.n, first.warmStart);
          let second: Prepared;
          let secondSolved: AssignmentResult | null;
          try {
            second = await prepare(step + 1, 1);
            secondSolved = second.skipped ? null : solveHere(second);
          } catch (e) {
            await away.catch(() => {});
            throw e;
          }
          apply(first, await away);
          apply(second, secondSolved);
          step += 2;
        } else {
          apply(first, solveHere(first));
          step++;
        }
      }
      tracked += passGain;
      history.push({
        pass,
        objective: score === 'dot' ? tracked : sourceObjective(spec, perms, srcA, srcB, kernels),
        changed,
        gain: passGain,
        order: Array.from(order, (i) => names[i]),
      });
      if (!progress) {
        converged = true;
        break;
      }
    }

    return {
      perms,
      iterations,
      converged,
      objectiveBefore,
      objectiveAfter: sourceObjective(spec, perms, srcA, srcB, kernels),
      history,
    };
  }
}

/**
 * The tensors of `source` that `other` has too, copied into `area` from `at` on: an in-memory source over
 * the copies, and where the next free value is.
 */
function copyInto(area: Float32Array, at: number, source: ParamSource, other: ParamSource): [ParamSource, number] {
  const params: Record<string, Tensor> = Object.create(null);
  for (const name of source.names) {
    if (!other.has(name)) continue;
    source.use(name, (t) => {
      const data = area.subarray(at, at + t.data.length);
      data.set(t.data);
      params[name] = { shape: t.shape, data };
      at += t.data.length;
    });
  }
  return [paramsSource(params, source.label), at];
}

/** Growable scratch buffers, so matching allocates its working memory once, not once per step. */
class Scratch {
  private readonly buffers = new Map<string, Float32Array>();
  /** Uses `buffer` for `key` (until a larger size is asked for). */
  preset(key: string, buffer: Float32Array): void {
    this.buffers.set(key, buffer);
  }
  get(key: string, size: number): Float32Array {
    let buf = this.buffers.get(key);
    if (buf === undefined || buf.length < size) {
      buf = new Float32Array(size);
      this.buffers.set(key, buf);
    }
    return buf.length === size ? buf : buf.subarray(0, size);
  }
}

/** For each permutation, the other permutations on the tensors it acts on (its cost matrix's inputs). */
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

function neighbourPerms(spec: PermutationSpec, names: readonly string[]): Record<string, string[]> {
  const out: Record<string, string[]> = Object.create(null);
  for (const p of names) {
    const set = new Set<string>();
    for (const { tensor } of spec.permToAxes[p]) {
      for (const q of spec.axesToPerm[tensor]) if (q !== null && q !== p) set.add(q);
    }
    out[p] = [...set];
  }
  return out;
}

function computeUnitNorms(
  spec: PermutationSpec,
  names: string[],
  sizes: Record<string, number>,
  paramsA: Params,
  paramsB: Params,
): Record<string, { a: Float64Array; b: Float64Array }> {
  const out: Record<string, { a: Float64Array; b: Float64Array }> = Object.create(null);
  for (const p of names) {
    const n = sizes[p];
    const a = new Float64Array(n);
    const b = new Float64Array(n);
    for (const { tensor, axis } of spec.permToAxes[p]) {
      accumulateRowSquares(axisFirstMatrix(paramsA[tensor], axis), a);
      accumulateRowSquares(axisFirstMatrix(paramsB[tensor], axis), b);
    }
    for (let i = 0; i < n; i++) {
      a[i] = Math.sqrt(a[i]);
      b[i] = Math.sqrt(b[i]);
    }
    out[p] = { a, b };
  }
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
