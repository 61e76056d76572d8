/**
 * Permutations as integer index arrays, and applying them to params through a spec.
 * Semantics (as in the reference code): P(B)[t] = take(B[t], perm, axis) for each permuted axis.
 */
import type { Params, Tensor } from './tensor.js';
import { take } from './tensor.js';
import type { PermutationSpec } from './permutation-spec/spec.js';
import { createRng, shuffledRange } from './random.js';
import { joinAxis, splitTensor } from './permutation-spec/segments.js';

export type Perms = Readonly<Record<string, Int32Array>>;

export function identityPermutation(n: number): Int32Array {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  return p;
}

export function identityPerms(sizes: Readonly<Record<string, number>>): Record<string, Int32Array> {
  const out: Record<string, Int32Array> = Object.create(null);
  for (const [name, n] of Object.entries(sizes)) out[name] = identityPermutation(n);
  return out;
}

export function randomPermutation(n: number, seed: number): Int32Array {
  return shuffledRange(n, createRng(seed));
}

/** One random permutation per name, all drawn from one seeded stream (sorted by name for stability). */
export function randomPerms(sizes: Readonly<Record<string, number>>, seed: number): Record<string, Int32Array> {
  const rng = createRng(seed);
  const out: Record<string, Int32Array> = Object.create(null);
  for (const name of Object.keys(sizes).sort()) out[name] = shuffledRange(sizes[name], rng);
  return out;
}

export function isPermutation(p: ArrayLike<number>): boolean {
  const seen = new Uint8Array(p.length);
  for (let i = 0; i < p.length; i++) {
    const v = p[i];
    if (!Number.isInteger(v) || v < 0 || v >= p.length || seen[v]) return false;
    seen[v] = 1;
  }
  return true;
}

/** q such that take(take(x, p), q) = x, i.e. q[p[i]] = i. */
export function inversePermutation(p: Int32Array): Int32Array {
  const q = new Int32Array(p.length);
  for (let i = 0; i < p.length; i++) q[p[i]] = i;
  return q;
}

/**
 * compose(p, q) applied with `take` equals applying p first, then q:
 * take(take(x, p), q) = take(x, compose(p, q)), so compose(p, q)[i] = p[q[i]].
 */
export function composePermutations(p: Int32Array, q: Int32Array): Int32Array {
  if (p.length !== q.length) throw new Error(`compose: lengths ${p.length} and ${q.length} differ`);
  const r = new Int32Array(p.length);
  for (let i = 0; i < p.length; i++) r[i] = p[q[i]];
  return r;
}

/** Fraction of units the permutation moves (P[i] ≠ i). */
export function churn(p: Int32Array): number {
  if (p.length === 0) return 0;
  let moved = 0;
  for (let i = 0; i < p.length; i++) if (p[i] !== i) moved++;
  return moved / p.length;
}

export function isIdentity(p: Int32Array): boolean {
  for (let i = 0; i < p.length; i++) if (p[i] !== i) return false;
  return true;
}

/** One tensor with every permuted axis (except `exceptAxis`) gathered by its permutation. */
export function permutedTensor(
  spec: PermutationSpec,
  perms: Perms,
  name: string,
  t: Tensor,
  exceptAxis: number | null = null,
): Tensor {
  const parts = splitTensor(spec.segments, name, t);
  if (parts !== null) {
    // A fused tensor: each part permuted as a tensor of its own, then laid back side by side.
    const pieces = Object.entries(parts);
    const moved = pieces.map(([part, pt]) => permutedTensor(spec, perms, part, pt, exceptAxis));
    return moved.every((m, i) => m === pieces[i][1]) ? t : joinAxis(moved, spec.segments![name].axis);
  }
  const axes = Object.hasOwn(spec.axesToPerm, name) ? spec.axesToPerm[name] : undefined;
  if (axes === undefined) return t;
  let out = t;
  axes.forEach((p, axis) => {
    if (p === null || axis === exceptAxis) return;
    const perm = perms[p];
    if (perm === undefined) throw new Error(`applyPermutation: no permutation named '${p}'`);
    out = take(out, perm, axis);
  });
  return out;
}

/** P(params): a new param set; tensors the spec does not mention are shared, not copied. */
export function applyPermutation(spec: PermutationSpec, perms: Perms, params: Params): Record<string, Tensor> {
  const out: Record<string, Tensor> = Object.create(null);
  for (const [name, t] of Object.entries(params)) out[name] = permutedTensor(spec, perms, name, t);
  return out;
}
