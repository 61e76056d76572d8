/**
 * A starting point for weight matching that does not depend on the other permutations being right.
 *
 * Coordinate descent from the identity solves each permutation with its neighbours still wrong; on deep
 * models with many tied axes (transformers: one residual permutation touches every block) it can settle in
 * a poor fixed point even when B is an exact permutation of A. Here every permutation is chosen on its own
 * from features its neighbours cannot change: a unit's row of a tensor (the unit's axis first, the rest
 * flattened) is used as is when no other axis of that tensor is permuted, and sorted when one is — sorting
 * forgets the order that the other permutations would impose. The cost of sending A's unit i to B's unit
 * j is the sum over the permutation's axes of ⟨features_A(i), features_B(j)⟩.
 *
 * When B = P(A) exactly, each unit's features in B equal its twin's in A, and (by the rearrangement and
 * Cauchy–Schwarz inequalities) the assignment that pairs equal features scores strictly highest unless two
 * units of A have equal features: the planted P is found in one step for every permutation, whatever the
 * visiting order. On independently trained models it is only a start; descent goes on from it.
 */
import type { PermutationSpec } from '../spec/spec.js';
import { permSizes } from '../spec/spec.js';
import { segmentedSource } from '../spec/segments.js';
import type { Params, Tensor } from '../tensor.js';
import { axisFirstMatrix } from '../tensor.js';
import type { MatmulEngine } from '../engine/matmul.js';
import { jsMatmul } from '../engine/matmul.js';
import { solveAssignment } from './lap.js';
import { solveHeadGroup } from './head-assignment.js';
import { paramsSource, shapeStubs, type ParamSource } from './param-source.js';
import { sourceObjective, weightMatchingFrom, type SourceMatchingOptions, type WeightMatchingOptions, type WeightMatchingResult } from './weight-matching.js';

/** Rows = units of `axis`; each row sorted when another axis of the tensor is permuted. */
function unitFeatures(t: Tensor, axis: number, sortRows: boolean): { rows: number; cols: number; data: Float32Array } {
  const m = axisFirstMatrix(t, axis);
  if (!sortRows) return m;
  const data = Float32Array.from(m.data);
  for (let r = 0; r < m.rows; r++) data.subarray(r * m.cols, (r + 1) * m.cols).sort();
  return { rows: m.rows, cols: m.cols, data };
}

/**
 * The cost less its row and column means. Every assignment picks one entry per row and per column, so
 * Σᵢ C[i, σ(i)] changes by the same constant for every σ (head-structured ones included): the best
 * assignment is the same. But the solver is much faster on it: sorted features of random-looking weights
 * are nearly proportional to one profile, so C is close to rank one (|fᵢ|·|gⱼ|), on which the shortest
 * augmenting paths are long; the means carry most of that.
 */
export function doublyCentred(cost: Float64Array, n: number): Float64Array {
  return centreInPlace(Float64Array.from(cost), n);
}

/** doublyCentred over a matrix of the caller's own (featureCost's): no second n² buffer at the peak. */
function centreInPlace(cost: Float64Array, n: number): Float64Array {
  const row = new Float64Array(n);
  const col = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const c = cost[i * n + j];
      row[i] += c;
      col[j] += c;
    }
  }
  let all = 0;
  for (let k = 0; k < n; k++) all += row[k];
  const grand = all / (n * n);
  for (let i = 0; i < n; i++) {
    const r = row[i] / n - grand;
    for (let j = 0; j < n; j++) cost[i * n + j] -= r + col[j] / n;
  }
  return cost;
}

/** Per permutation, the n×n cost (float64, row-major) of sending A's unit i to B's unit j. */
async function featureCost(spec: PermutationSpec, p: string, n: number, a: ParamSource, b: ParamSource, engine: MatmulEngine): Promise<Float64Array> {
  const cost = new Float64Array(n * n);
  for (const { tensor, axis } of spec.permToAxes[p]) {
    const sortRows = spec.axesToPerm[tensor].some((q, d) => q !== null && d !== axis);
    // Copies: a file source's tensor is only valid during use().
    const features = (t: Tensor) => {
      const f = unitFeatures(t, axis, sortRows);
      return f.data === t.data ? { ...f, data: Float32Array.from(f.data) } : f;
    };
    const fa = a.use(tensor, features);
    const fb = b.use(tensor, features);
    if (fa.cols === 0) continue;
    const c = await engine.abt(fa.data, n, fb.data, n, fa.cols);
    for (let k = 0; k < c.length; k++) cost[k] += c[k];
  }
  return centreInPlace(cost, n);
}

/**
 * Initial permutations for weight matching (its `initPerms`): each chosen from features the other
 * permutations leave unchanged; head groups jointly, keeping heads whole.
 */
export async function sortedStart(spec: PermutationSpec, paramsA: Params, paramsB: Params, engine: MatmulEngine = jsMatmul): Promise<Record<string, Int32Array>> {
  return sortedStartFrom(spec, paramsSource(paramsA, 'model A'), paramsSource(paramsB, 'model B'), engine);
}

/** sortedStart over ParamSources (files read tensor by tensor). */
export async function sortedStartFrom(spec: PermutationSpec, sourceA: ParamSource, sourceB: ParamSource, engine: MatmulEngine = jsMatmul): Promise<Record<string, Int32Array>> {
  const sizes = permSizes(spec, shapeStubs(sourceA));
  const [a, b] = spec.segments === undefined ? [sourceA, sourceB] : [segmentedSource(spec.segments, sourceA), segmentedSource(spec.segments, sourceB)];
  const out: Record<string, Int32Array> = Object.create(null);
  const grouped = new Set<string>();
  for (const { count, perms } of Object.values(spec.heads ?? {})) {
    const members = [];
    for (const p of perms) members.push({ cost: await featureCost(spec, p, sizes[p], a, b, engine), n: sizes[p] });
    solveHeadGroup(members, count).perms.forEach((sigma, m) => (out[perms[m]] = sigma));
    for (const p of perms) grouped.add(p);
  }
  for (const p of Object.keys(spec.permToAxes)) {
    if (grouped.has(p)) continue;
    const n = sizes[p];
    out[p] = Int32Array.from(solveAssignment(await featureCost(spec, p, n, a, b, engine), n, n, { maximize: true }).rowToCol);
  }
  return out;
}

export interface CheckedMatchingResult extends WeightMatchingResult {
  /** Where the kept descent started: the identity, or the sorted start when that did better. */
  readonly start: 'identity' | 'sorted';
}

/**
 * Weight matching from the identity, checked against the sorted start: when the sorted start alone
 * already scores higher (Σ⟨A, P(B)⟩) than where descent from the identity settled, descent stalled in a
 * poor fixed point, so it is run again from the sorted start and the better result kept. On trained pairs
 * descent usually ends far above the sorted start, and the result is exactly the plain run's; when B is a
 * permutation of A it is found from any seed. Given `initPerms`, the caller chose the start: no check.
 */
export async function weightMatchingChecked(options: SourceMatchingOptions): Promise<CheckedMatchingResult> {
  const first = await weightMatchingFrom(options);
  if (options.initPerms !== undefined) return { ...first, start: 'identity' };
  const { spec, sourceA, sourceB } = options;
  const start = await sortedStartFrom(spec, sourceA, sourceB, options.engine);
  const settled = sourceObjective(spec, first.perms, sourceA, sourceB);
  const sorted = sourceObjective(spec, start, sourceA, sourceB);
  if (!(sorted > settled + 1e-9 * Math.max(1, Math.abs(settled)))) return { ...first, start: 'identity' };
  const second = await weightMatchingFrom({ ...options, initPerms: start });
  return second.objectiveAfter > first.objectiveAfter ? { ...second, start: 'sorted' } : { ...first, start: 'identity' };
}

/** weightMatchingChecked for params in memory. */
export async function weightMatchingCheckedInMemory(options: WeightMatchingOptions): Promise<CheckedMatchingResult> {
  const { paramsA, paramsB, ...rest } = options;
  return weightMatchingChecked({ ...rest, sourceA: paramsSource(paramsA, 'model A'), sourceB: paramsSource(paramsB, 'model B') });
}
