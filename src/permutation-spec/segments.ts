/**
 * Segmented axes: one axis of a stored tensor made of consecutive parts, each with its own permutations.
 *
 * A fused attention projection stores q, k and v in one tensor (PyTorch's `in_proj_weight` [3E, E] with
 * rows q|k|v, timm's `qkv`, GPT-2's `c_attn` [E, 3E]). The rows of q and k share one permutation, those of
 * v another, so no single permutation acts on the fused axis. The spec names each segment as a tensor of
 * its own (a "part", with the source's rank) and lists the parts under the source:
 *
 *   segments: { "in_proj_weight": { axis: 0, parts: ["in_proj_weight#q", "in_proj_weight#k", "in_proj_weight#v"] } }
 *   axesToPerm: { "in_proj_weight#q": ["qk", "res"], "in_proj_weight#k": ["qk", "res"], "in_proj_weight#v": ["v", "res"] }
 *
 * Everything that works on tensors works on the parts unchanged; only the edges split a source into its
 * parts (matching, validation) and join them back (writing P(B)). Parts are cut in order along the axis,
 * in equal sizes unless `sizes` is given.
 */
import { InputError } from '../errors.js';
import type { Params, Tensor } from '../tensor.js';
import { shapeToString, sizeOf } from '../tensor.js';
import type { ParamSource } from '../match/param-source.js';

export interface Segmentation {
  /** The axis of the source tensor that the parts divide. */
  readonly axis: number;
  /** The parts' names, in order along the axis; each is a tensor name in the spec's axesToPerm. */
  readonly parts: readonly string[];
  /** Each part's length along the axis; absent: equal parts. */
  readonly sizes?: readonly number[];
}

export type Segments = Readonly<Record<string, Segmentation>>;

/** Where each part of `source` lies along its axis, checked against the source's shape. */
export function partBounds(source: string, seg: Segmentation, shape: readonly number[], label = 'params'): { name: string; start: number; size: number }[] {
  if (seg.axis >= shape.length) {
    throw new InputError(`spec segments '${source}' along axis ${seg.axis}, but in ${label} it has rank ${shape.length} (shape ${shapeToString(shape)})`);
  }
  const n = shape[seg.axis];
  const sizes = seg.sizes ?? seg.parts.map(() => n / seg.parts.length);
  if (seg.sizes === undefined && n % seg.parts.length !== 0) {
    throw new InputError(`spec cuts '${source}' axis ${seg.axis} (${n} in ${label}) into ${seg.parts.length} equal parts, which ${n} is not divisible into`);
  }
  const total = sizes.reduce((s, m) => s + m, 0);
  if (total !== n) {
    throw new InputError(`spec cuts '${source}' axis ${seg.axis} into parts of ${sizes.join(' + ')} = ${total}, but in ${label} that axis has ${n} (shape ${shapeToString(shape)})`);
  }
  let start = 0;
  return seg.parts.map((name, i) => {
    const b = { name, start, size: sizes[i] };
    start += sizes[i];
    return b;
  });
}

function withAxis(shape: readonly number[], axis: number, size: number): number[] {
  const out = [...shape];
  out[axis] = size;
  return out;
}

/** Entries [start, start+size) of `axis`: a view when the axis is the outermost one that varies, else a copy. */
export function sliceAxis(t: Tensor, axis: number, start: number, size: number): Tensor {
  const shape = withAxis(t.shape, axis, size);
  const outer = sizeOf(t.shape.slice(0, axis));
  const inner = sizeOf(t.shape.slice(axis + 1));
  const n = t.shape[axis];
  if (outer === 1) return { shape, data: t.data.subarray(start * inner, (start + size) * inner) };
  const data = new Float32Array(outer * size * inner);
  for (let o = 0; o < outer; o++) data.set(t.data.subarray((o * n + start) * inner, (o * n + start + size) * inner), o * size * inner);
  return { shape, data };
}

/** The parts laid back side by side along `axis` (the inverse of slicing them out). */
export function joinAxis(parts: readonly Tensor[], axis: number): Tensor {
  const first = parts[0].shape;
  const n = parts.reduce((s, p) => s + p.shape[axis], 0);
  const outer = sizeOf(first.slice(0, axis));
  const inner = sizeOf(first.slice(axis + 1));
  const data = new Float32Array(outer * n * inner);
  let at = 0;
  for (const p of parts) {
    const m = p.shape[axis];
    for (let o = 0; o < outer; o++) data.set(p.data.subarray(o * m * inner, (o + 1) * m * inner), (o * n + at) * inner);
    at += m;
  }
  return { shape: withAxis(first, axis, n), data };
}

/** One stored tensor cut into its parts (name → part), or null when the spec does not segment it. */
export function splitTensor(segments: Segments | undefined, name: string, t: Tensor, label = 'params'): Record<string, Tensor> | null {
  const seg = segments !== undefined && Object.hasOwn(segments, name) ? segments[name] : undefined;
  if (seg === undefined) return null;
  const out: Record<string, Tensor> = Object.create(null);
  for (const b of partBounds(name, seg, t.shape, label)) out[b.name] = sliceAxis(t, seg.axis, b.start, b.size);
  return out;
}

/** Params with every segmented tensor replaced by its parts (in its place in the key order). */
export function splitSegments(segments: Segments | undefined, params: Params, label = 'params'): Params {
  if (segments === undefined) return params;
  const out: Record<string, Tensor> = Object.create(null);
  for (const [name, t] of Object.entries(params)) {
    const parts = splitTensor(segments, name, t, label);
    if (parts === null) out[name] = t;
    else Object.assign(out, parts);
  }
  return out;
}

/** Shape-only stand-ins for the parts (empty data), for checks that read shapes alone. */
export function splitShapes(segments: Segments | undefined, params: Params, label = 'params'): Params {
  if (segments === undefined) return params;
  const empty = new Float32Array(0);
  const out: Record<string, Tensor> = Object.create(null);
  for (const [name, t] of Object.entries(params)) {
    const seg = Object.hasOwn(segments, name) ? segments[name] : undefined;
    if (seg === undefined) out[name] = t;
    else for (const b of partBounds(name, seg, t.shape, label)) out[b.name] = { shape: withAxis(t.shape, seg.axis, b.size), data: empty };
  }
  return out;
}

/** The inverse of splitSegments: each source rebuilt from its parts. */
export function joinSegments(segments: Segments | undefined, params: Params): Params {
  if (segments === undefined) return params;
  const partOf = new Map<string, string>();
  for (const [source, seg] of Object.entries(segments)) for (const p of seg.parts) partOf.set(p, source);
  const out: Record<string, Tensor> = Object.create(null);
  for (const [name, t] of Object.entries(params)) {
    const source = partOf.get(name);
    if (source === undefined) out[name] = t;
    else if (!Object.hasOwn(out, source)) out[source] = joinAxis(segments[source].parts.map((p) => params[p]), segments[source].axis);
  }
  return out;
}

/**
 * A ParamSource whose segmented tensors appear as their parts. Parts of an in-memory source are cut once
 * and kept (matching reads them at every step); those of a file source are cut on each read.
 */
export function segmentedSource(segments: Segments, source: ParamSource): ParamSource {
  const where = new Map<string, { source: string; axis: number; start: number; size: number }>();
  const names: string[] = [];
  for (const name of source.names) {
    const seg = Object.hasOwn(segments, name) ? segments[name] : undefined;
    if (seg === undefined) {
      names.push(name);
      continue;
    }
    for (const b of partBounds(name, seg, source.shape(name), source.label)) {
      where.set(b.name, { source: name, axis: seg.axis, start: b.start, size: b.size });
      names.push(b.name);
    }
  }
  const kept = new Map<string, Tensor>();
  const cut = (name: string, t: Tensor): Tensor => {
    const w = where.get(name)!;
    return sliceAxis(t, w.axis, w.start, w.size);
  };
  const get = (name: string): Tensor => {
    const w = where.get(name);
    if (w === undefined) return source.get(name);
    if (!source.resident) return cut(name, source.get(w.source));
    let t = kept.get(name);
    if (t === undefined) kept.set(name, (t = cut(name, source.get(w.source))));
    return t;
  };
  return {
    label: source.label,
    names,
    resident: source.resident,
    has: (name) => where.has(name) || (!Object.hasOwn(segments, name) && source.has(name)),
    shape(name) {
      const w = where.get(name);
      return w === undefined ? source.shape(name) : withAxis(source.shape(w.source), w.axis, w.size);
    },
    get,
    use(name, fn) {
      const w = where.get(name);
      if (w === undefined) return source.use(name, fn);
      if (source.resident) return fn(get(name));
      return source.use(w.source, (t) => fn(cut(name, t)));
    },
    close: () => source.close(),
  };
}
