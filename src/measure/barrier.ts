/**
 * Linear interpolation between two models and the loss barrier along the path.
 *   θ(α) = (1 − α)·A + α·B   for α = i/K, i = 0..K   (B already aligned, or not, by the caller)
 * Two barrier definitions are reported, named:
 *   - paper (Ainsworth et al., Frankle et al.): max over α of [ L(θ(α)) − ((1 − α)·L(A) + α·L(B)) ]
 *   - endpoint-max (the second seed's report): max over α of L(θ(α)) − max(L(A), L(B)), clamped at ≥ 0
 * The accuracy barrier is the paper's, for accuracy: max over α of [ ((1 − α)·acc(A) + α·acc(B)) − acc(θ(α)) ].
 */
import type { Params, Tensor } from '../tensor.js';
import { lerp } from '../tensor.js';
import { InputError } from '../errors.js';
import { THRESHOLDS } from './checks.js';
import type { BatchProgress, Evaluation } from '../engine/runner.js';

// Defined with the runner contract (engine/runner.ts), which returns it.
export type { Evaluation } from '../engine/runner.js';

export interface CurvePoint extends Evaluation {
  alpha: number;
}

export interface Barrier {
  /** The paper's barrier (loss above the straight line between the endpoints' losses). */
  loss: number;
  /** max L(α) − max(L(0), L(1)), clamped at 0 (the second seed's definition). */
  lossOverEndpoints: number;
  /** Accuracy below the straight line between the endpoints' accuracies (fraction, not %). */
  accuracy: number;
  /** α at which the paper's loss barrier is attained. */
  argmaxAlpha: number;
}

export function alphaGrid(points: number): number[] {
  if (!Number.isInteger(points) || points < 1) throw new Error(`alphaGrid: K must be an integer ≥ 1, got ${points}`);
  return Array.from({ length: points + 1 }, (_, i) => i / points);
}

/** θ(α): every tensor interpolated; tensors are matched by name. */
export function interpolate(a: Params, b: Params, alpha: number): Record<string, Tensor> {
  const out: Record<string, Tensor> = Object.create(null);
  for (const [name, t] of Object.entries(a)) out[name] = lerp(t, b[name], alpha);
  return out;
}

/** Evaluations already made of a path's endpoints (the same param objects): the sweep does not redo them. */
export interface KnownEndpoints {
  /** L and accuracy of `a` itself (α = 0). */
  a?: Evaluation;
  /** L and accuracy of `b` itself (α = 1). */
  b?: Evaluation;
}

/**
 * The curve L(θ(α)) for α = 0, 1/K, ..., 1. `onProgress` hears of progress in passes over the data
 * (`done` of `total`, fractional within a pass when `evaluate` reports its batches); endpoints given in
 * `known` are taken as they are and are not passes.
 */
export async function sweep(
  a: Params,
  b: Params,
  points: number,
  evaluate: (params: Params, alpha: number, onBatch?: BatchProgress) => Promise<Evaluation>,
  onProgress?: (done: number, total: number) => void,
  known: KnownEndpoints = {},
): Promise<CurvePoint[]> {
  const curve: CurvePoint[] = [];
  const grid = alphaGrid(points);
  const given = (alpha: number): Evaluation | undefined => (alpha === 0 ? known.a : alpha === 1 ? known.b : undefined);
  const passes = grid.filter((alpha) => given(alpha) === undefined).length;
  let done = 0;
  for (const alpha of grid) {
    let e = given(alpha);
    if (e === undefined) {
      // The endpoints are evaluated on the exact inputs, not on a lerp that only rounds to them.
      const params = alpha === 0 ? a : alpha === 1 ? b : interpolate(a, b, alpha);
      const pass = done;
      e = await evaluate(params, alpha, (n, total) => onProgress?.(pass + (total > 0 ? Math.min(1, n / total) : 0), passes));
      done++;
      onProgress?.(done, passes);
    }
    if (!Number.isFinite(e.loss) || !Number.isFinite(e.accuracy)) {
      // A barrier computed from NaN would read as "no barrier": stop instead.
      throw new InputError(
        `the loss at α = ${alpha} is ${e.loss} (accuracy ${e.accuracy}): the models give non-finite outputs on this data, or there is no data`,
      );
    }
    curve.push({ alpha, loss: e.loss, accuracy: e.accuracy });
  }
  return curve;
}

export function barrierOf(curve: readonly CurvePoint[]): Barrier {
  if (curve.length < 2) throw new Error('barrierOf: a curve needs at least its two endpoints');
  const bad = curve.find((p) => !Number.isFinite(p.loss) || !Number.isFinite(p.accuracy));
  if (bad) throw new Error(`barrierOf: the curve has a non-finite point at α = ${bad.alpha}`);
  const first = curve[0];
  const last = curve[curve.length - 1];
  let loss = -Infinity;
  let argmaxAlpha = 0;
  let accuracy = -Infinity;
  let maxLoss = -Infinity;
  for (const p of curve) {
    const lineLoss = (1 - p.alpha) * first.loss + p.alpha * last.loss;
    const lineAcc = (1 - p.alpha) * first.accuracy + p.alpha * last.accuracy;
    if (p.loss - lineLoss > loss) {
      loss = p.loss - lineLoss;
      argmaxAlpha = p.alpha;
    }
    accuracy = Math.max(accuracy, lineAcc - p.accuracy);
    maxLoss = Math.max(maxLoss, p.loss);
  }
  return { loss, lossOverEndpoints: Math.max(0, maxLoss - Math.max(first.loss, last.loss)), accuracy, argmaxAlpha };
}

/**
 * Relative reduction of a barrier as a fraction (1 = removed entirely, 0.5 = halved, −0.18 = raised by 18%);
 * null when there was nothing to reduce (before ≤ THRESHOLDS.zero). JSON carries this fraction;
 * text prints it in percent.
 */
export function reduction(before: number, after: number): number | null {
  if (!(before > THRESHOLDS.zero)) return null;
  return (before - after) / before;
}
