/**
 * Cost matrices kept from step to step and brought up to date by low-rank updates (issue 6).
 *
 * Permutation p's cost matrix is C_p = Σ over p's terms of A_t · gather(B_t)ᵀ (weight-matching.ts). A term
 * whose tensor carries one other permutation q (every 2-D and conv weight of an MLP, VGG or ResNet) depends
 * on q alone; a term with no other permutation (biases, the first layer's weight) never changes. So when p
 * comes round again and q moved k of its m units since C_p was computed, only the columns of the k moved
 * units changed, and
 *
 *   C_p ← C_p + A_S · (B_S,new − B_S,old)ᵀ
 *
 * where A_S holds A's columns at those k positions and B_S,new / B_S,old B's columns gathered by the new /
 * old q there: a product k/m the size of the full one, and no gather of the rest of B. In the later passes
 * of weight matching few units move, so steps cost a fraction of a full product.
 *
 * The matrices are kept in float64 (one n × n per permutation, Σ n² · 8 bytes in all), so repeated
 * updates add no drift beyond each product's own float32 rounding. A term with two or more other
 * permutations, or an update wider than half the full product, is recomputed from scratch instead.
 */
import { sizeOf, writeTakenAxisFirst } from '../tensor.js';
import type { PermutationSpec } from '../permutation-spec/spec.js';
import type { Perms } from '../permute.js';
import type { MatmulEngine } from '../engine/matmul.js';
import type { ParamSource } from './param-source.js';

/** An update wider than this share of the full product's inner dimension recomputes C_p from scratch. */
const MAX_UPDATE_SHARE = 0.5;

interface Term {
  readonly tensor: string;
  /** The axis p acts on. */
  readonly axis: number;
  /** The one other permuted axis and its permutation, or null for none; `multi` when there are more. */
  readonly other: { readonly axis: number; readonly perm: string } | null;
  readonly multi: boolean;
  /** Columns this term adds to p's operands per unit of `other` (its share of the row width). */
  readonly colsPerUnit: number;
}

/** What a step needs from the cache: the matrix, and how it was brought up to date. */
export interface CachedCost {
  readonly cost: Float64Array;
  /** 'fresh': computed in full; 'update': low-rank update of `columns` operand columns. */
  readonly how: 'fresh' | 'update';
  readonly columns: number;
}

export type FreshCost = (p: string, into: Float64Array) => Promise<void>;

export class CostCache {
  private readonly terms = new Map<string, Term[]>();
  private readonly matrices = new Map<string, Float64Array>();
  /** For each p, the other permutations as they were when its matrix was last brought up to date. */
  private readonly seen = new Map<string, Map<string, Int32Array>>();

  constructor(
    private readonly spec: PermutationSpec,
    private readonly sourceA: ParamSource,
    private readonly sourceB: ParamSource,
    private readonly engine: MatmulEngine,
    private readonly scratch: (key: 'a' | 'b', size: number) => Float32Array,
    /** Where the kept matrices live (the solver's memory, where they are solved in place). */
    private readonly allocate: (length: number) => Float64Array = (length) => new Float64Array(length),
    /** into += delta, elementwise (float64 += float32); the solver's own when the matrices live there. */
    private readonly addInto: (into: Float64Array, delta: Float32Array) => void = addFloat32,
  ) {}

  /**
   * C_p for the current perms: from scratch (`fresh` writes it) the first time and after wide changes,
   * else by a low-rank update. The returned matrix is owned by the cache: read it, never write it.
   */
  async cost(p: string, n: number, perms: Perms, fresh: FreshCost): Promise<CachedCost> {
    const terms = this.termsOf(p, n);
    let matrix = this.matrices.get(p);
    const seen = this.seen.get(p);
    if (matrix === undefined || seen === undefined) {
      matrix = this.allocate(n * n);
      await fresh(p, matrix);
      this.matrices.set(p, matrix);
      this.seen.set(p, this.snapshot(terms, perms));
      return { cost: matrix, how: 'fresh', columns: 0 };
    }

    // Moved positions of each other permutation since the matrix was last brought up to date.
    const moved = new Map<string, Int32Array>();
    let multiChanged = false;
    for (const t of terms) {
      if (t.other === null) continue;
      const q = t.other.perm;
      if (t.multi) {
        for (const r of this.spec.axesToPerm[t.tensor]) {
          if (r !== null && changedPositions(seen.get(r)!, perms[r]).length > 0) multiChanged = true;
        }
        continue;
      }
      if (!moved.has(q)) moved.set(q, changedPositions(seen.get(q)!, perms[q]));
    }
    let width = 0;
    let fullWidth = 0;
    for (const t of terms) {
      const units = t.other === null ? 1 : this.sourceA.shape(t.tensor)[t.other.axis];
      fullWidth += t.colsPerUnit * units;
      if (t.other !== null && !t.multi) width += t.colsPerUnit * moved.get(t.other.perm)!.length;
    }
    if (multiChanged || width > MAX_UPDATE_SHARE * fullWidth) {
      await fresh(p, matrix);
      this.seen.set(p, this.snapshot(terms, perms));
      return { cost: matrix, how: 'fresh', columns: fullWidth };
    }
    if (width > 0) {
      const a = this.scratch('a', n * width);
      const b = this.scratch('b', n * width);
      let col = 0;
      for (const t of terms) {
        if (t.other === null || t.multi) continue;
        const q = t.other.perm;
        const at = moved.get(q)!;
        if (at.length === 0) continue;
        const before = seen.get(q)!;
        const now = perms[q];
        const oldIndex = Int32Array.from(at, (i) => before[i]);
        const newIndex = Int32Array.from(at, (i) => now[i]);
        const other = t.other.axis;
        this.sourceA.use(t.tensor, (x) => writeTakenAxisFirst(x, t.axis, other, at, null, a, width, col));
        this.sourceB.use(t.tensor, (x) => writeTakenAxisFirst(x, t.axis, other, newIndex, oldIndex, b, width, col));
        col += t.colsPerUnit * at.length;
      }
      this.addInto(matrix, await this.engine.abt(a, n, b, n, width));
      this.seen.set(p, this.snapshot(terms, perms));
    }
    return { cost: matrix, how: 'update', columns: width };
  }

  private termsOf(p: string, n: number): Term[] {
    let terms = this.terms.get(p);
    if (terms === undefined) {
      terms = this.spec.permToAxes[p].map(({ tensor, axis }) => {
        const others: { axis: number; perm: string }[] = [];
        this.spec.axesToPerm[tensor].forEach((q, d) => {
          if (q !== null && d !== axis) others.push({ axis: d, perm: q });
        });
        const size = sizeOf(this.sourceA.shape(tensor));
        const other = others.length === 0 ? null : others[0];
        const units = other === null ? 1 : this.sourceA.shape(tensor)[other.axis];
        return { tensor, axis, other, multi: others.length > 1, colsPerUnit: size / n / units };
      });
      this.terms.set(p, terms);
    }
    return terms;
  }

  private snapshot(terms: readonly Term[], perms: Perms): Map<string, Int32Array> {
    const out = new Map<string, Int32Array>();
    for (const t of terms) {
      if (t.other === null) continue;
      // Every other permutation of a multi term too, so any change of theirs is seen.
      for (const q of this.spec.axesToPerm[t.tensor]) {
        if (q !== null && !out.has(q)) out.set(q, Int32Array.from(perms[q]));
      }
    }
    return out;
  }
}

/** Positions where two permutations differ. */
function changedPositions(before: Int32Array, after: Int32Array): Int32Array {
  let count = 0;
  for (let i = 0; i < before.length; i++) if (before[i] !== after[i]) count++;
  const out = new Int32Array(count);
  for (let i = 0, k = 0; i < before.length; i++) if (before[i] !== after[i]) out[k++] = i;
  return out;
}

/** into[i] += delta[i] (float64 += float32): its own small function, so V8 optimises the loop on its own. */
function addFloat32(into: Float64Array, delta: Float32Array): void {
  for (let i = 0; i < into.length; i++) into[i] += delta[i];
}
