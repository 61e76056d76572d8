/**
 * Planted recovery on a synthetic pre-norm transformer (test/helpers/synthetic-transformer.ts): B = P(A)
 * for a random head-structured P, then weight matching from many seeds, plain (from the identity) and
 * checked against the sorted start (match/sorted-start.ts). Prints how many seeds recover P exactly.
 * Usage: node dist/bench/experiments/planted-vit.js [seeds] [layers] [dim] [heads]
 */
import { permSizes } from '../../src/permutation-spec/spec.js';
import { randomSpecPerms } from '../../src/permutation-spec/heads.js';
import { applyPermutation } from '../../src/permute.js';
import { weightMatching } from '../../src/match/weight-matching.js';
import { weightMatchingCheckedInMemory } from '../../src/match/sorted-start.js';
import { syntheticTransformer } from '../../test/helpers/synthetic-transformer.js';

const [seeds, layers, dim, heads] = [Number(process.argv[2] ?? 20), Number(process.argv[3] ?? 2), Number(process.argv[4] ?? 32), Number(process.argv[5] ?? 4)];
const { spec, params: a } = syntheticTransformer({ layers, dim, heads });
for (const [label, match] of [['plain', weightMatching], ['checked', weightMatchingCheckedInMemory]] as const) {
  let ok = 0;
  const t0 = performance.now();
  for (let seed = 0; seed < seeds; seed++) {
    const b = applyPermutation(spec, randomSpecPerms(spec, permSizes(spec, a), 1000 + seed), a);
    const r = await match({ spec, paramsA: a, paramsB: b, seed });
    const back = applyPermutation(spec, r.perms, b);
    if (Object.keys(a).every((n) => back[n].data.every((v, i) => v === a[n].data[i]))) ok++;
  }
  console.log(`${label}: ${ok}/${seeds} planted permutations recovered exactly (layers ${layers}, dim ${dim}, heads ${heads}) in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}
