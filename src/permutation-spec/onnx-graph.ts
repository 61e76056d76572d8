/**
 * Deriving a PermutationSpec from an ONNX graph instead of from tensor names.
 *
 * The walk keeps, for every value (tensor edge) of the graph, which of its axes carries a "channel
 * space" and which class that space belongs to. Classes are merged with union-find:
 *   - a Conv/Gemm/MatMul whose weight is an initializer starts a new class on its output channels, and
 *     ties the weight's input axis to the class of the incoming activation;
 *   - biases, BatchNorm/LayerNorm/InstanceNorm parameters and broadcast initializers join the class of
 *     the axis they line up with;
 *   - elementwise ops pass the class through; Add/Sum/Mul/... of two activations (a residual join) and
 *     Concat along another axis merge their classes, because an elementwise op only commutes with a
 *     channel permutation when every operand is permuted alike;
 *   - reductions over the channel axis (ReduceMean over channels, Shape) are permutation-invariant, and
 *     pooling, Transpose, Squeeze/Unsqueeze, Flatten/Reshape move the channel axis where they can.
 * Initializers are followed through ops that only move their entries or map each on its own (Unsqueeze,
 * Squeeze, Transpose, Reshape/Flatten adding or dropping size-1 axes, Neg, Cast, ...) as *views* that
 * remember which initializer axis each of their axes is; through any other op they are pinned (every axis
 * fixed). Nodes with subgraphs (If/Loop/Scan) read every outer value their bodies use, and are not followed.
 * A class that comes from a graph input, reaches a graph output, or meets a value that varies along the
 * channels without being permuted with them is fixed: it is never permuted. Every op we do not understand
 * is recorded with the classes it touches; by default those classes are fixed too and the node is listed
 * (a partial spec), and with `strict` the derivation fails naming the node and op type, since permuting
 * through an op we cannot reason about could change the network's function.
 *
 * Browser-safe: no Node modules.
 */
import { InputError } from '../errors.js';
import { type OnnxGraph, type OnnxGraphValue, type OnnxModel, type OnnxNode, type OnnxTensorValue, isFloatDtype, onnxInitializerValue } from '../io/onnx.js';
import { type DimOf, type IntEntry, type Mono, asProduct, intArithmetic, known, monoDiv, monoEq, monoMul } from './onnx-sizes.js';
import { type AxisRef, type HeadGroup, type PermutationSpec, type Segmentation, specFromAxes } from './spec.js';

/** One graph value whose `axis` carries a permutation: where to record activations for matching. */
export interface OnnxTap {
  readonly value: string;
  /** Non-negative when the value's rank is known; -1 (the last axis) otherwise. */
  readonly axis: number;
}

/** A group of initializer axes that share one channel space that must not be permuted, and why. */
export interface OnnxFixedAxes {
  readonly axes: readonly AxisRef[];
  readonly reason: string;
}

/** A node the walk does not understand; the channel spaces it touches were left unpermuted. */
export interface OnnxUnsupportedNode {
  /** The node as messages name it: "'name' (Op)". */
  readonly node: string;
  readonly opType: string;
  readonly why: string;
  /** True when the node only reads values that an earlier unsupported node already made opaque. */
  readonly followOn: boolean;
}

export interface OnnxSpec {
  readonly spec: PermutationSpec;
  readonly taps: Readonly<Record<string, OnnxTap>>;
  readonly fixed: readonly OnnxFixedAxes[];
  /**
   * Nodes the walk could not follow. Without `strict`, the channel spaces they touch are fixed (listed in
   * `fixed` with the node as the reason) and the rest of the network is still permuted.
   */
  readonly unsupported: readonly OnnxUnsupportedNode[];
}

export interface OnnxSpecOptions {
  /** Refuse the whole model (throw) when a node the walk does not understand touches a permutable space. */
  readonly strict?: boolean;
}

type Dim = number | null;

/** An activation with one channel axis in class `cls`. `axis` is negative (from the end) when `shape` is null. */
interface ChanValue {
  readonly kind: 'chan';
  readonly cls: number;
  readonly axis: number;
  readonly shape: readonly Dim[] | null;
  /**
   * Attention: the class's units split into `count` heads of d units (unit h·d + i is unit i of head h).
   * `axis` then holds the d units of a head (shape known), and `heads.axis` the heads, as the minor factor
   * of that axis (its index mod `count` is the head: heads may be folded into the batch axis). Without
   * `units` the value has no unit axis at all (attention scores: only the heads are permuted, by the
   * head permutation of class `cls`'s head group; `axis` is then `heads.axis`).
   */
  readonly heads?: { readonly axis: number; readonly count: number; readonly units: boolean };
  /**
   * A fused q|k|v projection reshaped to (S, H, d) in one step (timm's `qkv`): the units of class `cls` are
   * S consecutive segments, segment s on index s of `segs.axis`, each of class `classes[s]` split into the
   * heads and units above. Only Transpose, and Split/Gather/Squeeze that take one segment out, follow it.
   */
  readonly segs?: { readonly axis: number; readonly classes: readonly number[] };
}

/**
 * A value with no permuted axis as far as we know. `deps` lists classes it was computed from through ops we
 * do not understand (so its layout is unknown unless those classes end up fixed); empty for graph inputs,
 * constants and permutation-invariant results.
 */
interface PlainValue {
  readonly kind: 'plain';
  readonly shape: readonly Dim[] | null;
  readonly deps: readonly number[];
  /** Contents when known (Constant nodes, small initializers, shapes taken with Shape): Reshape targets, axes. */
  readonly ints?: readonly IntEntry[];
  /** Contents of a small float Constant node (Resize scales). */
  readonly floats?: readonly number[];
  /** Set for Constant node outputs: data that cannot be permuted. */
  readonly constant?: boolean;
}

/**
 * A float initializer, directly or through ops that only move its entries (Identity, Unsqueeze, Squeeze,
 * Transpose, a Reshape that only adds or drops size-1 axes) or map each entry on its own (Neg, Cast, ...).
 * `shape` is the shape of this view; `source[k]` is the initializer axis that view axis k is, or null for an
 * inserted size-1 axis. Permuting the initializer along its axis `source[k]` permutes this view along k.
 */
interface InitValue {
  readonly kind: 'init';
  readonly name: string;
  readonly shape: readonly number[];
  readonly source: readonly (number | null)[];
  /**
   * Broadcast by Expand to a shape we do not know (a class token expanded over the batch): the entries
   * along each axis of size > 1 stay on that axis counted from the end; axes of size 1 are copies.
   */
  readonly expanded?: boolean;
}

type Value = ChanValue | PlainValue | InitValue;

interface Problem {
  readonly node: OnnxNode;
  readonly why: string;
  readonly classes: readonly number[];
  /** The node reads the result of an earlier unsupported node: listed after the node that caused it. */
  readonly followOn: boolean;
}

const UNARY = new Set([
  'Relu', 'LeakyRelu', 'Elu', 'Selu', 'Celu', 'Gelu', 'Sigmoid', 'HardSigmoid', 'HardSwish', 'Tanh', 'Softplus',
  'Softsign', 'Mish', 'ThresholdedRelu', 'Erf', 'Exp', 'Log', 'Abs', 'Neg', 'Sqrt', 'Reciprocal', 'Floor', 'Ceil',
  'Round', 'Sign', 'Sin', 'Cos', 'Tan', 'Asin', 'Acos', 'Atan', 'Sinh', 'Cosh', 'Asinh', 'Acosh', 'Atanh', 'Not',
  'Cast', 'Identity', 'Dropout', 'Clip', 'IsNaN', 'IsInf', 'Shrink',
  // Softmax over any axis commutes with a permutation of the channels: over the channel axis it is
  // equivariant, over another axis each channel is normalised on its own.
  'Softmax', 'LogSoftmax', 'Hardmax',
]);
/** Ops whose output is the natural activation to record for a permutation (after the nonlinearity). */
const NONLINEAR = new Set([
  'Relu', 'LeakyRelu', 'Elu', 'Selu', 'Celu', 'Gelu', 'Sigmoid', 'HardSigmoid', 'HardSwish', 'Tanh', 'Softplus',
  'Softsign', 'Mish', 'ThresholdedRelu', 'PRelu', 'Clip',
]);
/** Elementwise ops of several operands (with broadcasting): every operand must be permuted alike. */
const BINARY = new Set([
  'Add', 'Sub', 'Mul', 'Div', 'Sum', 'Mean', 'Max', 'Min', 'Pow', 'PRelu', 'Where', 'Greater', 'Less', 'Equal',
  'GreaterOrEqual', 'LessOrEqual', 'And', 'Or', 'Xor',
]);
const POOL = new Set(['MaxPool', 'AveragePool', 'LpPool']);
const GLOBAL_POOL = new Set(['GlobalAveragePool', 'GlobalMaxPool', 'GlobalLpPool']);
const REDUCE = new Set([
  'ReduceMean', 'ReduceSum', 'ReduceMax', 'ReduceMin', 'ReduceProd', 'ReduceL1', 'ReduceL2', 'ReduceLogSum',
  'ReduceLogSumExp', 'ReduceSumSquare',
]);
/** TensorProto data types of integers (a Cast to one keeps followed sizes). */
const INT_TYPES = new Set([2, 3, 4, 5, 6, 7, 12, 13]);
/** Ops whose result depends only on the input's shape, which a permutation does not change. */
const SHAPE_ONLY = new Set(['Shape', 'Size']);

const product = (dims: readonly Dim[]): number | null => {
  let p = 1;
  for (const d of dims) {
    if (d === null) return null;
    p *= d;
  }
  return p;
};

/** How a node is named in messages: "node 'name' (Op)", or by its first output when it has no name. */
function nodeLabel(node: OnnxNode, prefix = true): string {
  const who = node.name !== '' ? `'${node.name}'` : `<unnamed, writes '${node.outputs[0] ?? ''}'>`;
  return `${prefix ? 'node ' : ''}${who} (${node.opType})`;
}

const fmtShape = (dims: readonly Dim[]): string => `[${dims.map((d) => (d === null ? '?' : String(d))).join(', ')}]`;

/**
 * A readable permutation name for a layer: the module name of a `<module>.weight` initializer, else the
 * node's scope (PyTorch's '/layer1/layer1.0/conv1/Conv' becomes 'layer1.0.conv1'), else the output name.
 */
function layerName(node: OnnxNode, weight: string | null): string {
  if (weight !== null && !weight.includes('::')) {
    const m = /^(.+)[./](weight|kernel)$/.exec(weight);
    if (m) return m[1];
  }
  if (node.name.startsWith('/')) {
    const segs = node.name.slice(1).split('/').filter((s) => s !== '');
    // The last scope segment is the op itself ('Conv', 'Gemm_1').
    if (segs.length > 1 && segs[segs.length - 1].startsWith(node.opType)) segs.pop();
    // PyTorch repeats the parent in each child scope ('layer1/layer1.0'); keep the innermost.
    const kept = segs.filter((s, i) => !(i + 1 < segs.length && segs[i + 1].startsWith(`${s}.`)));
    if (kept.length > 0) return kept.join('.');
  }
  if (node.name !== '') return node.name;
  return weight ?? node.outputs[0] ?? node.opType;
}

class Walk {
  private readonly parent: number[] = [];
  private readonly size: number[] = [];
  private readonly names: (string | null)[] = [];
  private readonly fixedWhy: (string | null)[] = [];
  /** Heads a class's units are split into (on its root), null when never split. */
  private readonly headCount: (number | null)[] = [];
  /** Union-find over classes whose head permutations must be the same (q·kᵀ scores meeting v). */
  private readonly headParent: number[] = [];
  /**
   * A class cut into consecutive segments by Slice/Split along its channel axis (a fused q|k|v
   * projection), on its root: each segment's class, null until a node reads that segment.
   */
  private readonly segments: ({ start: number; end: number; cls: number | null }[] | null)[] = [];
  /** Why a class cannot carry what was asked of it (heads of two sizes, two segmentations): fixed at the end. */
  readonly conflicts: { cls: number; why: string }[] = [];
  /** `${initializer}\0${axis}` → class. */
  readonly initAxes = new Map<string, number>();
  readonly values = new Map<string, Value>();
  readonly problems: Problem[] = [];
  /** Candidate taps in graph order: value, class, axis, preference. */
  readonly tapCandidates: { value: string; cls: number; axis: number; score: number }[] = [];

  constructor(readonly model: OnnxModel) {}

  // ---- union-find over channel classes

  newClass(size: number, name: string | null, fixedWhy: string | null = null): number {
    const id = this.parent.length;
    this.parent.push(id);
    this.size.push(size);
    this.names.push(name);
    this.fixedWhy.push(fixedWhy);
    this.headCount.push(null);
    this.headParent.push(id);
    this.segments.push(null);
    return id;
  }

  get classCount(): number {
    return this.parent.length;
  }

  find(c: number): number {
    let r = c;
    while (this.parent[r] !== r) r = this.parent[r];
    while (this.parent[c] !== r) [c, this.parent[c]] = [this.parent[c], r];
    return r;
  }

  union(a: number, b: number, node: OnnxNode, what: string): number {
    const [ra, rb] = [this.find(a), this.find(b)];
    if (ra === rb) return ra;
    if (this.size[ra] !== this.size[rb]) {
      throw new InputError(
        `${this.model.label}: ${nodeLabel(node)} ${what} joins channel spaces of ${this.size[ra]} and ${this.size[rb]} channels`,
      );
    }
    // The older class is the root, so a permutation is named after the first layer that writes it.
    const [root, child] = ra < rb ? [ra, rb] : [rb, ra];
    this.parent[child] = root;
    this.fixedWhy[root] ??= this.fixedWhy[child];
    // One permutation: the same head structure and the same head permutation.
    const [hr, hc] = [this.headCount[root], this.headCount[child]];
    if (hr !== null && hc !== null && hr !== hc) this.conflicts.push({ cls: root, why: `${nodeLabel(node)} joins units split into ${hr} heads with units split into ${hc} heads` });
    this.headCount[root] = hr ?? hc;
    this.unionHeads(root, child);
    const [sr, sc] = [this.segments[root], this.segments[child]];
    if (sr !== null && sc !== null) this.conflicts.push({ cls: root, why: `${nodeLabel(node)} joins two channel axes that are each cut into segments` });
    this.segments[root] = sr ?? sc;
    return root;
  }

  headRoot(c: number): number {
    let r = c;
    while (this.headParent[r] !== r) r = this.headParent[r];
    return r;
  }

  /** The classes' head permutations must be the same (both are in one head group). */
  unionHeads(a: number, b: number): void {
    const [ra, rb] = [this.headRoot(a), this.headRoot(b)];
    if (ra !== rb) this.headParent[Math.max(ra, rb)] = Math.min(ra, rb);
  }

  headsOf(c: number): number | null {
    return this.headCount[this.find(c)];
  }

  /** Records that class `c`'s units are split into `count` heads; false when they already are into another count. */
  setHeads(c: number, count: number): boolean {
    const r = this.find(c);
    const h = this.headCount[r];
    if (h !== null && h !== count) return false;
    this.headCount[r] = count;
    return true;
  }

  segmentsOf(c: number): readonly { start: number; end: number; cls: number | null }[] | null {
    return this.segments[this.find(c)];
  }

  /**
   * The class of units [start, end) of class `c`'s channel axis, cutting it into segments: each segment
   * gets its own class (its own permutation), and `c`'s axes are stored as parts. Null when [start, end)
   * would cut a segment already in use, or span several.
   */
  segment(c: number, start: number, end: number): number | null {
    // A fixed class is cut like any other: settleStructure fixes the segments of a fixed class.
    const r = this.find(c);
    const segs = this.segments[r] ?? [{ start: 0, end: this.size[r], cls: null }];
    const i = segs.findIndex((g) => g.start <= start && end <= g.end);
    if (i < 0) return null;
    const g = segs[i];
    if (g.start === start && g.end === end) {
      const cls = g.cls ?? this.newClass(end - start, `${this.names[r] ?? `P${r}`}[${start}:${end}]`);
      const next = segs.map((e, k) => (k === i ? { ...e, cls } : e));
      this.segments[r] = next;
      return cls;
    }
    if (g.cls !== null) return null;
    const pieces = [
      ...(g.start < start ? [{ start: g.start, end: start, cls: null }] : []),
      { start, end, cls: null },
      ...(end < g.end ? [{ start: end, end: g.end, cls: null }] : []),
    ];
    this.segments[r] = [...segs.slice(0, i), ...pieces, ...segs.slice(i + 1)];
    return this.segment(r, start, end);
  }

  fix(c: number, why: string): void {
    const r = this.find(c);
    this.fixedWhy[r] ??= why;
  }

  sizeOf(c: number): number {
    return this.size[this.find(c)];
  }

  isFixed(c: number): boolean {
    return this.fixedWhy[this.find(c)] !== null;
  }

  fixedReason(c: number): string | null {
    return this.fixedWhy[this.find(c)];
  }

  nameOf(c: number): string | null {
    return this.names[this.find(c)];
  }

  /** Ties axis `axis` of the initializer view `init` to class `cls` (checking the length). */
  joinInit(init: InitValue, axis: number, cls: number, node: OnnxNode): void {
    const n = init.shape[axis];
    if (n !== this.sizeOf(cls)) {
      throw new InputError(
        `${this.model.label}: ${nodeLabel(node)}: initializer '${init.name}' ${fmtShape(init.shape)} axis ${axis} has ${n} entries but the channel axis it acts on has ${this.sizeOf(cls)}`,
      );
    }
    const src = init.source[axis];
    // An inserted size-1 axis carries no entries to permute (and can only meet a class of one channel).
    if (src === null) return;
    const key = `${init.name}\0${src}`;
    const prev = this.initAxes.get(key);
    if (prev === undefined) this.initAxes.set(key, cls);
    else this.union(prev, cls, node, `(initializer '${init.name}' axis ${src}, used twice)`);
  }

  /** Ties every axis of the initializer behind `v` to a fixed class: its entries must stay where they are. */
  pinInit(v: InitValue, why: string): void {
    const full = this.model.initializers[v.name].shape;
    full.forEach((n, axis) => {
      const key = `${v.name}\0${axis}`;
      const cls = this.newClass(n, null, why);
      const prev = this.initAxes.get(key);
      if (prev === undefined) this.initAxes.set(key, cls);
      else this.fix(prev, why);
    });
  }

  /**
   * Every initializer that `node` reads (inputs and, for nodes with subgraphs, outer values the subgraphs
   * read) is pinned: used by ops we do not understand, whose result would change if it were permuted.
   */
  pinInits(node: OnnxNode): void {
    for (const name of nodeReads(node)) {
      const v = this.values.get(name);
      if (v?.kind === 'init') this.pinInit(v, `used by ${nodeLabel(node)}`);
    }
  }

  /** Class of the input channels of a layer reading `x` (a fresh fixed class when `x` has no channel space). */
  inputClass(x: Value, xName: string, n: number, node: OnnxNode): number {
    if (x.kind === 'chan') return x.cls;
    const src = this.model.graph.inputs.some((i) => i.name === xName) ? `graph input '${xName}'` : `'${xName}'`;
    const why =
      x.kind === 'plain' && x.deps.length > 0
        ? `${nodeLabel(node)} reads '${xName}', which comes from an unsupported op`
        : `${nodeLabel(node)} reads ${src}, which is not permuted`;
    return this.newClass(n, null, why);
  }

  problem(node: OnnxNode, why: string, classes: readonly number[]): void {
    const followOn = nodeReads(node).some((n) => {
      const v = this.values.get(n);
      return v?.kind === 'plain' && v.deps.length > 0;
    });
    this.problems.push({ node, why, classes, followOn });
  }

  set(name: string, v: Value, node: OnnxNode | null): void {
    if (name === '') return;
    this.values.set(name, v);
    // A value split into heads is not one flat axis of its permutation: not a place to record it.
    if (v.kind === 'chan' && v.heads === undefined && node !== null) {
      const score = NONLINEAR.has(node.opType) ? 3 : node.opType === 'Add' || node.opType === 'Sum' ? 2 : 1;
      this.tapCandidates.push({ value: name, cls: v.cls, axis: v.axis, score });
    }
  }

  get(name: string, node: OnnxNode): Value {
    const v = this.values.get(name);
    if (v === undefined) {
      throw new InputError(
        `${this.model.label}: ${nodeLabel(node)} reads '${name}', which no earlier node, graph input or initializer defines (is the graph topologically sorted?)`,
      );
    }
    return v;
  }
}

/** Channel axis counted from the end (-1 = last). */
function fromEnd(v: ChanValue): number {
  return v.shape === null ? v.axis : v.axis - v.shape.length;
}

function normAxis(axis: number, rank: number): number | null {
  const a = axis < 0 ? axis + rank : axis;
  return a >= 0 && a < rank ? a : null;
}

function attrInt(node: OnnxNode, name: string, dflt: number): number {
  const v = node.attributes[name];
  return typeof v === 'number' ? v : dflt;
}

function attrInts(node: OnnxNode, name: string): readonly number[] | null {
  const v = node.attributes[name];
  return Array.isArray(v) && v.every((x) => typeof x === 'number') ? (v as readonly number[]) : null;
}

function isGraphAttr(v: unknown): v is OnnxGraphValue {
  return typeof v === 'object' && v !== null && (v as { kind?: unknown }).kind === 'graph';
}

/** The subgraphs a node runs (If branches, Loop/Scan bodies, graph attributes of any op). */
function subgraphsOf(node: OnnxNode): OnnxGraph[] {
  const out: OnnxGraph[] = [];
  for (const v of Object.values(node.attributes)) {
    if (isGraphAttr(v)) out.push(v.graph);
    else if (Array.isArray(v)) for (const e of v as readonly unknown[]) if (isGraphAttr(e)) out.push(e.graph);
  }
  return out;
}

const readsCache = new WeakMap<OnnxNode, readonly string[]>();

/**
 * Every value a node reads: its inputs and, for nodes with subgraphs, the outer values that the subgraphs
 * (at any depth) use without defining them. ONNX lets a subgraph read any value of the enclosing scopes.
 */
function nodeReads(node: OnnxNode): readonly string[] {
  let reads = readsCache.get(node);
  if (reads === undefined) {
    const names = new Set(node.inputs.filter((n) => n !== ''));
    for (const g of subgraphsOf(node)) {
      const local = new Set([...g.inputs.map((i) => i.name), ...g.initializerNames]);
      for (const n of g.nodes) {
        for (const r of nodeReads(n)) if (!local.has(r)) names.add(r);
        for (const o of n.outputs) local.add(o);
      }
    }
    reads = [...names];
    readsCache.set(node, reads);
  }
  return reads;
}

/** Output spatial size of a conv/pool along one axis, or null when not computable. */
function windowOut(n: Dim, k: number, stride: number, pad: number, dil: number, ceil: boolean, autoPad: string): Dim {
  if (n === null) return null;
  if (autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER') return Math.ceil(n / stride);
  if (autoPad === 'VALID') return Math.floor((n - dil * (k - 1) - 1) / stride) + 1;
  const span = n + pad - dil * (k - 1) - 1;
  return (ceil ? Math.ceil(span / stride) : Math.floor(span / stride)) + 1;
}

function windowShape(node: OnnxNode, x: readonly Dim[] | null, channels: number, kernel: readonly number[]): Dim[] | null {
  if (x === null) return null;
  const sp = x.length - 2;
  if (kernel.length !== sp) return [x[0], channels, ...Array<Dim>(Math.max(sp, 0)).fill(null)];
  const strides = attrInts(node, 'strides') ?? Array<number>(sp).fill(1);
  const dil = attrInts(node, 'dilations') ?? Array<number>(sp).fill(1);
  const pads = attrInts(node, 'pads') ?? Array<number>(2 * sp).fill(0);
  const autoPad = typeof node.attributes.auto_pad === 'string' ? node.attributes.auto_pad : 'NOTSET';
  const ceil = attrInt(node, 'ceil_mode', 0) === 1;
  const out: Dim[] = [x[0], channels];
  for (let i = 0; i < sp; i++) out.push(windowOut(x[2 + i], kernel[i], strides[i] ?? 1, (pads[i] ?? 0) + (pads[i + sp] ?? 0), dil[i] ?? 1, ceil, autoPad));
  return out;
}

/** Integer contents of a value when followed (constants, and sizes taken with Shape), else null. */
function intEntries(w: Walk, name: string | undefined): readonly IntEntry[] | null {
  if (name === undefined || name === '') return null;
  const v = w.values.get(name);
  return v?.kind === 'plain' && v.ints !== undefined ? v.ints : null;
}

/** Integer contents of a value when every entry is known before run time (constant axes, shapes). */
function knownInts(w: Walk, name: string | undefined): readonly number[] | null {
  const e = intEntries(w, name);
  return e !== null && e.every((d) => typeof d === 'number') ? (e as readonly number[]) : null;
}

/** Contents of a small float constant (Resize scales): a Constant node's, or a float initializer's. */
function floatContents(w: Walk, name: string | undefined): readonly number[] | null {
  if (name === undefined || name === '') return null;
  const v = w.values.get(name);
  if (v?.kind === 'plain') return v.floats ?? null;
  if (v?.kind !== 'init' || product(v.shape)! > 64) return null;
  try {
    const t = onnxInitializerValue(w.model, v.name);
    return t.data instanceof Float32Array ? Array.from(t.data) : null;
  } catch {
    return null; // external data we cannot read here: not a known constant
  }
}

/** Reduction/squeeze axes: attribute (older opsets) or second input (newer opsets). */
function axesArg(w: Walk, node: OnnxNode): readonly number[] | null | 'dynamic' {
  const attr = attrInts(node, 'axes');
  if (attr !== null) return attr;
  const input = node.inputs[1];
  if (input === undefined || input === '') return null;
  return knownInts(w, input) ?? 'dynamic';
}

// ---------------------------------------------------------------------------------------------------------
// Op handlers. Each sets the node's outputs; an op it cannot handle goes to `unsupported`.

function unsupported(w: Walk, node: OnnxNode, why = 'is not supported by the graph walk'): void {
  for (const n of node.inputs) if (n !== '') w.get(n, node);
  const ins = nodeReads(node).map((n) => w.values.get(n)).filter((v): v is Value => v !== undefined);
  const classes: number[] = [];
  for (const v of ins) {
    if (v.kind === 'chan') classes.push(v.cls);
    else if (v.kind === 'plain') classes.push(...v.deps);
  }
  if (ins.some((v) => v.kind === 'chan')) w.problem(node, why, classes);
  w.pinInits(node);
  for (const o of node.outputs) w.set(o, { kind: 'plain', shape: null, deps: classes }, node);
}

function passThrough(w: Walk, node: OnnxNode, x: ChanValue | PlainValue): void {
  for (const o of node.outputs) w.set(o, x, node);
}

/**
 * A shape op (Reshape, Transpose, Squeeze, ...) or pooling/reduction on a value without channels: an
 * initializer becomes a view of itself where the op only moves entries, else it is pinned; other values
 * lose their shape (we do not track it), and their known contents where the op keeps the element order.
 */
function notChan(w: Walk, node: OnnxNode, x: PlainValue | InitValue, keepInts = false): void {
  if (x.kind === 'init') return viewOrPin(w, node, x);
  const { ints, ...rest } = x;
  passThrough(w, node, keepInts && ints !== undefined ? { ...rest, shape: null, ints } : { ...rest, shape: null });
}

/** Elementwise maps that act on each entry alone, or (Softmax) are equivariant along every axis. */
const ENTRYWISE = new Set([...UNARY].filter((op) => op !== 'Hardmax'));

/**
 * The view of initializer `x` that `node` produces, when the node only moves its entries or maps each on
 * its own; null otherwise. A Reshape qualifies only when it adds or drops size-1 axes (the other axes keep
 * their order and sizes).
 */
function initView(w: Walk, node: OnnxNode, x: InitValue): InitValue | null {
  const op = node.opType;
  const view = (shape: readonly number[], source: readonly (number | null)[]): InitValue => ({ kind: 'init', name: x.name, shape, source });
  if (op === 'Identity' || ENTRYWISE.has(op)) return x;
  if (x.expanded === true) return null;
  const rank = x.shape.length;
  if (op === 'Transpose') {
    const perm = attrInts(node, 'perm') ?? x.shape.map((_, i) => rank - 1 - i);
    if (perm.length !== rank) return null;
    return view(perm.map((p) => x.shape[p]), perm.map((p) => x.source[p]));
  }
  if (op === 'Unsqueeze') {
    const axesIn = axesArg(w, node);
    if (axesIn === null || axesIn === 'dynamic') return null;
    const outRank = rank + axesIn.length;
    const ins = new Set(axesIn.map((a) => normAxis(a, outRank)));
    if (ins.has(null) || ins.size !== axesIn.length) return null;
    const shape: number[] = [];
    const source: (number | null)[] = [];
    let k = 0;
    for (let i = 0; i < outRank; i++) {
      if (ins.has(i)) [shape[i], source[i]] = [1, null];
      else [shape[i], source[i]] = [x.shape[k], x.source[k++]];
    }
    return view(shape, source);
  }
  if (op === 'Squeeze') {
    const axesIn = axesArg(w, node);
    if (axesIn === 'dynamic') return null;
    const drop = axesIn === null ? x.shape.flatMap((d, i) => (d === 1 ? [i] : [])) : axesIn.map((a) => normAxis(a, rank));
    if (drop.some((i) => i === null || x.shape[i] !== 1)) return null;
    const keep = x.shape.map((_, i) => i).filter((i) => !drop.includes(i));
    return view(keep.map((i) => x.shape[i]), keep.map((i) => x.source[i]));
  }
  let out: number[] | null = null;
  if (op === 'Flatten') {
    const at = normAxis(attrInt(node, 'axis', 1), rank + 1);
    if (at === null) return null;
    out = [product(x.shape.slice(0, at))!, product(x.shape.slice(at))!];
  } else if (op === 'Reshape') {
    const target = knownInts(w, node.inputs[1]);
    if (target === null) return null;
    const allowZero = attrInt(node, 'allowzero', 0) === 1;
    const dims = target.map((d, i) => (d === 0 && !allowZero ? (x.shape[i] ?? -2) : d));
    const minus = dims.indexOf(-1);
    if (minus >= 0) {
      const known = product(dims.filter((_, i) => i !== minus))!;
      dims[minus] = known > 0 ? product(x.shape)! / known : -2;
    }
    if (dims.some((d) => !Number.isInteger(d) || d < 0) || product(dims) !== product(x.shape)) return null;
    out = dims;
  }
  if (out === null) return null;
  // Only size-1 axes may come or go: the other axes must appear in the same order with the same sizes.
  const inBig = x.shape.map((d, i) => ({ d, src: x.source[i] })).filter((e) => e.d !== 1);
  const outBig = out.filter((d) => d !== 1);
  if (inBig.length !== outBig.length || inBig.some((e, i) => e.d !== outBig[i])) return null;
  let k = 0;
  return view(out, out.map((d) => (d === 1 ? null : inBig[k++].src)));
}

function viewOrPin(w: Walk, node: OnnxNode, x: InitValue): void {
  const v = initView(w, node, x);
  if (v === null) return unsupported(w, node, `transforms initializer '${x.name}' in a way the walk does not follow`);
  w.set(node.outputs[0], v, node);
  for (const o of node.outputs.slice(1)) w.set(o, { kind: 'plain', shape: null, deps: [] }, node);
}

function handleConv(w: Walk, node: OnnxNode, transpose: boolean): void {
  const [xn, wn, bn] = node.inputs;
  const x = w.get(xn, node);
  const wt = w.get(wn, node);
  if (wt.kind !== 'init') return unsupported(w, node, `has a weight '${wn}' that is not an initializer`);
  if (wt.shape.length < 3) return unsupported(w, node, `has a weight of rank ${wt.shape.length}`);
  if (x.kind === 'init') return unsupported(w, node, 'convolves an initializer');
  if (x.kind === 'chan' && x.axis !== 1) return unsupported(w, node, `reads channels on axis ${x.axis}, not axis 1`);
  const group = attrInt(node, 'group', 1);
  const kernel = wt.shape.slice(2);
  let inCls: number;
  let outCls: number;
  let outChannels: number;
  if (group === 1) {
    const [inAxis, outAxis] = transpose ? [0, 1] : [1, 0];
    inCls = w.inputClass(x, xn, wt.shape[inAxis], node);
    w.joinInit(wt, inAxis, inCls, node);
    outChannels = wt.shape[outAxis];
    outCls = w.newClass(outChannels, layerName(node, wn));
    w.joinInit(wt, outAxis, outCls, node);
  } else if (!transpose && wt.shape[1] === 1 && wt.shape[0] === group) {
    // Depthwise: channel c is filtered on its own, so the output channels are the input channels.
    inCls = w.inputClass(x, xn, group, node);
    outCls = inCls;
    outChannels = group;
    w.joinInit(wt, 0, outCls, node);
  } else {
    // Permuting channels across groups would change which channels a group sees.
    return unsupported(w, node, `is a grouped convolution (group=${group}), which a channel permutation does not commute with`);
  }
  if (bn !== undefined && bn !== '') {
    const b = w.get(bn, node);
    if (b.kind !== 'init' || b.shape.length !== 1) return unsupported(w, node, `has a bias '${bn}' that is not a 1-D initializer`);
    w.joinInit(b, 0, outCls, node);
  }
  const xs = x.shape;
  const shape = transpose ? (xs === null ? null : [xs[0], outChannels, ...Array<Dim>(xs.length - 2).fill(null)]) : windowShape(node, xs, outChannels, kernel);
  w.set(node.outputs[0], { kind: 'chan', cls: outCls, axis: 1, shape: shape ?? [null, outChannels, ...kernel.map(() => null)] }, node);
}

function handleGemm(w: Walk, node: OnnxNode): void {
  const [an, bn, cn] = node.inputs;
  const a = w.get(an, node);
  const b = w.get(bn, node);
  if (attrInt(node, 'transA', 0) !== 0) return unsupported(w, node, 'has transA=1');
  if (b.kind !== 'init' || b.shape.length !== 2) return unsupported(w, node, `multiplies by '${bn}', which is not a 2-D initializer`);
  if (a.kind === 'init') return unsupported(w, node, 'multiplies two initializers');
  if (a.kind === 'chan' && fromEnd(a) !== -1) return unsupported(w, node, 'reads channels that are not on the last axis');
  // transB=1: B is (out, in) as in PyTorch's Linear; else (in, out).
  const [inAxis, outAxis] = attrInt(node, 'transB', 0) === 1 ? [1, 0] : [0, 1];
  const inCls = w.inputClass(a, an, b.shape[inAxis], node);
  w.joinInit(b, inAxis, inCls, node);
  const out = b.shape[outAxis];
  const outCls = w.newClass(out, layerName(node, bn));
  w.joinInit(b, outAxis, outCls, node);
  if (cn !== undefined && cn !== '') {
    const c = w.get(cn, node);
    if (c.kind !== 'init') return unsupported(w, node, `adds '${cn}', which is not an initializer`);
    const axis = c.shape.length - 1;
    if (axis >= 0 && c.shape[axis] !== 1) w.joinInit(c, axis, outCls, node);
  }
  const batch = a.shape !== null ? (a.shape[0] ?? null) : null;
  w.set(node.outputs[0], { kind: 'chan', cls: outCls, axis: 1, shape: [batch, out] }, node);
}

function handleMatMul(w: Walk, node: OnnxNode): void {
  const [an, bn] = node.inputs;
  const a = w.get(an, node);
  const b = w.get(bn, node);
  if (b.kind !== 'init') return handleMatMulActs(w, node, a, b);
  if (b.expanded === true || b.shape.length !== 2) return unsupported(w, node, `multiplies by '${bn}' of rank ${b.shape.length}`);
  if (a.kind === 'chan' && a.heads !== undefined) return unsupported(w, node, 'multiplies attention heads by a weight');
  if (a.kind === 'init') return unsupported(w, node, 'multiplies two initializers');
  if (a.kind === 'chan' && fromEnd(a) !== -1) return unsupported(w, node, 'reads channels that are not on the last axis');
  // x @ W with W (in, out): the layout flax's Dense and Keras use.
  const inCls = w.inputClass(a, an, b.shape[0], node);
  w.joinInit(b, 0, inCls, node);
  const out = b.shape[1];
  const outCls = w.newClass(out, layerName(node, bn));
  w.joinInit(b, 1, outCls, node);
  const as = a.shape;
  const shape = as === null ? null : [...as.slice(0, -1), out];
  w.set(node.outputs[0], { kind: 'chan', cls: outCls, axis: shape === null ? -1 : shape.length - 1, shape }, node);
}

/**
 * A product of two activations (attention). A matmul contracts a's last axis with b's second to last and
 * keeps the others: channels on both contracted axes cancel when they are one permutation (q·kᵀ), so
 * their classes are merged and the result carries none of them; channels on one operand's kept axis pass
 * to the result (scores·v). With heads, both operands must hold the heads on the same batch axis: q·kᵀ
 * merges q's and k's classes (one within-head order and one head order) and leaves scores permuted only
 * along the heads; scores·v makes v's heads move with the scores' (one head group).
 */
function handleMatMulActs(w: Walk, node: OnnxNode, a: Value, b: Value): void {
  if (a.kind === 'init' || b.kind === 'init') return unsupported(w, node, 'multiplies an activation by an initializer on its left');
  if ((a.kind === 'plain' && a.deps.length > 0) || (b.kind === 'plain' && b.deps.length > 0)) {
    return unsupported(w, node, 'multiplies values that come from an unsupported op');
  }
  const [sa, sb] = [a.shape, b.shape];
  const batch = sa === null || sb === null || sa.length < 2 || sb.length < 2 ? null : broadcastShapes([sa.slice(0, -2), sb.slice(0, -2)]);
  const shape = batch === null ? null : [...batch, sa![sa!.length - 2], sb![sb!.length - 1]];
  const out = (v: Value): void => w.set(node.outputs[0], v, node);
  if (a.kind === 'plain' && b.kind === 'plain') return out({ kind: 'plain', shape, deps: [] });
  const headsA = a.kind === 'chan' ? a.heads : undefined;
  const headsB = b.kind === 'chan' ? b.heads : undefined;
  if (headsA === undefined && headsB === undefined) {
    const ea = a.kind === 'chan' ? fromEnd(a) : null;
    const eb = b.kind === 'chan' ? fromEnd(b) : null;
    if (a.kind === 'chan' && b.kind === 'chan' && ea === -1 && eb === -2) {
      w.union(a.cls, b.cls, node, `(contracting '${node.inputs[0]}' with '${node.inputs[1]}')`);
      return out({ kind: 'plain', shape, deps: [] });
    }
    if (a.kind === 'plain' && b.kind === 'chan' && eb === -1) return out({ kind: 'chan', cls: b.cls, axis: shape === null ? -1 : shape.length - 1, shape });
    if (a.kind === 'chan' && b.kind === 'plain' && ea === -2) return out({ kind: 'chan', cls: a.cls, axis: shape === null ? -2 : shape.length - 2, shape });
    // The same channels on one batch axis of both (heads of one unit each): the product is taken per entry
    // of that axis, so the result carries them there.
    if (a.kind === 'chan' && b.kind === 'chan' && shape !== null && sa!.length === sb!.length && ea === eb && ea! < -2) {
      const cls = w.union(a.cls, b.cls, node, `(batched product of '${node.inputs[0]}' and '${node.inputs[1]}')`);
      return out({ kind: 'chan', cls, axis: shape.length + ea!, shape });
    }
    return unsupported(w, node, 'multiplies two activations whose channels do not cancel or pass through');
  }
  if (a.kind === 'chan' && b.kind === 'chan' && headsA === undefined && headsB?.units === true && shape !== null && sa!.length === sb!.length && a.axis === headsB.axis && a.axis < sa!.length - 2 && b.axis === sa!.length - 1 && w.sizeOf(a.cls) === headsB.count) {
    // Scores whose q/k heads have one unit each (a flat class of H on the head axis) times v's heads.
    if (!w.setHeads(a.cls, headsB.count)) return unsupported(w, node, 'multiplies attention heads of different counts');
    w.unionHeads(a.cls, b.cls);
    return out({ kind: 'chan', cls: b.cls, axis: b.axis, shape, heads: headsB });
  }
  if (a.kind === 'chan' && b.kind === 'chan' && headsA?.units === false && headsB === undefined && shape !== null && sa!.length === sb!.length && b.axis === headsA.axis && w.sizeOf(b.cls) === headsA.count) {
    // Scores times v heads of one unit each (a flat class of H on the head axis).
    if (!w.setHeads(b.cls, headsA.count)) return unsupported(w, node, 'multiplies attention heads of different counts');
    w.unionHeads(a.cls, b.cls);
    return out({ kind: 'chan', cls: b.cls, axis: b.axis, shape });
  }
  if (a.kind !== 'chan' || b.kind !== 'chan' || headsA === undefined || headsB === undefined || shape === null || sa!.length !== sb!.length) {
    return unsupported(w, node, 'multiplies attention heads by a value without the same heads');
  }
  const r = sa!.length;
  const p = headsA.axis;
  if (headsB.axis !== p || p >= r - 2 || headsA.count !== headsB.count) return unsupported(w, node, 'multiplies attention heads that do not line up');
  if (headsA.units && headsB.units && a.axis === r - 1 && b.axis === r - 2) {
    const cls = w.union(a.cls, b.cls, node, `(q·kᵀ of '${node.inputs[0]}' and '${node.inputs[1]}')`);
    return out({ kind: 'chan', cls, axis: p, shape, heads: { axis: p, count: headsA.count, units: false } });
  }
  if (!headsA.units && headsB.units && b.axis === r - 1) {
    w.unionHeads(a.cls, b.cls);
    return out({ kind: 'chan', cls: b.cls, axis: r - 1, shape, heads: headsB });
  }
  unsupported(w, node, 'multiplies attention heads in a way the walk does not follow');
}

/**
 * An elementwise op on attention heads: the other operands must be constant along the heads and the units
 * (a scale 1/√d, a mask over tokens).
 */
function handleHeadedJoin(w: Walk, node: OnnxNode): void {
  const named = node.inputs.filter((n) => n !== '').map((n) => ({ name: n, v: w.get(n, node) }));
  const headed = named.filter((e) => e.v.kind === 'chan' && e.v.heads !== undefined);
  if (headed.length !== 1) return unsupported(w, node, 'combines several values split into heads');
  const x = headed[0].v as ChanValue;
  const r = x.shape!.length;
  const carried = x.heads!.units ? [x.axis, x.heads!.axis] : [x.heads!.axis];
  for (const { name, v } of named) {
    if (v === x) continue;
    if (v.kind === 'chan' || (v.kind === 'plain' && v.deps.length > 0)) return unsupported(w, node, `combines attention heads with '${name}'`);
    const s = v.shape;
    if (s === null || s.length > r) return unsupported(w, node, `combines attention heads with '${name}' of unknown or higher rank`);
    if (carried.some((a) => a - r + s.length >= 0 && s[a - r + s.length] !== 1)) return unsupported(w, node, `combines attention heads with '${name}', which varies along them`);
    // Its entries meet unpermuted positions here: permuting it for another use would change this one.
    if (v.kind === 'init') w.pinInit(v, `combined with attention heads by ${nodeLabel(node)}`);
  }
  w.set(node.outputs[0], { ...x, shape: broadcastShapes(named.map((e) => e.v.shape)) ?? x.shape }, node);
}

/** Ops that know values split into heads; any other op reading one is not followed. */
function visitHeaded(w: Walk, node: OnnxNode, op: string): void {
  const x = w.get(node.inputs[0], node);
  if (x.kind === 'chan' && x.segs !== undefined) return visitSegments(w, node, op, x);
  const reads = node.inputs.filter((n) => n !== '').map((n) => w.values.get(n));
  if (reads.some((v) => v?.kind === 'chan' && v.segs !== undefined)) return unsupported(w, node, 'reads q|k|v segments split into heads');
  // Only elementwise ops and MatMul take heads in more than their first input (a shape or index computed
  // from permuted values is not followed).
  if (!BINARY.has(op) && op !== 'MatMul' && reads.slice(1).some((v) => v?.kind === 'chan' && v.heads !== undefined)) {
    return unsupported(w, node, 'reads attention heads as a shape, index or parameter');
  }
  if (op === 'Identity' || UNARY.has(op)) {
    if (x.kind === 'chan' && x.heads !== undefined) return passThrough(w, node, x);
    return unsupported(w, node, 'reads attention heads');
  }
  if (SHAPE_ONLY.has(op)) return handleShape(w, node);
  if (op === 'Transpose') return handleTranspose(w, node);
  if (op === 'Reshape') return handleReshape(w, node);
  if (op === 'MatMul') return handleMatMul(w, node);
  if (BINARY.has(op)) return handleHeadedJoin(w, node);
  unsupported(w, node, 'reads attention heads, which the walk follows only through Transpose, Reshape, MatMul and elementwise ops');
}

function broadcastShapes(shapes: readonly (readonly Dim[] | null)[]): Dim[] | null {
  if (shapes.some((s) => s === null)) return null;
  const rank = Math.max(...shapes.map((s) => s!.length));
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    let d: Dim = 1;
    for (const s of shapes) {
      const k = s!.length - rank + i;
      const e = k < 0 ? 1 : s![k];
      if (e === null) d = d === 1 ? null : d;
      else if (e !== 1) d = e;
    }
    out.push(d);
  }
  return out;
}

/**
 * Elementwise ops with several operands (and Concat along a non-channel axis): every activation operand's
 * channel class is merged; an initializer operand joins on the axis that lines up with the channels; a
 * constant or unpermuted activation that varies along the channels fixes the class.
 */
function handleJoin(w: Walk, node: OnnxNode, concatAxis: number | null): void {
  let named = node.inputs.filter((n) => n !== '').map((n): { name: string; v: Value } => ({ name: n, v: w.get(n, node) }));
  if (concatAxis === null && named.some((x) => x.v.kind === 'chan' && w.sizeOf(x.v.cls) > 1)) {
    // A one-channel operand (a spatial gate) broadcasts over the channels: its only permutation is the
    // identity, so it joins like any other value that is constant along the channels.
    named = named.map((x) => (x.v.kind === 'chan' && w.sizeOf(x.v.cls) === 1 ? { name: x.name, v: { kind: 'plain', shape: x.v.shape, deps: [] } } : x));
  }
  const chans = named.filter((x): x is { name: string; v: ChanValue } => x.v.kind === 'chan');
  if (chans.length === 0) {
    // No channels here; an initializer combined into something else must keep its entries where they are.
    w.pinInits(node);
    const deps = named.flatMap((x) => (x.v.kind === 'plain' ? x.v.deps : []));
    const shape = concatAxis === null ? broadcastShapes(named.map((x) => x.v.shape)) : null;
    // Concatenated sizes (a Reshape target built from Shape pieces) and sizes computed from them
    // (`E // num_heads`, `bsz * num_heads`) stay followed.
    const pieces = named.map((x) => intEntries(w, x.name));
    let ints: readonly IntEntry[] | undefined;
    if (pieces.length > 0 && pieces.every((p) => p !== null)) {
      ints = concatAxis !== null ? pieces.flatMap((p) => p!) : (intArithmetic(node.opType, pieces as (readonly IntEntry[])[]) ?? undefined);
    }
    const outShape = ints !== undefined && concatAxis !== null ? [ints.length] : shape;
    for (const o of node.outputs) w.set(o, { kind: 'plain', shape: outShape, deps, ...(ints !== undefined ? { ints } : {}) }, node);
    return;
  }
  const end = fromEnd(chans[0].v);
  if (chans.some((c) => fromEnd(c.v) !== end)) {
    return unsupported(w, node, 'combines activations whose channel axes do not line up');
  }
  if (concatAxis !== null) {
    const rank = chans.find((c) => c.v.shape !== null)?.v.shape?.length ?? null;
    const ca = rank === null ? (concatAxis < 0 ? concatAxis : null) : normAxis(concatAxis, rank)! - rank;
    if (ca === null || ca === end) return unsupported(w, node, 'concatenates along the channel axis (the permutation would act on blocks of the result)');
  }
  let cls = chans[0].v.cls;
  for (const c of chans.slice(1)) cls = w.union(cls, c.v.cls, node, `(residual join of '${chans[0].name}' and '${c.name}')`);
  const C = w.sizeOf(cls);
  for (const { name, v } of named) {
    if (v.kind === 'chan') continue;
    if (v.kind === 'plain' && v.deps.length > 0) {
      return unsupported(w, node, `combines the channels with '${name}', which comes from an unsupported op`);
    }
    const s = v.shape;
    const k = s === null ? null : s.length + end;
    if (k !== null && (k < 0 || s![k] === 1) && (concatAxis === null || (v.kind === 'init' && v.expanded === true))) continue; // constant along the channels
    if (v.kind === 'init') {
      if (k === null || k < 0) continue;
      w.joinInit(v, k, cls, node);
      continue;
    }
    if (k !== null && s![k] !== null && s![k] !== C && s![k] !== 1) {
      throw new InputError(`${w.model.label}: ${nodeLabel(node)}: '${name}' ${fmtShape(s!)} does not broadcast against ${C} channels`);
    }
    const what = v.constant === true ? 'a constant' : `'${name}'`;
    w.fix(cls, `${nodeLabel(node)} combines it with ${what}, which is not permuted`);
  }
  const shapes = named.map((x) => x.v.shape);
  let shape: Dim[] | null = concatAxis === null ? broadcastShapes(shapes) : null;
  if (concatAxis !== null && chans[0].v.shape !== null) {
    shape = [...chans[0].v.shape];
    shape[normAxis(concatAxis, shape.length)!] = null;
  }
  const axis = shape === null ? end : shape.length + end;
  for (const o of node.outputs) w.set(o, { kind: 'chan', cls, axis, shape }, node);
}

function handleNorm(w: Walk, node: OnnxNode): void {
  // BatchNormalization (X, scale, B, mean, var) and InstanceNormalization (X, scale, B): per-channel on axis 1.
  const x = w.get(node.inputs[0], node);
  if (x.kind === 'init') return unsupported(w, node, 'normalises an initializer');
  if (x.kind === 'chan' && x.axis !== 1) return unsupported(w, node, `reads channels on axis ${x.axis}, not axis 1`);
  const params = node.inputs.slice(1).filter((n) => n !== '').map((n) => ({ n, v: w.get(n, node) }));
  for (const p of params) {
    if (p.v.kind !== 'init' || p.v.shape.length !== 1) return unsupported(w, node, `has a parameter '${p.n}' that is not a 1-D initializer`);
  }
  if (params.length === 0) return unsupported(w, node, 'has no per-channel parameters');
  const C = (params[0].v as InitValue).shape[0];
  const cls = w.inputClass(x, node.inputs[0], C, node);
  for (const p of params) w.joinInit(p.v as InitValue, 0, cls, node);
  w.set(node.outputs[0], x.kind === 'chan' ? x : { kind: 'chan', cls, axis: 1, shape: x.shape }, node);
  for (const o of node.outputs.slice(1)) w.set(o, { kind: 'plain', shape: null, deps: [cls] }, node);
}

function handleLayerNorm(w: Walk, node: OnnxNode): void {
  const x = w.get(node.inputs[0], node);
  if (x.kind === 'init') return unsupported(w, node, 'normalises an initializer');
  const params = node.inputs.slice(1, 3).filter((n) => n !== '').map((n) => ({ n, v: w.get(n, node) }));
  for (const p of params) if (p.v.kind !== 'init') return unsupported(w, node, `has a parameter '${p.n}' that is not an initializer`);
  const axis = attrInt(node, 'axis', -1);
  if (x.kind === 'chan') {
    // Statistics over a set of axes that includes the channels do not depend on their order; the scale and
    // bias (shaped like the normalised axes) then follow the channels.
    const rank = x.shape?.length ?? null;
    const first = rank === null ? (axis < 0 ? axis : null) : normAxis(axis, rank)! - rank;
    if (first === null) return unsupported(w, node, 'has an axis that cannot be placed (unknown rank)');
    const end = fromEnd(x);
    if (end >= first) {
      for (const p of params) {
        const v = p.v as InitValue;
        const k = v.shape.length + end;
        if (k >= 0 && v.shape[k] !== 1) w.joinInit(v, k, x.cls, node);
      }
    }
  } else {
    for (const p of params) {
      const v = p.v as InitValue;
      v.shape.forEach((n, k) => w.joinInit(v, k, w.newClass(n, null, `parameter of ${nodeLabel(node)} on an unpermuted input`), node));
    }
  }
  w.set(node.outputs[0], x, node);
  for (const o of node.outputs.slice(1)) w.set(o, { kind: 'plain', shape: null, deps: x.kind === 'chan' ? [x.cls] : [] }, node);
}

function handlePool(w: Walk, node: OnnxNode, global: boolean): void {
  const x = w.get(node.inputs[0], node);
  if (x.kind !== 'chan') return notChan(w, node, x);
  if (x.axis !== 1) return unsupported(w, node, `pools an activation whose channels are on axis ${x.axis}`);
  if (node.outputs.length > 1 && node.outputs[1] !== '') return unsupported(w, node, 'returns pooling indices, which depend on the channel order');
  const C = w.sizeOf(x.cls);
  let shape: Dim[] | null;
  if (global) shape = x.shape === null ? null : [x.shape[0], C, ...x.shape.slice(2).map(() => 1)];
  else shape = windowShape(node, x.shape, C, attrInts(node, 'kernel_shape') ?? []);
  w.set(node.outputs[0], { ...x, shape: shape ?? x.shape?.map((d, i) => (i === 1 ? C : i === 0 ? d : null)) ?? null }, node);
}

function handleReduce(w: Walk, node: OnnxNode): void {
  const x = w.get(node.inputs[0], node);
  const axesIn = axesArg(w, node);
  if (x.kind !== 'chan') return notChan(w, node, x);
  if (axesIn === 'dynamic') return unsupported(w, node, 'reduces over axes computed at run time');
  const keep = attrInt(node, 'keepdims', 1) === 1;
  const rank = x.shape?.length ?? null;
  if (axesIn === null || axesIn.length === 0) {
    if (attrInt(node, 'noop_with_empty_axes', 0) === 1) return passThrough(w, node, x);
    // A reduction over every axis does not depend on the channel order.
    for (const o of node.outputs) w.set(o, { kind: 'plain', shape: null, deps: [] }, node);
    return;
  }
  if (rank === null) return unsupported(w, node, 'reduces an activation of unknown rank');
  const axes = axesIn.map((a) => normAxis(a, rank));
  if (axes.some((a) => a === null)) return unsupported(w, node, `has axes ${JSON.stringify(axesIn)} outside rank ${rank}`);
  const shape: Dim[] = [];
  let axis = x.axis;
  x.shape!.forEach((d, i) => {
    if (!axes.includes(i)) shape.push(d);
    else if (keep) shape.push(1);
    else if (i < x.axis) axis--;
  });
  if (axes.includes(x.axis)) {
    // Summing, averaging or taking the max over the channels does not depend on their order; the shape
    // (size 1 on the channel axis with keepdims) lets a decomposed LayerNorm broadcast it back freely.
    for (const o of node.outputs) w.set(o, { kind: 'plain', shape, deps: [] }, node);
    return;
  }
  w.set(node.outputs[0], { kind: 'chan', cls: x.cls, axis, shape }, node);
}

/**
 * Where the channel axis lands when `inShape` is reshaped to `outShape` (both fully or partly known), or a
 * reason why it cannot be followed. The channel axis survives only when the dims before it and after it
 * keep their products, i.e. it is not merged with or split into other axes.
 */
function reshapeChannel(inShape: readonly Dim[], axis: number, outShape: readonly Dim[], C: number): number | string {
  const after = product(inShape.slice(axis + 1));
  const others = inShape.filter((_, i) => i !== axis);
  if (after !== null) {
    for (let b = 0; b < outShape.length; b++) {
      if (outShape[b] === C && product(outShape.slice(b + 1)) === after) return b;
    }
  }
  const merged = others.slice(axis);
  if (after === null) return `moves channel axis ${axis} (${C} channels) of ${fmtShape(inShape)} into ${fmtShape(outShape)}, and the sizes of the axes after it are not known, so it cannot tell whether the channels stay one axis`;
  return `merges channel axis ${axis} (${C} channels) of ${fmtShape(inShape)} with ${fmtShape(merged)} into ${fmtShape(outShape)}, so one channel permutation becomes blocks of ${after} on the next layer's input axis, which an axis-level spec cannot express`;
}

function handleFlatten(w: Walk, node: OnnxNode): void {
  const x = w.get(node.inputs[0], node);
  if (x.kind !== 'chan') return notChan(w, node, x, true);
  if (x.shape === null) return unsupported(w, node, 'flattens an activation of unknown rank');
  const at = normAxis(attrInt(node, 'axis', 1), x.shape.length + 1) ?? 1;
  const out: Dim[] = [product(x.shape.slice(0, at)), product(x.shape.slice(at))];
  const C = w.sizeOf(x.cls);
  // The channel axis keeps its identity only if every other dim in its group is 1.
  const group = x.axis < at ? x.shape.slice(0, at) : x.shape.slice(at);
  const rest = group.filter((_, i) => i !== (x.axis < at ? x.axis : x.axis - at));
  if (rest.every((d) => d === 1)) {
    out[x.axis < at ? 0 : 1] = C;
    w.set(node.outputs[0], { kind: 'chan', cls: x.cls, axis: x.axis < at ? 0 : 1, shape: out }, node);
    return;
  }
  const r = reshapeChannel(x.shape, x.axis, out, C);
  unsupported(w, node, typeof r === 'string' ? r : 'flattens the channel axis together with other axes');
}

/**
 * The target of a Reshape of `inShape` as products (`inDims`: the input's dims as products, unknown ones
 * as symbols `#i`): copies (0) and sizes taken with Shape of this very input become those dims, -1 the
 * quotient when it can be computed.
 */
function reshapeTarget(w: Walk, node: OnnxNode, inDims: readonly Mono[], target: readonly IntEntry[]): Mono[] {
  const allowZero = attrInt(node, 'allowzero', 0) === 1;
  const dimOf = (e: DimOf, i: number, j: number): Mono => {
    // A size taken with Shape: of this very input (a copy of one of its axes), or of another value.
    if (e.of === node.inputs[0] && e.axis < inDims.length) return inDims[e.axis];
    const v = w.values.get(e.of);
    const d = v === undefined || v.shape === null ? null : (v.shape[e.axis] ?? null);
    return d !== null ? { k: d, syms: [] } : { k: 1, syms: [`?${i}.${j}`] };
  };
  let minus = -1;
  const out: Mono[] = target.map((e, i) => {
    if (typeof e !== 'number') {
      const p = asProduct(e);
      return monoMul([{ k: p.k, syms: [] }, ...p.dims.map((d, j) => dimOf(d, i, j))]);
    }
    if (e === 0 && !allowZero) return inDims[i] ?? { k: 1, syms: [`?${i}`] };
    if (e === -1) minus = i;
    return { k: e, syms: [] };
  });
  if (minus >= 0) out[minus] = monoDiv(monoMul(inDims), monoMul(out.filter((_, i) => i !== minus))) ?? { k: 1, syms: [`?${minus}`] };
  return out;
}

function handleReshape(w: Walk, node: OnnxNode): void {
  const x = w.get(node.inputs[0], node);
  if (x.kind !== 'chan') return notChan(w, node, x, true);
  const target = intEntries(w, node.inputs[1]);
  if (target === null) return unsupported(w, node, 'reshapes to a shape computed at run time from values the walk does not follow');
  if (x.shape === null) return unsupported(w, node, 'reshapes an activation of unknown rank');
  if (x.heads !== undefined) return mergeHeads(w, node, x, target);
  const C = w.sizeOf(x.cls);
  const inDims: Mono[] = x.shape.map((d, i) => (i === x.axis ? { k: C, syms: [] } : d !== null ? { k: d, syms: [] } : { k: 1, syms: [`#${i}`] }));
  const out = reshapeTarget(w, node, inDims, target);
  const shape: Dim[] = out.map(known);
  // The channel axis survives only as one whole axis of C with the same sizes before and after it. The
  // element count is the same on both sides, so known sizes after it are enough (the batch and token
  // counts before it are often sizes of other values, taken at run time).
  const before = monoMul(inDims.slice(0, x.axis));
  const after = monoMul(inDims.slice(x.axis + 1));
  const afterKnown = known(after);
  for (let b = 0; b < out.length; b++) {
    if (!monoEq(out[b], { k: C, syms: [] })) continue;
    const tail = monoMul(out.slice(b + 1));
    if ((afterKnown !== null && known(tail) === afterKnown) || (monoEq(monoMul(out.slice(0, b)), before) && monoEq(tail, after))) {
      w.set(node.outputs[0], { kind: 'chan', cls: x.cls, axis: b, shape }, node);
      return;
    }
  }
  // Attention heads: the C = H·d units become an axis of d (unit i of a head) after an axis whose index
  // mod H is the head. With the sizes after the channels known (A), axis b of d and the known sizes after
  // it multiplying to A, and H dividing the axis before it, unit c = h·d + i lands at head index ≡ h
  // (mod H), unit index i: flat/A = Q·(n·d) + j·d + i with H | n, so (flat/A) mod H·d = (j mod H)·d + i.
  if (afterKnown !== null) {
    for (let b = 1; b < out.length; b++) {
      const d = known(out[b]);
      if (d === null || d < 1 || d === C || C % d !== 0 || known(monoMul(out.slice(b + 1))) !== afterKnown) continue;
      const H = C / d;
      if (out[b - 1].k % H !== 0) continue;
      if (!w.setHeads(x.cls, H)) return unsupported(w, node, `splits ${C} units into ${H} heads, which other nodes split into ${w.headsOf(x.cls)}`);
      w.set(node.outputs[0], { kind: 'chan', cls: x.cls, axis: b, shape, heads: { axis: b - 1, count: H, units: true } }, node);
      return;
    }
  }
  // A fused q|k|v projection split into (S, H, d) at once: with the axes of exactly S and H before the d
  // units and the known sizes after them as before, unit c = s·H·d + h·d + i lands at (s, h, i). Each
  // segment becomes a class of its own, split into H heads.
  if (afterKnown !== null) {
    for (let b = 2; b < out.length; b++) {
      const [S, H, d] = [known(out[b - 2]), known(out[b - 1]), known(out[b])];
      if (S === null || H === null || d === null || S < 2 || H < 1 || S * H * d !== C || known(monoMul(out.slice(b + 1))) !== afterKnown) continue;
      const classes: number[] = [];
      for (let k = 0; k < S; k++) {
        const seg = w.segment(x.cls, k * H * d, (k + 1) * H * d);
        if (seg === null) return unsupported(w, node, `cuts channels into ${S} segments across segments other nodes already cut`);
        if (!w.setHeads(seg, H)) return unsupported(w, node, `splits a segment into ${H} heads, which other nodes split into ${w.headsOf(seg)}`);
        classes.push(seg);
      }
      w.set(node.outputs[0], { kind: 'chan', cls: x.cls, axis: b, shape, heads: { axis: b - 1, count: H, units: true }, segs: { axis: b - 2, classes } }, node);
      return;
    }
  }
  const r = reshapeChannel(x.shape, x.axis, shape, C);
  unsupported(w, node, typeof r === 'string' ? r : `reshapes channel axis ${x.axis} (${C} channels) of ${fmtShape(x.shape)} into ${fmtShape(shape)} in a way the walk cannot follow`);
}

/** One segment of a value holding segments on `segs.axis` (index `k`), with that axis removed or kept (size 1). */
function takeSegment(x: ChanValue, k: number, drop: boolean): ChanValue {
  const segs = x.segs!;
  const at = (a: number): number => (drop && a > segs.axis ? a - 1 : a);
  const shape = x.shape!.flatMap((d, i) => (i !== segs.axis ? [d] : drop ? [] : [1]));
  const base = { kind: 'chan' as const, cls: segs.classes[k], axis: at(x.axis), shape, heads: { ...x.heads!, axis: at(x.heads!.axis) } };
  return drop ? base : { ...base, segs: { axis: segs.axis, classes: [segs.classes[k]] } };
}

/** Split, Gather or Squeeze taking single segments out of a value split into (S, H, d); nothing else. */
function visitSegments(w: Walk, node: OnnxNode, op: string, x: ChanValue): void {
  const segs = x.segs!;
  const rank = x.shape!.length;
  if (op === 'Split' && normAxis(attrInt(node, 'axis', 0), rank) === segs.axis) {
    const given = node.inputs[1] !== undefined && node.inputs[1] !== '';
    const sizes = given ? knownInts(w, node.inputs[1]) : (attrInts(node, 'split') ?? segs.classes.map(() => 1));
    if (sizes === null || sizes.length !== segs.classes.length || node.outputs.length !== sizes.length || sizes.some((m) => m !== 1)) {
      return unsupported(w, node, 'splits segments other than one by one');
    }
    node.outputs.forEach((o, k) => w.set(o, takeSegment(x, k, false), node));
    return;
  }
  if (op === 'Gather' && normAxis(attrInt(node, 'axis', 0), rank) === segs.axis) {
    const idx = knownInts(w, node.inputs[1]);
    const idxShape = plainShape(w.get(node.inputs[1], node));
    if (idx === null || idx.length !== 1 || idxShape === null || idxShape.length !== 0) return unsupported(w, node, 'gathers segments other than one');
    const k = idx[0] < 0 ? idx[0] + segs.classes.length : idx[0];
    if (k < 0 || k >= segs.classes.length) return unsupported(w, node, `gathers segment ${idx[0]} of ${segs.classes.length}`);
    return w.set(node.outputs[0], takeSegment(x, k, true), node);
  }
  if (op === 'Squeeze' && segs.classes.length === 1) {
    const axes = axesArg(w, node);
    if (axes !== 'dynamic' && axes !== null && axes.length === 1 && normAxis(axes[0], rank) === segs.axis) return w.set(node.outputs[0], takeSegment(x, 0, true), node);
  }
  if (op === 'Transpose') return handleTranspose(w, node);
  if (op === 'Identity' || UNARY.has(op)) return passThrough(w, node, x);
  if (SHAPE_ONLY.has(op)) return handleShape(w, node);
  unsupported(w, node, 'reads q|k|v segments split into heads, which the walk follows only until each segment is taken out');
}

/**
 * Heads merged back into one axis of H·d units: the head axis must come just before the unit axis (heads
 * as its minor factor) and the result hold an axis of H·d with the same known sizes after it.
 */
function mergeHeads(w: Walk, node: OnnxNode, x: ChanValue, target: readonly IntEntry[]): void {
  const heads = x.heads!;
  const shape0 = x.shape!;
  if (!heads.units) return unsupported(w, node, 'reshapes attention scores');
  if (heads.axis !== x.axis - 1) return unsupported(w, node, 'merges heads that are not on the axis just before their units');
  const C = w.sizeOf(x.cls);
  const inDims: Mono[] = shape0.map((d, i) => (d !== null ? { k: d, syms: [] } : { k: 1, syms: [`#${i}`] }));
  const out = reshapeTarget(w, node, inDims, target);
  const after = known(monoMul(inDims.slice(x.axis + 1)));
  if (after === null) return unsupported(w, node, 'merges heads of an activation whose sizes after the units are not known');
  for (let b = 0; b < out.length; b++) {
    if (known(out[b]) === C && known(monoMul(out.slice(b + 1))) === after) {
      w.set(node.outputs[0], { kind: 'chan', cls: x.cls, axis: b, shape: out.map(known) }, node);
      return;
    }
  }
  unsupported(w, node, `reshapes ${heads.count} heads of ${shape0[x.axis]} units in ${fmtShape(shape0)} into ${fmtShape(out.map(known))} in a way the walk cannot follow`);
}

function handleTranspose(w: Walk, node: OnnxNode): void {
  const x = w.get(node.inputs[0], node);
  const permAttr = attrInts(node, 'perm');
  if (x.kind === 'plain' && x.shape !== null && (permAttr === null || permAttr.length === x.shape.length)) {
    // An unpermuted activation (a graph input moved to sequence-first) keeps a known shape.
    const { ints: _moved, ...rest } = x;
    const perm = permAttr ?? x.shape.map((_, i) => x.shape!.length - 1 - i);
    return passThrough(w, node, { ...rest, shape: perm.map((p) => x.shape![p] ?? null) });
  }
  if (x.kind !== 'chan') return notChan(w, node, x);
  if (x.shape === null) return unsupported(w, node, 'transposes an activation of unknown rank');
  const perm = attrInts(node, 'perm') ?? x.shape.map((_, i) => x.shape!.length - 1 - i);
  if (perm.length !== x.shape.length) return unsupported(w, node, `has perm ${JSON.stringify(perm)} for rank ${x.shape.length}`);
  const shape = perm.map((p) => x.shape![p] ?? null);
  const heads = x.heads === undefined ? {} : { heads: { ...x.heads, axis: perm.indexOf(x.heads.axis) } };
  const segs = x.segs === undefined ? {} : { segs: { ...x.segs, axis: perm.indexOf(x.segs.axis) } };
  w.set(node.outputs[0], { kind: 'chan', cls: x.cls, axis: perm.indexOf(x.axis), shape, ...heads, ...segs }, node);
}

function handleSqueeze(w: Walk, node: OnnxNode, unsqueeze: boolean): void {
  const x = w.get(node.inputs[0], node);
  if (x.kind !== 'chan') return notChan(w, node, x, true);
  const axesIn = axesArg(w, node);
  if (axesIn === 'dynamic') return unsupported(w, node, 'has axes computed at run time');
  if (x.shape === null) return unsupported(w, node, 'reshapes an activation of unknown rank');
  const rank = x.shape.length;
  if (unsqueeze) {
    if (axesIn === null) return unsupported(w, node, 'has no axes');
    const outRank = rank + axesIn.length;
    const ins = new Set(axesIn.map((a) => normAxis(a, outRank)));
    const shape: Dim[] = [];
    let k = 0;
    let axis = -1;
    for (let i = 0; i < outRank; i++) {
      if (ins.has(i)) shape.push(1);
      else {
        if (k === x.axis) axis = i;
        shape.push(x.shape[k++] ?? null);
      }
    }
    w.set(node.outputs[0], { kind: 'chan', cls: x.cls, axis, shape }, node);
    return;
  }
  const drop = axesIn === null ? x.shape.map((d, i) => (d === 1 ? i : -1)).filter((i) => i >= 0) : axesIn.map((a) => normAxis(a, rank));
  if (axesIn === null && x.shape.some((d) => d === null)) return unsupported(w, node, 'squeezes every size-1 axis of a partly unknown shape');
  if (drop.includes(x.axis)) return unsupported(w, node, 'squeezes the channel axis');
  const shape = x.shape.filter((_, i) => !drop.includes(i));
  const axis = x.axis - drop.filter((i) => i !== null && i < x.axis).length;
  w.set(node.outputs[0], { kind: 'chan', cls: x.cls, axis, shape }, node);
}

/** Shape (and Size) depend only on the input's shape, which a permutation keeps; Shape's entries are followed. */
function handleShape(w: Walk, node: OnnxNode): void {
  const name = node.inputs[0];
  const x = w.get(name, node);
  if (node.opType !== 'Shape' || x.shape === null) {
    for (const o of node.outputs) w.set(o, { kind: 'plain', shape: node.opType === 'Size' ? [] : null, deps: [] }, node);
    return;
  }
  const rank = x.shape.length;
  const clamp = (a: number): number => Math.min(rank, Math.max(0, a < 0 ? a + rank : a));
  const start = clamp(attrInt(node, 'start', 0));
  const end = clamp(attrInt(node, 'end', rank));
  const ints: IntEntry[] = [];
  for (let i = start; i < end; i++) {
    const d = x.kind === 'chan' && i === x.axis && x.heads === undefined ? w.sizeOf(x.cls) : x.shape[i];
    ints.push(d ?? { of: name, axis: i });
  }
  w.set(node.outputs[0], { kind: 'plain', shape: [ints.length], deps: [], ints }, node);
}

/** The known shape of a value that is not an activation with channels (Gather indices, say), else null. */
function plainShape(v: Value): readonly Dim[] | null {
  if (v.kind === 'chan') return null;
  if (v.kind === 'plain' && v.deps.length > 0) return null;
  return v.shape;
}

/** Gather along an axis other than the channels (a class token, a time step) keeps the channels. */
function handleGather(w: Walk, node: OnnxNode): void {
  const x = w.get(node.inputs[0], node);
  const idx = w.get(node.inputs[1], node);
  const axisAttr = attrInt(node, 'axis', 0);
  if (x.kind === 'plain') {
    // Picking entries of a followed shape (Shape -> Gather) keeps them followed.
    const ints = x.ints;
    const at = knownInts(w, node.inputs[1]);
    const idxShape = plainShape(idx);
    if (ints !== undefined && at !== null && idxShape !== null && axisAttr === 0 && at.every((i) => i >= -ints.length && i < ints.length)) {
      w.set(node.outputs[0], { kind: 'plain', shape: idxShape, deps: x.deps, ints: at.map((i) => ints[i < 0 ? i + ints.length : i]) }, node);
      return;
    }
    if (idx.kind !== 'chan' && !(idx.kind === 'plain' && idx.deps.length > 0)) {
      w.set(node.outputs[0], { kind: 'plain', shape: null, deps: x.deps }, node);
      return;
    }
  }
  if (x.kind !== 'chan') return unsupported(w, node, x.kind === 'init' ? `looks up entries of initializer '${x.name}'` : 'gathers with indices computed from activations');
  const idxShape = plainShape(idx);
  if (idxShape === null || idxShape.some((d) => d === null)) return unsupported(w, node, 'gathers with indices of unknown shape or computed from activations');
  if (x.shape === null) return unsupported(w, node, 'gathers from an activation of unknown rank');
  const a = normAxis(axisAttr, x.shape.length);
  if (a === null) return unsupported(w, node, `has axis ${axisAttr} outside rank ${x.shape.length}`);
  if (a === x.axis) return unsupported(w, node, 'selects channels, which a channel permutation reorders');
  const shape = [...x.shape.slice(0, a), ...idxShape, ...x.shape.slice(a + 1)];
  const axis = x.axis < a ? x.axis : x.axis - 1 + idxShape.length;
  w.set(node.outputs[0], { kind: 'chan', cls: x.cls, axis, shape }, node);
}

/** Slice inputs (opset 10+) or attributes (older): starts, ends, axes, steps. */
function sliceArgs(w: Walk, node: OnnxNode): { starts: readonly number[] | null; ends: readonly number[] | null; axes: readonly number[] | null; steps: readonly number[] | null } {
  if (node.inputs.length <= 1) {
    const starts = attrInts(node, 'starts');
    return { starts, ends: attrInts(node, 'ends'), axes: attrInts(node, 'axes') ?? starts?.map((_, i) => i) ?? null, steps: starts?.map(() => 1) ?? null };
  }
  const starts = knownInts(w, node.inputs[1]);
  const ends = knownInts(w, node.inputs[2]);
  const given = (i: number): boolean => node.inputs[i] !== undefined && node.inputs[i] !== '';
  const startsLen = plainShape(w.get(node.inputs[1], node))?.[0] ?? starts?.length ?? null;
  const axes = given(3) ? knownInts(w, node.inputs[3]) : startsLen === null ? null : Array.from({ length: startsLen }, (_, i) => i);
  const steps = given(4) ? knownInts(w, node.inputs[4]) : axes?.map(() => 1) ?? null;
  return { starts, ends, axes, steps };
}

/** Slicing other axes keeps the channels; the channel axis only when the slice takes all of it. */
function handleSlice(w: Walk, node: OnnxNode): void {
  const x = w.get(node.inputs[0], node);
  const { starts, ends, axes, steps } = sliceArgs(w, node);
  if (x.kind === 'plain') {
    const ints = x.ints;
    if (ints !== undefined && starts?.length === 1 && ends?.length === 1 && (axes === null || axes[0] === 0) && (steps === null || steps[0] === 1)) {
      const n = ints.length;
      const at = (v: number): number => Math.min(n, Math.max(0, v < 0 ? v + n : v));
      const picked = ints.slice(at(starts[0]), at(ends[0]));
      w.set(node.outputs[0], { kind: 'plain', shape: [picked.length], deps: x.deps, ints: picked }, node);
      return;
    }
  }
  if (x.kind === 'plain' && x.shape !== null && axes !== null) {
    // An unpermuted activation keeps its rank; sliced axes get their length when the bounds are known.
    const { ints: _sliced, ...rest } = x;
    const rank = x.shape.length;
    const shape = [...x.shape];
    axes.forEach((a, j) => {
      const i = normAxis(a, rank);
      if (i === null) return;
      const n = shape[i];
      const [s0, e0, st] = [starts?.[j], ends?.[j], steps === null ? 1 : steps[j]];
      if (n === null || s0 === undefined || e0 === undefined || st !== 1) shape[i] = null;
      else shape[i] = Math.max(0, Math.min(n, Math.max(0, e0 < 0 ? e0 + n : e0)) - Math.min(n, Math.max(0, s0 < 0 ? s0 + n : s0)));
    });
    return passThrough(w, node, { ...rest, shape });
  }
  if (x.kind !== 'chan') return notChan(w, node, x);
  if (x.shape === null) return unsupported(w, node, 'slices an activation of unknown rank');
  const rank = x.shape.length;
  if (axes === null) return unsupported(w, node, 'slices axes computed at run time');
  const norm = axes.map((a) => normAxis(a, rank));
  if (norm.some((a) => a === null)) return unsupported(w, node, `has axes ${JSON.stringify(axes)} outside rank ${rank}`);
  if (x.heads !== undefined) return unsupported(w, node, 'slices attention heads');
  const j = norm.indexOf(x.axis);
  const C = w.sizeOf(x.cls);
  let cls = x.cls;
  let n = C;
  if (j >= 0) {
    if (starts === null || ends === null || (steps !== null && steps[j] !== 1)) return unsupported(w, node, 'slices the channel axis with bounds computed at run time or a step');
    const at = (v: number): number => Math.min(C, Math.max(0, v < 0 ? v + C : v));
    const [from, to] = [at(starts[j]), at(ends[j])];
    if (from >= to) return unsupported(w, node, 'takes no channels');
    if (from > 0 || to < C) {
      // A segment of the channels (q, k or v of a fused projection): a class of its own, and the tensors
      // on the channel axis are stored as parts.
      const seg = w.segment(x.cls, from, to);
      if (seg === null) return unsupported(w, node, `cuts channels ${from}..${to} of ${C}, across segments other nodes already cut`);
      [cls, n] = [seg, to - from];
    }
  }
  const shape = x.shape.map((d, i) => (i === x.axis ? n : norm.includes(i) ? null : d));
  w.set(node.outputs[0], { kind: 'chan', cls, axis: x.axis, shape }, node);
}

/** Split along another axis gives pieces with the same channels; along the channels, segments. */
function handleSplit(w: Walk, node: OnnxNode): void {
  const x = w.get(node.inputs[0], node);
  if (x.kind !== 'chan') return notChan(w, node, x);
  if (x.shape === null) return unsupported(w, node, 'splits an activation of unknown rank');
  if (x.heads !== undefined) return unsupported(w, node, 'splits attention heads');
  const a = normAxis(attrInt(node, 'axis', 0), x.shape.length);
  if (a === null) return unsupported(w, node, 'splits along an axis outside the rank');
  if (a === x.axis) {
    // q, k, v of a fused projection: consecutive segments of the channels, each a class of its own.
    const C = w.sizeOf(x.cls);
    const given = node.inputs[1] !== undefined && node.inputs[1] !== '';
    const k = node.outputs.length;
    const sizes = given ? knownInts(w, node.inputs[1]) : (attrInts(node, 'split') ?? (C % k === 0 ? Array<number>(k).fill(C / k) : null));
    if (sizes === null || sizes.length !== k || sizes.some((m) => m < 1) || sizes.reduce((p, m) => p + m, 0) !== C) {
      return unsupported(w, node, 'splits the channel axis into segments of sizes the walk does not know');
    }
    let from = 0;
    const parts: ChanValue[] = [];
    for (const m of sizes) {
      const seg = w.segment(x.cls, from, from + m);
      if (seg === null) return unsupported(w, node, `cuts channels ${from}..${from + m} of ${C}, across segments other nodes already cut`);
      parts.push({ kind: 'chan', cls: seg, axis: x.axis, shape: x.shape.map((d, i) => (i === a ? m : d)) });
      from += m;
    }
    parts.forEach((v, i) => w.set(node.outputs[i], v, node));
    return;
  }
  const shape = x.shape.map((d, i) => (i === a ? null : d));
  for (const o of node.outputs) w.set(o, { kind: 'chan', cls: x.cls, axis: x.axis, shape }, node);
}

/** Padding other axes keeps the channels (the pad value is one scalar for every channel). */
function handlePad(w: Walk, node: OnnxNode): void {
  const x = w.get(node.inputs[0], node);
  if (x.kind !== 'chan') return notChan(w, node, x);
  if (x.shape === null) return unsupported(w, node, 'pads an activation of unknown rank');
  const rank = x.shape.length;
  const pads = attrInts(node, 'pads') ?? knownInts(w, node.inputs[1]);
  if (pads === null) return unsupported(w, node, 'pads by amounts computed at run time');
  const axesGiven = node.inputs[3] !== undefined && node.inputs[3] !== '';
  const axes = axesGiven ? knownInts(w, node.inputs[3]) : Array.from({ length: rank }, (_, i) => i);
  if (axes === null) return unsupported(w, node, 'pads axes computed at run time');
  const n = axes.length;
  if (pads.length !== 2 * n) return unsupported(w, node, `has ${pads.length} pads for ${n} axes`);
  const fill = node.inputs[2] !== undefined && node.inputs[2] !== '' ? w.get(node.inputs[2], node) : null;
  if (fill !== null && fill.kind === 'chan') return unsupported(w, node, 'pads with a value computed from the channels');
  const shape = [...x.shape];
  for (let j = 0; j < n; j++) {
    const a = normAxis(axes[j], rank);
    if (a === null) return unsupported(w, node, `pads axis ${axes[j]} outside rank ${rank}`);
    if (pads[j] === 0 && pads[j + n] === 0) continue;
    if (a === x.axis) return unsupported(w, node, 'pads the channel axis');
    shape[a] = shape[a] === null ? null : shape[a]! + pads[j] + pads[j + n];
  }
  w.set(node.outputs[0], { kind: 'chan', cls: x.cls, axis: x.axis, shape }, node);
}

/** Resize/Upsample scale spatial axes; the channel axis must keep its size (scale 1). */
function handleResize(w: Walk, node: OnnxNode): void {
  const x = w.get(node.inputs[0], node);
  if (x.kind !== 'chan') return notChan(w, node, x);
  if (x.shape === null) return unsupported(w, node, 'resizes an activation of unknown rank');
  const rank = x.shape.length;
  const C = w.sizeOf(x.cls);
  const upsample = node.opType === 'Upsample';
  // Float lists decode as numbers too, so attrInts reads the old `scales` attribute.
  const scales = upsample ? (attrInts(node, 'scales') ?? floatContents(w, node.inputs[1])) : floatContents(w, node.inputs[2]);
  const sizes = upsample ? null : knownInts(w, node.inputs[3]);
  const axes = attrInts(node, 'axes')?.map((a) => normAxis(a, rank)) ?? Array.from({ length: rank }, (_, i) => i);
  const j = axes.indexOf(x.axis);
  let keeps: boolean;
  if (scales !== null && scales.length > 0) keeps = j < 0 || scales[j] === 1;
  else if (sizes !== null && sizes.length > 0) keeps = j < 0 || sizes[j] === C;
  else return unsupported(w, node, 'resizes by scales or sizes computed at run time');
  if (!keeps) return unsupported(w, node, 'resizes the channel axis');
  const shape = x.shape.map((d, i) => (i === x.axis ? C : axes.includes(i) ? (scales !== null && scales.length > 0 && scales[axes.indexOf(i)] === 1 ? d : null) : d));
  w.set(node.outputs[0], { kind: 'chan', cls: x.cls, axis: x.axis, shape }, node);
}

/** Tile repeats whole axes: fine unless the channel axis is repeated (the result would hold blocks). */
function handleTile(w: Walk, node: OnnxNode): void {
  const x = w.get(node.inputs[0], node);
  if (x.kind !== 'chan') return notChan(w, node, x);
  const repeats = knownInts(w, node.inputs[1]);
  if (x.shape === null || repeats === null || repeats.length !== x.shape.length) return unsupported(w, node, 'tiles by repeats computed at run time');
  if (repeats[x.axis] !== 1) return unsupported(w, node, 'repeats the channel axis (the permutation would act on blocks)');
  const shape = x.shape.map((d, i) => (d === null ? null : d * repeats[i]));
  w.set(node.outputs[0], { kind: 'chan', cls: x.cls, axis: x.axis, shape }, node);
}

/**
 * Expand broadcasts size-1 axes, so an axis of C > 1 channels stays where it is counted from the end (the
 * result may gain leading axes). A channel axis of size 1 carries no permutation.
 */
function handleExpand(w: Walk, node: OnnxNode): void {
  const x = w.get(node.inputs[0], node);
  // A class token broadcast over the batch: its entries stay on their axes counted from the end.
  if (x.kind === 'init') return w.set(node.outputs[0], { ...x, expanded: true }, node);
  if (x.kind !== 'chan') return notChan(w, node, x);
  if (w.sizeOf(x.cls) === 1) return passThrough(w, node, { kind: 'plain', shape: null, deps: [] });
  const target = knownInts(w, node.inputs[1]);
  const shape = target === null ? null : broadcastShapes([x.shape, target]);
  const end = fromEnd(x);
  w.set(node.outputs[0], { kind: 'chan', cls: x.cls, axis: shape === null ? end : shape.length + end, shape }, node);
}

function handleConstant(w: Walk, node: OnnxNode): void {
  const a = node.attributes;
  let shape: number[] | null = null;
  let ints: number[] | undefined;
  let floats: number[] | undefined;
  const t = a.value as OnnxTensorValue | undefined;
  if (t !== undefined && typeof t === 'object' && 'kind' in t && t.kind === 'tensor') {
    shape = [...t.shape];
    if (Array.isArray(t.data) && t.data.every((v) => typeof v === 'number')) ints = t.data as number[];
    else if (t.data instanceof Float32Array && t.data.length <= 64) floats = Array.from(t.data);
  } else if (typeof a.value_int === 'number') {
    shape = [];
    ints = [a.value_int];
  } else if (Array.isArray(a.value_ints)) {
    ints = a.value_ints as number[];
    shape = [ints.length];
  } else if (typeof a.value_float === 'number') {
    shape = [];
    floats = [a.value_float];
  }
  else if (Array.isArray(a.value_floats)) {
    floats = a.value_floats as number[];
    shape = [floats.length];
  }
  w.set(node.outputs[0], { kind: 'plain', shape, deps: [], constant: true, ...(ints !== undefined ? { ints } : {}), ...(floats !== undefined ? { floats } : {}) }, node);
}

function visit(w: Walk, node: OnnxNode): void {
  const op = node.domain === '' || node.domain === 'ai.onnx' ? node.opType : `${node.domain}.${node.opType}`;
  if (op === 'Constant') return handleConstant(w, node);
  if (nodeReads(node).length > node.inputs.filter((n) => n !== '').length || subgraphsOf(node).length > 0) {
    // If/Loop/Scan bodies may read any outer value (a weight, a hidden activation) without naming it as an
    // input; we do not follow them, so everything they read stays as it is.
    return unsupported(w, node, 'runs subgraphs (If/Loop/Scan bodies), which the walk does not follow');
  }
  const reads = node.inputs.filter((n) => n !== '').map((n) => w.values.get(n));
  if (reads.some((v) => v?.kind === 'chan' && v.heads !== undefined)) return visitHeaded(w, node, op);
  if (reads.some((v) => v?.kind === 'init' && v.expanded === true) && !(op === 'Identity' || ENTRYWISE.has(op) || BINARY.has(op) || op === 'Concat' || op === 'Expand')) {
    return unsupported(w, node, 'reads an initializer broadcast by Expand');
  }
  if (op === 'Identity') {
    // Exporters alias shared weights through Identity: keep it an initializer.
    const x = w.get(node.inputs[0], node);
    w.set(node.outputs[0], x, node);
    return;
  }
  if (UNARY.has(op)) {
    const x = w.get(node.inputs[0], node);
    if (x.kind === 'init') return viewOrPin(w, node, x);
    if (x.kind === 'plain' && x.ints !== undefined && !(op === 'Cast' && INT_TYPES.has(attrInt(node, 'to', 0)))) {
      // Followed sizes stay followed through a cast to integers only (Neg, Floor, ... change them).
      const { ints: _dropped, ...rest } = x;
      return passThrough(w, node, rest);
    }
    return passThrough(w, node, x);
  }
  if (SHAPE_ONLY.has(op)) return handleShape(w, node);
  switch (op) {
    case 'Conv':
      return handleConv(w, node, false);
    case 'ConvTranspose':
      return handleConv(w, node, true);
    case 'Gemm':
      return handleGemm(w, node);
    case 'MatMul':
      return handleMatMul(w, node);
    case 'BatchNormalization':
    case 'InstanceNormalization':
      return handleNorm(w, node);
    case 'LayerNormalization':
      return handleLayerNorm(w, node);
    case 'Flatten':
      return handleFlatten(w, node);
    case 'Reshape':
      return handleReshape(w, node);
    case 'Transpose':
      return handleTranspose(w, node);
    case 'Squeeze':
      return handleSqueeze(w, node, false);
    case 'Unsqueeze':
      return handleSqueeze(w, node, true);
    case 'Concat':
      return handleJoin(w, node, attrInt(node, 'axis', 0));
    case 'Gather':
      return handleGather(w, node);
    case 'Slice':
      return handleSlice(w, node);
    case 'Split':
      return handleSplit(w, node);
    case 'Pad':
      return handlePad(w, node);
    case 'Resize':
    case 'Upsample':
      return handleResize(w, node);
    case 'Tile':
      return handleTile(w, node);
    case 'Expand':
      return handleExpand(w, node);
  }
  if (BINARY.has(op)) return handleJoin(w, node, null);
  if (POOL.has(op)) return handlePool(w, node, false);
  if (GLOBAL_POOL.has(op)) return handlePool(w, node, true);
  if (REDUCE.has(op)) return handleReduce(w, node);
  unsupported(w, node);
}

/**
 * What heads and segments need before permutations are named. Every class is fixed that: joins heads of two
 * sizes or two segmentations; is cut into segments and split into heads too (its segments would each need
 * the heads), or cut into segments that are cut again; sits beside another segmented axis on one tensor
 * (a tensor is stored as parts along one axis). Then, until nothing changes: the segments of a fixed class
 * are fixed, and a head group with a fixed member is fixed whole (its head order must be the identity, and
 * a group cannot say "within heads only").
 */
function settleStructure(w: Walk): void {
  for (const c of w.conflicts) w.fix(c.cls, c.why);
  const roots = (): number[] => Array.from({ length: w.classCount }, (_, c) => c).filter((c) => w.find(c) === c);
  for (const r of roots()) {
    const segs = w.segmentsOf(r);
    if (segs === null) continue;
    // Segments no node reads are still permuted, each on its own.
    for (const g of segs) if (g.cls === null) w.segment(r, g.start, g.end);
    if (w.headsOf(r) !== null) w.fix(r, 'its channels are split into heads and cut into segments');
    if (w.segmentsOf(r)!.some((g) => w.segmentsOf(g.cls!) !== null)) w.fix(r, 'a segment of its channels is cut into segments again');
  }
  const segmentedOf = new Map<string, number[]>();
  for (const [key, cls] of w.initAxes) {
    const r = w.find(cls);
    if (w.segmentsOf(r) === null || w.isFixed(r)) continue;
    const tensor = key.split('\0')[0];
    segmentedOf.set(tensor, [...(segmentedOf.get(tensor) ?? []), r]);
  }
  for (const [tensor, rs] of segmentedOf) {
    if (rs.length > 1) for (const r of rs) w.fix(r, `initializer '${tensor}' has two axes cut into segments`);
  }
  for (let c = 0; c < w.classCount; c++) w.unionHeads(c, w.find(c));
  for (let changed = true; changed; ) {
    changed = false;
    const fix = (c: number, why: string): void => {
      if (w.isFixed(c)) return;
      w.fix(c, why);
      changed = true;
    };
    for (const r of roots()) {
      if (!w.isFixed(r)) continue;
      for (const g of w.segmentsOf(r) ?? []) fix(g.cls!, `a segment of a fixed channel axis (${w.fixedReason(r)})`);
    }
    const fixedHeads = new Map<number, number>();
    for (const r of roots()) if (w.isFixed(r) && w.headsOf(r) !== null) fixedHeads.set(w.headRoot(r), r);
    for (const r of roots()) {
      const by = fixedHeads.get(w.headRoot(r));
      if (by !== undefined && w.headsOf(r) !== null) fix(r, `shares its head order with a fixed permutation (${w.fixedReason(by)})`);
    }
  }
}

/**
 * The permutation spec of the network in `model`'s graph, the activation to record for each permutation,
 * and the initializer axes that must stay unpermuted. Permutations are named after the layer that writes
 * them (its `<module>.weight` name, else its node scope). Throws an InputError naming the node and op type
 * when an op the walk does not understand touches a channel space that would otherwise be permuted.
 */
export function specFromOnnx(model: OnnxModel, options: OnnxSpecOptions = {}): OnnxSpec {
  const w = new Walk(model);
  const g = model.graph;
  for (const name of model.initializerNames) {
    const info = model.initializers[name];
    if (isFloatDtype(info.dtype)) {
      w.values.set(name, { kind: 'init', name, shape: info.shape, source: info.shape.map((_, k) => k) });
      continue;
    }
    let ints: readonly number[] | undefined;
    try {
      const v = onnxInitializerValue(model, name);
      if (Array.isArray(v.data) && v.data.every((d) => typeof d === 'number')) ints = v.data as number[];
    } catch {
      ints = undefined; // an integer tensor we cannot read is simply not a known constant
    }
    w.values.set(name, { kind: 'plain', shape: info.shape, deps: [], constant: true, ...(ints !== undefined ? { ints } : {}) });
  }
  // Graph inputs carry no permutation: the first layer's input axis joins a fixed class.
  for (const inp of g.inputs) {
    if (w.values.has(inp.name)) continue; // older exporters list initializers as inputs too
    w.values.set(inp.name, { kind: 'plain', shape: inp.shape?.map((d) => (typeof d === 'number' ? d : null)) ?? null, deps: [] });
  }
  for (const node of g.nodes) visit(w, node);

  for (const out of g.outputs) {
    const v = w.values.get(out.name);
    if (v === undefined) throw new InputError(`${model.label}: graph output '${out.name}' is not produced by any node`);
    if (v.kind === 'chan') w.fix(v.cls, `reaches graph output '${out.name}'`);
    else if (v.kind === 'plain') for (const c of v.deps) w.fix(c, `reaches graph output '${out.name}'`);
    else w.pinInit(v, `is graph output '${out.name}'`);
  }

  const bad = w.problems.filter((p) => p.classes.some((c) => !w.isFixed(c)));
  if (bad.length > 0 && options.strict === true) {
    const first = bad[0];
    const more = bad.length > 1 ? ` (and ${bad.length - 1} more: ${bad.slice(1, 4).map((p) => nodeLabel(p.node, false)).join(', ')}${bad.length > 4 ? ', ...' : ''})` : '';
    throw new InputError(
      `${model.label}: cannot derive a permutation spec from the graph: ${nodeLabel(first.node)} ${first.why}${more}; write the spec as a rebasin-spec JSON file and pass it with --spec FILE`,
    );
  }
  // Partial spec: what an op we do not understand touches stays as it is; the rest is still permuted.
  for (const p of bad) for (const c of p.classes) w.fix(c, `${nodeLabel(p.node)} ${p.why}`);
  const unsupported: OnnxUnsupportedNode[] = bad.map((p) => ({
    node: nodeLabel(p.node, false),
    opType: p.node.opType,
    why: p.why,
    followOn: p.followOn,
  }));

  settleStructure(w);

  // Name every permutable class; make the names unique.
  const permOf = new Map<number, string>();
  const used = new Set<string>();
  const nameFor = (root: number): string => {
    let p = permOf.get(root);
    if (p !== undefined) return p;
    const base = w.nameOf(root) ?? `P${root}`;
    p = base;
    for (let k = 2; used.has(p); k++) p = `${base}#${k}`;
    used.add(p);
    permOf.set(root, p);
    return p;
  };
  // Order permutations by their first layer, so the spec reads in graph order.
  const entries = [...w.initAxes.entries()].sort((a, b) => w.find(a[1]) - w.find(b[1]));
  // A one-channel space has no permutation but the identity: it is left out (neither permuted nor listed).
  // A class cut into segments is permuted through its segments' classes, never as a whole.
  const permutable = (cls: number): boolean => !w.isFixed(cls) && w.sizeOf(cls) > 1 && w.segmentsOf(cls) === null;
  for (const [, cls] of entries) if (permutable(cls)) nameFor(w.find(cls));

  const axes: Record<string, (string | null)[]> = Object.create(null);
  for (const name of model.initializerNames) {
    const info = model.initializers[name];
    if (isFloatDtype(info.dtype)) axes[name] = info.shape.map(() => null);
  }
  const fixedGroups = new Map<number, AxisRef[]>();
  const fixAxis = (root: number, ref: AxisRef): void => {
    const list = fixedGroups.get(root) ?? [];
    list.push(ref);
    fixedGroups.set(root, list);
  };
  const segmentedAxis = new Map<string, { axis: number; root: number }>();
  for (const [key, cls] of w.initAxes) {
    const [tensor, a] = key.split('\0');
    const axis = Number(a);
    const root = w.find(cls);
    if (w.isFixed(root)) fixAxis(root, { tensor, axis });
    else if (w.segmentsOf(root) !== null) segmentedAxis.set(tensor, { axis, root });
    else if (permutable(root)) axes[tensor][axis] = nameFor(root);
  }
  // A tensor on a segmented channel axis (the fused q|k|v weight and bias) is stored as parts, one per
  // segment, each permuted by its segment's class on that axis (settleStructure left at most one such axis).
  const segments: Record<string, Segmentation> = Object.create(null);
  const taken = new Set(model.initializerNames);
  for (const [tensor, { axis, root }] of segmentedAxis) {
    const segs = w.segmentsOf(root)!;
    const parts = segs.map((_, k) => {
      let part = `${tensor}#${k}`;
      while (taken.has(part)) part += '#';
      taken.add(part);
      return part;
    });
    const sizes = segs.map((g) => g.end - g.start);
    segments[tensor] = sizes.every((m) => m === sizes[0]) ? { axis, parts } : { axis, parts, sizes };
    segs.forEach((g, k) => {
      const row = [...axes[tensor]];
      const cls = w.find(g.cls!);
      row[axis] = permutable(cls) ? nameFor(cls) : null;
      if (w.isFixed(cls)) fixAxis(cls, { tensor: parts[k], axis });
      axes[parts[k]] = row;
    });
    delete axes[tensor];
  }

  const taps: Record<string, OnnxTap> = Object.create(null);
  const best = new Map<string, { score: number; known: boolean }>();
  for (const t of w.tapCandidates) {
    if (!permutable(t.cls)) continue;
    const p = nameFor(w.find(t.cls));
    const known = t.axis >= 0;
    const prev = best.get(p);
    if (prev !== undefined && (prev.known && !known || prev.score >= t.score && prev.known === known)) continue;
    best.set(p, { score: t.score, known });
    taps[p] = { value: t.value, axis: t.axis };
  }

  const fixed: OnnxFixedAxes[] = [...fixedGroups.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([root, list]) => ({ axes: list, reason: w.fixedReason(root) ?? 'fixed' }));
  // List tensors so that permutations appear in graph order (by the layer that starts each one).
  const rootOfName = new Map([...permOf.entries()].map(([root, name]) => [name, root]));
  const last = Number.MAX_SAFE_INTEGER;
  const firstRoot = (t: string): number => Math.min(last, ...axes[t].map((p) => (p === null ? last : rootOfName.get(p)!)));
  const ordered: Record<string, (string | null)[]> = Object.create(null);
  for (const t of Object.keys(axes).sort((a, b) => firstRoot(a) - firstRoot(b))) ordered[t] = axes[t];
  // Head groups: the permutations of classes split into heads, grouped by the head order they share.
  const inSpec = new Set(Object.values(ordered).flatMap((row) => row.filter((p): p is string => p !== null)));
  const byHeadRoot = new Map<number, number[]>();
  for (const root of [...permOf.keys()].sort((a, b) => a - b)) {
    if (w.headsOf(root) === null || !inSpec.has(permOf.get(root)!)) continue;
    const hr = w.headRoot(root);
    byHeadRoot.set(hr, [...(byHeadRoot.get(hr) ?? []), root]);
  }
  const heads: Record<string, HeadGroup> = Object.create(null);
  for (const members of byHeadRoot.values()) {
    const first = permOf.get(members[0])!;
    const base = /\[\d+:\d+\]$/.test(first) ? first.replace(/\[\d+:\d+\]$/, '') : first.includes('.') ? first.slice(0, first.lastIndexOf('.')) : first;
    let group = `${base}.heads`;
    for (let k = 2; Object.hasOwn(heads, group); k++) group = `${base}.heads#${k}`;
    heads[group] = { count: w.headsOf(members[0])!, perms: members.map((r) => permOf.get(r)!) };
  }
  return { spec: specFromAxes(ordered, heads, segments), taps, fixed, unsupported };
}
