/**
 * Random valid ONNX graphs (opset 17, float32) for fuzzing specFromOnnx, and the check that runs them.
 *
 * The contract under test: permuting a model's initializers through the derived spec, with ANY
 * permutations, leaves every graph output unchanged. Hand-written tests only cover the shapes of graph
 * someone thought of; this generator composes what exporters actually emit (torch, tf2onnx, flax) in
 * random orders, so combinations nobody thought of get walked too: weights that reach an op through
 * Identity/Constant/reshaping chains, residual joins, concats, If branches reading outer values, graph
 * outputs in the middle of the network or on initializers, ops the walk does not know.
 *
 * Shapes are tracked exactly while building, so every generated graph is valid by construction; a graph
 * ONNX Runtime refuses to load or run is a generator bug (the check reports it as such). Graphs are small
 * (channels 2–8, spatial ≤ 6, a handful to ~30 nodes) so hundreds run in seconds.
 *
 * Everything is a pure function of the seed: `randomOnnxGraph(seed)` rebuilds the graph of a failing
 * seed, and `checkRandomGraph(seed)` re-runs the whole check.
 */
import * as ort from 'onnxruntime-node';
import { isInputError } from '../../src/errors.js';
import { type OnnxGraph, type OnnxModel, onnxModelFromObject, serializeOnnx, withInitializers } from '../../src/io/onnx.js';
import { applyPermutation, type Perms } from '../../src/permute.js';
import { createRng, type Rng } from '../../src/random.js';
import { randomSpecPerms } from '../../src/permutation-spec/heads.js';
import { type OnnxSpec, specFromOnnx } from '../../src/permutation-spec/onnx-graph.js';
import { permSizes, validateSpec } from '../../src/permutation-spec/spec.js';
import type { Tensor } from '../../src/tensor.js';
import { gather } from './onnx-graphs.js';

// ---------------------------------------------------------------------------------------------------------
// Generated graphs

/** A graph input with the values the check feeds it. */
export interface RandomGraphInput {
  readonly name: string;
  readonly dtype: 'float32' | 'bool';
  readonly shape: readonly number[];
  readonly data: Float32Array | Uint8Array;
}

export interface RandomGraph {
  readonly seed: number;
  readonly model: OnnxModel;
  /** Every float initializer of the top-level graph (what a spec may permute). */
  readonly params: Record<string, Tensor>;
  readonly inputs: readonly RandomGraphInput[];
  /**
   * The features the graph uses ('block:variant' tags, e.g. 'affine:Mul', 'w:chain:Unsqueeze', 'if:cond-input'),
   * so a failure can be attributed and a feature excluded to confirm it (`exclude`).
   */
  readonly patterns: readonly string[];
}

export interface RandomGraphOptions {
  /**
   * Features never to generate: a name excludes itself and every tag under it ('w:chain' excludes
   * 'w:chain:Transpose'). Used to check that a failure goes away without the feature it is blamed on.
   */
  readonly exclude?: readonly string[];
}

type Obj = Record<string, unknown>;

/** An activation of the network being built; `ch` is the axis the next layers treat as the hidden units. */
interface Act {
  readonly name: string;
  readonly shape: readonly number[];
  readonly ch: number;
}

const prod = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);

// Attributes as onnx.proto's AttributeProto (type codes: 1 float, 2 int, 3 string, 4 tensor, 5 graph, 7 ints).
const aInt = (name: string, i: number): Obj => ({ name, type: 2, i });
const aInts = (name: string, ints: readonly number[]): Obj => ({ name, type: 7, ints: [...ints] });
const aFloat = (name: string, f: number): Obj => ({ name, type: 1, f });
const aStr = (name: string, s: string): Obj => ({ name, type: 3, s: new TextEncoder().encode(s) });

function valueInfo(name: string, elemType: number, shape: readonly (number | string)[] | null): Obj {
  const tensorType: Obj = { elem_type: elemType };
  if (shape !== null) tensorType.shape = { dim: shape.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: d })) };
  return { name, type: { tensor_type: tensorType } };
}

/** How an operand tensor's values are drawn. */
type Fill = { readonly kind: 'normal'; readonly scale: number } | { readonly kind: 'positive' };

/** How a float operand reaches the op that uses it. */
type Delivery = 'init' | 'identity' | 'constant' | 'chain';

/** One backward step of a reshaping chain: `src` becomes the wanted shape through `emit`. */
interface ChainStep {
  readonly op: string;
  readonly src: readonly number[];
  readonly emit: (input: string) => string;
}

class Net {
  /** Nodes of the graph being built (a branch's list while an If branch is built). */
  private nodes: Obj[] = [];
  private readonly topNodes: Obj[];
  readonly initializers: Obj[] = [];
  readonly params: Record<string, Tensor> = {};
  readonly graphInputs: Obj[] = [];
  readonly feeds: RandomGraphInput[] = [];
  readonly graphOutputs: Obj[] = [];
  readonly outputNames = new Set<string>();
  readonly patterns = new Set<string>();
  /** Float initializers used as layer weights, candidates for being a graph output too. */
  readonly weightInits: string[] = [];
  private count = 0;
  /** Symbolic batch ('N') in the input's declared shape, or its literal size. */
  batchSymbolic = false;

  constructor(
    readonly rng: Rng,
    private readonly exclude: readonly string[],
  ) {
    this.topNodes = this.nodes;
  }

  // ---- random choices

  int(lo: number, hi: number): number {
    return lo + this.rng.int(hi - lo + 1);
  }
  chance(p: number): boolean {
    return this.rng.next() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.rng.int(xs.length)];
  }
  /** A weighted choice among the allowed features. */
  choose<T extends string>(options: readonly (readonly [T, number])[], prefix = ''): T {
    const ok = options.filter(([f, w]) => w > 0 && this.allows(prefix + f));
    const pool = ok.length > 0 ? ok : options.slice(0, 1);
    let r = this.rng.next() * pool.reduce((a, [, w]) => a + w, 0);
    for (const [f, w] of pool) {
      r -= w;
      if (r < 0) return f;
    }
    return pool[pool.length - 1][0];
  }
  allows(feature: string): boolean {
    return !this.exclude.some((e) => feature === e || feature.startsWith(`${e}:`));
  }
  tag(t: string): void {
    this.patterns.add(t);
  }

  // ---- graph pieces

  get nodeCount(): number {
    return this.topNodes.length;
  }

  get topLevelNodes(): readonly Obj[] {
    return this.topNodes;
  }

  fresh(prefix: string): string {
    return `${prefix}_${this.count++}`;
  }

  /** Appends a node; returns its output names. */
  op(opType: string, inputs: readonly string[], attrs: readonly Obj[] = [], outputs = 1): string[] {
    const base = this.fresh(opType.toLowerCase());
    const outs = Array.from({ length: outputs }, (_, i) => (outputs === 1 ? base : `${base}_o${i}`));
    this.nodes.push({ name: base, op_type: opType, input: [...inputs], output: outs, attribute: [...attrs] });
    return outs;
  }

  /** Runs `build` with nodes going to a fresh list (an If branch); returns that list. */
  branch(build: () => void): Obj[] {
    const saved = this.nodes;
    const list: Obj[] = [];
    this.nodes = list;
    try {
      build();
    } finally {
      this.nodes = saved;
    }
    return list;
  }

  data(shape: readonly number[], fill: Fill): Float32Array {
    const d = new Float32Array(prod(shape));
    for (let i = 0; i < d.length; i++) d[i] = fill.kind === 'positive' ? 0.5 + this.rng.next() : this.rng.normal() * fill.scale;
    return d;
  }

  floatInit(shape: readonly number[], fill: Fill, prefix = 'w'): string {
    const name = this.fresh(prefix);
    const data = this.data(shape, fill);
    this.params[name] = { shape: [...shape], data };
    this.initializers.push({ name, dims: [...shape], data_type: 1, raw_data: new Uint8Array(data.buffer.slice(0)) });
    return name;
  }

  floatConstant(shape: readonly number[], fill: Fill): string {
    const data = this.data(shape, fill);
    const t = { dims: [...shape], data_type: 1, float_data: [...data] };
    return this.op('Constant', [], [{ name: 'value', type: 4, t }])[0];
  }

  scalarConstant(v: number): string {
    return this.op('Constant', [], [{ name: 'value', type: 4, t: { dims: [], data_type: 1, float_data: [v] } }])[0];
  }

  /** A 1-D int64 tensor (axes, shapes, pads): an initializer or a Constant node, as exporters vary. */
  ints(values: readonly number[], scalar = false): string {
    const dims = scalar ? [] : [values.length];
    if (this.nodes === this.topNodes && this.chance(0.5)) {
      const name = this.fresh('i64');
      this.initializers.push({ name, dims, data_type: 7, int64_data: [...values] });
      return name;
    }
    return this.op('Constant', [], [{ name: 'value', type: 4, t: { dims, data_type: 7, int64_data: [...values] } }])[0];
  }

  /**
   * A float operand of `shape`, delivered as exporters do: an initializer (mostly), an Identity alias of
   * one, a Constant node, or an initializer stored in another layout and reshaped on its way
   * (Unsqueeze/Squeeze/Reshape/Transpose/Flatten, one or two steps).
   */
  operand(shape: readonly number[], fill: Fill, opts: { weight?: boolean; chain?: number } = {}): string {
    const inBranch = this.nodes !== this.topNodes;
    // Layer weights mostly come as plain initializers (what the walk can permute); biases and scales are
    // where exporters reshape on the way, so chains are more frequent there.
    const weight = opts.weight === true;
    const how: Delivery = inBranch
      ? 'constant'
      : this.choose<Delivery>([
          ['init', weight ? 72 : 60],
          ['identity', 10],
          ['constant', weight ? 4 : 8],
          ['chain', opts.chain ?? 22],
        ], 'w:');
    switch (how) {
      case 'init': {
        const n = this.floatInit(shape, fill);
        if (weight) this.weightInits.push(n);
        return n;
      }
      case 'identity': {
        this.tag('w:identity');
        const n = this.floatInit(shape, fill);
        if (weight) this.weightInits.push(n);
        return this.op('Identity', [n])[0];
      }
      case 'constant':
        if (!inBranch) this.tag('w:constant');
        return this.floatConstant(shape, fill);
      case 'chain':
        return this.chain(shape, fill);
    }
  }

  /** An initializer reshaped to `target` by a chain of shape ops, built backwards from the target. */
  private chain(target: readonly number[], fill: Fill): string {
    const steps: ChainStep[] = [];
    let cur = target;
    const depth = this.chance(0.3) ? 2 : 1;
    for (let k = 0; k < depth; k++) {
      const step = this.chainStep(cur);
      if (step === null) break;
      steps.push(step);
      cur = step.src;
    }
    const ops = steps.map((s) => s.op).reverse();
    this.tag(`w:chain:${ops.join('+')}`);
    let v = this.floatInit(cur, fill);
    for (const s of [...steps].reverse()) v = s.emit(v);
    return v;
  }

  private chainStep(out: readonly number[]): ChainStep | null {
    const r = out.length;
    const ones = out.map((d, i) => (d === 1 ? i : -1)).filter((i) => i >= 0);
    type K = 'Unsqueeze' | 'Squeeze' | 'Reshape' | 'ReshapeSplit' | 'Transpose' | 'Flatten';
    const kinds: [K, number][] = [
      ['Unsqueeze', ones.length > 0 ? 4 : 0],
      ['Squeeze', 2],
      ['Reshape', 3],
      // Stored with the channels split over two axes: a reshape the spec cannot follow per axis.
      ['ReshapeSplit', out.some((d) => d >= 4 && d % 2 === 0) ? 1 : 0],
      ['Transpose', r >= 2 ? 4 : 0],
      ['Flatten', r === 2 ? 2 : 0],
    ];
    const kind = this.choose(kinds, 'chain:');
    if (!this.allows(`chain:${kind}`)) return null;
    const neg = (a: number, rank: number): number => (this.chance(0.3) ? a - rank : a);
    switch (kind) {
      case 'Unsqueeze': {
        const drop = ones.filter(() => this.chance(0.6));
        if (drop.length === 0) drop.push(this.pick(ones));
        const src = out.filter((_, i) => !drop.includes(i));
        const axes = drop.map((a) => neg(a, r));
        return { op: kind, src, emit: (x) => this.op('Unsqueeze', [x, this.ints(axes)])[0] };
      }
      case 'Squeeze': {
        // Size-1 axes inserted at random places; Squeeze drops exactly those.
        const src = [...out];
        let axes: number[] = [];
        for (let i = this.int(1, 2); i > 0; i--) {
          const at = this.int(0, src.length);
          src.splice(at, 0, 1);
          axes = [...axes.map((a) => (a >= at ? a + 1 : a)), at];
        }
        // Squeeze without axes drops every size-1 axis: only when the target has none.
        if (!out.includes(1) && this.chance(0.3)) return { op: kind, src, emit: (x) => this.op('Squeeze', [x])[0] };
        return { op: kind, src, emit: (x) => this.op('Squeeze', [x, this.ints(axes.map((a) => neg(a, src.length)))])[0] };
      }
      case 'Reshape': {
        const choices: number[][] = [[prod(out)], [...out, 1], [1, ...out], out.filter((d) => d !== 1)];
        const src = this.pick(choices.filter((s) => s.length > 0 && s.join() !== out.join()).concat([[prod(out)]]));
        return { op: kind, src, emit: (x) => this.reshapeTo(x, src, out) };
      }
      case 'ReshapeSplit': {
        const at = this.pick(out.map((d, i) => (d >= 4 && d % 2 === 0 ? i : -1)).filter((i) => i >= 0));
        const src = [...out.slice(0, at), 2, out[at] / 2, ...out.slice(at + 1)];
        return { op: 'ReshapeSplit', src, emit: (x) => this.reshapeTo(x, src, out) };
      }
      case 'Transpose': {
        const perm = this.nonIdentityPerm(r);
        // Transpose output axis i is input axis perm[i].
        const src = Array<number>(r);
        perm.forEach((p, i) => (src[p] = out[i]));
        return { op: kind, src, emit: (x) => this.op('Transpose', [x], [aInts('perm', perm)])[0] };
      }
      case 'Flatten': {
        const split = (n: number): number[] => this.pick(n === 1 ? [[], [1], [1, 1]] : [[n], [1, n], [n, 1]]);
        const head = split(out[0]);
        const tail = split(out[1]);
        const src = [...head, ...tail];
        return { op: kind, src, emit: (x) => this.op('Flatten', [x], [aInt('axis', head.length)])[0] };
      }
    }
  }

  nonIdentityPerm(r: number): number[] {
    for (;;) {
      const p = Array.from({ length: r }, (_, i) => i);
      for (let i = r - 1; i > 0; i--) {
        const j = this.rng.int(i + 1);
        [p[i], p[j]] = [p[j], p[i]];
      }
      if (r < 2 || p.some((v, i) => v !== i)) return p;
    }
  }

  /** Reshape to a constant target, written with a -1 or a 0 (copy) now and then, as exporters do. */
  reshapeTo(x: string, inShape: readonly number[], out: readonly number[]): string {
    const target = [...out];
    if (out.length === 0) return this.op('Reshape', [x, this.ints(target)])[0];
    if (this.chance(0.3)) {
      const i = this.int(0, out.length - 1);
      if (i < inShape.length && inShape[i] === out[i]) target[i] = 0;
    }
    if (this.chance(0.4) && prod(out) > 0) target[this.int(0, out.length - 1)] = -1;
    return this.op('Reshape', [x, this.ints(target)])[0];
  }

  act(name: string, shape: readonly number[], ch: number): Act {
    return { name, shape: [...shape], ch };
  }
}

// ---------------------------------------------------------------------------------------------------------
// Building blocks. Each takes the current activation and returns the next one.

/** Weight scale for roughly unit-variance outputs (LeCun normal). */
const lecun = (fanIn: number): Fill => ({ kind: 'normal', scale: 1 / Math.sqrt(Math.max(1, fanIn)) });
const spatialOf = (x: Act): number[] => x.shape.slice(2);
const isConvLayout = (x: Act): boolean => x.ch === 1 && (x.shape.length === 3 || x.shape.length === 4);
const isLast = (x: Act): boolean => x.ch === x.shape.length - 1;
/** Axes other than the batch (0) and the channels. */
const otherAxes = (x: Act): number[] => x.shape.map((_, i) => i).filter((i) => i !== 0 && i !== x.ch);

function moveToEnd(r: number, axis: number): number[] {
  return [...Array.from({ length: r }, (_, i) => i).filter((i) => i !== axis), axis];
}

function transposeTo(n: Net, x: Act, perm: readonly number[]): Act {
  const out = n.op('Transpose', [x.name], [aInts('perm', perm)])[0];
  return n.act(out, perm.map((p) => x.shape[p]), perm.indexOf(x.ch));
}

/**
 * A linear map of the channels to `cout`: Conv when the channels are on axis 1 of a 3-D/4-D activation,
 * else Gemm/MatMul on the last axis (moving the channels there first). With `keep`, every other axis keeps
 * its size and place, so two layers of the same input can be joined.
 */
function layer(n: Net, x: Act, cout: number, keep = false): Act {
  if (isConvLayout(x)) return conv(n, x, cout, 1, keep);
  if (isLast(x)) return dense(n, x, cout);
  const perm = moveToEnd(x.shape.length, x.ch);
  const y = dense(n, transposeTo(n, x, perm), cout);
  return keep ? transposeTo(n, y, perm.map((_, i) => perm.indexOf(i))) : y;
}

function dense(n: Net, x: Act, cout: number): Act {
  const C = x.shape[x.ch];
  const r = x.shape.length;
  const outShape = [...x.shape.slice(0, -1), cout];
  if (r === 2 && n.allows('dense:Gemm') && n.chance(0.5)) {
    const transB = n.chance(0.6) ? 1 : 0;
    n.tag(`dense:Gemm:transB${transB}`);
    const w = n.operand(transB === 1 ? [cout, C] : [C, cout], lecun(C), { weight: true, chain: 4 });
    const inputs = [x.name, w];
    const bias = n.choose<string>([['none', 2], ['out', 4], ['1,out', 3], ['1', 1]], 'dense:Gemm-bias:');
    if (bias !== 'none') {
      n.tag(`dense:Gemm-bias:${bias}`);
      const shape = bias === 'out' ? [cout] : bias === '1,out' ? [1, cout] : [1];
      inputs.push(n.operand(shape, { kind: 'normal', scale: 0.5 }, { chain: 4 }));
    }
    const attrs = [aInt('transB', transB)];
    if (n.chance(0.2)) attrs.push(aFloat('alpha', 0.5 + n.rng.next()));
    if (inputs.length === 3 && n.chance(0.2)) attrs.push(aFloat('beta', 0.5 + n.rng.next()));
    return n.act(n.op('Gemm', inputs, attrs)[0], outShape, 1);
  }
  let w: string;
  if (n.allows('dense:MatMul-Transpose') && n.chance(0.12)) {
    // torch exports x @ W.T of a parameter as MatMul(x, Transpose(W)) when it does not fold the transpose.
    n.tag('dense:MatMul-Transpose');
    const stored = n.floatInit([cout, C], lecun(C));
    n.weightInits.push(stored);
    w = n.op('Transpose', [stored], n.chance(0.5) ? [aInts('perm', [1, 0])] : [])[0];
  } else {
    n.tag('dense:MatMul');
    w = n.operand([C, cout], lecun(C), { weight: true, chain: 4 });
  }
  return n.act(n.op('MatMul', [x.name, w])[0], outShape, r - 1);
}

function conv(n: Net, x: Act, cout: number, group: number, keep: boolean): Act {
  const C = x.shape[1];
  const sp = spatialOf(x);
  const k = n.chance(0.5) ? 3 : 1;
  const attrs: Obj[] = [];
  let pad = 0;
  let stride = 1;
  let same = false;
  if (k === 3 && (keep || sp.some((d) => d < 3) || n.chance(0.7))) {
    if (n.chance(0.2)) {
      same = true;
      attrs.push(aStr('auto_pad', 'SAME_UPPER'));
    } else {
      pad = 1;
      attrs.push(aInts('pads', Array<number>(2 * sp.length).fill(1)));
    }
  }
  if (!keep && sp.every((d) => d >= 4) && n.chance(0.2)) {
    stride = 2;
    attrs.push(aInts('strides', sp.map(() => 2)));
  }
  if (n.chance(0.5)) attrs.push(aInts('kernel_shape', sp.map(() => k)));
  if (group > 1) attrs.push(aInt('group', group));
  n.tag(`conv:k${k}${stride > 1 ? ':stride2' : ''}${same ? ':auto-pad' : ''}`);
  const outSp = sp.map((d) => (same ? Math.ceil(d / stride) : Math.floor((d + 2 * pad - k) / stride) + 1));
  const w = n.operand([cout, C / group, ...sp.map(() => k)], lecun((C / group) * k ** sp.length), { weight: true, chain: 2 });
  const inputs = [x.name, w];
  if (n.chance(0.6)) inputs.push(n.operand([cout], { kind: 'normal', scale: 0.5 }, { chain: 3 }));
  return n.act(n.op('Conv', inputs, attrs)[0], [x.shape[0], cout, ...outSp], 1);
}

function depthwise(n: Net, x: Act, multiplier: number): Act {
  const C = x.shape[1];
  const sp = spatialOf(x);
  const cout = C * multiplier;
  const w = n.operand([cout, 1, ...sp.map(() => 3)], lecun(9), { weight: true, chain: 2 });
  const inputs = [x.name, w];
  if (n.chance(0.5)) inputs.push(n.operand([cout], { kind: 'normal', scale: 0.3 }, { chain: 2 }));
  const attrs = [aInt('group', C), aInts('pads', Array<number>(2 * sp.length).fill(1))];
  return n.act(n.op('Conv', inputs, attrs)[0], [x.shape[0], cout, ...sp], 1);
}

type OperandKind = 'channel' | 'channel+other' | 'other' | 'scalar';

/** A shape that broadcasts against `x` (right-aligned, rank ≤ x's), varying along the axes `kind` asks for. */
function operandShape(n: Net, x: Act, kind: OperandKind): number[] {
  const r = x.shape.length;
  if (kind === 'scalar') return n.pick([[], [1], Array<number>(n.int(1, r)).fill(1)]);
  const others = otherAxes(x).filter((i) => x.shape[i] > 1);
  const vary = new Set<number>();
  if (kind !== 'other') vary.add(x.ch);
  if (kind !== 'channel' && others.length > 0) vary.add(n.pick(others));
  const start = n.int(0, Math.min(...vary, r - 1));
  return x.shape.slice(start).map((d, j) => (vary.has(start + j) ? d : 1));
}

/** x ⊕ b for an operand b of a broadcastable shape: biases, scales, per-position tables, scalars. */
function affine(n: Net, x: Act): Act {
  const op = n.choose<string>([['Add', 4], ['Mul', 3], ['Sub', 2], ['Div', 1]], 'affine:');
  const hasOthers = otherAxes(x).some((i) => x.shape[i] > 1);
  const kind = n.choose<OperandKind>([
    ['channel', 8],
    ['channel+other', hasOthers ? 2 : 0],
    ['other', hasOthers ? 2 : 0],
    ['scalar', 1],
  ], 'affine-shape:');
  n.tag(`affine:${op}`);
  n.tag(`affine-shape:${kind}`);
  const fill: Fill = op === 'Div' || (op === 'Mul' && n.chance(0.5)) ? { kind: 'positive' } : { kind: 'normal', scale: 0.5 };
  const b = n.operand(operandShape(n, x, kind), fill);
  // A divisor near zero would blow up: only x / b. The other ops take their operands in either order.
  const inputs = op === 'Div' || n.chance(0.6) ? [x.name, b] : [b, x.name];
  return n.act(n.op(op, inputs)[0], x.shape, x.ch);
}

function activation(n: Net, x: Act): Act {
  const op = n.choose<string>([['Relu', 4], ['Tanh', 2], ['Sigmoid', 2], ['Erf', 1], ['LeakyRelu', 1], ['Softmax', 2]], 'act:');
  const attrs: Obj[] = [];
  if (op === 'LeakyRelu') attrs.push(aFloat('alpha', 0.1));
  if (op === 'Softmax') {
    const r = x.shape.length;
    const axis = n.int(-r, r - 1);
    n.tag(`act:Softmax:${(axis + r) % r === x.ch ? 'channels' : 'other-axis'}`);
    attrs.push(aInt('axis', axis));
  } else n.tag(`act:${op}`);
  return n.act(n.op(op, [x.name], attrs)[0], x.shape, x.ch);
}

function batchNorm(n: Net, x: Act): Act {
  const C = x.shape[1];
  const p = (fill: Fill): string => n.operand([C], fill, { chain: 3 });
  const inputs = [x.name, p({ kind: 'positive' }), p({ kind: 'normal', scale: 0.3 }), p({ kind: 'normal', scale: 0.3 }), p({ kind: 'positive' })];
  return n.act(n.op('BatchNormalization', inputs, [aFloat('epsilon', 1e-3)])[0], x.shape, x.ch);
}

function layerNorm(n: Net, x: Act): Act {
  const r = x.shape.length;
  // Normalised over the axes from `axis` on, which include the channels or not.
  const axis = n.chance(0.6) ? r - 1 : n.int(1, r - 1);
  n.tag(`norm:LayerNormalization:${axis <= x.ch ? 'over-channels' : 'per-channel'}`);
  const shape = x.shape.slice(axis);
  const inputs = [x.name, n.operand(shape, { kind: 'positive' }, { chain: 3 })];
  if (n.chance(0.7)) inputs.push(n.operand(shape, { kind: 'normal', scale: 0.3 }, { chain: 3 }));
  const attrs = [aFloat('epsilon', 1e-3)];
  if (axis !== r - 1 || n.chance(0.5)) attrs.push(aInt('axis', n.chance(0.5) ? axis : axis - r));
  return n.act(n.op('LayerNormalization', inputs, attrs)[0], x.shape, x.ch);
}

/** LayerNorm over the channels as older exporters write it: ReduceMean, Sub, Pow, Sqrt, Div, then scale and shift. */
function decomposedLayerNorm(n: Net, x: Act): Act {
  const axes = [n.chance(0.5) ? x.ch : x.ch - x.shape.length];
  const mu = n.op('ReduceMean', [x.name], [aInts('axes', axes)])[0];
  const d = n.op('Sub', [x.name, mu])[0];
  const sq = n.chance(0.5) ? n.op('Pow', [d, n.scalarConstant(2)])[0] : n.op('Mul', [d, d])[0];
  const v = n.op('ReduceMean', [sq], [aInts('axes', axes)])[0];
  const eps = n.chance(0.7) ? n.scalarConstant(1e-3) : n.floatInit([], { kind: 'positive' }, 'eps');
  const sd = n.op('Sqrt', [n.op('Add', [v, eps])[0]])[0];
  let y = n.act(n.op('Div', [d, sd])[0], x.shape, x.ch);
  const perChannel = (fill: Fill): string => n.operand(operandShape(n, y, 'channel'), fill);
  y = n.act(n.op('Mul', [y.name, perChannel({ kind: 'positive' })])[0], x.shape, x.ch);
  if (n.chance(0.8)) y = n.act(n.op('Add', [y.name, perChannel({ kind: 'normal', scale: 0.3 })])[0], x.shape, x.ch);
  return y;
}

function pool(n: Net, x: Act): Act {
  const sp = spatialOf(x);
  const kind = n.choose<string>([['MaxPool', 3], ['AveragePool', 2], ['GlobalAveragePool', 2], ['GlobalMaxPool', 1]], 'pool:');
  n.tag(`pool:${kind}`);
  if (kind.startsWith('Global')) return n.act(n.op(kind, [x.name])[0], [x.shape[0], x.shape[1], ...sp.map(() => 1)], 1);
  const halve = sp.every((d) => d >= 2) && n.chance(0.6);
  const k = halve ? 2 : 3;
  const attrs = [aInts('kernel_shape', sp.map(() => k))];
  if (halve) attrs.push(aInts('strides', sp.map(() => 2)));
  else attrs.push(aInts('pads', Array<number>(2 * sp.length).fill(1)));
  const outSp = sp.map((d) => (halve ? Math.floor((d - 2) / 2) + 1 : d));
  return n.act(n.op(kind, [x.name], attrs)[0], [x.shape[0], x.shape[1], ...outSp], 1);
}

/** A block that keeps the shape: the body of a residual branch. */
function sameShapeBlock(n: Net, x: Act): Act {
  const kind = n.choose<string>([
    ['layer', 5],
    ['affine', 2],
    ['act', 2],
    ['bn', x.ch === 1 ? 1 : 0],
    ['ln', 1],
    ['depthwise', isConvLayout(x) ? 1 : 0],
  ]);
  switch (kind) {
    case 'layer':
      return layer(n, x, x.shape[x.ch], true);
    case 'affine':
      return affine(n, x);
    case 'act':
      return activation(n, x);
    case 'bn':
      n.tag('norm:BatchNormalization');
      return batchNorm(n, x);
    case 'ln':
      return layerNorm(n, x);
    default:
      n.tag('conv:depthwise');
      return depthwise(n, x, 1);
  }
}

/** x + f(x), or a projection shortcut g(x) + f(x): residual joins of two branches. */
function residual(n: Net, x: Act): Act {
  let shortcut = x;
  let body: Act;
  if (n.allows('residual:projection') && n.chance(0.25)) {
    n.tag('residual:projection');
    const cout = n.int(2, 8);
    body = layer(n, x, cout, true);
    if (n.chance(0.5)) body = activation(n, body);
    shortcut = layer(n, x, cout, true);
  } else {
    n.tag('residual:identity');
    body = sameShapeBlock(n, x);
    if (n.chance(0.5)) body = sameShapeBlock(n, body);
  }
  const op = n.chance(0.85) ? 'Add' : 'Sum';
  const ins = n.chance(0.5) ? [shortcut.name, body.name] : [body.name, shortcut.name];
  return n.act(n.op(op, ins)[0], shortcut.shape, shortcut.ch);
}

/** Two layers of x concatenated along the channels (a wider layer) or along another axis. */
function concat(n: Net, x: Act): Act {
  const r = x.shape.length;
  if (n.choose<string>([['channel', 1], ['other-axis', 2]], 'concat:') === 'channel') {
    n.tag('concat:channel');
    const a = layer(n, x, n.int(2, 5), true);
    const b = n.chance(0.3) ? x : layer(n, x, n.int(2, 5), true);
    const axis = n.chance(0.5) ? a.ch : a.ch - r;
    const shape = a.shape.map((d, i) => (i === a.ch ? d + b.shape[i] : d));
    return n.act(n.op('Concat', [a.name, b.name], [aInt('axis', axis)])[0], shape, a.ch);
  }
  const a = layer(n, x, n.int(2, 6), true);
  const b = n.chance(0.3) ? activation(n, a) : layer(n, x, a.shape[a.ch], true);
  const others = a.shape.map((_, i) => i).filter((i) => i !== a.ch);
  if (others.length === 0) {
    // A 1-D activation (e.g. after a ReduceMean to the channels) has no other axis: join the channels.
    n.tag('concat:channel');
    return n.act(n.op('Concat', [a.name, b.name], [aInt('axis', 0)])[0], [a.shape[0] + b.shape[0]], 0);
  }
  n.tag('concat:other-axis');
  const ax = n.pick(others);
  const shape = a.shape.map((d, i) => (i === ax ? d * 2 : d));
  return n.act(n.op('Concat', [a.name, b.name], [aInt('axis', n.chance(0.5) ? ax : ax - r)])[0], shape, a.ch);
}

function splitAxes(x: Act): number[] {
  return x.shape.map((d, i) => (d >= 2 && (i !== x.ch || d >= 4) ? i : -1)).filter((i) => i >= 0);
}

function split(n: Net, x: Act): Act {
  const r = x.shape.length;
  const ax = n.pick(splitAxes(x));
  const onChannels = ax === x.ch;
  const d = x.shape[ax];
  const equal = d % 2 === 0 && n.chance(0.7);
  const sizes = equal ? [d / 2, d / 2] : [1, d - 1];
  const inputs = [x.name];
  if (!equal || n.chance(0.3)) inputs.push(n.ints(sizes));
  const [p, q] = n.op('Split', inputs, [aInt('axis', n.chance(0.5) ? ax : ax - r)], 2);
  const shapeP = x.shape.map((e, i) => (i === ax ? sizes[0] : e));
  const then = n.choose<string>([['concat', onChannels ? 0 : 3], ['glu', equal ? 3 : 0], ['add', equal ? 2 : 0], ['first', 2]]);
  n.tag(`split:${onChannels ? 'channel' : 'other-axis'}:${then}`);
  switch (then) {
    case 'concat':
      // The halves swapped: still a function of x, the channels untouched.
      return n.act(n.op('Concat', [q, p], [aInt('axis', ax)])[0], x.shape, x.ch);
    case 'glu':
      return n.act(n.op('Mul', [p, n.op('Sigmoid', [q])[0]])[0], shapeP, x.ch);
    case 'add':
      return n.act(n.op('Add', [p, q])[0], shapeP, x.ch);
    default:
      return n.act(p, shapeP, x.ch);
  }
}

function sliceAxes(x: Act): number[] {
  return x.shape.map((d, i) => (d >= 2 && (i !== x.ch || d >= 3) ? i : -1)).filter((i) => i >= 0);
}

function slice(n: Net, x: Act): Act {
  const r = x.shape.length;
  const ax = n.pick(sliceAxes(x));
  const d = x.shape[ax];
  n.tag(`slice:${ax === x.ch ? 'channel' : 'other-axis'}`);
  // [1:], [:-1] or [::2]
  const variant = n.int(0, 2);
  const [start, end, step] = variant === 0 ? [1, d, 1] : variant === 1 ? [0, -1, 1] : [0, d, 2];
  const len = variant === 2 ? Math.ceil(d / 2) : d - 1;
  const inputs = [x.name, n.ints([start]), n.ints([end]), n.ints([n.chance(0.5) ? ax : ax - r])];
  if (step !== 1 || n.chance(0.3)) inputs.push(n.ints([step]));
  return n.act(n.op('Slice', inputs)[0], x.shape.map((e, i) => (i === ax ? len : e)), x.ch);
}

function pad(n: Net, x: Act): Act {
  const r = x.shape.length;
  const onChannels = n.choose<string>([['channel', 1], ['other-axis', 5]], 'pad:') === 'channel';
  const mode = onChannels ? 'constant' : n.pick(['constant', 'constant', 'reflect', 'edge']);
  n.tag(`pad:${onChannels ? 'channel' : 'other-axis'}:${mode}`);
  const pads = Array<number>(2 * r).fill(0);
  const axes = onChannels ? [x.ch] : otherAxes(x).filter((i) => mode !== 'reflect' || x.shape[i] >= 2);
  for (const a of axes) {
    pads[a] = n.int(0, 1);
    pads[a + r] = 1;
  }
  const inputs = [x.name, n.ints(pads)];
  if (mode === 'constant' && n.chance(0.4)) inputs.push(n.scalarConstant(n.pick([0, 0.5])));
  const shape = x.shape.map((d, i) => d + pads[i] + pads[i + r]);
  return n.act(n.op('Pad', inputs, [aStr('mode', mode)])[0], shape, x.ch);
}

function resize(n: Net, x: Act): Act {
  const mode = n.pick(['nearest', 'linear']);
  n.tag(`resize:${mode}`);
  const scales = x.shape.map((_, i) => (i >= 2 ? 2 : 1));
  const sc = n.op('Constant', [], [{ name: 'value', type: 4, t: { dims: [scales.length], data_type: 1, float_data: scales } }])[0];
  return n.act(n.op('Resize', [x.name, '', sc], [aStr('mode', mode)])[0], x.shape.map((d, i) => d * scales[i]), x.ch);
}

function tile(n: Net, x: Act): Act {
  const ax = n.pick(x.shape.map((d, i) => (i !== 0 && d <= 4 ? i : -1)).filter((i) => i >= 0));
  n.tag(`tile:${ax === x.ch ? 'channel' : 'other-axis'}`);
  const reps = x.shape.map((_, i) => (i === ax ? 2 : 1));
  return n.act(n.op('Tile', [x.name, n.ints(reps)])[0], x.shape.map((d, i) => d * reps[i]), x.ch);
}

/** A reduction over axes other than the batch and the channels (spatial or time pooling by hand). */
function reduce(n: Net, x: Act): Act {
  const r = x.shape.length;
  const others = otherAxes(x);
  const axes = others.filter(() => n.chance(0.6));
  if (axes.length === 0) axes.push(n.pick(others));
  // Everything downstream expects a batch and a channel axis: rank 2 keeps its dims.
  const keep = r <= 2 || n.chance(0.5) ? 1 : 0;
  const op = n.pick(['ReduceMean', 'ReduceSum', 'ReduceMax']);
  n.tag(`reduce:${op}:keepdims${keep}`);
  const written = axes.map((a) => (n.chance(0.3) ? a - r : a));
  // Opset 17: ReduceSum takes its axes as an input, ReduceMean/ReduceMax as an attribute.
  const inputs = op === 'ReduceSum' ? [x.name, n.ints(written)] : [x.name];
  const attrs = [aInt('keepdims', keep), ...(op === 'ReduceSum' ? [] : [aInts('axes', written)])];
  const shape = keep === 1 ? x.shape.map((d, i) => (axes.includes(i) ? 1 : d)) : x.shape.filter((_, i) => !axes.includes(i));
  const ch = keep === 1 ? x.ch : x.ch - axes.filter((a) => a < x.ch).length;
  return n.act(n.op(op, inputs, attrs)[0], shape, ch);
}

/** A statistic over the channels (invariant to their order) fed back into every channel: gating, centring. */
function channelStat(n: Net, x: Act): Act {
  const op = n.pick(['ReduceMean', 'ReduceMax', 'ReduceSum']);
  const use = n.pick(['gate', 'center']);
  n.tag(`channel-stat:${op}:${use}`);
  const axes = [n.chance(0.5) ? x.ch : x.ch - x.shape.length];
  const s = op === 'ReduceSum' ? n.op(op, [x.name, n.ints(axes)])[0] : n.op(op, [x.name], [aInts('axes', axes)])[0];
  const y = use === 'gate' ? n.op('Mul', [x.name, n.op('Sigmoid', [s])[0]])[0] : n.op('Sub', [x.name, s])[0];
  return n.act(y, x.shape, x.ch);
}

function transpose(n: Net, x: Act): Act {
  const r = x.shape.length;
  const perm = isConvLayout(x) && n.chance(0.5) ? moveToEnd(r, 1) : n.nonIdentityPerm(r);
  n.tag(`transpose:${perm.some((p, i) => perm[p] !== i) ? 'cycle' : 'swap'}`);
  return transposeTo(n, x, perm);
}

/**
 * Channels moved last (NCHW → NHWC is a 3-cycle, so a walk that maps the axis through the wrong side of
 * the permutation loses them), per-channel work there, and moved back: a channels-last sandwich.
 */
function channelsLast(n: Net, x: Act): Act {
  const perm = moveToEnd(x.shape.length, x.ch);
  let y = transposeTo(n, x, perm);
  const middle = n.choose<string>([['dense', 3], ['ln', 2], ['affine', 2], ['channel-stat', 1], ['softmax', 1]]);
  n.tag(`channels-last:${middle}`);
  if (middle === 'dense') y = dense(n, y, n.int(2, 8));
  else if (middle === 'ln') y = layerNorm(n, y);
  else if (middle === 'affine') y = affine(n, y);
  else if (middle === 'channel-stat') y = channelStat(n, y);
  else y = n.act(n.op('Softmax', [y.name], [aInt('axis', -1)])[0], y.shape, y.ch);
  return transposeTo(n, y, perm.map((_, i) => perm.indexOf(i)));
}

function unsqueeze(n: Net, x: Act): Act {
  const r = x.shape.length;
  const count = r === 2 && n.chance(0.5) ? 2 : 1;
  const outRank = r + count;
  // torch's [N, C] → [N, C, 1, 1] puts the new axes last; a single one goes anywhere.
  const axes = count === 2 ? [2, 3] : [n.int(0, outRank - 1)];
  n.tag(`unsqueeze:${count}`);
  const shape: number[] = [];
  let k = 0;
  let ch = -1;
  for (let i = 0; i < outRank; i++) {
    if (axes.includes(i)) shape.push(1);
    else {
      if (k === x.ch) ch = i;
      shape.push(x.shape[k++]);
    }
  }
  return n.act(n.op('Unsqueeze', [x.name, n.ints(axes.map((a) => (n.chance(0.3) ? a - outRank : a)))])[0], shape, ch);
}

function squeeze(n: Net, x: Act): Act {
  const ones = x.shape.map((d, i) => (d === 1 && i !== x.ch ? i : -1)).filter((i) => i >= 0);
  const drop = ones.filter(() => n.chance(0.7));
  if (drop.length === 0) drop.push(n.pick(ones));
  // The other blocks expect a batch axis beside the channels: keep at least two axes.
  drop.splice(Math.max(1, x.shape.length - 2));
  const all = drop.length === ones.length && x.shape[x.ch] !== 1 && n.chance(0.3);
  n.tag(`squeeze:${all ? 'all' : 'axes'}`);
  const shape = x.shape.filter((_, i) => !drop.includes(i));
  const ch = x.ch - drop.filter((a) => a < x.ch).length;
  return n.act(n.op('Squeeze', all ? [x.name] : [x.name, n.ints(drop)])[0], shape, ch);
}

/** To [N, rest]: Flatten, Reshape to a constant, or torch's x.view(x.size(0), -1) computed at run time. */
function flatten(n: Net, x: Act): Act {
  const how = n.choose<string>([['Flatten', 3], ['Reshape', 2], ['dynamic', 2]], 'flatten:');
  n.tag(`flatten:${how}:${prod(x.shape.slice(1)) === x.shape[x.ch] ? 'clean' : 'merges'}`);
  const shape = [x.shape[0], prod(x.shape.slice(1))];
  if (how === 'Flatten') return n.act(n.op('Flatten', [x.name], n.chance(0.5) ? [aInt('axis', 1)] : [])[0], shape, 1);
  if (how === 'Reshape') return n.act(n.reshapeTo(x.name, x.shape, shape), shape, 1);
  const s = n.op('Shape', [x.name])[0];
  const b = n.op('Gather', [s, n.ints([0], true)], [aInt('axis', 0)])[0];
  const u = n.op('Unsqueeze', [b, n.ints([0])])[0];
  const target = n.op('Concat', [u, n.ints([-1])], [aInt('axis', 0)])[0];
  return n.act(n.op('Reshape', [x.name, target])[0], shape, 1);
}

function reshapeKinds(x: Act): [string, number][] {
  const r = x.shape.length;
  const C = x.shape[x.ch];
  return [
    ['merge-leading', r === 3 && isLast(x) ? 2 : 0],
    ['to-3d', r === 2 && isLast(x) ? 2 : 0],
    ['to-4d', r === 2 && isLast(x) ? 2 : 0],
    // The channels split over two axes: no per-axis permutation of the result stands for one of x.
    ['split-channels', C >= 4 && C % 2 === 0 ? 1 : 0],
  ];
}

/** Reshapes to a constant target: [N, T, D] → [N·T, D], [N, C] → [N, 1, C] / [N, C, 1, 1], or splitting the channels. */
function reshape(n: Net, x: Act): Act {
  const C = x.shape[x.ch];
  const kind = n.choose(reshapeKinds(x), 'reshape:');
  n.tag(`reshape:${kind}`);
  let shape: number[];
  let ch: number;
  switch (kind) {
    case 'merge-leading':
      [shape, ch] = [[x.shape[0] * x.shape[1], x.shape[2]], 1];
      break;
    case 'to-3d':
      [shape, ch] = [[x.shape[0], 1, C], 2];
      break;
    case 'to-4d':
      [shape, ch] = [[x.shape[0], C, 1, 1], 1];
      break;
    default:
      [shape, ch] = [[...x.shape.slice(0, x.ch), 2, C / 2, ...x.shape.slice(x.ch + 1)], x.ch + 1];
  }
  return n.act(n.reshapeTo(x.name, x.shape, shape), shape, ch);
}

/**
 * An If whose branches read outer-scope values (the current activation, an initializer) directly, as
 * torch exports data-dependent control flow; the condition is a graph input or computed from x.
 */
function ifNode(n: Net, x: Act): Act {
  let cond: string;
  if (n.chance(0.5)) {
    n.tag('if:cond-input');
    cond = n.fresh('cond');
    n.graphInputs.push(valueInfo(cond, 9, []));
    n.feeds.push({ name: cond, dtype: 'bool', shape: [], data: new Uint8Array([n.chance(0.5) ? 1 : 0]) });
  } else {
    n.tag('if:cond-computed');
    // The sum of squares over every axis: a scalar that does not depend on the channel order, compared
    // with 0 so that float noise cannot flip it (x > 0 unless x is exactly zero). A plain sum would be
    // near 0 after centring, and the permuted model's rounding could take the other branch.
    const s = n.op('ReduceSumSquare', [x.name], [aInt('keepdims', 0)])[0];
    cond = n.op(n.pick(['Greater', 'Less']), [s, n.scalarConstant(0)])[0];
  }
  // An outer per-channel initializer that a branch reads (and, sometimes, the main graph too).
  const outerInit = n.floatInit(operandShape(n, x, 'channel'), { kind: 'normal', scale: 0.5 }, 'outer');
  const body = (kind: string): Obj => {
    let out = '';
    const nodes = n.branch(() => {
      if (kind === 'add-outer-init') out = n.op('Add', [x.name, outerInit])[0];
      else if (kind === 'relu') out = n.op('Relu', [x.name])[0];
      else if (kind === 'identity') out = n.op('Identity', [x.name])[0];
      else if (kind === 'outer-weight') {
        // A layer inside the branch whose weight is an outer initializer (a conditional layer).
        const C = x.shape[x.ch];
        const ws = isLast(x) ? [C, C] : [C, C, ...spatialOf(x).map(() => 1)];
        out = n.op(isLast(x) ? 'MatMul' : 'Conv', [x.name, n.floatInit(ws, lecun(C), 'outer')])[0];
      } else out = n.op('Mul', [x.name, n.floatConstant(operandShape(n, x, 'scalar'), { kind: 'positive' })])[0];
    });
    n.tag(`if:branch:${kind}`);
    return { name: n.fresh('branch'), node: nodes, output: [valueInfo(out, 1, null)] };
  };
  const kinds = ['add-outer-init', 'relu', 'identity', 'scale-const', ...(isLast(x) || isConvLayout(x) ? ['outer-weight'] : [])];
  const thenB = body(n.pick(kinds));
  const elseB = body(n.pick(kinds));
  const y = n.op('If', [cond], [{ name: 'then_branch', type: 5, g: thenB }, { name: 'else_branch', type: 5, g: elseB }])[0];
  let out = n.act(y, x.shape, x.ch);
  if (n.allows('if:shared-init') && n.chance(0.5)) {
    n.tag('if:shared-init');
    out = n.act(n.op('Add', [out.name, outerInit])[0], x.shape, x.ch);
  }
  if (n.allows('if:side-output') && n.chance(0.3)) {
    // The If's result only leaves the graph; the main stream goes on from x.
    n.tag('if:side-output');
    addOutput(n, out.name, out.shape);
    return x;
  }
  return out;
}

/**
 * A Loop (two iterations) whose body reads the current activation and a per-channel initializer only from
 * the outer scope: v ← v + (x + b), from zeros. The walk sees neither as an input of the node.
 */
function loop(n: Net, x: Act): Act {
  const b = n.floatInit(operandShape(n, x, 'channel'), { kind: 'normal', scale: 0.5 }, 'outer');
  const zeros = n.op('Constant', [], [{ name: 'value', type: 4, t: { dims: [...x.shape], data_type: 1, float_data: Array<number>(prod(x.shape)).fill(0) } }])[0];
  const [iter, condIn, vIn] = [n.fresh('iter'), n.fresh('cond_in'), n.fresh('v_in')];
  let condOut = '';
  let vOut = '';
  const nodes = n.branch(() => {
    condOut = n.op('Identity', [condIn])[0];
    vOut = n.op('Add', [vIn, n.op('Add', [x.name, b])[0]])[0];
  });
  const body = {
    name: n.fresh('body'),
    node: nodes,
    input: [valueInfo(iter, 7, []), valueInfo(condIn, 9, []), valueInfo(vIn, 1, null)],
    output: [valueInfo(condOut, 9, []), valueInfo(vOut, 1, null)],
  };
  const trips = n.ints([2], true);
  let out = n.act(n.op('Loop', [trips, '', zeros], [{ name: 'body', type: 5, g: body }])[0], x.shape, x.ch);
  n.tag('loop:outer-reads');
  if (n.allows('loop:shared-init') && n.chance(0.5)) {
    n.tag('loop:shared-init');
    out = n.act(n.op('Sub', [out.name, b])[0], x.shape, x.ch);
  }
  return out;
}

/** A second graph input added into the stream: an activation that is not permuted. */
function inputJoin(n: Net, x: Act): Act {
  const name = n.fresh('x2');
  const shape = operandShape(n, x, n.chance(0.7) ? 'channel' : 'scalar');
  const fed = shape.length === 0 ? [1] : shape;
  n.tag(`input-join:${fed.every((d) => d === 1) ? 'scalar' : 'channel'}`);
  n.graphInputs.push(valueInfo(name, 1, fed));
  n.feeds.push({ name, dtype: 'float32', shape: fed, data: n.data(fed, { kind: 'normal', scale: 1 }) });
  return n.act(n.op('Add', [x.name, name])[0], x.shape, x.ch);
}

function addOutput(n: Net, name: string, shape: readonly number[] | null): void {
  if (n.outputNames.has(name)) return;
  n.outputNames.add(name);
  const declared = shape !== null && n.chance(0.5) ? shape : null;
  n.graphOutputs.push(valueInfo(name, 1, declared));
}

/** Sizes for a Reshape target: numbers, or `times` × dimension `axis` of a value read at run time, as torch writes x.size(i). */
type TargetPart = number | { readonly of: string; readonly axis: number; readonly times?: number };

function shapeTarget(n: Net, parts: readonly TargetPart[]): string {
  const pieces = parts.map((p) => {
    if (typeof p === 'number') return n.ints([p]);
    let g = n.op('Gather', [n.op('Shape', [p.of])[0], n.ints([p.axis], true)], [aInt('axis', 0)])[0];
    if (p.times !== undefined) g = n.op('Mul', [g, n.ints([p.times], true)])[0];
    return n.op('Unsqueeze', [g, n.ints([0])])[0];
  });
  return n.op('Concat', pieces, [aInt('axis', 0)])[0];
}

/**
 * Multi-head self-attention on [N, T, E] as torch.onnx.export writes it. 'sep': separate q/k/v MatMuls,
 * heads split by Reshape to [N, T, H, d] and Transpose to [0,2,1,3] / [0,2,3,1], q·k, scale, Softmax, ·v,
 * heads merged back, out-projection. 'fused' (nn.MultiheadAttention): sequence first, one MatMul to
 * q|k|v cut by Split or Slices (bounds constant or computed from Shape), heads folded into the batch axis
 * ([T, N·H, d]), the out-projection as Gemm on [T·N, H·dv]. Reshape targets are constants or built from
 * Shape/Gather/Mul/Concat. 'timm': one qkv MatMul reshaped to [N, T, 3, H, d], transposed to
 * [3, N, H, T, d] and taken apart by Split + Squeeze or Gather. Sometimes a mask that varies along the heads is added to the scores: the walk
 * must then leave the heads alone.
 */
function attention(n: Net, x: Act): Act {
  const [N, T, E] = x.shape;
  const H = n.pick([2, 3]);
  const dk = n.int(1, 3);
  const dv = n.int(1, 3);
  const style = n.choose<string>([['sep', 1], ['fused', 1], ['timm', 1]], 'attn:');
  const dyn = n.allows('attn:dynamic-shape') && n.chance(0.5);
  n.tag(`attn:${style}`);
  if (dyn) n.tag('attn:dynamic-shape');
  const proj = (inp: string, cin: number, cout: number): string => {
    const w = n.operand([cin, cout], lecun(cin), { weight: true, chain: 2 });
    const y = n.op('MatMul', [inp, w])[0];
    if (!n.chance(0.8)) return y;
    const b = n.operand([cout], { kind: 'normal', scale: 0.5 }, { chain: 2 });
    return n.op('Add', n.chance(0.5) ? [b, y] : [y, b])[0];
  };
  const scores = (s: string, shape: readonly number[], headAxis: number): string => {
    if (n.chance(0.7)) s = n.op(n.pick(['Div', 'Mul']), [s, n.scalarConstant(n.pick([2, 0.5]))])[0];
    const mask = n.choose<string>([['none', 4], ['tokens', 2], ['heads', 1]], 'attn-mask:');
    if (mask !== 'none') {
      n.tag(`attn-mask:${mask}`);
      const m = mask === 'tokens' ? [T, T] : shape.map((d, i) => (i === headAxis || i >= shape.length - 2 ? d : 1));
      s = n.op('Add', [s, n.operand(m, { kind: 'normal', scale: 1 })])[0];
    }
    return n.op('Softmax', [s], [aInt('axis', -1)])[0];
  };
  let y: string;
  if (style === 'timm') {
    // timm: qkv(x).reshape(N, T, 3, H, d).permute(2, 0, 3, 1, 4), then unbind (Split + Squeeze) or qkv[i] (Gather).
    const qkv = proj(x.name, E, 3 * H * dk);
    const target = dyn ? shapeTarget(n, [{ of: x.name, axis: 0 }, { of: x.name, axis: 1 }, 3, H, dk]) : n.ints(n.chance(0.5) ? [0, 0, 3, H, dk] : [N, T, 3, H, dk]);
    const t = n.op('Transpose', [n.op('Reshape', [qkv, target])[0]], [aInts('perm', [2, 0, 3, 1, 4])])[0];
    let parts: string[];
    if (n.chance(0.5)) {
      n.tag('attn:timm:Split');
      parts = n.op('Split', [t, n.ints([1, 1, 1])], [aInt('axis', 0)], 3).map((o) => n.op('Squeeze', [o, n.ints([0])])[0]);
    } else {
      n.tag('attn:timm:Gather');
      parts = [0, 1, 2].map((i) => n.op('Gather', [t, n.ints([i], true)], [aInt('axis', 0)])[0]);
    }
    const q = n.op('Mul', [parts[0], n.scalarConstant(0.5)])[0];
    const kt = n.op('Transpose', [parts[1]], [aInts('perm', [0, 1, 3, 2])])[0];
    const s = scores(n.op('MatMul', [q, kt])[0], [N, H, T, T], 1);
    const o = n.op('Transpose', [n.op('MatMul', [s, parts[2]])[0]], [aInts('perm', [0, 2, 1, 3])])[0];
    y = proj(n.op('Reshape', [o, n.ints([0, 0, H * dk])])[0], H * dk, E);
  } else if (style === 'sep') {
    const [q, k, v] = [proj(x.name, E, H * dk), proj(x.name, E, H * dk), proj(x.name, E, H * dv)];
    const split = (t: string, d: number): string =>
      n.op('Reshape', [t, dyn ? shapeTarget(n, [{ of: x.name, axis: 0 }, { of: x.name, axis: 1 }, H, d]) : n.ints(n.chance(0.5) ? [0, 0, H, d] : [N, T, H, d])])[0];
    const qh = n.op('Transpose', [split(q, dk)], [aInts('perm', [0, 2, 1, 3])])[0];
    const kh = n.op('Transpose', [split(k, dk)], [aInts('perm', [0, 2, 3, 1])])[0];
    const vh = n.op('Transpose', [split(v, dv)], [aInts('perm', [0, 2, 1, 3])])[0];
    const s = scores(n.op('MatMul', [qh, kh])[0], [N, H, T, T], 1);
    const o = n.op('Transpose', [n.op('MatMul', [s, vh])[0]], [aInts('perm', [0, 2, 1, 3])])[0];
    const merged = n.op('Reshape', [o, dyn ? shapeTarget(n, [{ of: x.name, axis: 0 }, { of: x.name, axis: 1 }, H * dv]) : n.ints(n.chance(0.5) ? [0, 0, -1] : [N, T, H * dv])])[0];
    y = proj(merged, H * dv, E);
  } else {
    const xt = n.op('Transpose', [x.name], [aInts('perm', [1, 0, 2])])[0];
    const width = 2 * H * dk + H * dv;
    const fused = proj(xt, E, width);
    const bounds = [0, H * dk, 2 * H * dk, width];
    let qkv: string[];
    if (n.chance(0.4)) {
      n.tag('attn:fused:Split');
      qkv = n.op('Split', [fused, n.ints([H * dk, H * dk, H * dv])], [aInt('axis', n.chance(0.5) ? 2 : -1)], 3);
    } else {
      const computed = n.chance(0.5);
      n.tag(`attn:fused:Slice${computed ? ':computed' : ''}`);
      // torch computes chunk bounds from the channel count: here width - (width - b), from Shape.
      const last = computed ? n.op('Gather', [n.op('Shape', [fused])[0], n.ints([-1])], [aInt('axis', 0)])[0] : '';
      const bound = (b: number): string => (computed ? n.op('Sub', [last, n.ints([width - b])])[0] : n.ints([b]));
      qkv = [0, 1, 2].map((i) => n.op('Slice', [fused, bound(bounds[i]), bound(bounds[i + 1]), n.ints([-1])])[0]);
    }
    const heads = (t: string, d: number): string =>
      n.op('Reshape', [t, dyn ? shapeTarget(n, [{ of: xt, axis: 0 }, { of: xt, axis: 1, times: H }, d]) : n.ints([T, N * H, d])])[0];
    let qh = n.op('Transpose', [heads(qkv[0], dk)], [aInts('perm', [1, 0, 2])])[0];
    if (n.chance(0.5)) qh = n.op('Div', [qh, n.scalarConstant(2)])[0];
    const kh = n.op('Transpose', [heads(qkv[1], dk)], [aInts('perm', [1, 2, 0])])[0];
    const vh = n.op('Transpose', [heads(qkv[2], dv)], [aInts('perm', [1, 0, 2])])[0];
    const s = scores(n.op('MatMul', [qh, kh])[0], [N * H, T, T], 0);
    const o = n.op('Transpose', [n.op('MatMul', [s, vh])[0]], [aInts('perm', [1, 0, 2])])[0];
    const m = n.op('Reshape', [o, n.ints([dyn ? -1 : T * N, H * dv])])[0];
    const outW = n.operand([E, H * dv], lecun(H * dv), { weight: true, chain: 2 });
    const g = n.op('Gemm', [m, outW, n.operand([E], { kind: 'normal', scale: 0.5 })], [aInt('transB', 1)])[0];
    const back = n.op('Reshape', [g, dyn ? shapeTarget(n, [{ of: xt, axis: 0 }, { of: xt, axis: 1 }, E]) : n.ints([T, N, E])])[0];
    y = n.op('Transpose', [back], [aInts('perm', [1, 0, 2])])[0];
  }
  if (n.chance(0.3)) return n.act(y, x.shape, 2);
  n.tag('attn:residual');
  return n.act(n.op('Add', [x.name, y])[0], x.shape, 2);
}

interface BlockDef {
  readonly name: string;
  readonly weight: number;
  readonly when: (x: Act) => boolean;
  /** Makes the activation bigger: not offered once it is already large. */
  readonly grows?: boolean;
  readonly run: (n: Net, x: Act) => Act;
}

const BLOCKS: readonly BlockDef[] = [
  { name: 'layer', weight: 14, when: () => true, run: (n, x) => layer(n, x, n.int(2, 8)) },
  { name: 'affine', weight: 7, when: () => true, run: affine },
  { name: 'act', weight: 8, when: () => true, run: activation },
  { name: 'norm:BatchNormalization', weight: 3, when: (x) => x.ch === 1, run: batchNorm },
  { name: 'norm:LayerNormalization', weight: 3, when: () => true, run: layerNorm },
  { name: 'norm:decomposed', weight: 2, when: () => true, run: decomposedLayerNorm },
  { name: 'conv:depthwise', weight: 3, when: isConvLayout, run: (n, x) => depthwise(n, x, 1) },
  { name: 'conv:depthwise-x2', weight: 1, when: (x) => isConvLayout(x) && x.shape[1] <= 4, run: (n, x) => depthwise(n, x, 2) },
  { name: 'conv:grouped', weight: 1, when: (x) => isConvLayout(x) && x.shape[1] % 2 === 0, run: (n, x) => conv(n, x, 2 * n.int(1, 3), 2, false) },
  { name: 'pool', weight: 4, when: (x) => x.ch === 1 && x.shape.length === 4, run: pool },
  { name: 'residual', weight: 6, when: () => true, run: residual },
  { name: 'concat', weight: 3, when: () => true, grows: true, run: concat },
  { name: 'split', weight: 2, when: (x) => splitAxes(x).length > 0, run: split },
  { name: 'slice', weight: 2, when: (x) => sliceAxes(x).length > 0, run: slice },
  { name: 'pad', weight: 2, when: (x) => x.shape.length >= 3, grows: true, run: pad },
  { name: 'resize', weight: 1, when: (x) => x.ch === 1 && x.shape.length === 4 && spatialOf(x).every((d) => d <= 3), grows: true, run: resize },
  { name: 'tile', weight: 1, when: (x) => x.shape.some((d, i) => i !== 0 && d <= 4), grows: true, run: tile },
  { name: 'reduce', weight: 2, when: (x) => otherAxes(x).length > 0, run: reduce },
  { name: 'channel-stat', weight: 2, when: () => true, run: channelStat },
  { name: 'transpose', weight: 2, when: () => true, run: transpose },
  { name: 'transpose:channels-last', weight: 3, when: (x) => x.shape.length >= 3, run: channelsLast },
  { name: 'unsqueeze', weight: 1, when: (x) => x.shape.length <= 3, run: unsqueeze },
  { name: 'squeeze', weight: 2, when: (x) => x.shape.length >= 3 && x.shape.some((d, i) => d === 1 && i !== x.ch), run: squeeze },
  { name: 'flatten', weight: 2, when: (x) => x.shape.length >= 3, run: flatten },
  { name: 'reshape', weight: 2, when: (x) => x.shape.length <= 3 && reshapeKinds(x).some(([, w]) => w > 0), run: reshape },
  { name: 'if', weight: 3, when: () => true, run: ifNode },
  { name: 'attention', weight: 4, when: (x) => x.shape.length === 3 && isLast(x) && x.shape[1] <= 4, run: attention },
  { name: 'loop', weight: 1, when: (x) => prod(x.shape) <= 300, run: loop },
  { name: 'input-join', weight: 1, when: () => true, run: inputJoin },
  {
    name: 'output:hidden',
    weight: 2,
    when: () => true,
    run: (n, x) => {
      addOutput(n, x.name, x.shape);
      return x;
    },
  },
];

/** A vector per example and a last layer, as a classifier head does. */
function head(n: Net, x: Act): Act {
  if (n.chance(0.15)) {
    n.tag('head:none');
    return x;
  }
  if (isConvLayout(x) && x.shape.length === 4 && n.chance(0.7)) {
    const how = n.choose<string>([['gap-flatten', 3], ['gap-squeeze', 1], ['reduce', 1], ['gap-reshape', 1]], 'head:');
    n.tag(`head:${how}`);
    const vec = [x.shape[0], x.shape[1]];
    if (how === 'reduce') x = n.act(n.op('ReduceMean', [x.name], [aInts('axes', [2, 3]), aInt('keepdims', 0)])[0], vec, 1);
    else {
      const g = n.act(n.op('GlobalAveragePool', [x.name])[0], [...vec, 1, 1], 1);
      if (how === 'gap-squeeze') x = n.act(n.op('Squeeze', [g.name, n.ints([2, 3])])[0], vec, 1);
      else if (how === 'gap-flatten') x = n.act(n.op('Flatten', [g.name], [aInt('axis', 1)])[0], vec, 1);
      else x = flatten(n, g);
    }
  } else if (x.shape.length === 3 && n.chance(0.5)) {
    n.tag('head:reduce-time');
    const ax = otherAxes(x)[0];
    const shape = x.shape.filter((_, i) => i !== ax);
    x = n.act(n.op('ReduceMean', [x.name], [aInts('axes', [ax]), aInt('keepdims', 0)])[0], shape, x.ch > ax ? x.ch - 1 : x.ch);
  }
  return layer(n, x, n.int(2, 5));
}

/**
 * A random valid ONNX model (opset 17) with its float initializers and input values. `seed` decides
 * everything; `exclude` removes features (see RandomGraphOptions).
 */
export function randomOnnxGraph(seed: number, options: RandomGraphOptions = {}): RandomGraph {
  const n = new Net(createRng(seed), options.exclude ?? []);
  const family = n.choose<string>([['mlp', 3], ['conv', 4], ['seq', 3]], 'family:');
  n.tag(`family:${family}`);
  const N = n.int(2, 3);
  const shape = family === 'mlp' ? [N, n.int(2, 8)] : family === 'conv' ? [N, n.int(1, 4), n.int(2, 6), n.int(2, 6)] : [N, n.int(1, 5), n.int(2, 6)];
  // A symbolic batch size, as torch.onnx.export with dynamic_axes writes it, half the time.
  const declared = shape.map((d, i) => (i === 0 && n.chance(0.5) ? 'N' : d));
  n.graphInputs.push(valueInfo('x', 1, declared));
  n.feeds.push({ name: 'x', dtype: 'float32', shape, data: n.data(shape, { kind: 'normal', scale: 1 }) });
  let x = n.act('x', shape, family === 'seq' ? 2 : 1);

  const budget = n.int(4, 22);
  for (let blocks = 0; n.nodeCount < budget && blocks < 12; blocks++) {
    // The first block is a layer more often than not, so that most graphs have a hidden space to permute.
    let def = BLOCKS[0];
    if (blocks > 0 || n.chance(0.25)) {
      const offered = BLOCKS.filter((b) => n.allows(b.name) && b.when(x) && !(b.grows === true && prod(x.shape) > 300));
      const name = n.choose(offered.map((b) => [b.name, b.weight] as const));
      def = offered.find((b) => b.name === name) ?? BLOCKS[0];
    }
    n.tag(`block:${def.name}`);
    x = def.run(n, x);
  }
  x = head(n, x);
  addOutput(n, x.name, x.shape);

  if (n.allows('output:init') && n.weightInits.length > 0 && n.chance(0.15)) {
    // A weight that is also a graph output, directly or through Identity (as with tied or exported weights).
    const w = n.pick(n.weightInits);
    if (n.chance(0.5)) {
      n.tag('output:init:direct');
      addOutput(n, w, null);
    } else {
      n.tag('output:init:identity');
      addOutput(n, n.op('Identity', [w])[0], null);
    }
  }

  const label = `random-onnx seed ${seed}`;
  const model = onnxModelFromObject(
    {
      ir_version: 8,
      opset_import: [{ domain: '', version: 17 }],
      graph: { name: label, node: n.topLevelNodes, initializer: n.initializers, input: n.graphInputs, output: n.graphOutputs },
    },
    label,
  );
  return { seed, model, params: n.params, inputs: n.feeds, patterns: [...n.patterns].sort() };
}

// ---------------------------------------------------------------------------------------------------------
// Describing graphs and specs (failure reports)

function attrText(v: unknown): string | null {
  if (typeof v === 'number') return String(Math.round(v * 1e4) / 1e4);
  if (typeof v === 'string') return v;
  if (Array.isArray(v) && v.every((e) => typeof e === 'number')) return `[${v.join(',')}]`;
  return null;
}

function graphLines(g: OnnxGraph, indent: string, model: OnnxModel | null): string[] {
  const lines: string[] = [];
  if (model !== null) {
    lines.push(`${indent}inputs: ${g.inputs.map((i) => `${i.name} ${i.dtype ?? '?'} [${(i.shape ?? []).join(',')}]`).join('; ')}`);
    const inits = g.initializerNames.map((name) => `${name} ${model.initializers[name].dtype}[${model.initializers[name].shape.join(',')}]`);
    lines.push(`${indent}initializers: ${inits.join('; ')}`);
  }
  for (const node of g.nodes) {
    const attrs = Object.entries(node.attributes)
      .map(([k, v]) => [k, attrText(v)] as const)
      .filter((e): e is readonly [string, string] => e[1] !== null)
      .map(([k, v]) => `${k}=${v}`);
    if (node.opType === 'Constant') {
      const t = node.attributes.value;
      if (typeof t === 'object' && t !== null && 'kind' in t && t.kind === 'tensor') {
        const data = Array.isArray(t.data) || t.data instanceof Float32Array ? [...t.data].slice(0, 8).map((v) => (typeof v === 'number' ? Number(v.toPrecision(3)) : v)).join(',') : '?';
        attrs.push(`value=${t.dtype}[${t.shape.join(',')}]{${data}${(t.data?.length ?? 0) > 8 ? ',...' : ''}}`);
      }
    }
    lines.push(`${indent}${node.opType}(${node.inputs.join(', ')}) -> ${node.outputs.join(', ')}${attrs.length > 0 ? `  ${attrs.join(' ')}` : ''}`);
    for (const [k, v] of Object.entries(node.attributes)) {
      if (typeof v === 'object' && v !== null && 'kind' in v && v.kind === 'graph') {
        lines.push(`${indent}  ${k}:`);
        lines.push(...graphLines(v.graph, `${indent}    `, null));
        lines.push(`${indent}    outputs: ${v.graph.outputs.map((o) => o.name).join(', ')}`);
      }
    }
  }
  if (model !== null) lines.push(`${indent}outputs: ${g.outputs.map((o) => o.name).join(', ')}`);
  return lines;
}

/** The graph as text: inputs, initializers with shapes, one `Op(inputs) -> outputs attrs` line per node, outputs. */
export function describeGraph(model: OnnxModel): string {
  return graphLines(model.graph, '  ', model).join('\n');
}

/** The permuted axes per tensor, and what the walk left out (unsupported nodes, fixed channel spaces). */
export function describeSpec(derived: OnnxSpec): string {
  const lines: string[] = [];
  for (const [t, axes] of Object.entries(derived.spec.axesToPerm)) {
    if (axes.some((p) => p !== null)) lines.push(`  ${t}: [${axes.map((p) => p ?? '-').join(', ')}]`);
  }
  if (lines.length === 0) lines.push('  (no permutations)');
  for (const [p, tap] of Object.entries(derived.taps)) lines.push(`  tap ${p}: ${tap.value} axis ${tap.axis}`);
  for (const u of derived.unsupported) lines.push(`  unsupported ${u.node}${u.followOn ? ' (follow-on)' : ''}: ${u.why}`);
  for (const f of derived.fixed) lines.push(`  fixed ${f.axes.map((a) => `${a.tensor}:${a.axis}`).join(' ')}: ${f.reason}`);
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------------------
// The check: derive, permute, run both in ONNX Runtime, compare

/**
 * ok: outputs unchanged (or nothing to permute); refused: the walk threw an InputError (acceptable);
 * changed: an output changed under the permutations (the bug this hunts); bad-tap: a tap does not carry its
 * permutation; invalid-spec: validateSpec rejects the derived spec; crash: the walk threw something other
 * than an InputError; generator: ONNX Runtime refused the generated model (a bug of this generator).
 */
export type CheckOutcome = 'ok' | 'refused' | 'changed' | 'bad-tap' | 'invalid-spec' | 'crash' | 'generator';

export interface GraphCheck {
  readonly seed: number;
  readonly outcome: CheckOutcome;
  /** Permutations of more than one unit in the derived spec. */
  readonly permutations: number;
  /** The walk left nodes it does not understand out (a partial spec). */
  readonly partial: boolean;
  readonly patterns: readonly string[];
  /** One line: what went wrong (empty when ok). */
  readonly summary: string;
  /** Everything needed to reproduce a failure: seed, graph, spec, worst difference. */
  readonly report: string;
}

/** Outcomes that are bugs (of the walk, or of this generator). */
export const FAILING: ReadonlySet<CheckOutcome> = new Set(['changed', 'bad-tap', 'invalid-spec', 'crash', 'generator']);

interface Output {
  readonly dims: readonly number[];
  readonly data: Float32Array;
}

// Graph optimisations off: the check is about the spec, not ORT's rewrites, and onnxruntime-node 1.30 at level
// 'basic' and above segfaults on some valid graphs here (seed 631: a Gemm output that is also a graph output
// and feeds a Transpose pair). One thread: the graphs are tiny, and session start-up dominates. Errors come
// back in the check's report, so ORT's own log stays quiet.
const SESSION_OPTIONS: ort.InferenceSession.SessionOptions = { intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: 'disabled', logSeverityLevel: 4 };

/** The model with extra graph outputs (float32, shape left to the runtime). */
function withOutputs(model: OnnxModel, names: readonly string[]): OnnxModel {
  const g = model.proto.graph!;
  const have = new Set((g.output ?? []).map((o) => o.name));
  const extra = names.filter((name) => !have.has(name)).map((name) => valueInfo(name, 1, null));
  if (extra.length === 0) return model;
  return onnxModelFromObject({ ...model.proto, graph: { ...g, output: [...(g.output ?? []), ...extra] } }, model.label);
}

async function runModel(model: OnnxModel, feeds: Record<string, ort.Tensor>): Promise<Record<string, Output>> {
  const session = await ort.InferenceSession.create(serializeOnnx(model), SESSION_OPTIONS);
  try {
    const out = await session.run(feeds);
    const res: Record<string, Output> = {};
    for (const [k, v] of Object.entries(out)) res[k] = { dims: v.dims, data: v.data as Float32Array };
    return res;
  } finally {
    await session.release();
  }
}


/** Largest |a - b| (Infinity where exactly one is NaN), and the tolerance: 1e-4 of the output's magnitude, at least 1e-4. */
function compare(a: Float32Array, b: Float32Array): { diff: number; tol: number; magnitude: number } {
  let diff = 0;
  let magnitude = 0;
  for (let i = 0; i < a.length; i++) {
    if (Number.isNaN(a[i]) !== Number.isNaN(b[i])) diff = Infinity;
    else if (!Number.isNaN(a[i])) diff = Math.max(diff, Math.abs(a[i] - b[i]));
    if (Number.isFinite(a[i])) magnitude = Math.max(magnitude, Math.abs(a[i]));
  }
  return { diff, tol: 1e-4 * Math.max(1, magnitude), magnitude };
}

const fmtPerms = (perms: Perms): string =>
  Object.entries(perms)
    .map(([p, v]) => `${p}=[${[...v].join(',')}]`)
    .join(' ');

/**
 * Generates the graph of `seed`, derives its spec (default, non-strict), applies two sets of random
 * permutations and requires every graph output to stay the same in ONNX Runtime, and every tap to carry
 * its permutation. Never throws: problems come back as the outcome.
 */
export async function checkRandomGraph(seed: number, options: RandomGraphOptions = {}): Promise<GraphCheck> {
  let g: RandomGraph;
  try {
    g = randomOnnxGraph(seed, options);
  } catch (e) {
    const msg = `generator threw: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`;
    return { seed, outcome: 'generator', permutations: 0, partial: false, patterns: [], summary: msg.split('\n')[0], report: `seed ${seed}: ${msg}` };
  }
  const { model, params, patterns } = g;
  const feeds: Record<string, ort.Tensor> = {};
  for (const i of g.inputs) feeds[i.name] = new ort.Tensor(i.dtype, i.data, [...i.shape]);
  const header = (what: string): string => `seed ${seed}: ${what}\npatterns: ${patterns.join(' ')}\ngraph:\n${describeGraph(model)}`;
  const result = (outcome: CheckOutcome, summary: string, report: string, derived: OnnxSpec | null = null, permutations = 0): GraphCheck => ({
    seed,
    outcome,
    permutations,
    partial: derived !== null && derived.unsupported.length > 0,
    patterns,
    summary,
    report,
  });

  let derived: OnnxSpec | null = null;
  let refusal: string | null = null;
  try {
    derived = specFromOnnx(model);
  } catch (e) {
    if (!isInputError(e)) {
      const msg = `specFromOnnx threw ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`;
      return result('crash', msg.split('\n')[0], header(msg));
    }
    refusal = e.message;
  }
  const tapValues = derived === null ? [] : [...new Set(Object.values(derived.taps).map((t) => t.value))];
  const probed = withOutputs(model, tapValues);
  let original: Record<string, Output>;
  try {
    // Refused graphs are run too: every generated graph must be valid.
    original = await runModel(probed, feeds);
  } catch (e) {
    const msg = `ONNX Runtime refused the generated model (a generator bug): ${e instanceof Error ? e.message : String(e)}`;
    return result('generator', msg.split('\n')[0], header(msg), derived);
  }
  if (derived === null) return result('refused', refusal ?? '', header(`refused: ${refusal ?? ''}`));

  try {
    validateSpec(derived.spec, { label: model.label, params });
  } catch (e) {
    const msg = `validateSpec rejects the derived spec: ${e instanceof Error ? e.message : String(e)}`;
    return result('invalid-spec', msg, `${header(msg)}\nspec:\n${describeSpec(derived)}`, derived);
  }
  const sizes = permSizes(derived.spec, params);
  const permutations = Object.values(sizes).filter((s) => s > 1).length;
  if (Object.keys(sizes).length === 0) return result('ok', '', '', derived, 0);

  const outputs = model.graph.outputs.map((o) => o.name);
  for (const permSeed of [seed * 2 + 1, seed * 2 + 2]) {
    // Head groups get head-structured permutations (heads whole, moved alike), as the spec allows.
    const perms = randomSpecPerms(derived.spec, sizes, permSeed);
    let permuted: Record<string, Output>;
    try {
      permuted = await runModel(withInitializers(probed, applyPermutation(derived.spec, perms, params)), feeds);
    } catch (e) {
      const msg = `the permuted model does not run: ${e instanceof Error ? e.message : String(e)}`;
      return result('changed', msg, `${header(msg)}\nspec:\n${describeSpec(derived)}`, derived, permutations);
    }
    const describe = (what: string): string =>
      `${header(what)}\nspec:\n${describeSpec(derived)}\npermutations (seed ${permSeed}): ${fmtPerms(perms)}`;
    // The worst output, by how far past its tolerance it is.
    let worst: { name: string; diff: number; tol: number; magnitude: number } | null = null;
    for (const name of outputs) {
      const [a, b] = [original[name], permuted[name]];
      const c = a.dims.join() === b.dims.join() ? compare(a.data, b.data) : { diff: Infinity, tol: 0, magnitude: 0 };
      if (c.diff > c.tol && (worst === null || c.diff / Math.max(c.tol, 1e-30) > worst.diff / Math.max(worst.tol, 1e-30))) worst = { name, ...c };
    }
    if (worst !== null) {
      const what = `output '${worst.name}' changed by ${worst.diff.toPrecision(3)} (tolerance ${worst.tol.toPrecision(3)}, |output| up to ${worst.magnitude.toPrecision(3)}) under permutation seed ${permSeed}`;
      return result('changed', what, describe(what), derived, permutations);
    }
    for (const [p, tap] of Object.entries(derived.taps)) {
      const [a, b] = [original[tap.value], permuted[tap.value]];
      const c = compare(gather(a, perms[p], tap.axis), b.data);
      if (c.diff > c.tol) {
        const what = `tap '${tap.value}' axis ${tap.axis} does not carry permutation '${p}' (diff ${c.diff.toPrecision(3)}, tolerance ${c.tol.toPrecision(3)})`;
        return result('bad-tap', what, describe(what), derived, permutations);
      }
    }
  }
  return result('ok', '', '', derived, permutations);
}

export interface FuzzTally {
  readonly graphs: number;
  readonly withPermutations: number;
  readonly partial: number;
  readonly refused: number;
  readonly failing: readonly GraphCheck[];
}

export function tally(checks: readonly GraphCheck[]): FuzzTally {
  return {
    graphs: checks.length,
    withPermutations: checks.filter((c) => c.permutations > 0).length,
    partial: checks.filter((c) => c.partial).length,
    refused: checks.filter((c) => c.outcome === 'refused').length,
    failing: checks.filter((c) => FAILING.has(c.outcome)),
  };
}

/** One line: graphs, how many have a permutation of > 1 unit, partial specs, refusals, failures by seed. */
export function summaryLine(t: FuzzTally): string {
  const pct = (k: number): string => `${((100 * k) / Math.max(1, t.graphs)).toFixed(0)}%`;
  const listed = t.failing.slice(0, 20).map((c) => `${c.seed}:${c.outcome}`).join(' ');
  const fails = t.failing.length === 0 ? 'no failures' : `${t.failing.length} failing (seeds ${listed}${t.failing.length > 20 ? ' ...' : ''})`;
  return `${t.graphs} graphs: ${t.withPermutations} with permutations (${pct(t.withPermutations)}), ${t.partial} partial, ${t.refused} refused; ${fails}`;
}
