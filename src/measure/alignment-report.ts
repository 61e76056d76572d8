/**
 * The alignment report (the second seed's PermutationAlignReport, on real evaluation): align B to A,
 * sweep the straight line before and after alignment, and run the three checks. A measurement only:
 * neither model's params are written to.
 */
import type { Params } from '../tensor.js';
import { InputError } from '../errors.js';
import { maxAbsDiff } from '../tensor.js';
import type { PermutationSpec } from '../spec/spec.js';
import { permSizes, validateSpec } from '../spec/spec.js';
import { applyPermutation, churn, isIdentity, randomPerms, type Perms } from '../permute.js';
import { weightMatching, type WeightScore, type MatchProgress } from '../match/weight-matching.js';
import { activationMatching, type ActivationScore, type LayerActivations } from '../match/activation-matching.js';
import type { MatmulEngine } from '../engine/matmul.js';
import { barrierOf, reductionPercent, sweep, type Barrier, type CurvePoint } from './barrier.js';
import type { LabelledData, ModelRunner, ProbeBatch } from './runner.js';
import {
  invarianceCheck,
  monotonicityCheck,
  selfCheck,
  verdictOf,
  verdictRule,
  THRESHOLDS,
  type Check,
  type Verdict,
} from './checks.js';

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
  /** Interior steps K of the sweep (K + 1 points); default 24 (25 points). */
  points?: number;
  seed?: number;
  /** Maximum passes of weight matching; default 100. */
  maxIter?: number;
  engine?: MatmulEngine;
  /** Label of the run, e.g. "RUN 1 - weight matching". */
  title?: string;
  /** Activation score for 'activation'; default pearson. */
  activationScore?: ActivationScore;
  /** True when B is A (the align-to-self run); enables the self check. */
  selfRun?: boolean;
  onStage?: (stage: string, done: number, total: number) => void;
}

export interface PermutationChurn {
  name: string;
  size: number;
  churn: number;
}

export interface AlignmentReport {
  title: string;
  method: AlignMethod;
  seed: number;
  points: number;
  dataCount: number;
  perms: Record<string, Int32Array>;
  churn: PermutationChurn[];
  matching: { iterations?: number; objectiveBefore?: number; objectiveAfter?: number };
  endpoints: { a: CurvePoint; b: CurvePoint };
  naive: { curve: CurvePoint[]; barrier: Barrier };
  aligned: { curve: CurvePoint[]; barrier: Barrier };
  /** Reduction of the paper's loss barrier, in %; null when there was none. */
  reductionPercent: number | null;
  checks: Check[];
  verdict: Verdict;
  verdictRule: string;
  thresholds: typeof THRESHOLDS;
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
  const naiveCurve = await sweep(o.a, o.b, points, evaluate, (i, n) => stage('sweep before alignment', i, n));
  const alignedCurve = await sweep(o.a, alignedB, points, evaluate, (i, n) => stage('sweep after alignment', i, n));
  const naive = barrierOf(naiveCurve);
  const aligned = barrierOf(alignedCurve);

  // Check 1: a random permutation of B computes B's function (the identity everything rests on).
  const randomB = applyPermutation(o.spec, randomPerms(permSizes(o.spec, o.b), seed + 1), o.b);
  const drift = maxAbsDiff(await o.runner.outputs(o.b, o.probe), await o.runner.outputs(randomB, o.probe));
  const allIdentity = Object.values(perms).every(isIdentity);

  const checks = [
    invarianceCheck(drift),
    selfCheck(o.selfRun === true, allIdentity, aligned.loss),
    monotonicityCheck(naive.loss, aligned.loss),
  ];

  return {
    title: o.title ?? `${o.method} matching`,
    method: o.method,
    seed,
    points,
    dataCount: o.data.count,
    perms,
    churn: Object.entries(perms).map(([name, p]) => ({ name, size: p.length, churn: churn(p) })),
    matching,
    endpoints: { a: naiveCurve[0], b: naiveCurve[naiveCurve.length - 1] },
    naive: { curve: naiveCurve, barrier: naive },
    aligned: { curve: alignedCurve, barrier: aligned },
    reductionPercent: reductionPercent(naive.loss, aligned.loss),
    checks,
    verdict: verdictOf(naive.loss, aligned.loss),
    verdictRule: verdictRule(),
    thresholds: THRESHOLDS,
  };
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
    const r = await activationMatching(layers, { score: o.activationScore, engine: o.engine });
    return { perms: r.perms, matching: {} };
  }
  const score: WeightScore = o.method === 'cosine' ? 'cosine' : 'dot';
  const r = await weightMatching({
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
    matching: { iterations: r.iterations, objectiveBefore: r.objectiveBefore, objectiveAfter: r.objectiveAfter },
  };
}

/** Every number of the report as plain JSON (permutations as arrays). */
export function reportToJson(r: AlignmentReport): unknown {
  return { ...r, perms: Object.fromEntries(Object.entries(r.perms).map(([k, v]) => [k, Array.from(v)])) };
}

export type { Perms };
