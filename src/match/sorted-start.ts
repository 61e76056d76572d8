/**
 * A starting point for weight matching that does not depend on the other permutations being right.
 *
 * Coordinate descent from the identity solves each permutation with its neighbours still wrong; on deep
 * models with many tied axes (transformers: one residual permutation touches every block) it can settle in
 * a poor fixed point even when B is an exact permutation of A. Here the permutations are chosen one at a
 * time, each from features that no permutation still to be chosen can change: a unit's rows of the
 * tensors (the unit's axis first, the rest flattened) whose other permuted axes are all chosen already
 * (B's rows gathered by those choices); when it has none, its rows of every tensor, sorted — sorting
 * forgets the order that the other permutations would impose. The cost of sending A's unit i to B's unit
 * j is the sum over those tensors of ⟨features_A(i), features_B(j)⟩. The permutations whose rows need the
 * least sorting go first: in a transformer the residual stream (its embeddings and LayerNorms are permuted
 * on that axis alone), then every block's heads and MLP from rows gathered by it. Sorted rows are used
 * only when nothing else is at hand: sorting costs more than the product, and sorted rows are nearly
 * proportional to one profile, which makes a cost close to rank one and slow to solve.
 *
 * When B = P(A) exactly and the permutations chosen so far are P's, each unit's features in B equal its
 * twin's in A, and (by the rearrangement and Cauchy–Schwarz inequalities) the assignment that pairs equal
 * features scores strictly highest unless two units of A have equal features: so, step by step, the
 * planted P is found, whatever the visiting order of descent. On independently trained models it is only
 * a start; descent goes on from it.
 */
import type { PermutationSpec } from '../permutation-spec/spec.js';
import { permSizes } from '../permutation-spec/spec.js';
import { segmentedSource } from '../permutation-spec/segments.js';
import type { Params, Tensor } from '../tensor.js';
import { axisFirstMatrix, sizeOf, take } from '../tensor.js';
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

/** The other permuted axes of a term's tensor, and whether every one of them is chosen already. */
function otherAxes(spec: PermutationSpec, tensor: string, axis: number, chosen: Readonly<Record<string, Int32Array>>): { axes: { axis: number; perm: string }[]; known: boolean } {
  const axes: { axis: number; perm: string }[] = [];
  spec.axesToPerm[tensor].forEach((q, d) => {
    if (q !== null && d !== axis) axes.push({ axis: d, perm: q });
  });
  return { axes, known: axes.every(({ perm }) => Object.hasOwn(chosen, perm)) };
}

/**
 * Per permutation, the n×n cost (float64, row-major) of sending A's unit i to B's unit j: over its terms
 * whose other permuted axes are all chosen, the product of the units' rows (B's gathered by those
 * choices); when it has no such term, over all its terms with both sides' rows sorted.
 */
async function featureCost(spec: PermutationSpec, p: string, n: number, a: ParamSource, b: ParamSource, engine: MatmulEngine, chosen: Readonly<Record<string, Int32Array>>): Promise<Float64Array> {
  const cost = new Float64Array(n * n);
  const terms = spec.permToAxes[p].map((t) => ({ ...t, ...otherAxes(spec, t.tensor, t.axis, chosen) }));
  // Rows that must be sorted are only used when nothing better is at hand: sorting them costs more than
  // the product, and their near rank-one cost is slow to solve.
  const anyKnown = terms.some((t) => t.known);
  // Terms are laid side by side and multiplied together, up to a bounded width (at least the widest
  // term's, so memory stays near what one term needs): one product and one float64 pass per batch
  // rather than per term (a bias is one column, yet its own product would be a full n × n).
  const used = terms.filter((t) => !anyKnown || t.known);
  const colsOf = (tensor: string) => sizeOf(a.shape(tensor)) / n;
  const cap = Math.max(Math.floor(2 ** 23 / n), ...used.map((t) => colsOf(t.tensor)));
  let batch: { fa: Float32Array; fb: Float32Array; cols: number }[] = [];
  let width = 0;
  const flush = async () => {
    if (width === 0) return;
    const [fa, fb] = [sideBySide(batch.map((f) => ({ data: f.fa, cols: f.cols })), n, width), sideBySide(batch.map((f) => ({ data: f.fb, cols: f.cols })), n, width)];
    const c = await engine.abt(fa, n, fb, n, width);
    for (let k = 0; k < c.length; k++) cost[k] += c[k];
    batch = [];
    width = 0;
  };
  for (const { tensor, axis, axes, known } of used) {
    const sortRows = !known;
    // Copies: a file source's tensor is only valid during use().
    const features = (t: Tensor) => {
      const f = unitFeatures(t, axis, sortRows);
      return f.data === t.data ? { ...f, data: Float32Array.from(f.data) } : f;
    };
    const gathered = (t: Tensor) => features(axes.reduce((x, { axis: d, perm }) => take(x, chosen[perm], d), t));
    const fa = a.use(tensor, features);
    const fb = b.use(tensor, sortRows ? features : gathered);
    if (fa.cols === 0) continue;
    if (width + fa.cols > cap) await flush();
    batch.push({ fa: fa.data, fb: fb.data, cols: fa.cols });
    width += fa.cols;
  }
  await flush();
  return centreInPlace(cost, n);
}

/** n-row matrices laid side by side into one n × width matrix (row-major); one alone is returned as is. */
function sideBySide(parts: readonly { data: Float32Array; cols: number }[], n: number, width: number): Float32Array {
  if (parts.length === 1) return parts[0].data;
  const out = new Float32Array(n * width);
  for (let r = 0; r < n; r++) {
    let at = r * width;
    for (const { data, cols } of parts) {
      out.set(data.subarray(r * cols, (r + 1) * cols), at);
      at += cols;
    }
  }
  return out;
}

/**
 * Which permutation (or head group) to choose next: the one whose features the chosen ones determine
 * most, counted in feature columns (rows that need no sorting), the spec's order breaking ties.
 */
function nextToChoose(spec: PermutationSpec, units: readonly string[][], sizes: Readonly<Record<string, number>>, shapes: Params, chosen: Readonly<Record<string, Int32Array>>): number {
  let best = -1;
  let bestShare = -1;
  units.forEach((perms, u) => {
    if (perms.every((p) => Object.hasOwn(chosen, p))) return;
    let known = 0;
    let all = 0;
    for (const p of perms) {
      for (const { tensor, axis } of spec.permToAxes[p]) {
        const cols = sizeOf(shapes[tensor].shape) / sizes[p];
        all += cols;
        if (otherAxes(spec, tensor, axis, chosen).known) known += cols;
      }
    }
    const share = all === 0 ? 0 : known / all;
    if (share > bestShare) {
      best = u;
      bestShare = share;
    }
  });
  return best;
}

/**
 * Initial permutations for weight matching (its `initPerms`), chosen one at a time (head groups jointly,
 * keeping heads whole): each from its units' rows, used as they are where the tensor's other permuted
 * axes are chosen already (B's rows gathered by them) and sorted where they are not, so that no feature
 * depends on a permutation not yet chosen. The first chosen are those whose rows need the least sorting
 * (a transformer's residual stream, fixed by its embeddings; an MLP's first layer).
 */
export async function sortedStart(spec: PermutationSpec, paramsA: Params, paramsB: Params, engine: MatmulEngine = jsMatmul): Promise<Record<string, Int32Array>> {
  return sortedStartFrom(spec, paramsSource(paramsA, 'model A'), paramsSource(paramsB, 'model B'), engine);
}

/** sortedStart over ParamSources (files read tensor by tensor). */
export async function sortedStartFrom(spec: PermutationSpec, sourceA: ParamSource, sourceB: ParamSource, engine: MatmulEngine = jsMatmul): Promise<Record<string, Int32Array>> {
  const sizes = permSizes(spec, shapeStubs(sourceA));
  const [a, b] = spec.segments === undefined ? [sourceA, sourceB] : [segmentedSource(spec.segments, sourceA), segmentedSource(spec.segments, sourceB)];
  const shapes = shapeStubs(a);
  const chosen: Record<string, Int32Array> = Object.create(null);
  const grouped = new Set(Object.values(spec.heads ?? {}).flatMap((g) => g.perms));
  const units: string[][] = [...Object.values(spec.heads ?? {}).map((g) => [...g.perms]), ...Object.keys(spec.permToAxes).filter((p) => !grouped.has(p)).map((p) => [p])];
  const headCount = new Map(Object.values(spec.heads ?? {}).map((g) => [g.perms[0], g.count]));
  for (let u = nextToChoose(spec, units, sizes, shapes, chosen); u >= 0; u = nextToChoose(spec, units, sizes, shapes, chosen)) {
    const perms = units[u];
    const count = headCount.get(perms[0]);
    if (count !== undefined) {
      const members = [];
      for (const p of perms) members.push({ cost: await featureCost(spec, p, sizes[p], a, b, engine, chosen), n: sizes[p] });
      solveHeadGroup(members, count).perms.forEach((sigma, m) => (chosen[perms[m]] = sigma));
    } else {
      const [p] = perms;
      const n = sizes[p];
      chosen[p] = Int32Array.from(solveAssignment(await featureCost(spec, p, n, a, b, engine, chosen), n, n, { maximize: true }).rowToCol);
    }
  }
  const out: Record<string, Int32Array> = Object.create(null);
  for (const p of Object.keys(spec.permToAxes)) out[p] = chosen[p];
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
  // Reported from where matching began (the identity), whichever descent is kept.
  return second.objectiveAfter > first.objectiveAfter ? { ...second, objectiveBefore: first.objectiveBefore, start: 'sorted' } : { ...first, start: 'identity' };
}

/** weightMatchingChecked for params in memory. */
export async function weightMatchingCheckedInMemory(options: WeightMatchingOptions): Promise<CheckedMatchingResult> {
  const { paramsA, paramsB, ...rest } = options;
  return weightMatchingChecked({ ...rest, sourceA: paramsSource(paramsA, 'model A'), sourceB: paramsSource(paramsB, 'model B') });
}
