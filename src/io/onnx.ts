/**
 * ONNX models in memory: decode a ModelProto, read its float initializers as float32 Params, replace them,
 * and encode the model again. Browser-safe (Uint8Array in, Uint8Array out); files live in onnx-file.ts.
 *
 * The model is decoded with the complete ModelProto schema (onnx-schema.ts) and with protobufjs told to keep
 * unknown fields, so a decode → encode round trip writes back everything, including fields of newer ONNX
 * versions; replacing weights touches only the initializer TensorProtos whose values changed.
 */
import { concatBytes } from './bytes.js';
import protobuf from 'protobufjs';
import { InputError } from '../errors.js';
import type { Params, Tensor } from '../tensor.js';
import { sameBits, shapeToString } from '../tensor.js';
import { type FloatDtype, decodeBF16Bits, decodeF16Bits, decodeFloat, encodeFloat } from './dtype.js';
import { AttributeType, DataLocation, DataType, ONNX_PROTO } from './onnx-schema.js';

// ---------------------------------------------------------------------------------------------------------
// Decoded protobuf messages (snake_case field names, as in onnx.proto). int64 fields arrive as Long objects.

/** An int64 as protobufjs gives it: a Long (from the `long` package) or, in objects we build, a number. */
export type Int64 = number | { readonly low: number; readonly high: number; readonly unsigned: boolean; toNumber(): number };

export interface StringStringEntryProto {
  readonly key?: string;
  readonly value?: string;
}
export interface TensorProto {
  readonly dims?: readonly Int64[];
  readonly data_type?: number;
  readonly segment?: { readonly begin?: Int64; readonly end?: Int64 };
  readonly float_data?: readonly number[];
  readonly int32_data?: readonly number[];
  readonly string_data?: readonly Uint8Array[];
  readonly int64_data?: readonly Int64[];
  readonly name?: string;
  readonly doc_string?: string;
  readonly raw_data?: Uint8Array;
  readonly external_data?: readonly StringStringEntryProto[];
  readonly data_location?: number;
  readonly double_data?: readonly number[];
  readonly uint64_data?: readonly Int64[];
}
export interface TensorShapeProto {
  readonly dim?: readonly { readonly dim_value?: Int64; readonly dim_param?: string; readonly denotation?: string }[];
}
export interface TypeProto {
  readonly tensor_type?: { readonly elem_type?: number; readonly shape?: TensorShapeProto };
  readonly denotation?: string;
}
export interface ValueInfoProto {
  readonly name?: string;
  readonly type?: TypeProto;
  readonly doc_string?: string;
}
export interface AttributeProto {
  readonly name?: string;
  readonly ref_attr_name?: string;
  readonly type?: number;
  readonly f?: number;
  readonly i?: Int64;
  readonly s?: Uint8Array;
  readonly t?: TensorProto;
  readonly g?: GraphProto;
  readonly floats?: readonly number[];
  readonly ints?: readonly Int64[];
  readonly strings?: readonly Uint8Array[];
  readonly tensors?: readonly TensorProto[];
  readonly graphs?: readonly GraphProto[];
}
export interface NodeProto {
  readonly input?: readonly string[];
  readonly output?: readonly string[];
  readonly name?: string;
  readonly op_type?: string;
  readonly domain?: string;
  readonly attribute?: readonly AttributeProto[];
}
export interface GraphProto {
  readonly node?: readonly NodeProto[];
  readonly name?: string;
  readonly initializer?: readonly TensorProto[];
  readonly input?: readonly ValueInfoProto[];
  readonly output?: readonly ValueInfoProto[];
  readonly value_info?: readonly ValueInfoProto[];
}
export interface OperatorSetIdProto {
  readonly domain?: string;
  readonly version?: Int64;
}
export interface ModelProto {
  readonly ir_version?: Int64;
  readonly opset_import?: readonly OperatorSetIdProto[];
  readonly producer_name?: string;
  readonly producer_version?: string;
  readonly domain?: string;
  readonly model_version?: Int64;
  readonly doc_string?: string;
  readonly graph?: GraphProto;
  readonly metadata_props?: readonly StringStringEntryProto[];
}

// ---------------------------------------------------------------------------------------------------------
// Plain views for the rest of rebasin.

export type OnnxFloatDtype = 'float32' | 'float16' | 'bfloat16' | 'float64';
export type OnnxDtype =
  | OnnxFloatDtype
  | 'undefined' | 'uint8' | 'int8' | 'uint16' | 'int16' | 'int32' | 'int64' | 'string' | 'bool'
  | 'uint32' | 'uint64' | 'complex64' | 'complex128'
  | 'float8e4m3fn' | 'float8e4m3fnuz' | 'float8e5m2' | 'float8e5m2fnuz' | 'uint4' | 'int4'
  | 'unknown';

/** Where an initializer's bytes live when they are outside the model file. */
export interface OnnxExternalRef {
  readonly location: string;
  readonly offset: number;
  /** null when the entry has no length: the data runs to the end of the file. */
  readonly length: number | null;
}

export interface OnnxInitializer {
  readonly name: string;
  /** Position in graph.initializer. */
  readonly index: number;
  readonly dtype: OnnxDtype;
  /** TensorProto.DataType code. */
  readonly dataType: number;
  readonly shape: readonly number[];
  readonly external: OnnxExternalRef | null;
}

/** A dimension: a size, a symbolic name (dim_param), or null when neither is given. */
export type OnnxDim = number | string | null;

export interface OnnxValueInfo {
  readonly name: string;
  /** null when the value is not a tensor (sequence, map, ...) or has no element type. */
  readonly dtype: OnnxDtype | null;
  /** null when no shape is recorded (unknown rank). */
  readonly shape: readonly OnnxDim[] | null;
}

/** A tensor-valued attribute or a decoded constant. `data` is null where we do not decode the dtype. */
export interface OnnxTensorValue {
  readonly kind: 'tensor';
  readonly name: string;
  readonly dtype: OnnxDtype;
  readonly shape: readonly number[];
  readonly data: Float32Array | number[] | string[] | null;
}

export interface OnnxGraphValue {
  readonly kind: 'graph';
  readonly graph: OnnxGraph;
}

/**
 * Attribute values as plain data: INT/FLOAT → number (int64 beyond 2^53 rounds, e.g. INT64_MAX in Slice),
 * STRING → string (UTF-8), lists → arrays, TENSOR → OnnxTensorValue, GRAPH → OnnxGraphValue.
 * Sparse tensors, type protos and attribute references decode to `{kind: 'other'}`.
 */
export type OnnxAttributeValue =
  | number
  | string
  | readonly number[]
  | readonly string[]
  | OnnxTensorValue
  | readonly OnnxTensorValue[]
  | OnnxGraphValue
  | readonly OnnxGraphValue[]
  | { readonly kind: 'other'; readonly type: number; readonly refAttrName: string };

export interface OnnxNode {
  readonly name: string;
  readonly opType: string;
  readonly domain: string;
  /** Input value names; '' marks an omitted optional input, as in ONNX. */
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly attributes: Readonly<Record<string, OnnxAttributeValue>>;
}

export interface OnnxGraph {
  readonly name: string;
  readonly nodes: readonly OnnxNode[];
  /** Graph inputs, including any that are also initializers (older exporters list weights as inputs). */
  readonly inputs: readonly OnnxValueInfo[];
  readonly outputs: readonly OnnxValueInfo[];
  readonly valueInfo: readonly OnnxValueInfo[];
  readonly initializerNames: readonly string[];
}

export interface OnnxModel {
  /** File name or other label used in error messages. */
  readonly label: string;
  /** The decoded ModelProto. Shared with derived models: never write to it. */
  readonly proto: ModelProto;
  readonly irVersion: number;
  readonly opsets: readonly { readonly domain: string; readonly version: number }[];
  readonly graph: OnnxGraph;
  /** Initializers by name, every dtype, in graph order (see `initializerNames`). */
  readonly initializers: Readonly<Record<string, OnnxInitializer>>;
  readonly initializerNames: readonly string[];
  /**
   * How the model's tensors were stored where it came from: 'external' if any initializer referenced an
   * external data file. Kept through internalizeExternal/withInitializers so writers can keep the layout.
   */
  readonly layout: 'embedded' | 'external';
}

/**
 * Reads `length` bytes (or to the end of file when null) at `offset` of external data file `location`.
 * `expected` is the byte length the tensor's dtype and shape need (null when unknown): a resolver should
 * refuse a range of any other length before reading it, so a huge or endless file is never read in.
 */
export type ExternalResolver = (location: string, offset: number, length: number | null, expected?: number | null) => Uint8Array;

// ---------------------------------------------------------------------------------------------------------
// Schema

let schema: {
  model: protobuf.Type;
  graph: protobuf.Type;
  tensor: protobuf.Type;
  valueInfo: protobuf.Type;
  entry: protobuf.Type;
} | null = null;

function types(): NonNullable<typeof schema> {
  if (schema === null) {
    const root = protobuf.parse(ONNX_PROTO, { keepCase: true }).root;
    schema = {
      model: root.lookupType('onnx.ModelProto'),
      graph: root.lookupType('onnx.GraphProto'),
      tensor: root.lookupType('onnx.TensorProto'),
      valueInfo: root.lookupType('onnx.ValueInfoProto'),
      entry: root.lookupType('onnx.StringStringEntryProto'),
    };
  }
  return schema;
}

// ---------------------------------------------------------------------------------------------------------
// Dtypes

const DTYPE_BY_CODE: readonly OnnxDtype[] = [
  'undefined', 'float32', 'uint8', 'int8', 'uint16', 'int16', 'int32', 'int64', 'string', 'bool', 'float16',
  'float64', 'uint32', 'uint64', 'complex64', 'complex128', 'bfloat16', 'float8e4m3fn', 'float8e4m3fnuz',
  'float8e5m2', 'float8e5m2fnuz', 'uint4', 'int4',
];

/** Bytes per element in raw_data (0.5 for the packed 4-bit types, 0 where raw_data is not allowed). */
const ELEMENT_BYTES: readonly number[] = [0, 4, 1, 1, 2, 2, 4, 8, 0, 1, 2, 8, 4, 8, 8, 16, 2, 1, 1, 1, 1, 0.5, 0.5];

export function dtypeOf(code: number): OnnxDtype {
  return DTYPE_BY_CODE[code] ?? 'unknown';
}

export function isFloatDtype(d: OnnxDtype | null): d is OnnxFloatDtype {
  return d === 'float32' || d === 'float16' || d === 'bfloat16' || d === 'float64';
}

function rawByteLength(code: number, count: number): number | null {
  const b = ELEMENT_BYTES[code];
  if (b === undefined || b === 0) return null;
  return Math.ceil(count * b);
}

/** The dtype.ts name of an ONNX float dtype: how its bytes are decoded and encoded. */
export function floatStorage(dtype: OnnxDtype): FloatDtype {
  switch (dtype) {
    case 'float16':
      return 'F16';
    case 'bfloat16':
      return 'BF16';
    case 'float64':
      return 'F64';
    default:
      return 'F32';
  }
}

// ---------------------------------------------------------------------------------------------------------
// Small helpers over decoded messages

function has(m: object, field: string): boolean {
  return Object.prototype.hasOwnProperty.call(m, field) && (m as Record<string, unknown>)[field] != null;
}

function toNumber(v: Int64 | undefined): number {
  if (v === undefined || v === null) return 0;
  return typeof v === 'number' ? v : v.toNumber();
}

/**
 * A shallow copy of a decoded message that keeps its prototype (field defaults) and its unknown fields,
 * with some fields replaced (`undefined` removes a field).
 */
function cloneMessage<T extends object>(m: T, changes: Record<string, unknown>): T {
  const c = Object.create(Object.getPrototypeOf(m) as object) as Record<string, unknown>;
  Object.assign(c, m);
  const unknowns = (m as { $unknowns?: unknown }).$unknowns;
  if (Object.prototype.hasOwnProperty.call(m, '$unknowns')) {
    Object.defineProperty(c, '$unknowns', { value: unknowns, enumerable: false, writable: true, configurable: true });
  }
  for (const [k, v] of Object.entries(changes)) {
    if (v === undefined) delete c[k];
    else c[k] = v;
  }
  return c as T;
}

function tensorShape(t: TensorProto, label: string, what: string): number[] {
  const dims = t.dims ?? [];
  return dims.map((d) => {
    const n = toNumber(d);
    if (!Number.isSafeInteger(n) || n < 0) {
      throw new InputError(`${label}: ${what} has an invalid dimension ${String(n)}`);
    }
    return n;
  });
}

function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

function isExternal(t: TensorProto): boolean {
  return t.data_location === DataLocation.EXTERNAL;
}

function externalRef(t: TensorProto, label: string, what: string): OnnxExternalRef {
  let location: string | null = null;
  let offset = 0;
  let length: number | null = null;
  for (const e of t.external_data ?? []) {
    const v = e.value ?? '';
    if (e.key === 'location') location = v;
    else if (e.key === 'offset' || e.key === 'length') {
      const n = /^\d{1,16}$/.test(v) ? Number(v) : NaN;
      if (!Number.isSafeInteger(n)) {
        throw new InputError(`${label}: ${what} has an invalid external data ${e.key} '${v.slice(0, 40)}'`);
      }
      if (e.key === 'offset') offset = n;
      else length = n;
    }
  }
  if (location === null || location === '') {
    throw new InputError(`${label}: ${what} is stored externally but names no data file (location)`);
  }
  return { location, offset, length };
}

// ---------------------------------------------------------------------------------------------------------
// Tensor decoding

/**
 * Decodes a TensorProto's values: float dtypes → Float32Array; integer and bool dtypes → number[]
 * (int64 beyond 2^53 rounds); strings → string[]; anything else (complex, float8, 4-bit) → null.
 * External data is read through `resolve`; without one an external tensor is an InputError.
 */
export function decodeTensor(
  t: TensorProto,
  label: string,
  resolve?: ExternalResolver,
): OnnxTensorValue {
  const name = t.name ?? '';
  const code = t.data_type ?? 0;
  const dtype = dtypeOf(code);
  const what = `tensor '${name}' (${dtype})`;
  const shape = tensorShape(t, label, what);
  const n = elementCount(shape);
  const where = `${what} ${shapeToString(shape)}`;
  const base = { kind: 'tensor' as const, name, dtype, shape };

  let raw: Uint8Array | null = null;
  if (isExternal(t)) {
    const ref = externalRef(t, label, what);
    if (resolve === undefined) {
      throw new InputError(`${label}: ${what} is stored in external file '${ref.location}', which was not provided`);
    }
    raw = resolve(ref.location, ref.offset, ref.length, rawByteLength(code, n));
  } else if (has(t, 'raw_data')) {
    raw = t.raw_data as Uint8Array;
  }

  if (dtype === 'string') {
    const s = t.string_data ?? [];
    if (s.length !== n) throw new InputError(`${label}: ${where} holds ${s.length} strings, expected ${n}`);
    const dec = new TextDecoder();
    return { ...base, data: s.map((b) => dec.decode(b)) };
  }

  if (raw !== null) {
    const bytes = rawByteLength(code, n);
    if (bytes === null) return { ...base, data: null };
    if (raw.length !== bytes) {
      throw new InputError(`${label}: ${where} has ${raw.length} bytes of data, expected ${bytes}`);
    }
    if (isFloatDtype(dtype)) return { ...base, data: decodeFloat(floatStorage(dtypeOf(code)), raw) };
    return { ...base, data: rawToNumbers(code, raw, n) };
  }

  // Typed fields: which one holds the values depends on the dtype (see TensorProto in onnx.proto).
  const field = typedField(code);
  if (field === null) return { ...base, data: null };
  const values = ((t as Record<string, unknown>)[field] ?? []) as readonly (number | Int64)[];
  if (values.length !== n) {
    throw new InputError(`${label}: ${where} has ${values.length} values in ${field}, expected ${n}`);
  }
  if (isFloatDtype(dtype)) {
    // float16/bfloat16 live in int32_data as bit patterns; float32/float64 as values.
    const nums = values as readonly number[];
    const data =
      code === DataType.FLOAT16 ? decodeF16Bits(nums) : code === DataType.BFLOAT16 ? decodeBF16Bits(nums) : Float32Array.from(nums);
    return { ...base, data };
  }
  return { ...base, data: values.map((v) => toNumber(v)) };
}

function typedField(code: number): string | null {
  switch (code) {
    case DataType.FLOAT:
      return 'float_data';
    case DataType.DOUBLE:
      return 'double_data';
    case DataType.INT64:
      return 'int64_data';
    case DataType.UINT32:
    case DataType.UINT64:
      return 'uint64_data';
    case DataType.INT32:
    case DataType.INT16:
    case DataType.INT8:
    case DataType.UINT16:
    case DataType.UINT8:
    case DataType.BOOL:
    case DataType.FLOAT16:
    case DataType.BFLOAT16:
      return 'int32_data';
    default:
      return null;
  }
}

function rawToNumbers(code: number, raw: Uint8Array, n: number): number[] | null {
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    switch (code) {
      case DataType.UINT8:
      case DataType.BOOL:
        out[i] = dv.getUint8(i);
        break;
      case DataType.INT8:
        out[i] = dv.getInt8(i);
        break;
      case DataType.UINT16:
        out[i] = dv.getUint16(2 * i, true);
        break;
      case DataType.INT16:
        out[i] = dv.getInt16(2 * i, true);
        break;
      case DataType.INT32:
        out[i] = dv.getInt32(4 * i, true);
        break;
      case DataType.UINT32:
        out[i] = dv.getUint32(4 * i, true);
        break;
      case DataType.INT64:
        out[i] = Number(dv.getBigInt64(8 * i, true));
        break;
      case DataType.UINT64:
        out[i] = Number(dv.getBigUint64(8 * i, true));
        break;
      default:
        return null;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Views

function valueInfoView(v: ValueInfoProto): OnnxValueInfo {
  const tt = v.type?.tensor_type;
  if (tt === undefined || tt === null) return { name: v.name ?? '', dtype: null, shape: null };
  const dtype = has(tt, 'elem_type') ? dtypeOf(tt.elem_type ?? 0) : null;
  const shapeMsg = tt.shape;
  const shape =
    shapeMsg === undefined || shapeMsg === null
      ? null
      : (shapeMsg.dim ?? []).map((d): OnnxDim => {
          if (has(d, 'dim_value')) return toNumber(d.dim_value);
          if (has(d, 'dim_param')) return d.dim_param ?? '';
          return null;
        });
  return { name: v.name ?? '', dtype, shape };
}

function attributeView(a: AttributeProto, label: string): OnnxAttributeValue {
  const dec = new TextDecoder();
  const tensorValue = (t: TensorProto): OnnxTensorValue => {
    // Attribute tensors pointing at external files are described but not read.
    if (isExternal(t)) {
      const dtype = dtypeOf(t.data_type ?? 0);
      return { kind: 'tensor', name: t.name ?? '', dtype, shape: tensorShape(t, label, `attribute '${a.name}'`), data: null };
    }
    return decodeTensor(t, label);
  };
  switch (a.type ?? 0) {
    case AttributeType.FLOAT:
      return a.f ?? 0;
    case AttributeType.INT:
      return toNumber(a.i);
    case AttributeType.STRING:
      return dec.decode(a.s ?? new Uint8Array(0));
    case AttributeType.TENSOR:
      return a.t ? tensorValue(a.t) : { kind: 'other', type: a.type ?? 0, refAttrName: a.ref_attr_name ?? '' };
    case AttributeType.GRAPH:
      return a.g ? { kind: 'graph', graph: graphView(a.g, label) } : { kind: 'other', type: 5, refAttrName: a.ref_attr_name ?? '' };
    case AttributeType.FLOATS:
      return [...(a.floats ?? [])];
    case AttributeType.INTS:
      return (a.ints ?? []).map((v) => toNumber(v));
    case AttributeType.STRINGS:
      return (a.strings ?? []).map((s) => dec.decode(s));
    case AttributeType.TENSORS:
      return (a.tensors ?? []).map(tensorValue);
    case AttributeType.GRAPHS:
      return (a.graphs ?? []).map((g) => ({ kind: 'graph' as const, graph: graphView(g, label) }));
    default:
      return { kind: 'other', type: a.type ?? 0, refAttrName: a.ref_attr_name ?? '' };
  }
}

function graphView(g: GraphProto, label: string): OnnxGraph {
  const nodes = (g.node ?? []).map((n): OnnxNode => {
    const attributes: Record<string, OnnxAttributeValue> = Object.create(null) as Record<string, OnnxAttributeValue>;
    for (const a of n.attribute ?? []) attributes[a.name ?? ''] = attributeView(a, label);
    return {
      name: n.name ?? '',
      opType: n.op_type ?? '',
      domain: n.domain ?? '',
      inputs: [...(n.input ?? [])],
      outputs: [...(n.output ?? [])],
      attributes,
    };
  });
  return {
    name: g.name ?? '',
    nodes,
    inputs: (g.input ?? []).map(valueInfoView),
    outputs: (g.output ?? []).map(valueInfoView),
    valueInfo: (g.value_info ?? []).map(valueInfoView),
    initializerNames: (g.initializer ?? []).map((t) => t.name ?? ''),
  };
}

function buildModel(proto: ModelProto, label: string, layout?: 'embedded' | 'external'): OnnxModel {
  const g = proto.graph;
  if (g === undefined || g === null || !has(proto, 'graph')) {
    throw new InputError(`${label}: the ONNX model has no graph`);
  }
  const initializers: Record<string, OnnxInitializer> = Object.create(null) as Record<string, OnnxInitializer>;
  const initializerNames: string[] = [];
  let anyExternal = false;
  (g.initializer ?? []).forEach((t, index) => {
    const name = t.name ?? '';
    const dtype = dtypeOf(t.data_type ?? 0);
    const what = `initializer '${name}' (${dtype})`;
    if (name === '') throw new InputError(`${label}: initializer #${index} has no name`);
    if (name in initializers) throw new InputError(`${label}: two initializers are named '${name}'`);
    const external = isExternal(t) ? externalRef(t, label, what) : null;
    anyExternal ||= external !== null;
    initializers[name] = { name, index, dtype, dataType: t.data_type ?? 0, shape: tensorShape(t, label, what), external };
    initializerNames.push(name);
  });
  const irVersion = toNumber(proto.ir_version);
  const opsets = (proto.opset_import ?? []).map((o) => ({ domain: o.domain ?? '', version: toNumber(o.version) }));
  return {
    label,
    proto,
    irVersion,
    opsets,
    graph: graphView(g, label),
    initializers,
    initializerNames,
    layout: layout ?? (anyExternal ? 'external' : 'embedded'),
  };
}

// ---------------------------------------------------------------------------------------------------------
// Public API

/**
 * Decodes an ONNX model. The model keeps views into `bytes` (tensor data is not copied): do not modify
 * them afterwards. Malformed bytes (truncated, bad lengths, too deeply nested) and structurally
 * invalid models (no graph, unnamed or duplicate initializers, negative dims) are InputErrors naming `label`.
 */
export function parseOnnx(bytes: Uint8Array, label: string): OnnxModel {
  let proto: ModelProto;
  try {
    const reader = protobuf.Reader.create(bytes);
    reader.discardUnknown = false; // keep fields this schema does not know, so they are written back
    proto = types().model.decode(reader) as unknown as ModelProto;
  } catch (e) {
    throw new InputError(`${label}: not a valid ONNX model (${(e as Error).message})`);
  }
  return buildModel(proto, label);
}

/** Encodes the model's ModelProto (one buffer; see serializeOnnxChunks for large models). */
export function serializeOnnx(model: OnnxModel): Uint8Array {
  return concatBytes(serializeOnnxChunks(model));
}

/** Protobuf varint of a non-negative integer up to 2^53 (arithmetic, not 32-bit shifts). */
function varint(n: number): Uint8Array {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
  return Uint8Array.from(out);
}

/** Encodes `msg` as two parts: the fields numbered below `field`'s and those above (plus unknown fields). */
function splitEncode(type: protobuf.Type, msg: object, field: string): [Uint8Array, Uint8Array] {
  const id = type.fields[field].id;
  const proto = Object.getPrototypeOf(msg) as object;
  const before = Object.create(proto) as Record<string, unknown>;
  const after = Object.create(proto) as Record<string, unknown>;
  const m = msg as Record<string, unknown>;
  for (const f of type.fieldsArray) {
    if (f.id !== id && Object.prototype.hasOwnProperty.call(m, f.name)) (f.id < id ? before : after)[f.name] = m[f.name];
  }
  if (Object.prototype.hasOwnProperty.call(m, '$unknowns')) {
    Object.defineProperty(after, '$unknowns', { value: m.$unknowns, enumerable: false, writable: true, configurable: true });
  }
  const enc = (x: object): Uint8Array => type.encode(x as protobuf.Message).finish();
  return [enc(before), enc(after)];
}

/**
 * The encoded model as a list of chunks whose concatenation is exactly what a protobuf encoder writes
 * (fields in number order, unknown fields last). Tensor raw_data buffers are referenced, not copied, so
 * a large model is written without building it in memory several times over (protobufjs's writer
 * copies every nested message again when it prefixes its length).
 */
export function serializeOnnxChunks(model: OnnxModel): Uint8Array[] {
  const t = types();
  const proto = model.proto;
  if (!has(proto, 'graph')) return [t.model.encode(proto as unknown as protobuf.Message).finish()];
  const g = proto.graph as GraphProto;
  const field = (num: number, len: number): Uint8Array[] => [varint(num * 8 + 2), varint(len)];
  const graphBody: Uint8Array[] = [];
  const [gA, gB] = splitEncode(t.graph, g, 'initializer');
  graphBody.push(gA);
  for (const tensor of g.initializer ?? []) {
    let parts: Uint8Array[];
    if (has(tensor, 'raw_data')) {
      const raw = tensor.raw_data as Uint8Array;
      const [tA, tB] = splitEncode(t.tensor, tensor, 'raw_data');
      parts = [tA, ...field(9, raw.length), raw, tB];
    } else {
      parts = [t.tensor.encode(tensor as unknown as protobuf.Message).finish()];
    }
    graphBody.push(...field(5, parts.reduce((s, c) => s + c.length, 0)), ...parts);
  }
  graphBody.push(gB);
  const [mA, mB] = splitEncode(t.model, proto, 'graph');
  return [mA, ...field(7, graphBody.reduce((s, c) => s + c.length, 0)), ...graphBody, mB];
}

/**
 * Float32 tensors for every float16/bfloat16/float32/float64 initializer, in graph order. Other dtypes
 * (int64 shape constants, ...) are left out. External data is read through `resolveExternal`.
 */
export function onnxParams(model: OnnxModel, opts: { resolveExternal?: ExternalResolver } = {}): Params {
  const out: Record<string, Tensor> = Object.create(null);
  const list = model.proto.graph?.initializer ?? [];
  for (const name of model.initializerNames) {
    const info = model.initializers[name];
    if (!isFloatDtype(info.dtype)) continue;
    const v = decodeTensor(list[info.index], model.label, opts.resolveExternal);
    out[name] = { shape: info.shape, data: v.data as Float32Array };
  }
  return out;
}

/** The decoded values of one initializer of any dtype (see decodeTensor), e.g. a Reshape target shape. */
export function onnxInitializerValue(model: OnnxModel, name: string, opts: { resolveExternal?: ExternalResolver } = {}): OnnxTensorValue {
  const info = model.initializers[name];
  if (info === undefined) throw new InputError(`${model.label}: no initializer named '${name}'`);
  return decodeTensor(model.proto.graph!.initializer![info.index], model.label, opts.resolveExternal);
}

function withGraph(model: OnnxModel, graphChanges: Record<string, unknown>, layout = model.layout): OnnxModel {
  const graph = cloneMessage(model.proto.graph as GraphProto, graphChanges);
  const proto = cloneMessage(model.proto, { graph });
  return buildModel(proto, model.label, layout);
}

const FLOAT_TYPES = new Set([1, 10, 11, 16]); // FLOAT, FLOAT16, DOUBLE, BFLOAT16

/**
 * The model with the float weights that some exporters keep in top-level Constant nodes (paddle2onnx does)
 * turned into initializers of the same name, so they are permuted, averaged and written like any other
 * weight; the graph computes the same. Scalars (epsilons, clip bounds) stay Constant nodes. Models from
 * before IR version 4 (initializers had to be graph inputs there) and models without such nodes are
 * returned as they are.
 */
export function liftConstantWeights(model: OnnxModel): OnnxModel {
  const g = model.proto.graph as GraphProto;
  if (model.irVersion < 4) return model;
  const nodes: NodeProto[] = [];
  const lifted: TensorProto[] = [];
  for (const n of g.node ?? []) {
    const attrs = n.attribute ?? [];
    const t = n.op_type === 'Constant' && (n.domain ?? '') === '' && attrs.length === 1 && attrs[0].name === 'value' ? attrs[0].t : undefined;
    const size = (t?.dims ?? []).reduce((a: number, d) => a * Number(d), 1);
    const out = n.output?.[0];
    if (t !== undefined && t !== null && FLOAT_TYPES.has(t.data_type ?? 0) && size > 1 && out !== undefined && out !== '' && n.output!.length === 1) {
      lifted.push(cloneMessage(t, { name: out }));
    } else nodes.push(n);
  }
  if (lifted.length === 0) return model;
  return withGraph(model, { node: nodes, initializer: [...(g.initializer ?? []), ...lifted] });
}

/**
 * A model whose externally stored initializers carry their bytes in raw_data instead (external_data and
 * data_location removed), so it no longer depends on any file. `layout` stays 'external'.
 */
export function internalizeExternal(model: OnnxModel, resolve: ExternalResolver): OnnxModel {
  const list = model.proto.graph?.initializer ?? [];
  if (!list.some(isExternal)) return model;
  const next = list.map((t) => {
    if (!isExternal(t)) return t;
    const info = model.initializers[t.name ?? ''];
    const ref = info.external!;
    const expected = rawByteLength(info.dataType, elementCount(info.shape));
    const raw = resolve(ref.location, ref.offset, ref.length, expected);
    if (expected !== null && raw.length !== expected) {
      throw new InputError(
        `${model.label}: initializer '${info.name}' (${info.dtype} ${shapeToString(info.shape)}) has ${raw.length} bytes in '${ref.location}', expected ${expected}`,
      );
    }
    return cloneMessage(t, { raw_data: raw, external_data: [], data_location: undefined });
  });
  return withGraph(model, { initializer: next });
}

/**
 * A new model whose float initializers named in `params` hold those values, converted to each
 * initializer's own dtype and stored as raw_data. Initializers whose values are bit-for-bit unchanged keep
 * their original TensorProto (so a float64 or float16 model that was not changed is written back exactly).
 * Names, order, graph, opsets and metadata are untouched; float initializers missing from `params` stay.
 * A name in `params` that is not a float initializer, or a shape that differs, is an InputError.
 */
export function withInitializers(model: OnnxModel, params: Params): OnnxModel {
  const list = model.proto.graph?.initializer ?? [];
  for (const [name, t] of Object.entries(params)) {
    const info = model.initializers[name];
    if (info === undefined) throw new InputError(`${model.label}: no initializer named '${name}' to replace`);
    if (!isFloatDtype(info.dtype)) {
      throw new InputError(`${model.label}: initializer '${name}' is ${info.dtype}, not a float tensor`);
    }
    const same = t.shape.length === info.shape.length && t.shape.every((d, i) => d === info.shape[i]);
    if (!same || t.data.length !== elementCount(info.shape)) {
      throw new InputError(
        `${model.label}: initializer '${name}' has shape ${shapeToString(info.shape)}, new value has ${shapeToString(t.shape)}`,
      );
    }
  }
  let changed = false;
  const next = list.map((t) => {
    const name = t.name ?? '';
    const p = params[name];
    if (p === undefined) return t;
    const info = model.initializers[name];
    if (info.external === null) {
      let old: Float32Array | null = null;
      try {
        old = decodeTensor(t, model.label).data as Float32Array;
      } catch {
        // A malformed old value is simply replaced.
      }
      if (old !== null && sameBits(old, p.data)) return t;
    }
    changed = true;
    return cloneMessage(t, {
      raw_data: encodeFloat(floatStorage(info.dtype), p.data),
      float_data: [],
      int32_data: [],
      double_data: [],
      external_data: [],
      data_location: undefined,
    });
  });
  return changed ? withGraph(model, { initializer: next }) : model;
}

/**
 * A model in which every float initializer is a graph input instead (same name, dtype and shape), so one
 * inference session can be fed any weights. Initializers that were already listed as inputs keep their
 * input entry. Other initializers (int64 shapes, ...) stay.
 */
export function initializersToInputs(model: OnnxModel): OnnxModel {
  const g = model.proto.graph as GraphProto;
  const list = g.initializer ?? [];
  const inputNames = new Set((g.input ?? []).map((v) => v.name ?? ''));
  const { valueInfo } = types();
  const added: ValueInfoProto[] = [];
  const kept: TensorProto[] = [];
  for (const t of list) {
    const info = model.initializers[t.name ?? ''];
    if (!isFloatDtype(info.dtype)) {
      kept.push(t);
      continue;
    }
    if (inputNames.has(info.name)) continue;
    added.push(
      valueInfo.fromObject({
        name: info.name,
        type: { tensor_type: { elem_type: info.dataType, shape: { dim: info.shape.map((d) => ({ dim_value: d })) } } },
      }) as unknown as ValueInfoProto,
    );
  }
  return withGraph(model, { initializer: kept, input: [...(g.input ?? []), ...added] });
}

/**
 * Builds an OnnxModel from a plain ModelProto-shaped object (snake_case fields as in onnx.proto, int64 as
 * numbers, bytes as Uint8Array). Used to write small models without an exporter.
 */
export function onnxModelFromObject(fields: Record<string, unknown>, label = '<model>'): OnnxModel {
  const proto = types().model.fromObject(fields) as unknown as ModelProto;
  return buildModel(proto, label);
}

/**
 * Returns the model with external references replaced: each initializer for which `place` returns a
 * reference gets external_data/data_location set and its raw_data removed. Used by the file writer.
 */
export function withExternalRefs(
  model: OnnxModel,
  place: (t: TensorProto, index: number) => OnnxExternalRef | null,
): OnnxModel {
  const { entry } = types();
  const list = model.proto.graph?.initializer ?? [];
  let changed = false;
  const next = list.map((t, index) => {
    const ref = place(t, index);
    if (ref === null) return t;
    changed = true;
    const entries = [
      entry.fromObject({ key: 'location', value: ref.location }),
      entry.fromObject({ key: 'offset', value: String(ref.offset) }),
      entry.fromObject({ key: 'length', value: String(ref.length ?? 0) }),
    ];
    return cloneMessage(t, { raw_data: undefined, external_data: entries, data_location: DataLocation.EXTERNAL });
  });
  return changed ? withGraph(model, { initializer: next }, 'external') : model;
}

/** Whether a TensorProto carries its bytes in raw_data (and how many). */
export function rawDataLength(t: TensorProto): number | null {
  return has(t, 'raw_data') && !isExternal(t) ? (t.raw_data as Uint8Array).length : null;
}

/**
 * The ModelProto as plain JSON-able data (int64 as decimal strings, bytes as base64), for inspection,
 * comparison and debugging.
 */
export function onnxToObject(model: OnnxModel): Record<string, unknown> {
  return types().model.toObject(model.proto as unknown as protobuf.Message, { longs: String, bytes: String }) as Record<string, unknown>;
}
