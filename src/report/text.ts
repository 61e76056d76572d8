/**
 * The terminal report: churn per permutation, the barrier before and after as `#` bars scaled to the
 * larger of the two (40 columns), the reduction, the three checks and the verdict.
 */
import type { AlignmentReport } from '../pipeline/alignment-report.js';
import { barrierValue, formatNumber, plural } from '../measure/checks.js';

export const BAR_WIDTH = 40;

export function bar(value: number, max: number, width = BAR_WIDTH): string {
  const cols = max > 0 ? Math.round((Math.max(0, value) / max) * width) : 0;
  return '#'.repeat(cols).padEnd(width, '.');
}

export interface TextOptions {
  color?: boolean;
}

export function formatReport(r: AlignmentReport, options: TextOptions = {}): string {
  const paint = (s: string, code: number) => (options.color ? `\x1b[${code}m${s}\x1b[0m` : s);
  const status = (s: string) => paint(s.padEnd(7), s === 'PASS' ? 32 : s === 'FAIL' ? 31 : 33);
  const lines: string[] = [];
  lines.push(paint(`== ${r.title} ==`, 1));
  lines.push(`method ${r.method}, seed ${r.seed}, ${r.points} points on ${plural(r.dataCount, 'example')}`);
  if (r.matching.iterations !== undefined) {
    lines.push(
      `matching: ${plural(r.matching.iterations, 'pass', 'passes')}, objective ${formatNumber(r.matching.objectiveBefore ?? 0)} -> ${formatNumber(r.matching.objectiveAfter ?? 0)}` +
        (r.matching.start === 'sorted' ? ' (from the sorted start: descent from the identity stalled below it)' : ''),
    );
  }
  lines.push('');
  lines.push('permutation churn (fraction of units moved):');
  const nameWidth = Math.max(12, ...r.churn.map((c) => c.name.length));
  for (const c of r.churn) {
    lines.push(`  ${c.name.padEnd(nameWidth)} ${String(c.size).padStart(5)} units  ${(100 * c.churn).toFixed(1).padStart(5)}%  ${bar(c.churn, 1, 20)}`);
  }
  lines.push('');
  const before = r.naive.barrier.loss;
  const after = r.aligned.barrier.loss;
  // Barriers within THRESHOLDS.zero of 0 are rounding: they draw as empty bars and do not set the scale.
  const max = Math.max(barrierValue(before), barrierValue(after));
  lines.push(`loss barrier (max over α of L(α) − linear interpolation of the endpoint losses):`);
  lines.push(`  before  ${bar(barrierValue(before), max)}  ${formatNumber(before)}`);
  lines.push(`  after   ${bar(barrierValue(after), max)}  ${formatNumber(after)}`);
  lines.push(
    `  reduction: ${r.reduction === null ? 'n/a (no barrier before alignment)' : `${(100 * r.reduction).toFixed(1)}%`}`,
  );
  lines.push(
    `  endpoint-max barrier (max L(α) − max(L(A), L(B)), ≥ 0): before ${formatNumber(r.naive.barrier.lossOverEndpoints)}, after ${formatNumber(r.aligned.barrier.lossOverEndpoints)}`,
  );
  lines.push(
    `  accuracy barrier: before ${(100 * r.naive.barrier.accuracy).toFixed(2)} pts, after ${(100 * r.aligned.barrier.accuracy).toFixed(2)} pts` +
      `  (A ${(100 * r.endpoints.a.accuracy).toFixed(2)}%, B ${(100 * r.endpoints.b.accuracy).toFixed(2)}%)`,
  );
  if (r.repaired !== null) {
    const p = r.repaired;
    const m = p.midpoint;
    lines.push(
      `  with REPAIR (${p.mode}) on the ${p.of} path: barrier ${formatNumber(r[p.of].barrier.loss)} -> ${formatNumber(p.barrier.loss)}` +
        `; at α = ${m.alpha.toFixed(3)} loss ${formatNumber(m.without.loss)} -> ${formatNumber(m.with.loss)}, accuracy ${(100 * m.without.accuracy).toFixed(2)}% -> ${(100 * m.with.accuracy).toFixed(2)}%`,
    );
  }
  lines.push('');
  lines.push('checks:');
  for (const c of r.checks) lines.push(`  ${status(c.status)} ${c.name.padEnd(24)} ${c.detail}  [${c.requirement}]`);
  lines.push('');
  const verdict = r.verdict === 'no barrier to remove' ? r.verdict : `barrier ${r.verdict}`;
  lines.push(`verdict: ${paint(verdict, 1)}  (${r.verdictRule})`);
  if (r.hint !== null) lines.push(r.hint);
  return lines.join('\n');
}
