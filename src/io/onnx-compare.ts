/**
 * Do two ONNX models compute the same function of their weights? rebasin derives the permutation spec from
 * model A's graph and applies it to B (and averages B's initializers into A's graph when merging), which is
 * only right when B's graph is A's: the same nodes in the same order (op type, domain, inputs, outputs,
 * attributes, subgraphs of If/Loop/Scan recursively), the same graph inputs and outputs, the same
 * initializers (names, dtypes, shapes; the values of non-float ones such as Reshape targets), the same opsets
 * and model-local functions. Node names, doc strings, value_info and metadata do not change what a graph
 * computes and are not compared; symbolic dimension names neither.
 *
 * Float values held in the graph itself rather than in initializers (Constant nodes' tensors, float tensor
 * attributes, initializers of subgraphs) may differ between two checkpoints of one architecture. They are
 * reported apart (`constant`): harmless where each model keeps its own graph (align writes B's graph with
 * B's constants), wrong where models are averaged, since averaging reaches only the top-level initializers.
 *
 * Browser-safe: no Node modules.
 */
import { InputError } from '../errors.js';
import { sameBits } from '../tensor.js';
import { AttributeType, DataLocation } from './onnx-schema.js';
import {
  type AttributeProto,
  type GraphProto,
  type Int64,
  type NodeProto,
  type OnnxModel,
  type TensorProto,
  type ValueInfoProto,
  decodeTensor,
  dtypeOf,
  isFloatDtype,
} from './onnx.js';

/** One difference between two graphs: where it is and what differs, in words ("A" and "B" name the models). */
export interface OnnxGraphDifference {
  /**
   * 'structure': the graphs differ in what they compute (nodes, attributes, inputs, initializer shapes, ...).
   * 'constant': only float values held in the graph itself differ (Constant nodes, float tensor attributes,
   * subgraph initializers); each model's graph still computes its own function.
   */
  readonly kind: 'structure' | 'constant';
  /** e.g. "node #2 '/fc2/Gemm' (Gemm)", "Constant node '/Constant_1'", "graph input #0". */
  readonly where: string;
  /** e.g. "attribute 'transB' is 1 in A, 0 in B". */
  readonly detail: string;
}

export interface OnnxComparison {
  /** The first structural difference, or null when the graphs are the same. */
  readonly structure: OnnxGraphDifference | null;
  /** The first difference of float values held in the graph (see OnnxGraphDifference.kind), or null. */
  readonly constant: OnnxGraphDifference | null;
}

/** Compare B's graph with A's (see the file header for what counts). Never throws for well-formed models. */
export function compareOnnxGraphs(a: OnnxModel, b: OnnxModel): OnnxComparison {
  const c = new Comparer(a.label, b.label);
  c.model(a, b);
  return { structure: c.structure, constant: c.constant };
}

/**
 * Throws an InputError naming both files and the first difference when B's graph is not A's. With
 * `averages` (merge, interpolation), float values held in the graph itself must be equal too, since only
 * initializers are averaged; without it (align: B keeps its own graph) they may differ.
 */
export function assertSameOnnxGraph(a: OnnxModel, b: OnnxModel, options: { averages: boolean }): void {
  const { structure, constant } = compareOnnxGraphs(a, b);
  if (structure !== null) {
    throw new InputError(
      `${b.label} (B) does not have the graph of ${a.label} (A): ${structure.where}: ${structure.detail}; rebasin needs models of one architecture exported the same way`,
    );
  }
  if (constant !== null && options.averages) {
    throw new InputError(
      `${a.label} (A), ${b.label} (B): weights held in ${constant.where} differ between A and B (${constant.detail}); rebasin averages only initializers, so the result would keep A's values (export with the constants as initializers, e.g. torch.onnx.export(..., do_constant_folding=False))`,
    );
  }
}

// ---------------------------------------------------------------------------------------------------------

/** Thrown inside the comparer to stop at the first structural difference. */
class Stop {
  constructor(readonly diff: OnnxGraphDifference) {}
}

const q = (s: string): string => `'${s}'`;

function num(v: Int64 | undefined | null): number {
  if (v === undefined || v === null) return 0;
  return typeof v === 'number' ? v : v.toNumber();
}

function sameList<T>(x: readonly T[], y: readonly T[], eq: (a: T, b: T) => boolean = (a, b) => a === b): boolean {
  return x.length === y.length && x.every((v, i) => eq(v, y[i]));
}

/** NaN equals NaN; -0 and 0 differ (as their bits do). */
const sameNumber = (x: number, y: number): boolean => Object.is(x, y);

function short(v: unknown): string {
  const s = typeof v === 'string' ? JSON.stringify(v) : Array.isArray(v) ? `[${v.map((x) => short(x)).join(', ')}]` : String(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/**
 * A canonical, JSON-able form of a decoded protobuf message, for the parts compared as a whole (model-local
 * functions, sparse tensors, type protos): own fields that are set, int64 as strings, bytes as hex.
 */
function canonical(v: unknown): unknown {
  if (v === null || v === undefined) return null;
  if (v instanceof Uint8Array) return Array.from(v, (b) => b.toString(16).padStart(2, '0')).join('');
  if (Array.isArray(v)) return v.map(canonical);
  if (typeof v === 'object') {
    const o = v as Record<string, unknown>;
    if (typeof o.low === 'number' && typeof o.high === 'number' && typeof (o as { toString?: unknown }).toString === 'function' && 'unsigned' in o) {
      return String(o);
    }
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(o).sort()) {
      const x = o[k];
      if (x === null || x === undefined || (Array.isArray(x) && x.length === 0)) continue;
      out[k] = canonical(x);
    }
    const unknowns = (o as { $unknowns?: unknown }).$unknowns;
    if (Array.isArray(unknowns) && unknowns.length > 0) out.$unknowns = canonical(unknowns);
    return out;
  }
  return v;
}

const sameCanonical = (x: unknown, y: unknown): boolean => JSON.stringify(canonical(x)) === JSON.stringify(canonical(y));

/** A value's type in words: "float32 [N, 784]" (symbolic dims shown by name, compared as "some size"). */
function typeText(v: ValueInfoProto): string {
  const tt = v.type?.tensor_type;
  if (tt === undefined || tt === null) return v.type ? 'non-tensor' : 'untyped';
  const dtype = tt.elem_type === undefined || tt.elem_type === null ? '?' : dtypeOf(tt.elem_type);
  const dims = tt.shape ? `[${(tt.shape.dim ?? []).map((d) => (d.dim_param ? d.dim_param : d.dim_value !== undefined && d.dim_value !== null ? String(num(d.dim_value)) : '?')).join(', ')}]` : '(no shape)';
  return `${dtype} ${dims}`;
}

/** The type as compared: dtype, rank and fixed sizes; every symbolic dimension counts as the same. */
function typeKey(v: ValueInfoProto): string {
  const t = v.type;
  if (t === undefined || t === null) return 'untyped';
  const tt = t.tensor_type;
  if (tt === undefined || tt === null) return JSON.stringify(canonical(t));
  const dims = tt.shape ? (tt.shape.dim ?? []).map((d) => (d.dim_value !== undefined && d.dim_value !== null && !d.dim_param ? String(num(d.dim_value)) : '?')) : null;
  return JSON.stringify([tt.elem_type ?? null, dims]);
}

function nodeText(n: NodeProto, index: number): string {
  return `node #${index} ${n.name ? q(n.name) : '<unnamed>'} (${n.domain ? `${n.domain}.` : ''}${n.op_type ?? '?'})`;
}

function dimsOf(t: TensorProto): number[] {
  return (t.dims ?? []).map(num);
}

function tensorType(t: TensorProto): string {
  return `${dtypeOf(t.data_type ?? 0)} [${dimsOf(t).join(', ')}]`;
}

class Comparer {
  structure: OnnxGraphDifference | null = null;
  constant: OnnxGraphDifference | null = null;

  constructor(
    private readonly labelA: string,
    private readonly labelB: string,
  ) {}

  private fail(where: string, detail: string): never {
    throw new Stop({ kind: 'structure', where, detail });
  }

  private constantDiff(where: string, detail: string): void {
    this.constant ??= { kind: 'constant', where, detail };
  }

  model(a: OnnxModel, b: OnnxModel): void {
    try {
      const pa = a.proto;
      const pb = b.proto;
      this.graph(pa.graph ?? {}, pb.graph ?? {}, '', true);
      const opsets = (m: OnnxModel): string => m.opsets.map((o) => `${o.domain || 'ai.onnx'} ${o.version}`).sort().join(', ');
      if (opsets(a) !== opsets(b)) this.fail('opset imports', `${opsets(a)} in A, ${opsets(b)} in B`);
      const fa = (pa as { functions?: unknown[] }).functions ?? [];
      const fb = (pb as { functions?: unknown[] }).functions ?? [];
      if (!sameCanonical(fa, fb)) this.fail('model-local functions', `${fa.length} in A, ${fb.length} in B${fa.length === fb.length ? ', with different bodies' : ''}`);
      const ta = (pa as { training_info?: unknown[] }).training_info ?? [];
      const tb = (pb as { training_info?: unknown[] }).training_info ?? [];
      if (!sameCanonical(ta, tb)) this.fail('training_info', 'differs');
    } catch (e) {
      if (!(e instanceof Stop)) throw e;
      this.structure = e.diff;
    }
  }

  /** `prefix` locates a subgraph ("node #3 'If_0' (If), attribute 'then_branch': "); '' for the main graph. */
  private graph(ga: GraphProto, gb: GraphProto, prefix: string, top: boolean): void {
    const na = ga.node ?? [];
    const nb = gb.node ?? [];
    const n = Math.min(na.length, nb.length);
    for (let i = 0; i < n; i++) this.node(na[i], nb[i], i, prefix);
    if (na.length !== nb.length) {
      const where = `${prefix}node #${n}`;
      if (na.length > nb.length) this.fail(where, `B ends after ${nb.length} nodes, A goes on with ${nodeText(na[n], n)} (${na.length} nodes in all)`);
      this.fail(where, `A ends after ${na.length} nodes, B has an extra ${nodeText(nb[n], n)} (${nb.length} nodes in all)`);
    }
    this.values(ga.input ?? [], gb.input ?? [], `${prefix}graph input`);
    this.values(ga.output ?? [], gb.output ?? [], `${prefix}graph output`);
    this.initializers(ga, gb, prefix, top);
    const sparse = (g: GraphProto): unknown => (g as { sparse_initializer?: unknown[] }).sparse_initializer ?? [];
    if (!sameCanonical(sparse(ga), sparse(gb))) this.fail(`${prefix}sparse initializers`, 'differ');
  }

  private values(va: readonly ValueInfoProto[], vb: readonly ValueInfoProto[], what: string): void {
    if (va.length !== vb.length) {
      this.fail(`${what}s`, `A has ${va.length} (${va.map((v) => q(v.name ?? '')).join(', ')}), B has ${vb.length} (${vb.map((v) => q(v.name ?? '')).join(', ')})`);
    }
    va.forEach((x, i) => {
      const y = vb[i];
      if ((x.name ?? '') !== (y.name ?? '')) this.fail(`${what} #${i}`, `named ${q(x.name ?? '')} in A, ${q(y.name ?? '')} in B`);
      if (typeKey(x) !== typeKey(y)) this.fail(`${what} ${q(x.name ?? '')}`, `${typeText(x)} in A, ${typeText(y)} in B`);
    });
  }

  private initializers(ga: GraphProto, gb: GraphProto, prefix: string, top: boolean): void {
    const la = ga.initializer ?? [];
    const lb = gb.initializer ?? [];
    const byName = new Map(lb.map((t) => [t.name ?? '', t] as const));
    const namesA = new Set(la.map((t) => t.name ?? ''));
    const extra = lb.find((t) => !namesA.has(t.name ?? ''));
    for (const ta of la) {
      const name = ta.name ?? '';
      const tb = byName.get(name);
      const where = `${prefix}initializer ${q(name)}`;
      if (tb === undefined) this.fail(where, `is in A but not in B${extra !== undefined ? ` (B has ${q(extra.name ?? '')} instead)` : ''}`);
      if (tensorType(ta) !== tensorType(tb)) this.fail(where, `is ${tensorType(ta)} in A, ${tensorType(tb)} in B`);
      // Top-level float initializers are the weights: their values are what differs between checkpoints.
      if (top && isFloatDtype(dtypeOf(ta.data_type ?? 0))) continue;
      this.tensorValues(ta, tb, where, top ? null : `${prefix}initializer ${q(name)}`);
    }
    if (extra !== undefined) this.fail(`${prefix}initializer ${q(extra.name ?? '')}`, 'is in B but not in A');
  }

  /**
   * Compares the values of two tensors of one dtype and shape. Float values differing is a `constant`
   * difference when `constantWhere` is given (values held in the graph), structural otherwise.
   */
  private tensorValues(ta: TensorProto, tb: TensorProto, where: string, constantWhere: string | null): void {
    const dtype = dtypeOf(ta.data_type ?? 0);
    const external = (t: TensorProto): boolean => t.data_location === DataLocation.EXTERNAL;
    if (external(ta) || external(tb)) {
      // Only the file reference is in the graph; compare what is there.
      if (!sameCanonical(ta.external_data, tb.external_data)) this.fail(where, 'refers to different external data in A and B');
      return;
    }
    const va = decodeTensor(ta, this.labelA);
    const vb = decodeTensor(tb, this.labelB);
    let first = -1;
    if (va.data instanceof Float32Array && vb.data instanceof Float32Array) {
      if (dtype === 'float64') first = firstDifference(float64Values(ta), float64Values(tb));
      else if (!sameBits(va.data, vb.data)) first = firstDifference(Array.from(va.data), Array.from(vb.data));
    } else if (Array.isArray(va.data) && Array.isArray(vb.data)) {
      first = firstDifference(va.data as readonly (number | string)[], vb.data as readonly (number | string)[]);
    } else if (!sameCanonical(storage(ta), storage(tb))) {
      first = 0;
    }
    if (first < 0) return;
    const at = (v: typeof va): string => {
      if (dtype === 'float64') return String(float64Values(v === va ? ta : tb)[first]);
      if (v.data instanceof Float32Array) return float32Text(v.data[first]);
      return Array.isArray(v.data) ? short(v.data[first]) : '?';
    };
    const detail = `${va.data === null ? 'values differ' : `first at flat index ${first}: ${at(va)} in A, ${at(vb)} in B`}`;
    if (constantWhere !== null && isFloatDtype(dtype)) this.constantDiff(constantWhere, detail);
    else this.fail(where, `holds different values (${detail})`);
  }

  private node(a: NodeProto, b: NodeProto, index: number, prefix: string): void {
    const where = `${prefix}${nodeText(a, index)}`;
    if ((a.op_type ?? '') !== (b.op_type ?? '') || (a.domain ?? '') !== (b.domain ?? '')) {
      this.fail(`${prefix}node #${index}`, `${nodeText(a, index).replace(/^node #\d+ /, '')} in A, ${nodeText(b, index).replace(/^node #\d+ /, '')} in B`);
    }
    const overload = (n: NodeProto): string => (n as { overload?: string }).overload ?? '';
    if (overload(a) !== overload(b)) this.fail(where, `calls overload ${q(overload(a))} in A, ${q(overload(b))} in B`);
    const ia = a.input ?? [];
    const ib = b.input ?? [];
    if (!sameList(ia, ib)) this.fail(where, `reads [${ia.map(q).join(', ')}] in A, [${ib.map(q).join(', ')}] in B`);
    const oa = a.output ?? [];
    const ob = b.output ?? [];
    if (!sameList(oa, ob)) this.fail(where, `writes [${oa.map(q).join(', ')}] in A, [${ob.map(q).join(', ')}] in B`);
    const attrs = (n: NodeProto): Map<string, AttributeProto> => new Map((n.attribute ?? []).map((x) => [x.name ?? '', x] as const));
    const aa = attrs(a);
    const ab = attrs(b);
    for (const [name, x] of aa) {
      const y = ab.get(name);
      if (y === undefined) this.fail(where, `attribute ${q(name)} is ${attrText(x)} in A, not set in B`);
      this.attribute(a, index, name, x, y, where, prefix);
    }
    for (const [name, y] of ab) if (!aa.has(name)) this.fail(where, `attribute ${q(name)} is not set in A, ${attrText(y)} in B`);
  }

  private attribute(node: NodeProto, index: number, name: string, x: AttributeProto, y: AttributeProto, where: string, prefix: string): void {
    const what = `attribute ${q(name)}`;
    const type = x.type ?? 0;
    if (type !== (y.type ?? 0)) this.fail(where, `${what} is of type ${type} in A, ${y.type ?? 0} in B`);
    if ((x.ref_attr_name ?? '') !== (y.ref_attr_name ?? '')) this.fail(where, `${what} refers to ${q(x.ref_attr_name ?? '')} in A, ${q(y.ref_attr_name ?? '')} in B`);
    const isConstant = (node.op_type ?? '') === 'Constant' && (node.domain ?? '') === '';
    const holder = isConstant ? `${prefix}Constant node ${node.name ? q(node.name) : `#${index}`}` : `${prefix}${nodeText(node, index)}, ${what}`;
    const differ = (ax: string, bx: string): never => this.fail(where, `${what} is ${ax} in A, ${bx} in B`);
    switch (type) {
      case AttributeType.FLOAT:
        if (!sameNumber(x.f ?? 0, y.f ?? 0)) {
          // A Constant's value_float is a weight held in the graph; any other float attribute (alpha, epsilon) is structure.
          if (isConstant) this.constantDiff(holder, `${what} is ${float32Text(x.f ?? 0)} in A, ${float32Text(y.f ?? 0)} in B`);
          else differ(float32Text(x.f ?? 0), float32Text(y.f ?? 0));
        }
        return;
      case AttributeType.FLOATS: {
        const fa = x.floats ?? [];
        const fb = y.floats ?? [];
        if (fa.length !== fb.length) differ(`${fa.length} floats`, `${fb.length} floats`);
        const i = firstDifference(fa, fb);
        if (i >= 0) {
          if (isConstant) this.constantDiff(holder, `${what}, first at index ${i}: ${float32Text(fa[i])} in A, ${float32Text(fb[i])} in B`);
          else differ(`[${fa.map(float32Text).join(', ')}]`, `[${fb.map(float32Text).join(', ')}]`);
        }
        return;
      }
      case AttributeType.INT:
        if (num(x.i) !== num(y.i)) differ(String(num(x.i)), String(num(y.i)));
        return;
      case AttributeType.INTS: {
        const ia = (x.ints ?? []).map(num);
        const ib = (y.ints ?? []).map(num);
        if (!sameList(ia, ib)) differ(short(ia), short(ib));
        return;
      }
      case AttributeType.STRING: {
        const dec = new TextDecoder();
        const sa = dec.decode(x.s ?? new Uint8Array(0));
        const sb = dec.decode(y.s ?? new Uint8Array(0));
        if (sa !== sb) differ(short(sa), short(sb));
        return;
      }
      case AttributeType.STRINGS: {
        const dec = new TextDecoder();
        const sa = (x.strings ?? []).map((s) => dec.decode(s));
        const sb = (y.strings ?? []).map((s) => dec.decode(s));
        if (!sameList(sa, sb)) differ(short(sa), short(sb));
        return;
      }
      case AttributeType.TENSOR:
        this.attrTensor(x.t, y.t, where, what, holder);
        return;
      case AttributeType.TENSORS: {
        const ta = x.tensors ?? [];
        const tb = y.tensors ?? [];
        if (ta.length !== tb.length) differ(`${ta.length} tensors`, `${tb.length} tensors`);
        ta.forEach((t, i) => this.attrTensor(t, tb[i], where, `${what}[${i}]`, isConstant ? holder : `${holder}[${i}]`));
        return;
      }
      case AttributeType.GRAPH:
        this.subgraph(x.g, y.g, `${where}, ${what}: `, where, what);
        return;
      case AttributeType.GRAPHS: {
        const ga = x.graphs ?? [];
        const gb = y.graphs ?? [];
        if (ga.length !== gb.length) differ(`${ga.length} graphs`, `${gb.length} graphs`);
        ga.forEach((g, i) => this.subgraph(g, gb[i], `${where}, ${what}[${i}]: `, where, `${what}[${i}]`));
        return;
      }
      default:
        // Sparse tensors, type protos, attribute references and types this schema does not know: as a whole.
        if (!sameCanonical(x, y)) this.fail(where, `${what} differs`);
    }
  }

  private attrTensor(ta: TensorProto | undefined, tb: TensorProto | undefined, where: string, what: string, holder: string): void {
    if (ta === undefined || ta === null || tb === undefined || tb === null) {
      if ((ta ?? null) !== (tb ?? null)) this.fail(where, `${what} is set in only one of A and B`);
      return;
    }
    if (tensorType(ta) !== tensorType(tb)) this.fail(where, `${what} is ${tensorType(ta)} in A, ${tensorType(tb)} in B`);
    // Float tensors held in the graph (a Constant's value, ConstantOfShape's fill) may be weights; others are structure.
    this.tensorValues(ta, tb, `${where}, ${what}`, holder);
  }

  private subgraph(ga: GraphProto | undefined, gb: GraphProto | undefined, prefix: string, where: string, what: string): void {
    if (ga === undefined || ga === null || gb === undefined || gb === null) {
      if ((ga ?? null) !== (gb ?? null)) this.fail(where, `${what} is set in only one of A and B`);
      return;
    }
    this.graph(ga, gb, prefix, false);
  }
}

function attrText(x: AttributeProto): string {
  switch (x.type ?? 0) {
    case AttributeType.FLOAT:
      return float32Text(x.f ?? 0);
    case AttributeType.INT:
      return String(num(x.i));
    case AttributeType.STRING:
      return short(new TextDecoder().decode(x.s ?? new Uint8Array(0)));
    case AttributeType.INTS:
      return short((x.ints ?? []).map(num));
    case AttributeType.FLOATS:
      return short([...(x.floats ?? [])]);
    default:
      return 'set';
  }
}

/** Index of the first entry that differs (NaN equals NaN), or -1; a length difference counts at the shorter length. */
function firstDifference(x: ArrayLike<number | string>, y: ArrayLike<number | string>): number {
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) {
    const [u, v] = [x[i], y[i]];
    if (typeof u === 'number' && typeof v === 'number' ? !sameNumber(u, v) : u !== v) return i;
  }
  return x.length === y.length ? -1 : n;
}

/** The shortest decimal that reads back as the same float32 (0.7, not 0.699999988079071). */
function float32Text(x: number | undefined): string {
  if (x === undefined || !Number.isFinite(x)) return String(x);
  for (let p = 1; p < 10; p++) {
    const s = x.toPrecision(p);
    if (Math.fround(Number(s)) === x) return String(Number(s));
  }
  return String(x);
}

/** A float64 tensor's values at full precision (decodeTensor rounds them to float32). */
function float64Values(t: TensorProto): number[] {
  const raw = t.raw_data;
  if (raw !== undefined && raw !== null && raw.length > 0) {
    const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    return Array.from({ length: Math.floor(raw.length / 8) }, (_, i) => dv.getFloat64(8 * i, true));
  }
  return [...(t.double_data ?? [])];
}

/** The fields holding a tensor's values, for dtypes decodeTensor does not decode. */
function storage(t: TensorProto): unknown {
  return [t.raw_data, t.float_data, t.int32_data, t.int64_data, t.double_data, t.uint64_data, t.string_data];
}
