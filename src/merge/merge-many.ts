/**
 * MergeMany (Ainsworth et al. 2023, Algorithm 3): bring N models into one basin and average them.
 *
 * Each round visits the models in a seeded random order; model i is weight-matched to the mean of the
 * others as they are currently aligned, starting from its current permutations. Rounds repeat until a whole
 * round changes no permutation (or maxIter rounds). The merged model is the mean of the aligned models.
 *
 * Permutations are only defined up to one common relabelling (permuting every model by the same P changes
 * nothing), so the result is expressed in model 0's basin: its permutations are the identity, and the merged
 * model's units line up with model 0's, which keeps reports and diffs against model 0 readable.
 */
import type { Params, Tensor } from '../tensor.js';
import type { PermutationSpec } from '../permutation-spec/spec.js';
import { permSizes, validateSpec } from '../permutation-spec/spec.js';
import type { MatmulEngine } from '../engine/matmul.js';
import { weightMatching, type WeightScore } from '../match/weight-matching.js';
import { applyPermutation, composePermutations, identityPerms, inversePermutation } from '../permute.js';
import { createRng, shuffledRange } from '../random.js';

export interface MergeManyOptions {
  spec: PermutationSpec;
  models: readonly Params[];
  /** Seed of the visiting orders (of models and, inside weight matching, of permutations). Default 0. */
  seed?: number;
  /** Upper bound on rounds; default 100. */
  maxIter?: number;
  /** Passes of weight matching per step; default 100. */
  matchIter?: number;
  score?: WeightScore;
  engine?: MatmulEngine;
  /**
   * 'identity' (the paper): every model starts unpermuted. 'first' (default): each model is first matched
   * to model 0, so the rounds start from the pairwise alignment instead of a blur of unaligned models.
   */
  init?: 'identity' | 'first';
  onProgress?: (event: { round: number; step: number; model: number; models: number; changed: boolean }) => void;
}

export interface MergeManyResult {
  /** Per model, the permutations that bring it into the common basin (model 0's: identity). */
  perms: Record<string, Int32Array>[];
  /** The mean of the aligned models. */
  merged: Record<string, Tensor>;
  /** Rounds run (the last changed nothing unless maxIter was reached). */
  iterations: number;
  converged: boolean;
}

/** Element-wise mean of parameter sets that share names and shapes (float64 accumulation). */
export function averageParams(sets: readonly Params[], weights?: readonly number[]): Record<string, Tensor> {
  if (sets.length === 0) throw new Error('averageParams: no parameter sets');
  const w = weights ?? sets.map(() => 1 / sets.length);
  const out: Record<string, Tensor> = Object.create(null);
  for (const [name, t] of Object.entries(sets[0])) {
    const acc = new Float64Array(t.data.length);
    sets.forEach((s, k) => {
      const d = s[name].data;
      for (let i = 0; i < acc.length; i++) acc[i] += w[k] * d[i];
    });
    out[name] = { shape: t.shape, data: Float32Array.from(acc) };
  }
  return out;
}

function samePerms(a: Readonly<Record<string, Int32Array>>, b: Readonly<Record<string, Int32Array>>): boolean {
  for (const [k, p] of Object.entries(a)) {
    const q = b[k];
    if (q === undefined || q.length !== p.length) return false;
    for (let i = 0; i < p.length; i++) if (p[i] !== q[i]) return false;
  }
  return true;
}

export async function mergeMany(options: MergeManyOptions): Promise<MergeManyResult> {
  const { spec, models } = options;
  const n = models.length;
  if (n < 2) throw new Error(`mergeMany: needs at least two models, got ${n}`);
  validateSpec(spec, ...models.map((params, i) => ({ label: `model ${i}`, params })));
  const seed = options.seed ?? 0;
  const maxIter = options.maxIter ?? 100;
  const sizes = permSizes(spec, models[0]);
  const match = (target: Params, model: Params, init: Record<string, Int32Array>, s: number) =>
    weightMatching({ spec, paramsA: target, paramsB: model, initPerms: init, seed: s, maxIter: options.matchIter, score: options.score, engine: options.engine });

  const perms: Record<string, Int32Array>[] = models.map(() => identityPerms(sizes));
  if ((options.init ?? 'first') === 'first') {
    for (let i = 1; i < n; i++) perms[i] = (await match(models[0], models[i], perms[i], seed + i)).perms;
  }
  const aligned: Params[] = models.map((m, i) => applyPermutation(spec, perms[i], m));

  const rng = createRng(seed);
  let iterations = 0;
  let converged = false;
  for (let round = 0; round < maxIter; round++) {
    iterations = round + 1;
    let changed = false;
    const order = shuffledRange(n, rng);
    for (let step = 0; step < n; step++) {
      const i = order[step];
      const others = averageParams(aligned.filter((_, j) => j !== i));
      const r = await match(others, models[i], perms[i], seed + 7919 * (round + 1) + i);
      const moved = !samePerms(perms[i], r.perms);
      if (moved) {
        perms[i] = r.perms;
        aligned[i] = applyPermutation(spec, perms[i], models[i]);
        changed = true;
      }
      options.onProgress?.({ round, step, model: i, models: n, changed: moved });
    }
    if (!changed) {
      converged = true;
      break;
    }
  }

  // Re-express every permutation relative to model 0's: applying P_j then P_0⁻¹ is take(·, P_j ∘ P_0⁻¹).
  const base = Object.fromEntries(Object.entries(perms[0]).map(([k, p]) => [k, inversePermutation(p)]));
  const rebased = perms.map((pj) => Object.fromEntries(Object.entries(pj).map(([k, p]) => [k, composePermutations(p, base[k])])));
  const final = models.map((m, i) => applyPermutation(spec, rebased[i], m));
  return { perms: rebased, merged: averageParams(final), iterations, converged };
}
