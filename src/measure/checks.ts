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
  /** Verdict: below this pre-alignment barrier there is nothing to remove. */
  noBarrier: 1e-6,
  /** Verdict: after ≤ collapsed·before → "collapsed". */
  collapsed: 0.25,
  /** Verdict: after ≤ partial·before → "partially reduced"; else "unchanged". */
  partial: 0.9,
} as const;

export type CheckStatus = 'PASS' | 'FAIL' | 'SKIPPED';

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
 * Align-to-self: only meaningful when B is A; otherwise SKIPPED (the check then runs as its own pass,
 * see the report's self-run).
 */
export function selfCheck(applies: boolean, allIdentity: boolean, barrierAfter: number, tolerance: number = THRESHOLDS.selfBarrier): Check {
  if (!applies) {
    return { name: 'align-to-self', status: 'SKIPPED', value: null, requirement: `identity permutations and barrier ≤ ${tolerance}`, detail: 'B is not A' };
  }
  const ok = allIdentity && Math.abs(barrierAfter) <= tolerance;
  return {
    name: 'align-to-self',
    status: ok ? 'PASS' : 'FAIL',
    value: barrierAfter,
    requirement: `identity permutations and barrier ≤ ${tolerance}`,
    detail: `${allIdentity ? 'all permutations are the identity' : 'some permutation is NOT the identity'}, barrier ${formatNumber(barrierAfter)}`,
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

export type Verdict = 'no barrier to remove' | 'collapsed' | 'partially reduced' | 'unchanged';

export function verdictOf(before: number, after: number): Verdict {
  if (before <= THRESHOLDS.noBarrier) return 'no barrier to remove';
  if (after <= THRESHOLDS.collapsed * before) return 'collapsed';
  if (after <= THRESHOLDS.partial * before) return 'partially reduced';
  return 'unchanged';
}

export function verdictRule(): string {
  return `collapsed: after ≤ ${THRESHOLDS.collapsed}·before; partially reduced: after ≤ ${THRESHOLDS.partial}·before; else unchanged (no barrier when before ≤ ${THRESHOLDS.noBarrier})`;
}

export function formatNumber(x: number): string {
  if (x === 0) return '0';
  const a = Math.abs(x);
  return a >= 1e-3 && a < 1e5 ? x.toFixed(4) : x.toExponential(2);
}
