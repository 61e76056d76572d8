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
 * A class that comes from a graph input, reaches a graph output, or meets a constant that varies along
 * the channels is fixed: it is never permuted. Every op we do not understand is recorded with the classes
 * it touches; if any of them ends up permutable the derivation fails naming the node and op type, since
 * permuting through an op we cannot reason about could change the network's function.
 *
 * Browser-safe: no Node modules.
 */
import { InputError } from '../errors.js';
import { type OnnxModel, type OnnxNode, type OnnxTensorValue, isFloatDtype, onnxInitializerValue } from '../io/onnx.js';
import { type AxisRef, type PermutationSpec, specFromAxes } from './spec.js';

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

export interface OnnxSpec {
  readonly spec: PermutationSpec;
  readonly taps: Readonly<Record<string, OnnxTap>>;
  readonly fixed: readonly OnnxFixedAxes[];
}

type Dim = number | null;

/** An activation with one channel axis in class `cls`. `axis` is negative (from the end) when `shape` is null. */
interface ChanValue {
  readonly kind: 'chan';
  readonly cls: number;
  readonly axis: number;
  readonly shape: readonly Dim[] | null;
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
  /** Integer contents when known (Constant nodes, int initializers): Reshape targets, axes. */
  readonly ints?: readonly number[];
  /** Set for Constant node outputs: data that cannot be permuted. */
  readonly constant?: boolean;
}

/** A float initializer (directly or through Identity). */
interface InitValue {
  readonly kind: 'init';
  readonly name: string;
  readonly shape: readonly number[];
}

type Value = ChanValue | PlainValue | InitValue;

interface Problem {
  readonly node: OnnxNode;
  readonly why: string;
  readonly classes: readonly number[];
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
const BINARY = new Set(['Add', 'Sub', 'Mul', 'Div', 'Sum', 'Mean', 'Max', 'Min', 'Pow', 'PRelu']);
const POOL = new Set(['MaxPool', 'AveragePool', 'LpPool']);
const GLOBAL_POOL = new Set(['GlobalAveragePool', 'GlobalMaxPool', 'GlobalLpPool']);
const REDUCE = new Set([
  'ReduceMean', 'ReduceSum', 'ReduceMax', 'ReduceMin', 'ReduceProd', 'ReduceL1', 'ReduceL2', 'ReduceLogSum',
  'ReduceLogSumExp', 'ReduceSumSquare',
]);
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
    return id;
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
    return root;
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

  /** Ties axis `axis` of initializer `init` to class `cls` (checking the length). */
  joinInit(init: InitValue, axis: number, cls: number, node: OnnxNode): void {
    const n = init.shape[axis];
    if (n !== this.sizeOf(cls)) {
      throw new InputError(
        `${this.model.label}: ${nodeLabel(node)}: initializer '${init.name}' ${fmtShape(init.shape)} axis ${axis} has ${n} entries but the channel axis it acts on has ${this.sizeOf(cls)}`,
      );
    }
    const key = `${init.name}\0${axis}`;
    const prev = this.initAxes.get(key);
    if (prev === undefined) this.initAxes.set(key, cls);
    else this.union(prev, cls, node, `(initializer '${init.name}' axis ${axis}, used twice)`);
  }

  /** Every axis of the initializers among `inputs` is tied to a fixed class: used by ops we do not understand. */
  pinInits(node: OnnxNode): void {
    for (const name of node.inputs) {
      const v = name === '' ? undefined : this.values.get(name);
      if (v?.kind !== 'init') continue;
      v.shape.forEach((n, axis) => this.joinInit(v, axis, this.newClass(n, null, `used by ${nodeLabel(node)}`), node));
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
    this.problems.push({ node, why, classes });
  }

  set(name: string, v: Value, node: OnnxNode | null): void {
    if (name === '') return;
    this.values.set(name, v);
    if (v.kind === 'chan' && node !== null) {
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

/** Integer contents of a value when known (constant axes, shapes). */
function intsOf(w: Walk, name: string | undefined): readonly number[] | null {
  if (name === undefined || name === '') return null;
  const v = w.values.get(name);
  if (v?.kind === 'plain' && v.ints !== undefined) return v.ints;
  return null;
}

/** Reduction/squeeze axes: attribute (older opsets) or second input (newer opsets). */
function axesArg(w: Walk, node: OnnxNode): readonly number[] | null | 'dynamic' {
  const attr = attrInts(node, 'axes');
  if (attr !== null) return attr;
  const input = node.inputs[1];
  if (input === undefined || input === '') return null;
  return intsOf(w, input) ?? 'dynamic';
}

// ---------------------------------------------------------------------------------------------------------
// Op handlers. Each sets the node's outputs; an op it cannot handle goes to `unsupported`.

function unsupported(w: Walk, node: OnnxNode, why = 'is not supported by the graph walk'): void {
  const ins = node.inputs.filter((n) => n !== '').map((n) => w.get(n, node));
  const classes: number[] = [];
  for (const v of ins) {
    if (v.kind === 'chan') classes.push(v.cls);
    else if (v.kind === 'plain') classes.push(...v.deps);
  }
  if (ins.some((v) => v.kind === 'chan')) w.problem(node, why, classes);
  w.pinInits(node);
  for (const o of node.outputs) w.set(o, { kind: 'plain', shape: null, deps: classes }, node);
}

function passThrough(w: Walk, node: OnnxNode, x: Value): void {
  const v: Value = x.kind === 'init' ? { kind: 'plain', shape: x.shape, deps: [] } : x;
  for (const o of node.outputs) w.set(o, v, node);
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
  if (b.kind !== 'init') return unsupported(w, node, `multiplies by '${bn}', which is not an initializer (activation × activation products are not supported)`);
  if (b.shape.length !== 2) return unsupported(w, node, `multiplies by '${bn}' of rank ${b.shape.length}`);
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
  const named = node.inputs.filter((n) => n !== '').map((n) => ({ name: n, v: w.get(n, node) }));
  const chans = named.filter((x): x is { name: string; v: ChanValue } => x.v.kind === 'chan');
  if (chans.length === 0) {
    const deps = named.flatMap((x) => (x.v.kind === 'plain' ? x.v.deps : []));
    const shape = concatAxis === null ? broadcastShapes(named.map((x) => x.v.shape)) : null;
    for (const o of node.outputs) w.set(o, { kind: 'plain', shape, deps }, node);
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
    if (k !== null && (k < 0 || s![k] === 1) && concatAxis === null) continue; // constant along the channels
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
  if (x.kind !== 'chan') return passThrough(w, node, x.kind === 'plain' ? { ...x, shape: null } : x);
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
  if (x.kind !== 'chan') return passThrough(w, node, x.kind === 'plain' ? { ...x, shape: null } : x);
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
  if (x.kind !== 'chan') return passThrough(w, node, x.kind === 'plain' ? { ...x, shape: null } : x);
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

function handleReshape(w: Walk, node: OnnxNode): void {
  const x = w.get(node.inputs[0], node);
  if (x.kind !== 'chan') return passThrough(w, node, x.kind === 'plain' ? { ...x, shape: null } : x);
  const target = intsOf(w, node.inputs[1]);
  if (target === null) return unsupported(w, node, 'reshapes to a shape computed at run time');
  if (x.shape === null) return unsupported(w, node, 'reshapes an activation of unknown rank');
  const allowZero = attrInt(node, 'allowzero', 0) === 1;
  const out: Dim[] = target.map((d, i) => (d === 0 && !allowZero ? (x.shape![i] ?? null) : d === -1 ? null : d));
  const minus = target.indexOf(-1);
  if (minus >= 0) {
    const total = product(x.shape);
    const known = product(out.filter((_, i) => i !== minus));
    out[minus] = total !== null && known !== null && known !== 0 ? total / known : null;
  }
  const C = w.sizeOf(x.cls);
  const r = reshapeChannel(x.shape, x.axis, out, C);
  if (typeof r === 'string') return unsupported(w, node, r);
  w.set(node.outputs[0], { kind: 'chan', cls: x.cls, axis: r, shape: out }, node);
}

function handleTranspose(w: Walk, node: OnnxNode): void {
  const x = w.get(node.inputs[0], node);
  if (x.kind !== 'chan') return passThrough(w, node, x.kind === 'plain' ? { ...x, shape: null } : x);
  if (x.shape === null) return unsupported(w, node, 'transposes an activation of unknown rank');
  const perm = attrInts(node, 'perm') ?? x.shape.map((_, i) => x.shape!.length - 1 - i);
  const shape = perm.map((p) => x.shape![p] ?? null);
  w.set(node.outputs[0], { kind: 'chan', cls: x.cls, axis: perm.indexOf(x.axis), shape }, node);
}

function handleSqueeze(w: Walk, node: OnnxNode, unsqueeze: boolean): void {
  const x = w.get(node.inputs[0], node);
  if (x.kind !== 'chan') return passThrough(w, node, x.kind === 'plain' ? { ...x, shape: null } : x);
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

function handleConstant(w: Walk, node: OnnxNode): void {
  const a = node.attributes;
  let shape: number[] | null = null;
  let ints: number[] | undefined;
  const t = a.value as OnnxTensorValue | undefined;
  if (t !== undefined && typeof t === 'object' && 'kind' in t && t.kind === 'tensor') {
    shape = [...t.shape];
    if (Array.isArray(t.data) && t.data.every((v) => typeof v === 'number')) ints = t.data as number[];
  } else if (typeof a.value_int === 'number') {
    shape = [];
    ints = [a.value_int];
  } else if (Array.isArray(a.value_ints)) {
    ints = a.value_ints as number[];
    shape = [ints.length];
  } else if (typeof a.value_float === 'number') shape = [];
  else if (Array.isArray(a.value_floats)) shape = [a.value_floats.length];
  w.set(node.outputs[0], { kind: 'plain', shape, deps: [], constant: true, ...(ints !== undefined ? { ints } : {}) }, node);
}

function visit(w: Walk, node: OnnxNode): void {
  const op = node.domain === '' || node.domain === 'ai.onnx' ? node.opType : `${node.domain}.${node.opType}`;
  if (op === 'Constant') return handleConstant(w, node);
  if (op === 'Identity') {
    // Exporters alias shared weights through Identity: keep it an initializer.
    const x = w.get(node.inputs[0], node);
    w.set(node.outputs[0], x, node);
    return;
  }
  if (UNARY.has(op)) {
    const x = w.get(node.inputs[0], node);
    if (x.kind === 'init') return unsupported(w, node, 'transforms an initializer');
    return passThrough(w, node, x);
  }
  if (SHAPE_ONLY.has(op)) {
    for (const o of node.outputs) w.set(o, { kind: 'plain', shape: null, deps: [] }, node);
    return;
  }
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
  }
  if (BINARY.has(op)) return handleJoin(w, node, null);
  if (POOL.has(op)) return handlePool(w, node, false);
  if (GLOBAL_POOL.has(op)) return handlePool(w, node, true);
  if (REDUCE.has(op)) return handleReduce(w, node);
  unsupported(w, node);
}

/**
 * The permutation spec of the network in `model`'s graph, the activation to record for each permutation,
 * and the initializer axes that must stay unpermuted. Permutations are named after the layer that writes
 * them (its `<module>.weight` name, else its node scope). Throws an InputError naming the node and op type
 * when an op the walk does not understand touches a channel space that would otherwise be permuted.
 */
export function specFromOnnx(model: OnnxModel): OnnxSpec {
  const w = new Walk(model);
  const g = model.graph;
  for (const name of model.initializerNames) {
    const info = model.initializers[name];
    if (isFloatDtype(info.dtype)) {
      w.values.set(name, { kind: 'init', name, shape: info.shape });
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
  }

  const bad = w.problems.filter((p) => p.classes.some((c) => !w.isFixed(c)));
  if (bad.length > 0) {
    const first = bad[0];
    const more = bad.length > 1 ? ` (and ${bad.length - 1} more: ${bad.slice(1, 4).map((p) => nodeLabel(p.node, false)).join(', ')}${bad.length > 4 ? ', ...' : ''})` : '';
    throw new InputError(
      `${model.label}: cannot derive a permutation spec from the graph: ${nodeLabel(first.node)} ${first.why}${more}; write the spec as a rebasin-spec JSON file and pass it with --spec FILE`,
    );
  }

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
  for (const [, cls] of entries) if (!w.isFixed(cls)) nameFor(w.find(cls));

  const axes: Record<string, (string | null)[]> = {};
  for (const name of model.initializerNames) {
    const info = model.initializers[name];
    if (isFloatDtype(info.dtype)) axes[name] = info.shape.map(() => null);
  }
  const fixedGroups = new Map<number, AxisRef[]>();
  for (const [key, cls] of w.initAxes) {
    const [tensor, a] = key.split('\0');
    const axis = Number(a);
    const root = w.find(cls);
    if (w.isFixed(root)) {
      const list = fixedGroups.get(root) ?? [];
      list.push({ tensor, axis });
      fixedGroups.set(root, list);
    } else {
      axes[tensor][axis] = nameFor(root);
    }
  }

  const taps: Record<string, OnnxTap> = {};
  const best = new Map<string, { score: number; known: boolean }>();
  for (const t of w.tapCandidates) {
    if (w.isFixed(t.cls)) continue;
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
  const ordered: Record<string, (string | null)[]> = {};
  for (const t of Object.keys(axes).sort((a, b) => firstRoot(a) - firstRoot(b))) ordered[t] = axes[t];
  return { spec: specFromAxes(ordered), taps, fixed };
}
