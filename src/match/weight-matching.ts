/**
 * Weight matching (Ainsworth et al., Algorithm 1): coordinate descent over permutations. Each step fixes
 * every permutation but one, p, and solves one linear assignment for p exactly:
 *
 *   C = Σ over (tensor, axis) of p:  A[tensor]ₐₓᵢₛ · (B[tensor] with every OTHER permutation applied)ₐₓᵢₛᵀ
 *   p ← argmax_P trace(C · Pᵀ)   i.e.  maximise Σᵢ C[i, p[i]]
 *
 * where Xₐₓᵢₛ is X moved axis-first and flattened to n × (size/n). Passes visit the permutations in an
 * order drawn from the seed; a step keeps the current permutation unless the new one improves its
 * objective by more than the tolerance, and the run stops after a pass with no change (or maxIter passes).
 *
 * Where a cost matrix comes from (a fresh product, a kept one brought up to date, tensors streamed from
 * files) is cost-source.ts's business; this file is the algorithm. Two things beside it never change the
 * path: a step whose matrix cannot have changed since it was last solved is skipped, and each assignment
 * starts from the same permutation's previous duals (`warmStart`). A head group (permutation-spec/heads.ts) is one
 * step: its permutations are chosen together (head-assignment.ts).
 */
import type { Params } from '../tensor.js';
import type { PermutationSpec } from '../permutation-spec/spec.js';
import { permNames, permSizes, validateSpec } from '../permutation-spec/spec.js';
import type { Perms } from '../permute.js';
import { identityPerms, isPermutation } from '../permute.js';
import { createRng, shuffledRange } from '../random.js';
import { solveAssignment, type WarmStart } from './lap.js';
import { solveHeadGroup, type HeadGroupCost } from './head-assignment.js';
import { checkHeadPerms, headGroupOf } from '../permutation-spec/heads.js';
import type { MatmulEngine } from '../engine/matmul.js';
import { jsMatmul } from '../engine/matmul.js';
import { InputError } from '../errors.js';
import { paramsSource, shapeStubs, type ParamSource } from './param-source.js';
import { segmentedSource } from '../permutation-spec/segments.js';
import { openCostSource, sourceObjective as unsegmentedObjective, type CostSource } from './cost-source.js';

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
   * either way, and much faster over many passes (BENCHMARKS.md). Where
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
  /** A step counts as progress when it improves its linear objective by more than tol · max(1, |objective|). */
  tol?: number;
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
export function sourceObjective(spec: PermutationSpec, perms: Perms, sourceA: ParamSource, sourceB: ParamSource): number {
  if (spec.segments !== undefined) {
    const split = splitForMatching(spec, sourceA, sourceB);
    return unsegmentedObjective(split.spec, perms, split.sourceA, split.sourceB);
  }
  return unsegmentedObjective(spec, perms, sourceA, sourceB);
}

/** The spec without segments over sources whose fused tensors appear as their parts (checked first as stored). */
function splitForMatching(spec: PermutationSpec, sourceA: ParamSource, sourceB: ParamSource): { spec: PermutationSpec; sourceA: ParamSource; sourceB: ParamSource } {
  const { segments, ...partSpec } = spec;
  validateSpec(spec, { label: sourceA.label, params: shapeStubs(sourceA) }, { label: sourceB.label, params: shapeStubs(sourceB) });
  return { spec: partSpec, sourceA: segmentedSource(segments!, sourceA), sourceB: segmentedSource(segments!, sourceB) };
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
  // Fused tensors (spec.segments) are matched as their parts: the loop below sees ordinary tensors.
  if (options.spec.segments !== undefined) return weightMatchingFrom({ ...options, ...splitForMatching(options.spec, options.sourceA, options.sourceB) });
  const { spec, sourceA, sourceB } = options;
  const shapesA = shapeStubs(sourceA);
  validateSpec(spec, { label: 'model A', params: shapesA }, { label: 'model B', params: shapeStubs(sourceB) });
  const sizes = permSizes(spec, shapesA);
  const perms = initialPerms(spec, sizes, options.initPerms);

  const bothResident = sourceA.resident === true && sourceB.resident === true;
  const lowMemory = options.lowMemory ?? !bothResident;
  const costs = openCostSource(spec, sizes, sourceA, sourceB, {
    engine: options.engine ?? jsMatmul,
    score: options.score ?? 'dot',
    incremental: options.incremental ?? (!options.plain && !lowMemory),
    lowMemory,
  });
  try {
    return await coordinateDescent(spec, sizes, perms, costs, options);
  } finally {
    costs.close();
  }
}

/** Identity, or the caller's starting permutations (copied, checked). */
function initialPerms(spec: PermutationSpec, sizes: Record<string, number>, init: Perms | undefined): Record<string, Int32Array> {
  const perms: Record<string, Int32Array> = identityPerms(sizes);
  if (init === undefined) return perms;
  for (const [p, given] of Object.entries(init)) {
    if (!Object.hasOwn(sizes, p)) throw new InputError(`initial permutation '${p}' is not in the spec`);
    if (given.length !== sizes[p] || !isPermutation(given)) {
      throw new InputError(`initial permutation '${p}' is not a permutation of 0..${sizes[p] - 1}`);
    }
    perms[p] = Int32Array.from(given);
  }
  checkHeadPerms(spec, perms, 'initial permutations');
  return perms;
}

/** What one step proposes: the permutations of its members and the linear objectives now and then. */
interface Proposal {
  readonly perms: readonly Int32Array[];
  readonly current: number;
  readonly objective: number;
  readonly updated: boolean;
}

/** Algorithm 1: passes in seeded order, one exact assignment per step, until a pass changes nothing. */
async function coordinateDescent(
  spec: PermutationSpec,
  sizes: Record<string, number>,
  perms: Record<string, Int32Array>,
  costs: CostSource,
  options: SourceMatchingOptions,
): Promise<WeightMatchingResult> {
  const names = permNames(spec);
  const maxIter = options.maxIter ?? 100;
  const tol = options.tol ?? 1e-12;
  const useWarmStarts = !options.plain && options.warmStart !== false;
  const steps = stepsOf(spec, names);
  const stale = new StaleSteps(options.plain === true);
  const warm = new Map<string, WarmStart>();

  /** One assignment for p on its cost matrix, warm-started from p's previous one. */
  const solveOne = async (p: string): Promise<Proposal> => {
    const n = sizes[p];
    const { cost, updated } = await costs.matrix(p, perms);
    const current = addAssigned(0, cost, n, perms[p]);
    const solved = solveAssignment(cost, n, n, { maximize: true, warmStart: useWarmStarts ? warm.get(p) : undefined });
    warm.set(p, { colPotential: solved.colPotential, rowPotential: solved.rowPotential, rowToCol: solved.rowToCol });
    return { perms: [Int32Array.from(solved.rowToCol)], current, objective: solved.objective, updated };
  };
  /** A head group's permutations share their head order: chosen together, on all their cost matrices. */
  const solveGroup = async (members: readonly string[], heads: number): Promise<Proposal> => {
    const matrices: HeadGroupCost[] = [];
    let current = 0;
    for (const m of members) {
      const n = sizes[m];
      // A copy: the source may hand the next member's matrix out in the same memory.
      const cost = Float64Array.from((await costs.matrix(m, perms)).cost);
      current = addAssigned(current, cost, n, perms[m]);
      matrices.push({ cost, n });
    }
    const solved = solveHeadGroup(matrices, heads);
    return { perms: solved.perms, current, objective: solved.objective, updated: false };
  };

  const objectiveBefore = costs.objective(perms);
  const rng = createRng(options.seed ?? 0);
  const history: PassRecord[] = [];
  let objective = objectiveBefore;
  let converged = false;
  let iterations = 0;
  for (let pass = 0; pass < maxIter; pass++) {
    iterations = pass + 1;
    const order = Array.from(shuffledRange(names.length, rng), (i) => names[i]);
    let changed = 0;
    let passGain = 0;
    for (let step = 0; step < order.length; step++) {
      const p = order[step];
      const { members, reads, heads } = steps[p];
      const event = { pass, step, stepsPerPass: order.length, perm: p };
      if (!stale.begin(p, members, reads)) {
        options.onProgress?.({ ...event, gain: 0, reused: true, updated: false });
        continue;
      }
      const proposal = heads === null ? await solveOne(p) : await solveGroup(members, heads);
      const gain = proposal.objective - proposal.current;
      if (gain > tol * Math.max(1, Math.abs(proposal.current))) {
        members.forEach((m, k) => (perms[m] = proposal.perms[k]));
        stale.changed(members);
        changed++;
        passGain += gain;
      }
      options.onProgress?.({ ...event, gain, reused: false, updated: proposal.updated });
    }
    // With the dot score a step changes Σ⟨A, P(B)⟩ by exactly its gain, so the sum is tracked.
    objective += passGain;
    history.push({
      pass,
      objective: (options.score ?? 'dot') === 'dot' ? objective : costs.objective(perms),
      changed,
      gain: passGain,
      order,
    });
    if (changed === 0) {
      converged = true;
      break;
    }
  }
  return { perms, iterations, converged, objectiveBefore, objectiveAfter: costs.objective(perms), history };
}

/** total + Σᵢ cost[i, perm[i]], added one entry at a time. */
function addAssigned(total: number, cost: Float64Array, n: number, perm: Int32Array): number {
  for (let i = 0; i < n; i++) total += cost[i * n + perm[i]];
  return total;
}

interface Step {
  /** The permutations the step chooses: p, or p's head group. */
  readonly members: readonly string[];
  /** The other permutations its cost matrices depend on (those sharing a tensor with a member). */
  readonly reads: readonly string[];
  /** Heads of its group, or null for a single permutation. */
  readonly heads: number | null;
}

function stepsOf(spec: PermutationSpec, names: readonly string[]): Record<string, Step> {
  const neighbours: Record<string, string[]> = Object.create(null);
  for (const p of names) {
    const set = new Set<string>();
    for (const { tensor } of spec.permToAxes[p]) {
      for (const q of spec.axesToPerm[tensor]) if (q !== null && q !== p) set.add(q);
    }
    neighbours[p] = [...set];
  }
  const out: Record<string, Step> = Object.create(null);
  for (const p of names) {
    const group = headGroupOf(spec, p);
    const members = group?.perms ?? [p];
    const reads = members.flatMap((m) => neighbours[m]).filter((q) => !members.includes(q));
    out[p] = { members, reads, heads: group?.count ?? null };
  }
  return out;
}

/**
 * A step's cost matrices depend only on the permutations it reads. When none of them changed since the
 * step was last solved, its matrices are the same and its permutations already optimal for them: the step
 * is skipped, which never changes the path (tested, ties included). `plain` runs every step.
 */
class StaleSteps {
  private clock = 0;
  private readonly solvedAt = new Map<string, number>();
  private readonly changedAt = new Map<string, number>();
  constructor(private readonly plain: boolean) {}
  /** Starts the step visiting p; false when it can be skipped. */
  begin(p: string, members: readonly string[], reads: readonly string[]): boolean {
    this.clock++;
    const last = this.solvedAt.get(p);
    if (!this.plain && last !== undefined && reads.every((q) => (this.changedAt.get(q) ?? -1) < last)) return false;
    for (const m of members) this.solvedAt.set(m, this.clock);
    return true;
  }
  /** The step just begun changed these permutations. */
  changed(members: readonly string[]): void {
    for (const m of members) this.changedAt.set(m, this.clock);
  }
}
