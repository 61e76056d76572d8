/**
 * Writes a matching problem (spec + two param sets) in the plain layout that the numpy/scipy reference
 * (bench/reference/weight_matching.py) reads: problem.json plus a.bin / b.bin of little-endian float32.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Params } from '../../src/tensor.js';
import type { PermutationSpec } from '../../src/permutation-spec/spec.js';

export function writeProblem(dir: string, spec: PermutationSpec, a: Params, b: Params): void {
  const tensors: Record<string, { shape: readonly number[]; offset: number }> = {};
  let offset = 0;
  for (const [name, t] of Object.entries(a)) {
    tensors[name] = { shape: t.shape, offset };
    offset += t.data.length;
  }
  writeFileSync(join(dir, 'problem.json'), JSON.stringify({ axes: spec.axesToPerm, tensors }));
  for (const [file, params] of [['a.bin', a], ['b.bin', b]] as const) {
    const flat = new Float32Array(offset);
    for (const [name, t] of Object.entries(params)) flat.set(t.data, tensors[name].offset);
    writeFileSync(join(dir, file), new Uint8Array(flat.buffer));
  }
}
