/**
 * The alignment report pipeline (the second seed's PermutationAlignReport, on real evaluation): align B
 * to A, sweep the straight line before and after alignment, run the three checks, give the verdict and
 * hint. It strings match/ and measure/ together; neither model's params are written to.
 */
import type { Params } from '../tensor.js';
import { InputError } from '../errors.js';
import { maxAbsDiff } from '../tensor.js';
import type { PermutationSpec } from '../permutation-spec/spec.js';
import { permSizes, validateSpec } from '../permutation-spec/spec.js';
import { applyPermutation, churn, isIdentity, type Perms } from '../permute.js';
import { randomSpecPerms } from '../permutation-spec/heads.js';
import { type WeightScore, type MatchProgress } from '../match/weight-matching.js';
import { weightMatchingCheckedInMemory } from '../match/sorted-start.js';
import { activationMatching, indistinctUnits, type ActivationScore, type LayerActivations } from '../match/activation-matching.js';
import type { MatmulEngine } from '../engine/matmul.js';
import { barrierOf, interpolate, reduction, sweep, type Barrier, type CurvePoint } from '../measure/barrier.js';
import type { BatchProgress, LabelledData, ModelRunner, ProbeBatch } from '../measure/runner.js';
import {
  invarianceCheck,
  monotonicityCheck,
  selfCheck,
  verdictOf,
  verdictRule,
  THRESHOLDS,
  type Check,
  type Verdict,
} from '../measure/checks.js';
import { reportHint, type Normalisation } from '../measure/advice.js';

export type AlignMethod = 'weight' | 'cosine' | 'activation';

export interface AlignmentReportOptions {
  a: Params;
  b: Params;
  spec: PermutationSpec;
  runner: ModelRunner;
  /** Data the loss and accuracy are measured on. */
  data: LabelledData;
  /** Probe batch for activation matching and the invariance check. */
  probe: ProbeBatch;
  method: AlignMethod;
  /** Steps K of the sweep: α = 0, 1/K, ..., 1, so K + 1 points; default 24 (25 points). */
  points?: number;
  seed?: number;
  /** Maximum passes of weight matching; default 100. */
  maxIter?: number;
  engine?: MatmulEngine;
  /** Label of the run, e.g. "RUN 1 - weight matching". */
  title?: string;
  /** Activation score for 'activation'; default pearson. */
  activationScore?: ActivationScore;
  /** What normalisation the model has (BatchNorm kept or folded): only for the hint. Default 'none'. */
  normalisation?: Normalisation;
  onStage?: (stage: string, done: number, total: number) => void;
}

export interface PermutationChurn {
  name: string;
  size: number;
  churn: number;
}

/** A aligned to itself by the report's own method (the align-to-self check's evidence). */
export interface SelfAlignment {
  /**
   * Names of the permutations that came out NOT the identity (empty when the check passes), leaving out
   * moves among units activation matching cannot tell apart (counted in `indistinct`).
   */
  nonIdentity: string[];
  /**
   * Activation matching: units moved only among units the probe cannot tell apart (no variance on any
   * probe example, e.g. dead ReLUs): any placement among them is equally good, so they do not fail the
   * check; the path to P(A) must still be flat. 0 for weight matching.
   */
  indistinct: number;
  /** A → P(A) at α = 0, 0.5, 1 (the midpoint is evaluated; the endpoints are A, or P(A) when it differs). */
  curve: CurvePoint[];
  barrier: Barrier;
}

/** The aligned path measured again with REPAIR (each interpolated net renormalised); see merge/repair-sweep.ts. */
export interface RepairedPath {
  /** The path repaired: 'aligned' (A to P(B)) in a report, or 'naive' for `barrier` without --align. */
  of: 'aligned' | 'naive';
  mode: string;
  curve: CurvePoint[];
  barrier: Barrier;
  /** Fraction of the path's loss barrier that REPAIR removes (1 = all); null when there was none. */
  reduction: number | null;
  /** The points nearest α = 0.5 without and with REPAIR (the merge the user would write). */
  midpoint: { alpha: number; without: { loss: number; accuracy: number }; with: { loss: number; accuracy: number } };
}

export interface AlignmentReport {
  title: string;
  method: AlignMethod;
  seed: number;
  /** Number of points of each sweep (K + 1). */
  points: number;
  dataCount: number;
  perms: Record<string, Int32Array>;
  churn: PermutationChurn[];
  matching: { iterations?: number; objectiveBefore?: number; objectiveAfter?: number; start?: 'identity' | 'sorted' };
  endpoints: { a: CurvePoint; b: CurvePoint };
  naive: { curve: CurvePoint[]; barrier: Barrier };
  aligned: { curve: CurvePoint[]; barrier: Barrier };
  /** Reduction of the paper's loss barrier as a fraction (1 = removed, negative = raised); null when there was none. */
  reduction: number | null;
  selfAlignment: SelfAlignment;
  checks: Check[];
  verdict: Verdict;
  verdictRule: string;
  thresholds: typeof THRESHOLDS;
  /** The aligned path with REPAIR, when it was measured (report --repair); else null. */
  repaired: RepairedPath | null;
  /** One line on what to try next when the result is poor, from the evidence above (see advice.ts); else null. */
  hint: string | null;
}

export async function alignmentReport(o: AlignmentReportOptions): Promise<AlignmentReport> {
  const seed = o.seed ?? 0;
  const points = o.points ?? 24;
  const stage = o.onStage ?? (() => {});
  validateSpec(o.spec, { label: 'model A', params: o.a }, { label: 'model B', params: o.b });
  if (o.data.count < 1) throw new InputError('there are no examples to measure the models on');
  if (o.probe.count < 1) throw new InputError('the probe batch is empty');

  stage('aligning', 0, 1);
  const { perms, matching } = await matchPerms({ ...o, seed });
  stage('aligning', 1, 1);
  const alignedB = applyPermutation(o.spec, perms, o.b);

  const evaluate = (params: Params) => o.runner.evaluate(params, o.data);
  const evaluateWithProgress = (params: Params, _alpha: number, onBatch?: BatchProgress) => o.runner.evaluate(params, o.data, onBatch);
  const naiveCurve = await sweep(o.a, o.b, points, evaluateWithProgress, (i, n) => stage('sweep before alignment', i, n));
  // A is the same object on both paths, so its evaluation is reused; P(B) is evaluated afresh (it equals B
  // only in exact arithmetic), unless every permutation is the identity and P(B) holds B's very values.
  const endB = naiveCurve[naiveCurve.length - 1];
  const known = { a: naiveCurve[0], b: Object.values(perms).every(isIdentity) ? endB : undefined };
  const alignedCurve = await sweep(o.a, alignedB, points, evaluateWithProgress, (i, n) => stage('sweep after alignment', i, n), known);
  const naive = barrierOf(naiveCurve);
  const aligned = barrierOf(alignedCurve);

  // Check 1: a random permutation of B computes B's function (the identity everything rests on).
  const randomB = applyPermutation(o.spec, randomSpecPerms(o.spec, permSizes(o.spec, o.b), seed + 1), o.b);
  const drift = maxAbsDiff(await o.runner.outputs(o.b, o.probe), await o.runner.outputs(randomB, o.probe));

  // Check 2: the same matcher on (A, A) must find the identity, and the path to that P(A) must be flat.
  stage('aligning A to itself', 0, 1);
  const selfAlignment = await alignToSelf(o, seed, naiveCurve[0], evaluate);
  stage('aligning A to itself', 1, 1);

  const checks = [
    invarianceCheck(drift),
    selfCheck(selfAlignment.nonIdentity, selfAlignment.barrier.loss, selfAlignment.indistinct),
    monotonicityCheck(naive.loss, aligned.loss),
  ];
  const verdict = verdictOf(naive.loss, aligned.loss);
  const churnList = churnOf(perms);

  return {
    title: o.title ?? `${o.method} matching`,
    method: o.method,
    seed,
    points: points + 1,
    dataCount: o.data.count,
    perms,
    churn: churnList,
    matching,
    endpoints: { a: naiveCurve[0], b: naiveCurve[naiveCurve.length - 1] },
    naive: { curve: naiveCurve, barrier: naive },
    aligned: { curve: alignedCurve, barrier: aligned },
    reduction: reduction(naive.loss, aligned.loss),
    selfAlignment,
    checks,
    verdict,
    verdictRule: verdictRule(),
    thresholds: THRESHOLDS,
    repaired: null,
    hint: reportHint({
      method: o.method,
      verdict,
      normalisation: o.normalisation ?? 'none',
      narrowestWidth: narrowest(churnList),
      repaired: null,
      attention: o.spec.heads !== undefined,
    }),
  };
}

/** Churn of every permutation, in the spec's order: the one shape JSON output uses everywhere. */
export function churnOf(perms: Record<string, Int32Array>): PermutationChurn[] {
  return Object.entries(perms).map(([name, p]) => ({ name, size: p.length, churn: churn(p) }));
}

/** The smallest permuted width (null when nothing is permuted). */
export function narrowest(churnList: readonly PermutationChurn[]): number | null {
  return churnList.length === 0 ? null : Math.min(...churnList.map((c) => c.size));
}

/**
 * A aligned to A by the report's own method. With identity permutations P(A) is A, so the path costs one
 * evaluation (its midpoint, which rounding alone may move off A); otherwise P(A) is evaluated too.
 */
async function alignToSelf(
  o: AlignmentReportOptions,
  seed: number,
  atA: CurvePoint,
  evaluate: (params: Params) => Promise<{ loss: number; accuracy: number }>,
): Promise<SelfAlignment> {
  const { perms } = await matchPerms({ ...o, b: o.a, seed });
  const moved = Object.entries(perms).filter(([, p]) => !isIdentity(p));
  let nonIdentity = moved.map(([name]) => name);
  let indistinct = 0;
  if (o.method === 'activation' && moved.length > 0 && o.runner.activations) {
    const acts = await o.runner.activations(o.a, o.probe);
    nonIdentity = [];
    for (const [name, p] of moved) {
      const u = acts[name];
      const free = indistinctUnits(u.data, u.rows ?? o.probe.count, u.width, o.activationScore);
      const units = Array.from(p.keys()).filter((i) => p[i] !== i);
      if (units.every((i) => free[i] && free[p[i]])) indistinct += units.length;
      else nonIdentity.push(name);
    }
  }
  const selfA = moved.length === 0 ? o.a : applyPermutation(o.spec, perms, o.a);
  const mid = await evaluate(interpolate(o.a, selfA, 0.5));
  const end = selfA === o.a ? atA : { alpha: 1, ...(await evaluate(selfA)) };
  const curve = [atA, { alpha: 0.5, loss: mid.loss, accuracy: mid.accuracy }, { alpha: 1, loss: end.loss, accuracy: end.accuracy }];
  return { nonIdentity, indistinct, curve, barrier: barrierOf(curve) };
}

export interface MatchPermsOptions {
  method: AlignMethod;
  a: Params;
  b: Params;
  spec: PermutationSpec;
  seed: number;
  maxIter?: number;
  engine?: MatmulEngine;
  /** For 'activation': the runner that gives each permutation's activations, and the probe batch. */
  runner?: ModelRunner;
  probe?: ProbeBatch;
  activationScore?: ActivationScore;
  onProgress?: (event: MatchProgress) => void;
}

/** The permutations that align B to A by the chosen method (one place for every caller: report, CLI). */
export async function matchPerms(o: MatchPermsOptions): Promise<{ perms: Record<string, Int32Array>; matching: AlignmentReport['matching'] }> {
  if (o.method === 'activation') {
    if (!o.runner?.activations || !o.probe) throw new InputError('activation matching needs a model that can report activations, and probe data');
    const count = o.probe.count;
    const [actA, actB] = [await o.runner.activations(o.a, o.probe), await o.runner.activations(o.b, o.probe)];
    const layers: Record<string, LayerActivations> = Object.create(null);
    for (const name of Object.keys(o.spec.permToAxes)) {
      const a = actA[name];
      const b = actB[name];
      if (!a || !b) throw new InputError(`activation matching: the model gives no activations for permutation '${name}'`);
      const rows = a.rows ?? count;
      if ((b.rows ?? count) !== rows || b.width !== a.width) throw new InputError(`activations of '${name}' differ in shape between the models`);
      layers[name] = { a: a.data, b: b.data, count: rows, width: a.width };
    }
    const r = await activationMatching(layers, { score: o.activationScore, engine: o.engine, heads: o.spec.heads });
    return { perms: r.perms, matching: {} };
  }
  const score: WeightScore = o.method === 'cosine' ? 'cosine' : 'dot';
  const r = await weightMatchingCheckedInMemory({
    spec: o.spec,
    paramsA: o.a,
    paramsB: o.b,
    seed: o.seed,
    score,
    engine: o.engine,
    maxIter: o.maxIter,
    onProgress: o.onProgress,
  });
  return {
    perms: r.perms,
    matching: { iterations: r.iterations, objectiveBefore: r.objectiveBefore, objectiveAfter: r.objectiveAfter, start: r.start },
  };
}

/** Every number of the report as plain JSON (permutations as arrays); schema/report.json describes it. */
export function reportToJson(r: AlignmentReport): unknown {
  return { ...r, perms: permsToJson(r.perms) };
}

export function permsToJson(perms: Record<string, Int32Array>): Record<string, number[]> {
  return Object.fromEntries(Object.entries(perms).map(([k, v]) => [k, Array.from(v)]));
}

export type { Perms };
