/**
 * A readable text table of a spec: one row per permutation with its size and the tensor axes it acts
 * on. Axes of sibling tensors on the same axis are grouped (`bn1.{weight,bias}:0`) so a BatchNorm
 * or a Linear layer reads as one item.
 */
import type { Params } from '../tensor.js';
import type { AxisRef, PermutationSpec } from './spec.js';
import { isIgnorable } from './resnet.js';
import { splitShapes } from './segments.js';

/** Group consecutive refs that share a parent module and an axis: `a.b.{w,x}:0`. */
export function groupRefs(refs: readonly AxisRef[]): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < refs.length) {
    const { tensor, axis } = refs[i];
    const dot = tensor.lastIndexOf('.');
    const parent = dot < 0 ? null : tensor.slice(0, dot);
    const leaves = [dot < 0 ? tensor : tensor.slice(dot + 1)];
    let j = i + 1;
    while (parent !== null && j < refs.length && refs[j].axis === axis) {
      const t = refs[j].tensor;
      const d = t.lastIndexOf('.');
      if (d < 0 || t.slice(0, d) !== parent) break;
      leaves.push(t.slice(d + 1));
      j++;
    }
    out.push(leaves.length === 1 ? `${tensor}:${axis}` : `${parent}.{${leaves.join(',')}}:${axis}`);
    i = j;
  }
  return out;
}

/** Join items with ', ' into lines of at most `width` characters (an over-long item gets its own line). */
function wrap(items: readonly string[], width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const item of items) {
    const next = line === '' ? item : `${line}, ${item}`;
    if (line !== '' && next.length > width) {
      lines.push(`${line},`);
      line = item;
    } else {
      line = next;
    }
  }
  if (line !== '') lines.push(line);
  return lines;
}

export interface SpecTableOptions {
  /** Width of the axes column before wrapping; default 80. */
  axesWidth?: number;
}

/**
 * The table, as text ending in a newline. With `params`, sizes are read from them (the first axis of
 * each permutation; `validateSpec` checks the rest) and a final line lists the tensors left unpermuted.
 */
export function formatSpecTable(spec: PermutationSpec, stored?: Params, options: SpecTableOptions = {}): string {
  const width = options.axesWidth ?? 80;
  // Fused tensors are listed as their parts, as the axes table names them.
  const params = stored === undefined ? undefined : splitShapes(spec.segments, stored);
  const rows = Object.entries(spec.permToAxes).map(([perm, refs]) => {
    const first = refs[0];
    const t = params?.[first.tensor];
    const size = t === undefined ? '?' : String(t.shape[first.axis]);
    return { perm, size, lines: wrap(groupRefs(refs), width) };
  });
  const head = { perm: 'permutation', size: 'size', axes: 'tensor:axis' };
  const pw = Math.max(head.perm.length, ...rows.map((r) => r.perm.length));
  const sw = Math.max(head.size.length, ...rows.map((r) => r.size.length));
  const out: string[] = [`${head.perm.padEnd(pw)}  ${head.size.padStart(sw)}  ${head.axes}`];
  for (const r of rows) {
    r.lines.forEach((line, k) => {
      out.push(k === 0 ? `${r.perm.padEnd(pw)}  ${r.size.padStart(sw)}  ${line}` : `${''.padEnd(pw)}  ${''.padStart(sw)}  ${line}`);
    });
  }
  const axisCount = rows.reduce((n, r) => n + spec.permToAxes[r.perm].length, 0);
  out.push(`${rows.length} permutation(s) over ${axisCount} axes of ${Object.keys(spec.axesToPerm).length} tensor(s)`);
  for (const [group, { count, perms }] of Object.entries(spec.heads ?? {})) {
    out.push(`heads '${group}': ${count} heads, moved alike by ${perms.join(', ')} (units stay within their head)`);
  }
  for (const [source, seg] of Object.entries(spec.segments ?? {})) {
    const sizes = seg.sizes === undefined ? 'equal parts' : `parts of ${seg.sizes.join(', ')}`;
    out.push(`segments: '${source}' axis ${seg.axis} = ${seg.parts.join(' | ')} (${sizes})`);
  }
  if (params !== undefined) {
    // Scalars (BatchNorm's num_batches_tracked) cannot be permuted; count them rather than list them.
    const free = Object.keys(params).filter((n) => !(spec.axesToPerm[n] ?? []).some((p) => p !== null));
    const scalars = free.filter((n) => isIgnorable(n, params[n])).length;
    const untouched = free.filter((n) => !isIgnorable(n, params[n]));
    if (scalars > 0) untouched.push(`(${scalars} scalar tensor(s))`);
    if (untouched.length > 0) {
      wrap(untouched, width).forEach((line, k) => out.push(`${k === 0 ? 'not permuted: ' : '              '}${line}`));
    }
  }
  return out.join('\n') + '\n';
}
