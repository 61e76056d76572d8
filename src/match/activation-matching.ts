/**
 * Activation matching (Ainsworth et al. §3.1; the second seed's ScoreMode 1): run both models on the same
 * probe batch, and for each permutation match B's units to A's by the similarity of their activations,
 * one exact assignment per permutation. Unlike weight matching the permutations are independent: each
 * layer's activations are a function of the input alone, whatever the labels of the layers before.
 */
import { solveAssignment } from './lap.js';
import { solveHeadGroup } from './head-assignment.js';
import type { HeadGroup } from '../permutation-spec/spec.js';
import type { MatmulEngine } from '../engine/matmul.js';
import { jsMatmul, transpose } from '../engine/matmul.js';
import { InputError } from '../errors.js';

/**
 * 'pearson': centred correlation (the default, the paper's choice);
 * 'cosine': uncentred cosine of the activation vectors (the second seed's score).
 */
export type ActivationScore = 'pearson' | 'cosine';

export interface LayerActivations {
  /** count × width, row-major: one row per probe example. */
  a: Float32Array;
  b: Float32Array;
  count: number;
  width: number;
}

export interface ActivationMatchingResult {
  perms: Record<string, Int32Array>;
  /** Mean similarity of matched unit pairs per permutation, before (identity) and after. */
  meanSimilarityBefore: Record<string, number>;
  meanSimilarityAfter: Record<string, number>;
}

export async function activationMatching(
  activations: Readonly<Record<string, LayerActivations>>,
  options: { score?: ActivationScore; engine?: MatmulEngine; heads?: Readonly<Record<string, HeadGroup>> } = {},
): Promise<ActivationMatchingResult> {
  const score = options.score ?? 'pearson';
  const engine = options.engine ?? jsMatmul;
  const perms: Record<string, Int32Array> = Object.create(null);
  const before: Record<string, number> = Object.create(null);
  const after: Record<string, number> = Object.create(null);
  const sims: Record<string, Float64Array> = Object.create(null);
  for (const [name, layer] of Object.entries(activations)) {
    const { count, width } = layer;
    if (layer.a.length !== count * width || layer.b.length !== count * width) {
      throw new InputError(`activations of '${name}': expected ${count} × ${width} values for both models`);
    }
    sims[name] = await similarityMatrix(layer, score, engine);
    let diag = 0;
    for (let i = 0; i < width; i++) diag += sims[name][i * width + i];
    before[name] = diag / width;
  }
  const grouped = new Set<string>();
  for (const { count, perms: members } of Object.values(options.heads ?? {})) {
    // A head group is chosen jointly (the heads move alike in all its permutations): head-assignment.ts.
    const present = members.filter((m) => sims[m] !== undefined);
    if (present.length === 0) continue;
    const solved = solveHeadGroup(present.map((m) => ({ cost: sims[m], n: activations[m].width })), count);
    present.forEach((m, k) => {
      grouped.add(m);
      perms[m] = solved.perms[k];
      const width = activations[m].width;
      let sum = 0;
      for (let i = 0; i < width; i++) sum += sims[m][i * width + perms[m][i]];
      after[m] = sum / width;
    });
  }
  for (const [name, { width }] of Object.entries(activations)) {
    if (grouped.has(name)) continue;
    const { rowToCol, objective } = solveAssignment(sims[name], width, width, { maximize: true });
    perms[name] = Int32Array.from(rowToCol);
    after[name] = objective / width;
  }
  return { perms, meanSimilarityBefore: before, meanSimilarityAfter: after };
}

/** S[i, j] = similarity of A's unit i and B's unit j over the probe batch (width × width, float64). */
export async function similarityMatrix(layer: LayerActivations, score: ActivationScore, engine: MatmulEngine): Promise<Float64Array> {
  const { count, width } = layer;
  const ua = unitRows(layer.a, count, width, score === 'pearson');
  const ub = unitRows(layer.b, count, width, score === 'pearson');
  const s = await engine.abt(ua, width, ub, width, count);
  return Float64Array.from(s);
}

/**
 * Units the score cannot tell apart from any other (a dead ReLU: no variance over the probe for Pearson,
 * all zero for cosine): unitRows makes them zero rows, so matching may place them anywhere among
 * themselves. `x` is count × width, row-major. The report's align-to-self check allows these to move.
 */
export function indistinctUnits(x: Float32Array, count: number, width: number, score: ActivationScore = 'pearson'): boolean[] {
  const t = unitRows(x, count, width, score === 'pearson');
  return Array.from({ length: width }, (_, i) => t.subarray(i * count, (i + 1) * count).every((v) => v === 0));
}

/**
 * Unit-major rows (width × count), each centred (for Pearson) and scaled to unit length, so that their
 * dot products are the correlations. A unit that never varies (a dead ReLU) becomes a zero row: it is
 * equally (un)like every other unit.
 */
function unitRows(x: Float32Array, count: number, width: number, centre: boolean): Float32Array {
  const t = transpose(x, count, width);
  for (let i = 0; i < width; i++) {
    const row = t.subarray(i * count, (i + 1) * count);
    let mean = 0;
    if (centre) {
      for (let k = 0; k < count; k++) mean += row[k];
      mean /= count;
    }
    let norm = 0;
    for (let k = 0; k < count; k++) {
      const v = row[k] - mean;
      norm += v * v;
    }
    const scale = norm > 1e-24 ? 1 / Math.sqrt(norm) : 0;
    for (let k = 0; k < count; k++) row[k] = (row[k] - mean) * scale;
  }
  return t;
}
