/**
 * A permutation spec for a state dict (safetensors or .pt) taken from an ONNX export of the same network.
 *
 * The ONNX graph says which axes share a channel space (onnx-graph.ts derives that spec); the state dict has
 * the tensors to permute. This module maps each state-dict tensor onto the export's initializers:
 *   1. by name: exporters keep module names when they copy a parameter as it is (and alias duplicates of
 *      one value through Identity nodes, which count as that name too);
 *   2. by shape, for the rest (anonymous `onnx::Conv_NNN` / `onnx::MatMul_NNN` initializers, renamed
 *      tensors): an export initializer and a state-dict tensor of one shape (or the transposed shape, for
 *      the 2-D weights MatMul takes as [in, out]) pair up when they are the only ones of that shape; where
 *      several share a shape, their values decide, as the export holds the very weights of one of the models
 *      (copied, transposed, or scaled per output channel where BatchNorm was folded into the layer);
 *   3. biases by role: `P.bias` goes with the bias input of the node whose weight `P.weight` is;
 *   4. BatchNorm tensors an exporter folded into the preceding conv (so the export lacks them) take the
 *      output channels of that conv: the conv is the only candidate of that width, or all candidates share
 *      one permutation, or the folded values (W' = s·W, b' = β + (b − μ)·s) name it.
 * Order is not used: safetensors headers list tensors sorted by name, and `layer1.10` sorts before
 * `layer1.2`, so an order-based pairing would guess. Whatever stays ambiguous or without a counterpart is
 * refused, naming the tensors: a wrong pairing would permute the state dict into another function with no
 * graph to notice it. Scalars (num_batches_tracked) and one-entry tensors stay unpermuted.
 *
 * Browser-safe: no Node modules.
 */
import { InputError } from '../errors.js';
import type { OnnxModel } from '../io/onnx.js';
import { shortText } from '../names.js';
import { shapeToString, sizeOf, type Params, type Tensor } from '../tensor.js';
import type { OnnxSpec } from './onnx-graph.js';
import { specFromAxes, type PermutationSpec } from './spec.js';

/** How a state-dict tensor found its place in the export. */
export type ExportMatch =
  | { readonly how: 'name' | 'alias' | 'shape' | 'values' | 'bias'; readonly init: string; readonly transposed: boolean }
  /** A tensor the export folded away (BatchNorm): `perm` is the output channel space of `conv`, the layer it follows. */
  | { readonly how: 'batchnorm'; readonly conv: string; readonly perm: string | null; readonly by: 'sibling' | 'width' | 'values' };

export interface ExportSpec {
  readonly spec: PermutationSpec;
  /** Every state-dict tensor that has a place in the export, and how it was found. */
  readonly matches: Readonly<Record<string, ExportMatch>>;
  /** State-dict tensors left unpermuted because they have at most one entry (BatchNorm's num_batches_tracked). */
  readonly scalars: readonly string[];
}

export interface ExportSide {
  readonly model: OnnxModel;
  /** The export's float initializers with their values (values only matter where shapes are ambiguous). */
  readonly params: Params;
  readonly spec: OnnxSpec;
}

export interface StateDictSide {
  readonly label: string;
  /** The state dict; tensors whose data is empty (shape-only stand-ins) make value checks impossible. */
  readonly params: Params;
}

/** Relative tolerance of the value checks: exporters copy or fold in float32, nothing looser. */
const VALUE_TOLERANCE = 1e-4;

interface Pair {
  readonly init: string;
  readonly transposed: boolean;
}

/**
 * The spec of `target`'s tensors, mapped from the export (see the module comment). Throws an InputError
 * naming the tensors when a mapping is ambiguous or a tensor has no counterpart.
 */
export function specFromExport(exported: ExportSide, target: StateDictSide): ExportSpec {
  const label = exported.model.label;
  const onnxAxes = exported.spec.spec.axesToPerm;
  const inits = exported.params;
  const sd = target.params;
  const matches: Record<string, ExportMatch> = Object.create(null);
  const claimed = new Set<string>();
  const pair = (t: string, how: 'name' | 'alias' | 'shape' | 'values' | 'bias', p: Pair) => {
    matches[t] = { how, init: p.init, transposed: p.transposed };
    claimed.add(p.init);
  };

  // 1. Names, and names an Identity node gives to a deduplicated initializer.
  const aliases = identityAliases(exported.model, inits);
  for (const [t, tensor] of Object.entries(sd)) {
    const direct = Object.hasOwn(inits, t);
    const init = direct ? t : aliases.get(t);
    if (init !== undefined && sameDims(inits[init].shape, tensor.shape)) pair(t, direct ? 'name' : 'alias', { init, transposed: false });
  }

  // 2. Weights (rank ≥ 2) by shape, values deciding between tensors of one shape.
  const open = (rank: (r: number) => boolean) => ({
    inits: Object.keys(inits).filter((i) => !claimed.has(i) && rank(inits[i].shape.length) && sizeOf(inits[i].shape) > 1),
    tensors: Object.keys(sd).filter((t) => !Object.hasOwn(matches, t) && rank(sd[t].shape.length) && sizeOf(sd[t].shape) > 1),
  });
  const weights = open((r) => r >= 2);
  for (const group of shapeGroups(weights.inits, weights.tensors, inits, sd)) {
    for (const [t, p] of resolveGroup(group, inits, sd, label, target.label, 'rows')) pair(t, group.inits.length === 1 && group.tensors.length === 1 && group.single ? 'shape' : 'values', p);
  }

  // 3. Biases by the node they feed: P.bias goes with the bias of the node whose weight is P.weight.
  const layers = weightedLayers(exported.model, inits);
  for (const layer of layers) {
    const w = Object.entries(matches).find(([, m]) => 'init' in m && m.init === layer.weight)?.[0];
    if (w === undefined || layer.bias === null || !w.endsWith('.weight')) continue;
    const b = `${w.slice(0, -'.weight'.length)}.bias`;
    if (Object.hasOwn(sd, b) && !Object.hasOwn(matches, b) && sameDims(sd[b].shape, inits[layer.bias].shape)) pair(b, 'bias', { init: layer.bias, transposed: false });
  }

  // One-dimensional tensors the export copied under another name (an unfolded norm's parameters): values only.
  const vectors = open((r) => r === 1);
  for (const group of shapeGroups(vectors.inits, vectors.tensors, inits, sd)) {
    for (const [t, p] of resolveGroup(group, inits, sd, label, target.label, 'equal')) pair(t, 'values', p);
  }

  // 4. BatchNorm groups the exporter folded away.
  const convOf = (init: string) => Object.entries(matches).find(([, m]) => 'init' in m && m.init === init)?.[0];
  const slots = layers
    .filter((l) => l.bias !== null && convOf(l.weight) !== undefined)
    .map((l) => ({ layer: l, conv: convOf(l.weight)!, width: inits[l.bias!].shape[0] }));
  const usedSlots = new Set<string>();
  const scalars: string[] = [];
  const missing: string[] = [];
  for (const [prefix, members] of unmatchedGroups(sd, matches)) {
    const vectorsOfGroup = members.filter((t) => sizeOf(sd[t].shape) > 1);
    for (const t of members) if (sizeOf(sd[t].shape) <= 1) scalars.push(t);
    if (vectorsOfGroup.length === 0) continue;
    const widths = new Set(vectorsOfGroup.map((t) => (sd[t].shape.length === 1 ? sd[t].shape[0] : -1)));
    const width = widths.size === 1 ? [...widths][0] : -1;
    if (width < 0) {
      missing.push(...vectorsOfGroup);
      continue;
    }
    const sibling = mappedSibling(prefix, width, sd, matches, onnxAxes);
    if (sibling !== undefined) {
      for (const t of vectorsOfGroup) matches[t] = { how: 'batchnorm', conv: sibling.name, perm: sibling.perm, by: 'sibling' };
      continue;
    }
    const isNorm = members.some((t) => t.endsWith('.running_mean')) && members.some((t) => t.endsWith('.running_var'));
    const candidates = slots.filter((s) => s.width === width && !usedSlots.has(s.layer.bias!));
    if (!isNorm || candidates.length === 0) {
      missing.push(...vectorsOfGroup);
      continue;
    }
    const permOf = (s: (typeof candidates)[number]) => onnxAxes[s.layer.bias!]?.[0] ?? null;
    let chosen: (typeof candidates)[number] | undefined;
    let by: 'width' | 'values' = 'width';
    if (candidates.every((s) => permOf(s) === permOf(candidates[0]))) chosen = candidates[0];
    else {
      const fits = candidates.filter((s) => foldFits(prefix, s, sd, inits));
      if (fits.length === 1) {
        chosen = fits[0];
        by = 'values';
        usedSlots.add(chosen.layer.bias!);
      } else {
        const list = candidates.slice(0, 6).map((s) => `'${shortText(s.conv)}' (${permOf(s) ?? 'fixed'})`).join(', ');
        throw new InputError(
          `${label}: cannot tell which conv BatchNorm '${shortText(prefix)}' (${width} channels) of ${target.label} follows: ` +
            `${candidates.length} layers of ${width} output channels in different channel spaces (${list}${candidates.length > 6 ? ', ...' : ''}), and ` +
            (fits.length === 0 ? `the export's folded weights match none of them (${whyNoValues(sd)})` : `the folded weights fit ${fits.length} of them`) +
            '; export with do_constant_folding=False so BatchNorm keeps its names, or give the spec as a JSON file',
        );
      }
    }
    for (const t of vectorsOfGroup) matches[t] = { how: 'batchnorm', conv: chosen.conv, perm: permOf(chosen), by };
  }
  if (missing.length > 0) {
    throw new InputError(
      `${label}: the export has no counterpart for ${missing.length} tensor${missing.length === 1 ? '' : 's'} of ${target.label}: ${listTensors(missing, sd)}; ` +
        'is it an export of this network? (if it is, give the spec as a JSON file)',
    );
  }
  const leftover = Object.keys(inits).filter((i) => !claimed.has(i) && sizeOf(inits[i].shape) > 1 && inits[i].shape.length >= 2 && (onnxAxes[i] ?? []).some((p) => p !== null));
  if (leftover.length > 0) {
    throw new InputError(
      `${label}: the export has weights with no counterpart in ${target.label}: ${listTensors(leftover, inits)}; is it an export of this network?`,
    );
  }

  // The spec: each tensor takes the permutations of the export axes it was mapped to.
  const axes: Record<string, (string | null)[]> = Object.create(null);
  for (const [t, m] of Object.entries(matches)) {
    if (m.how === 'batchnorm') axes[t] = [m.perm];
    else {
      const from = onnxAxes[m.init] ?? inits[m.init].shape.map(() => null);
      axes[t] = m.transposed ? [from[1], from[0]] : [...from];
    }
  }
  const ordered: Record<string, (string | null)[]> = Object.create(null);
  for (const t of Object.keys(sd)) if (Object.hasOwn(axes, t)) ordered[t] = axes[t];
  return { spec: specFromAxes(ordered), matches, scalars };
}

/** Names given to an initializer by Identity nodes (torch.onnx writes one per deduplicated parameter). */
function identityAliases(model: OnnxModel, inits: Params): Map<string, string> {
  const out = new Map<string, string>();
  for (const node of model.graph.nodes) {
    if (node.opType !== 'Identity' || node.domain !== '') continue;
    const src = node.inputs[0];
    const base = Object.hasOwn(inits, src) ? src : out.get(src);
    if (base !== undefined && !Object.hasOwn(inits, node.outputs[0])) out.set(node.outputs[0], base);
  }
  return out;
}

/** The layers whose weight and bias are initializers: Conv/ConvTranspose/Gemm (inputs 1 and 2). */
function weightedLayers(model: OnnxModel, inits: Params): { weight: string; bias: string | null }[] {
  const out: { weight: string; bias: string | null }[] = [];
  for (const node of model.graph.nodes) {
    if (!['Conv', 'ConvTranspose', 'Gemm'].includes(node.opType) || node.domain !== '') continue;
    const [, w, b] = node.inputs;
    if (w === undefined || !Object.hasOwn(inits, w)) continue;
    out.push({ weight: w, bias: b !== undefined && b !== '' && Object.hasOwn(inits, b) ? b : null });
  }
  return out;
}

interface ShapeGroup {
  readonly inits: string[];
  readonly tensors: string[];
  /** Every candidate pair fits one way only (not a square matrix that could also be transposed). */
  readonly single: boolean;
}

/** Export initializers and state-dict tensors that could be one another, grouped by shape (up to a 2-D transpose). */
function shapeGroups(initNames: readonly string[], tensorNames: readonly string[], inits: Params, sd: Params): ShapeGroup[] {
  const key = (shape: readonly number[]) => (shape.length === 2 ? [...shape].sort((a, b) => a - b).join('x') + ':2' : shape.join('x'));
  const groups = new Map<string, { inits: string[]; tensors: string[]; single: boolean }>();
  const get = (shape: readonly number[]) => {
    const k = key(shape);
    let g = groups.get(k);
    if (g === undefined) groups.set(k, (g = { inits: [], tensors: [], single: !(shape.length === 2 && shape[0] === shape[1]) }));
    return g;
  };
  for (const i of initNames) get(inits[i].shape).inits.push(i);
  for (const t of tensorNames) get(sd[t].shape).tensors.push(t);
  return [...groups.values()].filter((g) => g.inits.length > 0 && g.tensors.length > 0);
}

/** The ways an initializer of one shape group can be a state-dict tensor: as it is, or transposed (2-D). */
function orientations(init: Tensor, t: Tensor): boolean[] {
  const out: boolean[] = [];
  if (sameDims(init.shape, t.shape)) out.push(false);
  if (init.shape.length === 2 && init.shape[0] === t.shape[1] && init.shape[1] === t.shape[0]) out.push(true);
  return out;
}

/**
 * Pairs for one shape group: the one initializer and the one tensor of a shape pair up (when they fit only
 * one way); otherwise each initializer must fit exactly one tensor by value and no tensor two initializers.
 * `fit` is 'rows' for weights (equal, or equal up to one scale per output channel where BatchNorm was
 * folded in) and 'equal' for vectors. Throws naming the group when the values do not decide.
 */
function resolveGroup(group: ShapeGroup, inits: Params, sd: Params, label: string, target: string, fit: 'rows' | 'equal'): [string, Pair][] {
  if (group.inits.length === 1 && group.tensors.length === 1 && group.single && fit === 'rows') {
    return [[group.tensors[0], { init: group.inits[0], transposed: orientations(inits[group.inits[0]], sd[group.tensors[0]])[0] }]];
  }
  const found: [string, Pair][] = [];
  const taken = new Map<string, string>();
  const unresolved: string[] = [];
  for (const i of group.inits) {
    const fits: [string, Pair][] = [];
    for (const t of group.tensors) {
      for (const transposed of orientations(inits[i], sd[t])) {
        if (valuesFit(inits[i], sd[t], transposed, transposed ? 'equal' : fit)) fits.push([t, { init: i, transposed }]);
      }
    }
    if (fits.length === 1) {
      const other = taken.get(fits[0][0]);
      if (other !== undefined) throw new InputError(`${label}: initializers '${shortText(other)}' and '${shortText(i)}' both hold the values of '${shortText(fits[0][0])}' of ${target}; cannot tell which is which: give the spec as a JSON file`);
      taken.set(fits[0][0], i);
      found.push(fits[0]);
    } else unresolved.push(i);
  }
  // Vectors the values do not place are left to the BatchNorm step; weights must all be placed.
  if (fit === 'rows' && unresolved.length > 0) {
    const shape = shapeToString(inits[group.inits[0]].shape);
    throw new InputError(
      `${label}: ${group.inits.length} export weights and ${group.tensors.length} tensors of ${target} have shape ${shape} ` +
        `(${listNames(group.inits)} / ${listNames(group.tensors)}), and their values do not pair ${listNames(unresolved)} with one tensor each (${whyNoValues(sd)}); ` +
        'export with do_constant_folding=False so the weights keep their names, or give the spec as a JSON file',
    );
  }
  return found;
}

/**
 * Whether `init` holds `t`'s values (transposed: as a 2-D transpose): equal, or for 'rows' equal up to one
 * factor per output channel (axis 0), as when BatchNorm was folded in. Rows of one entry fit any factor, so
 * they decide nothing: a tensor of such rows never fits by 'rows'.
 */
function valuesFit(init: Tensor, t: Tensor, transposed: boolean, fit: 'rows' | 'equal'): boolean {
  if (!hasValues(t) || !hasValues(init)) return false;
  const x = init.data;
  const y = transposed ? transpose2d(t) : t.data;
  if (fit === 'equal') return closeTo(x, y, 1, x.length);
  const rows = init.shape[0];
  const len = x.length / rows;
  if (len < 2) return false;
  for (let o = 0; o < rows; o++) {
    const scale = rowScale(x, y, o * len, len);
    if (scale === null) return false;
    let worst = 0;
    let size = 0;
    for (let k = o * len; k < (o + 1) * len; k++) {
      worst = Math.max(worst, Math.abs(x[k] - scale * y[k]));
      size = Math.max(size, Math.abs(x[k]));
    }
    if (worst > VALUE_TOLERANCE * size) return false;
  }
  return true;
}

/** The factor s with x ≈ s·y on one row (least squares), 0 for two zero rows, null when y is zero and x not. */
function rowScale(x: ArrayLike<number>, y: ArrayLike<number>, start: number, len: number): number | null {
  let xy = 0;
  let yy = 0;
  let xx = 0;
  for (let k = start; k < start + len; k++) {
    xy += x[k] * y[k];
    yy += y[k] * y[k];
    xx += x[k] * x[k];
  }
  if (yy === 0) return xx === 0 ? 0 : null;
  return xy / yy;
}

function closeTo(x: ArrayLike<number>, y: ArrayLike<number>, scale: number, n: number): boolean {
  let size = 0;
  for (let k = 0; k < n; k++) size = Math.max(size, Math.abs(y[k]));
  for (let k = 0; k < n; k++) if (Math.abs(x[k] - scale * y[k]) > VALUE_TOLERANCE * size) return false;
  return true;
}

/**
 * Whether the layer's folded weight and bias are the state-dict conv `slot.conv` with BatchNorm `prefix`
 * folded in: W' = s·W per output channel, and b' = β + (b − μ)·s with s = γ/√(σ² + ε) for one ε ≥ 0.
 */
function foldFits(prefix: string, slot: { layer: { weight: string; bias: string | null }; conv: string }, sd: Params, inits: Params): boolean {
  const w = sd[slot.conv];
  const folded = inits[slot.layer.weight];
  const foldedBias = inits[slot.layer.bias!];
  const get = (name: string): Tensor | null => (Object.hasOwn(sd, `${prefix}.${name}`) ? sd[`${prefix}.${name}`] : null);
  const mean = get('running_mean');
  const variance = get('running_var');
  const gamma = get('weight');
  const beta = get('bias');
  const convBiasName = slot.conv.endsWith('.weight') ? `${slot.conv.slice(0, -'.weight'.length)}.bias` : null;
  const convBias = convBiasName !== null && Object.hasOwn(sd, convBiasName) ? sd[convBiasName] : null;
  if (mean === null || variance === null || !hasValues(w) || !hasValues(folded) || !hasValues(foldedBias)) return false;
  if (![mean, variance, gamma, beta, convBias].every((t) => t === null || (hasValues(t) && t.data.length === foldedBias.data.length))) return false;
  const rows = w.shape[0];
  const len = w.data.length / rows;
  if (len < 2 || rows !== foldedBias.data.length || !valuesFit(folded, w, false, 'rows')) return false;
  let biasSize = 0;
  for (let o = 0; o < rows; o++) biasSize = Math.max(biasSize, Math.abs(foldedBias.data[o]), Math.abs(mean.data[o]));
  for (let o = 0; o < rows; o++) {
    const s = rowScale(folded.data, w.data, o * len, len);
    if (s === null) return false;
    const expected = (beta?.data[o] ?? 0) + ((convBias?.data[o] ?? 0) - mean.data[o]) * s;
    if (Math.abs(foldedBias.data[o] - expected) > 10 * VALUE_TOLERANCE * Math.max(biasSize, 1e-6)) return false;
    if (s !== 0) {
      // ε = (γ/s)² − σ² must be a small non-negative constant (PyTorch's default is 1e-5).
      const eps = ((gamma?.data[o] ?? 1) / s) ** 2 - variance.data[o];
      if (eps < -1e-3 * Math.max(variance.data[o], 1e-6) || eps > 0.1) return false;
    }
  }
  return true;
}

/**
 * State-dict tensors no step placed, by module prefix (the name up to its last dot), in state-dict order:
 * a BatchNorm module's weight, bias, running_mean, running_var and num_batches_tracked form one group.
 */
function unmatchedGroups(sd: Params, matches: Readonly<Record<string, ExportMatch>>): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const t of Object.keys(sd)) {
    if (Object.hasOwn(matches, t)) continue;
    const dot = t.lastIndexOf('.');
    const prefix = dot < 0 ? t : t.slice(0, dot);
    const list = out.get(prefix) ?? [];
    list.push(t);
    out.set(prefix, list);
  }
  return out;
}

/**
 * A one-dimensional tensor of the same module already placed (a norm whose other parameters kept their
 * names), of the same width: its place decides the group's.
 */
function mappedSibling(
  prefix: string,
  width: number,
  sd: Params,
  matches: Readonly<Record<string, ExportMatch>>,
  onnxAxes: PermutationSpec['axesToPerm'],
): { name: string; perm: string | null } | undefined {
  const siblings = Object.keys(matches).filter((t) => t.startsWith(`${prefix}.`) && !t.slice(prefix.length + 1).includes('.') && sd[t].shape.length === 1 && sd[t].shape[0] === width);
  const permOf = (t: string): string | null => {
    const m = matches[t];
    return 'init' in m ? (onnxAxes[m.init]?.[0] ?? null) : m.perm;
  };
  const perms = new Set(siblings.map(permOf));
  return siblings.length > 0 && perms.size === 1 ? { name: siblings[0], perm: permOf(siblings[0]) } : undefined;
}

function sameDims(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function hasValues(t: Tensor): boolean {
  return t.data.length === sizeOf(t.shape);
}

function transpose2d(t: Tensor): Float32Array {
  const [r, c] = t.shape;
  const out = new Float32Array(r * c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = t.data[i * c + j];
  return out;
}

function whyNoValues(sd: Params): string {
  const stubs = Object.values(sd).some((t) => !hasValues(t));
  return stubs ? 'with --low-memory the values are not read' : "the export's weights are not this model's";
}

function listNames(names: readonly string[]): string {
  return names.slice(0, 4).map((n) => `'${shortText(n)}'`).join(', ') + (names.length > 4 ? `, ... (${names.length})` : '');
}

function listTensors(names: readonly string[], params: Params): string {
  return names.slice(0, 6).map((n) => `'${shortText(n)}' ${shapeToString(params[n].shape)}`).join(', ') + (names.length > 6 ? `, ... (${names.length} in all)` : '');
}
