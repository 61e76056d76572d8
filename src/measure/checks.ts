/**
 * The three PASS/FAIL checks of the alignment report and its verdict, with every threshold stated
 * (the second seed's, see DESIGN.md, "Parity with the second seed's report").
 */
export const THRESHOLDS = {
  /** Max abs output drift allowed when B is replaced by a randomly permuted B (float rounding only). */
  invarianceDrift: 1e-4,
  /** Align-to-self: the barrier after aligning A to itself must be at most this. */
  selfBarrier: 1e-6,
  /** Monotonicity: barrier after ≤ barrier before + this. */
  monotonicity: 1e-6,
  /**
   * Verdict: a barrier with |value| ≤ this counts as zero (a 2.78e-17 barrier is rounding, not a barrier);
   * also the least rise that counts as "increased" however small the barrier before was.
   */
  zero: 1e-6,
  /** Verdict: after ≤ collapsed·before → "collapsed". */
  collapsed: 0.25,
  /** Verdict: after ≤ reduced·before → "reduced". */
  reduced: 0.9,
  /** Verdict: after > increased·before (and by more than `zero`) → "increased"; in between, "unchanged". */
  increased: 1.1,
} as const;

export type CheckStatus = 'PASS' | 'FAIL';

export interface Check {
  name: string;
  status: CheckStatus;
  /** The measured number the status is based on. */
  value: number | null;
  /** What was required, in words. */
  requirement: string;
  detail: string;
}

export function invarianceCheck(maxDrift: number, tolerance: number = THRESHOLDS.invarianceDrift): Check {
  return {
    name: 'permutation invariance',
    status: maxDrift <= tolerance ? 'PASS' : 'FAIL',
    value: maxDrift,
    requirement: `max |B(x) − P(B)(x)| ≤ ${tolerance}`,
    detail: `random permutation of B changes its outputs by at most ${formatNumber(maxDrift)} on the probe batch`,
  };
}

/**
 * Align-to-self: A aligned to itself (the report's own matcher run on (A, A)) must give identity
 * permutations, and the path from A to that P(A) must be flat. `nonIdentity` names the permutations that
 * are not the identity; `barrier` is the loss barrier of the path (measured at its midpoint); `indistinct`
 * counts units activation matching moved among units the probe cannot tell apart (allowed, and said).
 */
export function selfCheck(nonIdentity: readonly string[], barrier: number, indistinct = 0, tolerance: number = THRESHOLDS.selfBarrier): Check {
  const ok = nonIdentity.length === 0 && Math.abs(barrier) <= tolerance;
  const perms =
    nonIdentity.length === 0
      ? indistinct === 0
        ? 'all permutations are the identity'
        : `identity on every unit the probe tells apart (${plural(indistinct, 'unit')} with no variance on the probe moved among themselves)`
      : `${plural(nonIdentity.length, 'permutation')} NOT the identity (${nonIdentity.slice(0, 3).join(', ')}${nonIdentity.length > 3 ? ', ...' : ''})`;
  return {
    name: 'align-to-self',
    status: ok ? 'PASS' : 'FAIL',
    value: barrier,
    requirement: `A aligned to A: identity permutations and barrier ≤ ${tolerance}`,
    detail: `${perms}, barrier ${formatNumber(barrier)}`,
  };
}

export function monotonicityCheck(before: number, after: number, tolerance: number = THRESHOLDS.monotonicity): Check {
  return {
    name: 'monotonicity',
    status: after <= before + tolerance ? 'PASS' : 'FAIL',
    value: after - before,
    requirement: `barrier after ≤ barrier before + ${tolerance}`,
    detail: `before ${formatNumber(before)}, after ${formatNumber(after)}`,
  };
}

export type Verdict = 'no barrier to remove' | 'collapsed' | 'reduced' | 'unchanged' | 'increased';

/** A barrier value as the verdict sees it: |x| ≤ THRESHOLDS.zero is zero (rounding, not a barrier). */
export function barrierValue(x: number): number {
  return Math.abs(x) <= THRESHOLDS.zero ? 0 : x;
}

/**
 * What alignment did to the loss barrier, named (see verdictRule for the words). Relative bands, since
 * barriers range over orders of magnitude between tasks, with one absolute floor (THRESHOLDS.zero) so that
 * rounding-level values neither count as a barrier nor as a change:
 *   before = 0 (≤ zero):  after = 0 → no barrier to remove; after > 0 → increased (alignment made one)
 *   before > 0:           after ≤ 0.25·before (or = 0) → collapsed; ≤ 0.9·before → reduced;
 *                         > 1.1·before and > before + zero → increased; else unchanged (within ±10%)
 * A NaN barrier is never "collapsed": it reads as increased, the worst case.
 */
export function verdictOf(before: number, after: number): Verdict {
  if (Number.isNaN(before) || Number.isNaN(after)) return 'increased';
  const [b, a] = [barrierValue(before), barrierValue(after)];
  if (b <= 0) return a <= 0 ? 'no barrier to remove' : 'increased';
  if (a <= THRESHOLDS.collapsed * b) return 'collapsed';
  if (a <= THRESHOLDS.reduced * b) return 'reduced';
  if (a > THRESHOLDS.increased * b && a - b > THRESHOLDS.zero) return 'increased';
  return 'unchanged';
}

export function verdictRule(): string {
  const t = THRESHOLDS;
  return `collapsed: after ≤ ${t.collapsed}·before; reduced: after ≤ ${t.reduced}·before; increased: after > ${t.increased}·before; else unchanged (barriers within ±${t.zero} of 0 count as 0)`;
}

/** "1 pass", "3 passes": counts in the text output. */
export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

export function formatNumber(x: number): string {
  if (x === 0) return '0';
  const a = Math.abs(x);
  return a >= 1e-3 && a < 1e5 ? x.toFixed(4) : x.toExponential(2);
}
