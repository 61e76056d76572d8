/**
 * What to tell the user when alignment or a merge did not work: one hint line for a report, one warning
 * for a merge far worse than its parents. Pure functions over numbers the commands already measured, so
 * each line can be traced to its evidence and tested case by case (test/report-advice.test.ts).
 *
 * The hints are the measured ways out (DESIGN.md, "When alignment does not help"): BatchNorm nets (kept,
 * or folded into the convolutions by the exporter) lose their activation statistics when weights are
 * averaged, and recover with activation matching plus REPAIR; weight matching that raises the barrier is
 * answered by activation matching; narrow nets align poorly at any method (the paper widens them).
 */
import type { OnnxModel } from '../io/onnx.js';
import type { Evaluation } from './barrier.js';
import { formatNumber, verdictOf, type Verdict } from './checks.js';

/** How a model normalises: BatchNorm kept (nodes or running statistics), folded by the exporter, or none seen. */
export type Normalisation = 'batchnorm' | 'folded-batchnorm' | 'none';

/** Permuted layers at most this wide count as narrow (the committed ResNet fixtures: 16/32/64 channels). */
export const NARROW_WIDTH = 64;

/**
 * The evidence of BatchNorm in a model: BatchNormalization nodes or `running_mean`/`running_var` tensors
 * (kept), or Conv weights named `onnx::Conv_*`, the names PyTorch's exporter gives the tensors it makes by
 * folding an eval-mode BatchNorm into the preceding convolution (folded). A plain conv net exported by
 * PyTorch keeps its `conv.weight` names, so it reads as 'none'.
 */
export function normalisationOf(paramNames: readonly string[], onnx?: OnnxModel): Normalisation {
  // Not merge/onnx-bn-repair's hasBatchNorm: that module pulls in ONNX Runtime for Node, and the page bundles this file.
  if (onnx !== undefined && onnx.graph.nodes.some((n) => n.opType === 'BatchNormalization' && (n.domain === '' || n.domain === 'ai.onnx'))) return 'batchnorm';
  if (paramNames.some((n) => /(^|\.)running_(mean|var)$/.test(n))) return 'batchnorm';
  if (onnx !== undefined) {
    const folded = onnx.graph.nodes.some((n) => n.opType === 'Conv' && /^onnx::Conv_/.test(n.inputs[1] ?? ''));
    if (folded) return 'folded-batchnorm';
  }
  return 'none';
}

export interface ReportFacts {
  method: 'weight' | 'cosine' | 'activation';
  /** The report's verdict (naive → aligned barrier). */
  verdict: Verdict;
  normalisation: Normalisation;
  /** The smallest permuted width, or null when nothing is permuted. */
  narrowestWidth: number | null;
  /** The aligned path's loss barrier without and with REPAIR, when --repair measured it. */
  repaired: { before: number; after: number } | null;
  /** The spec has attention head groups (a transformer). */
  attention?: boolean;
}

const BN_WORDS: Record<Exclude<Normalisation, 'none'>, string> = {
  batchnorm: 'this net has BatchNorm',
  'folded-batchnorm': 'this net has BatchNorm folded into its convolutions',
};

/**
 * One line on what to try next, or null when the result is good (collapsed, or no barrier) or the evidence
 * suggests nothing specific. The first rule that applies wins:
 *   1. BatchNorm, matched by weights        → activation matching with REPAIR
 *   2. BatchNorm, activation matching, REPAIR not measured → measure with --repair
 *   3. weight/cosine matching raised the barrier → activation matching
 *   3b. an attention model matched by weights, barrier not collapsed → activation matching (on the
 *       committed ViT pairs it removes far more of the barrier: BENCHMARKS.md, "Transformers")
 *   4. REPAIR (measured) reduced the aligned barrier → merge with --repair
 *   4b. an attention model where REPAIR (measured) did not reduce it → say so (on the committed ViT
 *       pairs it moves the midpoint loss by a few percent at most: BENCHMARKS.md, "Transformers")
 *   5. a permuted layer ≤ NARROW_WIDTH units → width
 */
export function reportHint(f: ReportFacts): string | null {
  if (f.verdict === 'collapsed' || f.verdict === 'no barrier to remove') return null;
  const byWeights = f.method !== 'activation';
  if (f.normalisation !== 'none') {
    const bn = BN_WORDS[f.normalisation];
    if (byWeights) return `hint: ${bn}, whose activation statistics averaged weights lose: try --method activation --repair`;
    if (f.repaired === null) return `hint: ${bn}: measure the path with --repair (each interpolated net renormalised)`;
  }
  if (byWeights && f.verdict === 'increased') return `hint: ${f.method} matching raised the barrier: try --method activation`;
  if (byWeights && f.attention === true) return `hint: transformers align better by their activations than by their weights: try --method activation`;
  if (f.repaired !== null) {
    const v = verdictOf(f.repaired.before, f.repaired.after);
    if (v === 'collapsed' || v === 'reduced') {
      return `hint: REPAIR lowers the aligned barrier from ${formatNumber(f.repaired.before)} to ${formatNumber(f.repaired.after)}: merge with --repair`;
    }
    if (f.attention === true) {
      return `hint: REPAIR did not lower the aligned barrier of this attention model (${formatNumber(f.repaired.before)} -> ${formatNumber(f.repaired.after)}); its LayerNorms already renormalise the residual stream, so --repair is not the way out here`;
    }
  }
  if (f.narrowestWidth !== null && f.narrowestWidth <= NARROW_WIDTH) {
    return `hint: the narrowest permuted layer has ${f.narrowestWidth} units; alignment needs wide layers (the paper widens narrow nets 4-16x), so a wider model should align better`;
  }
  return null;
}

export interface MergeFacts {
  parents: readonly Evaluation[];
  /** The merge as written (after REPAIR when --repair). */
  merged: Evaluation;
  /** Number of classes: chance accuracy is 1 / classes. */
  classes: number;
  aligned: boolean;
  method: 'weight' | 'cosine' | 'activation';
  repaired: boolean;
  normalisation: Normalisation;
}

/**
 * A warning when the merge is far worse than its parents on the data given, else null. Far worse:
 *   accuracy below the worse parent's by more than half the distance from it to chance
 *     (acc < worst − (worst − 1/classes) / 2; only when the worse parent beats chance), or
 *   loss above 1.5 × the worse parent's loss.
 * The line ends with the one change the evidence points to (alignment, activation matching, REPAIR).
 */
export function mergeWarning(f: MergeFacts): string | null {
  if (f.parents.length === 0) return null;
  const chance = 1 / f.classes;
  const worstAcc = Math.min(...f.parents.map((p) => p.accuracy));
  const worstLoss = Math.max(...f.parents.map((p) => p.loss));
  const accFar = worstAcc > chance && f.merged.accuracy < worstAcc - (worstAcc - chance) / 2;
  const lossFar = worstLoss > 0 && f.merged.loss > 1.5 * worstLoss;
  if (!accFar && !lossFar) return null;
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  const what = accFar
    ? `accuracy ${pct(f.merged.accuracy)} against ${pct(worstAcc)} for the worse parent (chance ${pct(chance)})`
    : `loss ${formatNumber(f.merged.loss)} against ${formatNumber(worstLoss)} for the worse parent`;
  return `the merged model is far worse than its parents on this data: ${what}${mergeSuggestion(f)}`;
}

function mergeSuggestion(f: MergeFacts): string {
  if (!f.aligned) return '; merge with alignment (without --no-align)';
  if (f.normalisation !== 'none' && (f.method !== 'activation' || !f.repaired)) return '; this net has BatchNorm: try --method activation --repair';
  if (!f.repaired) return '; try --repair';
  if (f.method !== 'activation') return '; try --method activation';
  return '; see `rebasin report` for the barrier along the path';
}
