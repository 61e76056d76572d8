import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mlpSpec } from '../src/permutation-spec/mlp.js';
import { weightMatching, matchingObjective } from '../src/match/weight-matching.js';
import { createOrtMatmul } from '../src/engine/ort-matmul.js';
import { randomMlp } from './helpers/mlp.js';
import { writeProblem } from '../bench/reference/problem.js';
import { pythonSkipReason, runPython, withTempDir } from './python.js';

const reference = fileURLToPath(new URL('../../bench/reference/weight_matching.py', import.meta.url));

test('weight matching reaches the numpy+scipy reference objective on random MLP pairs', { skip: pythonSkipReason(['numpy', 'scipy.optimize']) }, async () => {
  const engine = await createOrtMatmul();
  const cases = [
    { widths: [30, 64, 64, 64, 10], layout: 'torch' as const, seed: 1 },
    { widths: [50, 128, 96, 10], layout: 'flax' as const, seed: 2 },
  ];
  for (const { widths, layout, seed } of cases) {
    const a = randomMlp(widths, layout, 1000 + seed);
    const b = randomMlp(widths, layout, 2000 + seed);
    const spec = mlpSpec(widths.length - 2, { layout });
    const ours = await weightMatching({ spec, paramsA: a, paramsB: b, seed, engine });
    const ref = withTempDir((dir) => {
      writeProblem(dir, spec, a, b);
      // Same algorithm, same visiting order: the port follows our recorded order pass by pass.
      writeFileSync(join(dir, 'orders.json'), JSON.stringify(ours.history.map((h) => h.order)));
      const script = `import runpy, sys; sys.argv = [sys.argv[1], sys.argv[2], '--orders', sys.argv[2] + '/orders.json']; runpy.run_path(sys.argv[0], run_name='__main__')`;
      return JSON.parse(runPython(script, reference, dir)) as { objectiveBefore: number; objectiveAfter: number; perms: Record<string, number[]> };
    });
    // Both start from the same objective (same data, same convention) ...
    assert.ok(Math.abs(ours.objectiveBefore - ref.objectiveBefore) <= 1e-6 * Math.abs(ref.objectiveBefore));
    // ... the reference's permutations, scored by our objective, agree with its own score (same semantics) ...
    const refPerms = Object.fromEntries(Object.entries(ref.perms).map(([k, v]) => [k, Int32Array.from(v)]));
    const refScored = matchingObjective(spec, refPerms, a, b);
    assert.ok(Math.abs(refScored - ref.objectiveAfter) <= 1e-6 * Math.abs(ref.objectiveAfter));
    // ... and ours ends within 0.1% of the reference, or above it.
    const gap = (ref.objectiveAfter - ours.objectiveAfter) / Math.abs(ref.objectiveAfter);
    assert.ok(gap <= 1e-3, `ours ${ours.objectiveAfter} vs reference ${ref.objectiveAfter}`);
    assert.ok(ours.objectiveAfter > ours.objectiveBefore);
    // Following the same path, both land on the same permutations (every step's optimum is unique here).
    for (const [p, perm] of Object.entries(refPerms)) assert.deepEqual(ours.perms[p], perm, `permutation ${p}`);
  }
  await engine.dispose?.();
});
