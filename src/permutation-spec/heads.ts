/**
 * Head-structured permutations (attention).
 *
 * A multi-head attention layer splits its q, k and v projections into H heads of d units each. Its function
 * is unchanged when (a) the heads are reordered, the same way for q, k, v and the out-projection's input,
 * and (b) inside each head, the q/k dims are reordered (one order shared by q and k, so q·kᵀ is unchanged)
 * and the v dims are reordered (shared by v and the out-projection's columns). A flat permutation of the
 * H·d units that crosses head boundaries changes the function.
 *
 * So a head-structured permutation σ of H·d units is σ(h·d + i) = π(h)·d + τ_h(i): a permutation π of the
 * heads and one τ_h per head. The permutations of one head group (e.g. a layer's qk and v) share π and
 * have their own τ_h. Everything else about them is ordinary: they act on axes like any permutation, so
 * applying, inverting and composing them needs nothing new; only choosing them (matching, random draws)
 * and accepting them from outside (checkHeadPerms) must keep the structure.
 */
import { InputError } from '../errors.js';
import type { Perms } from '../permute.js';
import { createRng, shuffledRange } from '../random.js';
import type { PermutationSpec } from './spec.js';

/** The head group a permutation belongs to, or null for a free permutation. */
export function headGroupOf(spec: PermutationSpec, perm: string): { name: string; count: number; perms: readonly string[] } | null {
  for (const [name, g] of Object.entries(spec.heads ?? {})) if (g.perms.includes(perm)) return { name, ...g };
  return null;
}

/**
 * The permutation of the heads that σ makes (π with σ(h·d + i) = π(h)·d + τ_h(i)), or the first head
 * whose units σ spreads over several heads.
 */
export function headPermutation(sigma: ArrayLike<number>, heads: number): { pi: Int32Array } | { brokenHead: number } {
  const d = sigma.length / heads;
  const pi = new Int32Array(heads);
  for (let h = 0; h < heads; h++) {
    const target = Math.floor(sigma[h * d] / d);
    for (let i = 1; i < d; i++) if (Math.floor(sigma[h * d + i] / d) !== target) return { brokenHead: h };
    pi[h] = target;
  }
  return { pi };
}

/**
 * Throw an InputError unless every permutation of every head group keeps heads whole and the group's
 * permutations move the heads alike (given permutations from outside: a file, an initial guess).
 */
export function checkHeadPerms(spec: PermutationSpec, perms: Perms, label = 'permutations'): void {
  for (const [group, { count, perms: members }] of Object.entries(spec.heads ?? {})) {
    let first: { perm: string; pi: Int32Array } | null = null;
    for (const p of members) {
      const sigma = perms[p];
      if (sigma === undefined) continue;
      const r = headPermutation(sigma, count);
      if ('brokenHead' in r) {
        const d = sigma.length / count;
        throw new InputError(`${label}: '${p}' (head group '${group}', ${count} heads of ${d}) sends the units of head ${r.brokenHead} to more than one head`);
      }
      if (first === null) first = { perm: p, pi: r.pi };
      else {
        const h = first.pi.findIndex((v, i) => v !== r.pi[i]);
        if (h >= 0) throw new InputError(`${label}: head group '${group}': '${first.perm}' moves head ${h} to head ${first.pi[h]} but '${p}' to head ${r.pi[h]}`);
      }
    }
  }
}

/** σ from π and the per-head orders τ_h. */
export function headStructured(pi: ArrayLike<number>, within: readonly ArrayLike<number>[]): Int32Array {
  const heads = pi.length;
  const d = within[0]?.length ?? 0;
  const sigma = new Int32Array(heads * d);
  for (let h = 0; h < heads; h++) for (let i = 0; i < d; i++) sigma[h * d + i] = pi[h] * d + within[h][i];
  return sigma;
}

/**
 * Random permutations for every permutation of the spec (seeded), keeping head groups head-structured:
 * what a random "this must not change the function" check needs.
 */
export function randomSpecPerms(spec: PermutationSpec, sizes: Readonly<Record<string, number>>, seed: number): Record<string, Int32Array> {
  const rng = createRng(seed);
  const draw = (n: number): Int32Array => shuffledRange(n, rng);
  const out: Record<string, Int32Array> = {};
  const grouped = new Set<string>();
  for (const { count, perms } of Object.values(spec.heads ?? {})) {
    const pi = draw(count);
    for (const p of perms) {
      grouped.add(p);
      out[p] = headStructured(pi, Array.from({ length: count }, () => draw(sizes[p] / count)));
    }
  }
  for (const p of Object.keys(sizes).sort()) if (!grouped.has(p)) out[p] = draw(sizes[p]);
  return out;
}
