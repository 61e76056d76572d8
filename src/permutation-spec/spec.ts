/**
 * Permutation specs: which axis of which tensor each permutation acts on.
 *
 * `axesToPerm[tensor][axis]` names the permutation acting on that axis (or null). `permToAxes` is
 * derived from it and never stored independently, so the two cannot disagree.
 */
import { InputError } from '../errors.js';
import type { Params } from '../tensor.js';
import { shapeToString, sameShape, sizeOf } from '../tensor.js';
import { splitShapes, type Segmentation, type Segments } from './segments.js';

export type { Segmentation, Segments } from './segments.js';

export interface AxisRef {
  readonly tensor: string;
  readonly axis: number;
}

export type AxesToPerm = Readonly<Record<string, readonly (string | null)[]>>;

/**
 * Permutations of attention units, which must move whole heads together: each listed permutation acts on
 * an axis of `count` heads × d units, may reorder the units inside every head freely (the q/k dims of a
 * head, its v dims), but moves head h to the same place in every permutation of the group (a head's q, k
 * and v stay one head). See heads.ts.
 */
export interface HeadGroup {
  readonly count: number;
  readonly perms: readonly string[];
}

export interface PermutationSpec {
  readonly axesToPerm: AxesToPerm;
  readonly permToAxes: Readonly<Record<string, readonly AxisRef[]>>;
  /** Head-structured permutations by group name (spec JSON version 2); absent: every permutation is free. */
  readonly heads?: Readonly<Record<string, HeadGroup>>;
  /**
   * Stored tensors whose axis is made of parts (fused q|k|v projections; segments.ts), by source tensor.
   * axesToPerm names the parts, never the source; absent: every tensor is whole.
   */
  readonly segments?: Segments;
}

/**
 * Build a spec from its `axesToPerm` table (plain data, e.g. parsed JSON) and, for attention models, the
 * groups of permutations that move whole heads.
 */
export function specFromAxes(axesToPerm: AxesToPerm, heads?: Readonly<Record<string, HeadGroup>>, segments?: Segments): PermutationSpec {
  const permToAxes: Record<string, AxisRef[]> = Object.create(null);
  const copy: Record<string, (string | null)[]> = Object.create(null);
  for (const [tensor, perms] of Object.entries(axesToPerm)) {
    if (!Array.isArray(perms)) {
      throw new InputError(`spec: tensor '${tensor}' must map to an array of permutation names or null`);
    }
    const seen = new Set<string>();
    copy[tensor] = perms.map((p, axis) => {
      if (p === null || p === undefined) return null;
      if (typeof p !== 'string' || p.length === 0) {
        throw new InputError(`spec: tensor '${tensor}' axis ${axis}: expected a permutation name or null, got ${JSON.stringify(p)}`);
      }
      if (seen.has(p)) {
        throw new InputError(`spec: permutation '${p}' appears on two axes of tensor '${tensor}'`);
      }
      seen.add(p);
      (permToAxes[p] ??= []).push({ tensor, axis });
      return p;
    });
  }
  const spec: { axesToPerm: AxesToPerm; permToAxes: Record<string, AxisRef[]>; heads?: Record<string, HeadGroup>; segments?: Segments } = { axesToPerm: copy, permToAxes };
  if (heads !== undefined && Object.keys(heads).length > 0) spec.heads = checkedHeadGroups(heads, permToAxes);
  if (segments !== undefined && Object.keys(segments).length > 0) spec.segments = checkedSegments(segments, copy);
  return spec;
}

function checkedSegments(segments: Segments, axesToPerm: AxesToPerm): Record<string, Segmentation> {
  const out: Record<string, Segmentation> = Object.create(null);
  const owner = new Map<string, string>();
  for (const [source, seg] of Object.entries(segments)) {
    const where = `spec: segments of '${source}'`;
    if (Object.hasOwn(axesToPerm, source)) {
      throw new InputError(`${where}: a segmented tensor is permuted through its parts, so '${source}' itself must not be in the axes table`);
    }
    if (!Number.isSafeInteger(seg?.axis) || seg.axis < 0) throw new InputError(`${where}: "axis" must be a non-negative integer, got ${JSON.stringify(seg?.axis)}`);
    if (!Array.isArray(seg.parts) || seg.parts.length === 0) throw new InputError(`${where}: "parts" must be a non-empty array of tensor names`);
    for (const part of seg.parts) {
      if (typeof part !== 'string' || part.length === 0) throw new InputError(`${where}: part names must be non-empty strings, got ${JSON.stringify(part)}`);
      if (Object.hasOwn(segments, part)) throw new InputError(`${where}: part '${part}' is itself a segmented tensor`);
      const other = owner.get(part);
      if (other !== undefined) throw new InputError(`spec: part '${part}' is listed under both '${other}' and '${source}'`);
      owner.set(part, source);
      const axes = Object.hasOwn(axesToPerm, part) ? axesToPerm[part] : undefined;
      if (axes !== undefined && axes.length <= seg.axis) {
        throw new InputError(`${where}: part '${part}' has ${axes.length} axes in the axes table, fewer than segment axis ${seg.axis} needs`);
      }
    }
    if (seg.sizes !== undefined) {
      if (!Array.isArray(seg.sizes) || seg.sizes.length !== seg.parts.length || seg.sizes.some((m) => !Number.isSafeInteger(m) || m < 1)) {
        throw new InputError(`${where}: "sizes" must list one positive integer per part (${seg.parts.length}), got ${JSON.stringify(seg.sizes)}`);
      }
    }
    out[source] = seg.sizes === undefined ? { axis: seg.axis, parts: [...seg.parts] } : { axis: seg.axis, parts: [...seg.parts], sizes: [...seg.sizes] };
  }
  return out;
}

function checkedHeadGroups(heads: Readonly<Record<string, HeadGroup>>, permToAxes: Readonly<Record<string, readonly AxisRef[]>>): Record<string, HeadGroup> {
  const out: Record<string, HeadGroup> = Object.create(null);
  const owner = new Map<string, string>();
  for (const [group, g] of Object.entries(heads)) {
    if (!Number.isSafeInteger(g?.count) || g.count < 1) {
      throw new InputError(`spec: head group '${group}': "count" must be a positive integer, got ${JSON.stringify(g?.count)}`);
    }
    if (!Array.isArray(g.perms) || g.perms.length === 0) throw new InputError(`spec: head group '${group}' lists no permutations`);
    for (const p of g.perms) {
      if (typeof p !== 'string' || !Object.hasOwn(permToAxes, p)) {
        throw new InputError(`spec: head group '${group}' names permutation ${JSON.stringify(p)}, which acts on no axis of the spec`);
      }
      const other = owner.get(p);
      if (other !== undefined) throw new InputError(`spec: permutation '${p}' is in head groups '${other}' and '${group}'`);
      owner.set(p, group);
    }
    out[group] = { count: g.count, perms: [...g.perms] };
  }
  return out;
}

export function permNames(spec: PermutationSpec): string[] {
  return Object.keys(spec.permToAxes);
}

/** The length of each permutation, read from the params (after validation these agree on every axis). */
export function permSizes(spec: PermutationSpec, stored: Params): Record<string, number> {
  const params = splitShapes(spec.segments, stored);
  const sizes: Record<string, number> = Object.create(null);
  for (const [p, axes] of Object.entries(spec.permToAxes)) {
    const first = axes[0];
    sizes[p] = params[first.tensor].shape[first.axis];
  }
  return sizes;
}

/**
 * Check a spec against one or more param sets before any work is done. Throws an InputError naming the
 * tensor, axis and sizes for: a spec tensor missing from the params, a rank mismatch, a permutation
 * whose axes disagree in length, and (with several param sets) a tensor whose shape differs between them.
 */
export function validateSpec(spec: PermutationSpec, ...paramSets: { label: string; params: Params }[]): void {
  if (paramSets.length === 0) throw new Error('validateSpec: no params given');
  for (const { label, params: stored } of paramSets) {
    for (const source of Object.keys(spec.segments ?? {})) {
      if (!Object.hasOwn(stored, source)) throw new InputError(`spec segments tensor '${source}', which ${label} does not have`);
    }
    // Segmented tensors are checked as their parts (shapes only: nothing is copied).
    const params = splitShapes(spec.segments, stored, label);
    for (const [tensor, perms] of Object.entries(spec.axesToPerm)) {
      // Own names only: a plain-object params would answer 'constructor' or 'toString' from its prototype.
      const t = Object.hasOwn(params, tensor) ? params[tensor] : undefined;
      if (t === undefined) {
        throw new InputError(`spec names tensor '${tensor}', which ${label} does not have`);
      }
      if (t.shape.length !== perms.length) {
        throw new InputError(
          `spec gives tensor '${tensor}' ${perms.length} axes but in ${label} it has rank ${t.shape.length} (shape ${shapeToString(t.shape)})`,
        );
      }
    }
    for (const [p, axes] of Object.entries(spec.permToAxes)) {
      const sizes = axes.map((ref) => params[ref.tensor].shape[ref.axis]);
      if (sizes.some((m) => m !== sizes[0])) {
        // List every axis: which one is "wrong" is the user's call (often the whole layout is transposed).
        const listing = axes.map((ref, i) => `'${ref.tensor}' axis ${ref.axis} = ${sizes[i]}`).join(', ');
        throw new InputError(`permutation '${p}' acts on axes of different sizes in ${label}: ${listing}`);
      }
      // A tensor with no entries can claim any length on its other axes ([2^31, 0] costs nothing to store);
      // a permutation that only such tensors size would allocate that many units and permute nothing.
      if (sizes[0] > 0 && axes.every((ref) => sizeOf(params[ref.tensor].shape) === 0)) {
        const listing = axes.map((ref) => `'${ref.tensor}' ${shapeToString(params[ref.tensor].shape)}`).join(', ');
        throw new InputError(
          `permutation '${p}' (${sizes[0]} units) acts only on tensors with no entries in ${label} (${listing}); ` +
            'it would permute nothing: set those axes to null in the spec',
        );
      }
    }
    for (const [group, { count, perms }] of Object.entries(spec.heads ?? {})) {
      for (const p of perms) {
        const ref = spec.permToAxes[p][0];
        const n = params[ref.tensor].shape[ref.axis];
        if (n % count !== 0) {
          throw new InputError(`head group '${group}': permutation '${p}' acts on '${ref.tensor}' axis ${ref.axis} of ${n} units in ${label}, which is not ${count} heads of equal size`);
        }
      }
    }
  }
  const [base, ...rest] = paramSets;
  for (const other of rest) {
    for (const [name, t] of Object.entries(base.params)) {
      const u = Object.hasOwn(other.params, name) ? other.params[name] : undefined;
      if (u === undefined) {
        throw new InputError(`tensor '${name}' is in ${base.label} but not in ${other.label}`);
      }
      if (!sameShape(t.shape, u.shape)) {
        throw new InputError(
          `tensor '${name}' has shape ${shapeToString(t.shape)} in ${base.label} but ${shapeToString(u.shape)} in ${other.label}`,
        );
      }
    }
    for (const name of Object.keys(other.params)) {
      if (!Object.hasOwn(base.params, name)) {
        throw new InputError(`tensor '${name}' is in ${other.label} but not in ${base.label}`);
      }
    }
  }
}
