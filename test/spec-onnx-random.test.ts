/**
 * specFromOnnx against random ONNX graphs (test/helpers/random-onnx.ts): for every graph the derived spec
 * (default, non-strict) must validate, and permuting the initializers through it with random permutations
 * (two draws) must leave every graph output unchanged in ONNX Runtime and make every tap carry its
 * permutation. Refusing a graph with an InputError is allowed; changing its function is not.
 *
 * Hand-written graphs only test what someone thought of; random compositions of what exporters emit find
 * the combinations nobody did. The seeds are fixed, so a failure reproduces:
 *
 *   REBASIN_FUZZ_SEED=<seed> REBASIN_FUZZ_GRAPHS=1 node --test dist/test/spec-onnx-random.test.js
 *
 * REBASIN_FUZZ_GRAPHS sets how many graphs (default 1500; a few seconds), REBASIN_FUZZ_SEED the first seed
 * (default 1). `node dist/bench/spec-fuzz.js` is the longer run, with the features failing graphs share.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { type GraphCheck, checkRandomGraph, summaryLine, tally } from './helpers/random-onnx.js';

function envInt(name: string, dflt: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer, got '${v}'`);
  return n;
}

const GRAPHS = envInt('REBASIN_FUZZ_GRAPHS', 1500);
const BASE = envInt('REBASIN_FUZZ_SEED', 1);
/** Below this many graphs (e.g. one seed reproduced) the share of graphs with permutations says nothing. */
const MIN_GRAPHS_FOR_SHARE = 100;
/** Full reports (graph, spec, worst difference) in a failure message; the other failures are listed by seed. */
const REPORTS = 3;

// Generated and checked once; the tests below look at the results from different sides.
const checks: Promise<GraphCheck[]> = (async () => {
  const out: GraphCheck[] = [];
  for (let i = 0; i < GRAPHS; i++) out.push(await checkRandomGraph(BASE + i));
  return out;
})();

function failureMessage(failing: readonly GraphCheck[], what: string): string {
  const list = failing.slice(0, 50).map((c) => `  seed ${c.seed} ${c.outcome}: ${c.summary}`).join('\n') + (failing.length > 50 ? '\n  ...' : '');
  const reports = failing.slice(0, REPORTS).map((c) => c.report).join('\n\n');
  return `${failing.length} of ${GRAPHS} random graphs ${what}:\n${list}\n\nfirst ${Math.min(REPORTS, failing.length)} in full (reproduce one with REBASIN_FUZZ_SEED=<seed> REBASIN_FUZZ_GRAPHS=1):\n\n${reports}`;
}

test(`random ONNX graphs (seeds ${BASE}..${BASE + GRAPHS - 1}): every generated graph runs in ONNX Runtime`, async (t) => {
  const all = await checks;
  t.diagnostic(summaryLine(tally(all)));
  const broken = all.filter((c) => c.outcome === 'generator');
  assert.equal(broken.length, 0, failureMessage(broken, 'are not valid models (a bug of test/helpers/random-onnx.ts)'));
});

test('random ONNX graphs: permuting through the derived spec never changes an output or misplaces a tap', async () => {
  const failing = tally(await checks).failing.filter((c) => c.outcome !== 'generator');
  assert.equal(failing.length, 0, failureMessage(failing, 'break the contract of specFromOnnx'));
});

test('random ONNX graphs: the check is not vacuous (most graphs have something to permute)', async (t) => {
  const s = tally(await checks);
  t.diagnostic(`${s.withPermutations} of ${s.graphs} graphs have a permutation of more than one unit; ${s.partial} partial specs; ${s.refused} refused`);
  if (s.graphs < MIN_GRAPHS_FOR_SHARE) return;
  // Refusals and partial specs are allowed, but a walk that fixed everything would pass the check above
  // without testing anything.
  assert.ok(s.withPermutations >= 0.4 * s.graphs, `only ${s.withPermutations} of ${s.graphs} graphs have a permutation of more than one unit`);
  assert.ok(s.refused <= 0.25 * s.graphs, `${s.refused} of ${s.graphs} graphs are refused`);
});
