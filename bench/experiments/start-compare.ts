/**
 * Weight matching from the identity vs from sortedStart (match/sorted-start.ts) on real pairs: the final
 * objective Σ⟨A, P(B)⟩ each reaches, over several seeds.
 * Usage: node dist/bench/experiments/start-compare.js a.safetensors b.safetensors [seeds]
 */
import { readFileSync } from 'node:fs';
import { parseSafetensors, toParams } from '../../src/io/safetensors.js';
import { autoSpec } from '../../src/permutation-spec/auto.js';
import { matchingObjective, weightMatching } from '../../src/match/weight-matching.js';
import { sortedStart } from '../../src/match/sorted-start.js';

const [pa, pb] = [process.argv[2], process.argv[3]];
const seeds = Number(process.argv[4] ?? 5);
const load = (p: string) => toParams(parseSafetensors(readFileSync(p), p)).params;
const [a, b] = [load(pa), load(pb)];
const spec = autoSpec(a).spec;
const init = await sortedStart(spec, a, b);
console.log(`sorted start alone: ${matchingObjective(spec, init, a, b).toFixed(3)}`);
for (let seed = 0; seed < seeds; seed++) {
  const r0 = await weightMatching({ spec, paramsA: a, paramsB: b, seed });
  const r1 = await weightMatching({ spec, paramsA: a, paramsB: b, seed, initPerms: init });
  console.log(`seed ${seed}: identity start ${r0.objectiveAfter.toFixed(3)} (${r0.history.length} passes), sorted start ${r1.objectiveAfter.toFixed(3)} (${r1.history.length} passes)`);
}
