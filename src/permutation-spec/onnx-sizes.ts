/**
 * Sizes the ONNX graph walk follows through the small integer computations exporters write for Reshape
 * targets and Slice bounds (torch's `x.size(0)`, `E // num_heads`, `bsz * num_heads`, `(3E + 2) // 3`), and
 * the dimension products a Reshape is checked with. Pure functions; browser-safe.
 */

/**
 * One entry of a small integer tensor whose contents we follow (Reshape targets, axes, pads): a number, or
 * "dimension `axis` of value `of`" when that size is only known at run time (from a Shape node).
 */
export type IntEntry = number | DimOf | DimProduct;
export interface DimOf {
  readonly of: string;
  readonly axis: number;
}
/** `k` times the product of sizes known only at run time (`bsz * num_heads` in a Reshape target). */
export interface DimProduct {
  readonly k: number;
  readonly dims: readonly DimOf[];
}

export const isDimOf = (e: IntEntry): e is DimOf => typeof e === 'object' && 'of' in e;

/** An entry as k × sizes known at run time. */
export function asProduct(e: IntEntry): DimProduct {
  if (typeof e === 'number') return { k: e, dims: [] };
  return isDimOf(e) ? { k: 1, dims: [e] } : e;
}

/**
 * Elementwise integer arithmetic on followed sizes (scalars broadcast), as ONNX does it on int64: Div
 * truncates. Sums and quotients of run-time sizes are not followed (null); products are.
 */
export function intArithmetic(op: string, args: readonly (readonly IntEntry[])[]): IntEntry[] | null {
  if (args.length !== 2 || !['Add', 'Sub', 'Mul', 'Div'].includes(op)) return null;
  const [a, b] = args;
  const n = Math.max(a.length, b.length);
  if ((a.length !== n && a.length !== 1) || (b.length !== n && b.length !== 1)) return null;
  const out: IntEntry[] = [];
  for (let i = 0; i < n; i++) {
    const x = a[a.length === 1 ? 0 : i];
    const y = b[b.length === 1 ? 0 : i];
    if (typeof x === 'number' && typeof y === 'number') {
      if (op === 'Div' && y === 0) return null;
      const v = op === 'Add' ? x + y : op === 'Sub' ? x - y : op === 'Mul' ? x * y : Math.trunc(x / y) + 0; // + 0: no -0
      if (!Number.isSafeInteger(v)) return null;
      out.push(v);
    } else if (op === 'Mul') {
      const [p, q] = [asProduct(x), asProduct(y)];
      out.push({ k: p.k * q.k, dims: [...p.dims, ...q.dims] });
    } else return null;
  }
  return out;
}

/**
 * A dimension as a product: a known factor times sizes known only at run time, each named by a symbol
 * (`#i`: dimension i of the Reshape's input; `?i`: an unknown size). Lets a Reshape whose target is computed
 * from the input's own Shape (`x.view(x.size(0), -1)`) be followed without knowing the batch size.
 */
export interface Mono {
  readonly k: number;
  readonly syms: readonly string[];
}

export const monoMul = (ms: readonly Mono[]): Mono => ({ k: ms.reduce((p, m) => p * m.k, 1), syms: ms.flatMap((m) => m.syms).sort() });
export const monoEq = (a: Mono, b: Mono): boolean => a.k === b.k && a.syms.length === b.syms.length && a.syms.every((s, i) => s === b.syms[i]);

/** a / b when it is a product of the same kind (b's symbols all in a, factor divisible), else null. */
export function monoDiv(a: Mono, b: Mono): Mono | null {
  if (b.k === 0 || a.k % b.k !== 0) return null;
  const rest = [...a.syms];
  for (const s of b.syms) {
    const i = rest.indexOf(s);
    if (i < 0) return null;
    rest.splice(i, 1);
  }
  return { k: a.k / b.k, syms: rest };
}

/** The size when it has no run-time factor. */
export const known = (m: Mono): number | null => (m.syms.length === 0 ? m.k : null);
