/**
 * The long run of test/spec-onnx-random.test.ts: specFromOnnx on thousands of random ONNX graphs
 * (test/helpers/random-onnx.ts), each permuted through its derived spec and run in ONNX Runtime against
 * the original. Not part of `npm run bench` (it measures correctness, not speed).
 *
 *   node dist/bench/spec-fuzz.js                   5000 graphs from seed 1
 *   node dist/bench/spec-fuzz.js --graphs 20000 --seed 100000
 *   node dist/bench/spec-fuzz.js --exclude if,w:chain
 *                                                  without those features (a name excludes every tag
 *                                                  under it), to check a failure goes away without the
 *                                                  feature it is blamed on
 *   node dist/bench/spec-fuzz.js --show 3          print the full report (graph, spec, worst difference)
 *                                                  of the first 3 failures (default 1)
 *
 * Prints the test's one-line summary, the failing seeds by outcome, and which generated features the
 * failing graphs have in common (features in at least 3 failing graphs, by how much more often graphs with
 * them fail than graphs without). Exits 1 when a graph fails.
 */
import { performance } from 'node:perf_hooks';
import { type GraphCheck, checkRandomGraph, summaryLine, tally } from '../test/helpers/random-onnx.js';

function flag(args: readonly string[], name: string): string | null {
  const i = args.indexOf(name);
  if (i < 0) return null;
  const v = args[i + 1];
  if (v === undefined || v.startsWith('--')) throw new Error(`${name} needs a value`);
  return v;
}

function intFlag(args: readonly string[], name: string, dflt: number): number {
  const v = flag(args, name);
  if (v === null) return dflt;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${name} needs a non-negative integer, got ${v}`);
  return n;
}

/** Features of failing graphs, ranked by failure rate with the feature over failure rate without it. */
function blame(checks: readonly GraphCheck[], failing: ReadonlySet<number>): string[] {
  const withF = new Map<string, { graphs: number; fails: number }>();
  for (const c of checks) {
    for (const p of c.patterns) {
      const e = withF.get(p) ?? { graphs: 0, fails: 0 };
      e.graphs++;
      if (failing.has(c.seed)) e.fails++;
      withF.set(p, e);
    }
  }
  const totalFails = failing.size;
  const rows = [...withF.entries()]
    .filter(([, e]) => e.fails >= 3)
    .map(([p, e]) => {
      const rateWith = e.fails / e.graphs;
      const others = checks.length - e.graphs;
      const rateWithout = others === 0 ? 0 : (totalFails - e.fails) / others;
      return { p, ...e, rateWith, lift: rateWith / Math.max(rateWithout, 1e-9) };
    })
    .sort((a, b) => b.lift - a.lift)
    .slice(0, 25);
  return rows.map(
    (r) => `| ${r.p} | ${r.graphs} | ${r.fails} | ${(100 * r.rateWith).toFixed(0)}% | ${r.lift > 1e6 ? '∞' : r.lift.toFixed(1)} |`,
  );
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const graphs = intFlag(args, '--graphs', 5000);
  const base = intFlag(args, '--seed', 1);
  const show = intFlag(args, '--show', 1);
  const exclude = (flag(args, '--exclude') ?? '').split(',').filter((s) => s !== '');

  const t0 = performance.now();
  const checks: GraphCheck[] = [];
  for (let i = 0; i < graphs; i++) {
    checks.push(await checkRandomGraph(base + i, { exclude }));
    if ((i + 1) % 1000 === 0) console.error(`  ${i + 1} / ${graphs} graphs, ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  }
  const secs = (performance.now() - t0) / 1000;
  const t = tally(checks);
  console.log(`spec fuzz, seeds ${base}..${base + graphs - 1}${exclude.length > 0 ? `, without ${exclude.join(', ')}` : ''}: ${secs.toFixed(1)} s (${(graphs / secs).toFixed(0)} graphs/s)`);
  console.log(summaryLine({ ...t, failing: [] }).replace(/; no failures$/, ''));
  if (t.failing.length === 0) {
    console.log('no failures');
    return;
  }
  const byOutcome = new Map<string, number[]>();
  for (const c of t.failing) byOutcome.set(c.outcome, [...(byOutcome.get(c.outcome) ?? []), c.seed]);
  for (const [outcome, seeds] of byOutcome) console.log(`${outcome}: ${seeds.length} (seeds ${seeds.join(' ')})`);
  console.log('\nfeatures of the failing graphs (in ≥ 3 of them), by lift = failure rate with / without the feature:\n');
  console.log('| feature | graphs with it | failing | failure rate | lift |');
  console.log('|---|---:|---:|---:|---:|');
  for (const row of blame(checks, new Set(t.failing.map((c) => c.seed)))) console.log(row);
  for (const c of t.failing.slice(0, show)) console.log(`\n${c.report}`);
  process.exitCode = 1;
}

await main();
