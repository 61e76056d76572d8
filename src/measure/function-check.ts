/**
 * The function check: does a permuted model P(B) compute what B computes? One forward pass of each on the
 * same probe batch, every graph output compared. Weight matching and the spec promise P(B) = B as functions;
 * a wrong spec (a missed tie, a hand-written file that does not fit the graph, an op the derivation
 * misread) breaks that promise silently, and this check is what catches it before anything is written.
 *
 * The probe batch comes from the graph's inputs: float inputs get seeded standard-normal values (or real
 * examples when the caller has them), integer inputs valid indices where they feed a Gather of an
 * initializer (token ids into an embedding table) and zeros otherwise, bool inputs `true`. Batch dimensions
 * (the first of each input, and any dimension named like one) get 2; other symbolic or unknown dimensions 2,
 * else 16, 128 or 512: the first size the model runs on (see PROBE_SIZES). Inputs that cannot be filled (strings, non-tensors, unknown
 * rank) make the check report itself skipped, with the reason, never silently passed.
 *
 * Tolerance: an output passes when max |P(B) − B| ≤ tol · max(1, max |B|) with tol = 1e-3 (1e-2 when the
 * model computes in float16/bfloat16). A correct permutation only reorders sums, which moves float32 results
 * by rounding: ~1e-7 relative per layer, ~1e-6 measured on the fixtures' logits. A wrong one mixes up units,
 * which moves the outputs by an amount comparable to the outputs themselves (~0.1–1 relative on the
 * fixtures when one tie is dropped). 1e-3 leaves about three orders of magnitude on either side; the
 * max(1, ·) keeps outputs near zero from turning rounding into a refusal. Half precision rounds at ~1e-3
 * per operation, hence its larger tolerance.
 *
 * Runs on an ONNX Runtime module passed in (onnxruntime-node in the CLI, onnxruntime-web in a page), like
 * onnx-runner-core.ts; imports no Node module.
 */
import type * as OrtCommon from 'onnxruntime-common';
import { InputError } from '../errors.js';
import { decodeF16Bits, floatToHalfBits } from '../io/dtype.js';
import { type OnnxDtype, type OnnxGraph, type OnnxModel, type OnnxValueInfo, initializersToInputs, isFloatDtype, serializeOnnx, withInitializers } from '../io/onnx.js';
import type { OrtModule } from '../engine/onnx-runner-core.js';
import { createRng } from '../random.js';
import type { Params } from '../tensor.js';
import type { ProbeBatch } from './runner.js';

/** Relative tolerance for float32/float64 models (see the file header). */
export const FUNCTION_CHECK_TOLERANCE = 1e-3;
/** Relative tolerance when weights, inputs or outputs are float16/bfloat16. */
export const FUNCTION_CHECK_TOLERANCE_HALF = 1e-2;
/** The size given to symbolic and unknown input dimensions: the batch axis always, the others first. */
export const PROBE_DIM = 2;
/**
 * Sizes tried in turn for the symbolic dimensions after the first (sequence lengths, image sides) when the
 * model does not run on the smaller ones (a reflect Pad wider than the signal, a window longer than it).
 */
export const PROBE_SIZES = [PROBE_DIM, 16, 128, 512] as const;

export interface FunctionCheckOptions {
  /** Seed of the probe values (default 0). */
  seed?: number;
  /**
   * Real examples for a model with one float input (flattened, as datasets hold them): up to 8 are used
   * when their size fits the input's shape; otherwise the probe is random.
   */
  examples?: ProbeBatch;
}

/** How far one output of P(B) is from B's. */
export interface OutputDeviation {
  readonly output: string;
  readonly dtype: string;
  /** Largest |P(B) − B| over the output's entries (Infinity where one is NaN/infinite and the other not). */
  readonly maxDeviation: number;
  /** max(1, max |B|): the output's scale. */
  readonly scale: number;
  /** The largest deviation allowed: tolerance · scale (0 for integer and bool outputs). */
  readonly allowed: number;
  /** Entries that differ at all (for integer/bool outputs the measure that matters). */
  readonly differing: number;
  readonly entries: number;
  readonly ok: boolean;
  /** Set when the output's shapes differ, or P(B) could not be run. */
  readonly problem?: string;
}

export type FunctionCheckResult =
  | { readonly status: 'passed' | 'failed'; readonly probe: string; readonly tolerance: number; readonly outputs: readonly OutputDeviation[] }
  | { readonly status: 'skipped'; readonly reason: string };

export interface FunctionChecker {
  /** The probe batch in words: "2 examples: input 'input' float32 [2, 784] (seeded normal values)". */
  readonly probe: string;
  /** Runs both parameter sets of the model's graph on the probe batch and compares every output. */
  check(reference: Params, candidate: Params): Promise<FunctionCheckResult>;
  dispose(): Promise<void>;
}

type Feed = OrtCommon.Tensor;

interface ProbeInput {
  readonly name: string;
  readonly tensor: Feed;
  readonly text: string;
}

/** Where the probe cannot be built: the reason, for the caller to print. */
export class ProbeUnavailable {
  constructor(readonly reason: string) {}
}

const sizeOf = (dims: readonly number[]): number => dims.reduce((a, b) => a * b, 1);

/** Symbolic dimension names that head some input: batch dimensions, kept at PROBE_DIM. */
function batchNames(inputs: readonly OnnxValueInfo[]): Set<string> {
  return new Set(inputs.map((v) => v.shape?.[0]).filter((d): d is string => typeof d === 'string' && d !== ''));
}

/**
 * Sizes of an input's dimensions for the probe: fixed ones as given; a symbolic or unknown first dimension,
 * and any named like one (a batch dimension elsewhere, as in a [2, batch, 128] state), PROBE_DIM; every other
 * symbolic or unknown one `size` (one name gets one size throughout).
 */
function probeDims(v: OnnxValueInfo, size: number, batch: ReadonlySet<string>): number[] | ProbeUnavailable {
  if (v.shape === null) return new ProbeUnavailable(`input '${v.name}' has no recorded shape`);
  return v.shape.map((d, i) => (typeof d === 'number' ? Math.max(d, 0) : i === 0 || (d !== null && batch.has(d)) ? PROBE_DIM : size));
}

/** Whether any input has a symbolic dimension that is not a batch dimension (so other sizes can be tried). */
function hasInnerSymbols(inputs: readonly OnnxValueInfo[]): boolean {
  const batch = batchNames(inputs);
  return inputs.some((v) => (v.shape ?? []).some((d, i) => i > 0 && typeof d !== 'number' && !(d !== null && batch.has(d))));
}

/**
 * Integer inputs that only feed Gather nodes reading an initializer (an embedding table) must hold indices
 * below the gathered axis' length; the smallest such bound, or null where some consumer is not such a Gather.
 */
function indexBound(model: OnnxModel, input: string): number | null {
  let bound: number | null = null;
  let any = false;
  for (const node of model.graph.nodes) {
    if (!node.inputs.includes(input)) continue;
    any = true;
    const table = model.initializers[node.inputs[0]];
    if (node.opType !== 'Gather' || node.domain !== '' || node.inputs[1] !== input || table === undefined) return null;
    const axisAttr = node.attributes.axis;
    const axis = typeof axisAttr === 'number' ? (axisAttr < 0 ? axisAttr + table.shape.length : axisAttr) : 0;
    const n = table.shape[axis];
    if (n === undefined || n <= 0) return null;
    bound = bound === null ? n : Math.min(bound, n);
  }
  return any ? bound : null;
}

const INT_TYPES: Partial<Record<OnnxDtype, 'int8' | 'uint8' | 'int16' | 'uint16' | 'int32' | 'uint32' | 'int64' | 'uint64'>> = {
  int8: 'int8',
  uint8: 'uint8',
  int16: 'int16',
  uint16: 'uint16',
  int32: 'int32',
  uint32: 'uint32',
  int64: 'int64',
  uint64: 'uint64',
};

function intTensor(ort: OrtModule, type: NonNullable<(typeof INT_TYPES)[OnnxDtype]>, values: readonly number[], dims: number[]): Feed {
  switch (type) {
    case 'int8':
      return new ort.Tensor('int8', Int8Array.from(values), dims);
    case 'uint8':
      return new ort.Tensor('uint8', Uint8Array.from(values), dims);
    case 'int16':
      return new ort.Tensor('int16', Int16Array.from(values), dims);
    case 'uint16':
      return new ort.Tensor('uint16', Uint16Array.from(values), dims);
    case 'int32':
      return new ort.Tensor('int32', Int32Array.from(values), dims);
    case 'uint32':
      return new ort.Tensor('uint32', Uint32Array.from(values), dims);
    case 'int64':
      return new ort.Tensor('int64', BigInt64Array.from(values, (v) => BigInt(v)), dims);
    case 'uint64':
      return new ort.Tensor('uint64', BigUint64Array.from(values, (v) => BigInt(v)), dims);
  }
}

function floatTensor(ort: OrtModule, dtype: OnnxDtype, values: Float32Array, dims: number[]): Feed | null {
  if (dtype === 'float32') return new ort.Tensor('float32', values, dims);
  if (dtype === 'float64') return new ort.Tensor('float64', Float64Array.from(values), dims);
  if (dtype === 'float16') return new ort.Tensor('float16', Uint16Array.from(values, floatToHalfBits), dims);
  return null; // bfloat16: no tensor type to feed it from JavaScript
}

/** Ops whose outputs change from run to run: two runs of one model would not agree, so nothing can be compared. */
const RANDOM_OPS = new Set(['RandomNormal', 'RandomUniform', 'RandomNormalLike', 'RandomUniformLike', 'Bernoulli', 'Multinomial']);

/** The first node drawing random numbers, in the graph or any subgraph, as "'name' (Op)"; null if none. */
function randomNode(graph: OnnxGraph): string | null {
  for (const n of graph.nodes) {
    if (n.domain === '' && RANDOM_OPS.has(n.opType)) return `'${n.name}' (${n.opType})`;
    for (const v of Object.values(n.attributes)) {
      const graphs = Array.isArray(v) ? v : [v];
      for (const g of graphs) {
        if (typeof g === 'object' && g !== null && 'kind' in g && g.kind === 'graph') {
          const inner = randomNode(g.graph);
          if (inner !== null) return inner;
        }
      }
    }
  }
  return null;
}

/** The probe batch for every data input of `model` (inputs that are not initializers). */
function buildProbe(ort: OrtModule, model: OnnxModel, options: FunctionCheckOptions, size: number): ProbeInput[] | ProbeUnavailable {
  const weights = new Set(model.initializerNames);
  const inputs = model.graph.inputs.filter((v) => !weights.has(v.name));
  const rng = createRng(options.seed ?? 0);
  const batch = batchNames(inputs);
  const floats = inputs.filter((v) => isFloatDtype(v.dtype));
  const out: ProbeInput[] = [];
  for (const v of inputs) {
    const dims = probeDims(v, size, batch);
    if (dims instanceof ProbeUnavailable) return dims;
    const n = sizeOf(dims);
    const shown = `input '${v.name}' ${v.dtype ?? '?'} [${dims.join(', ')}]`;
    if (v.dtype === null) return new ProbeUnavailable(`input '${v.name}' is not a tensor`);
    if (isFloatDtype(v.dtype)) {
      const real = floats.length === 1 ? realExamples(v, options.examples) : null;
      const values = real?.values ?? Float32Array.from({ length: n }, () => rng.normal());
      const t = floatTensor(ort, v.dtype, values, real?.dims ?? dims);
      if (t === null) return new ProbeUnavailable(`input '${v.name}' is ${v.dtype}, which cannot be fed from JavaScript`);
      out.push({ name: v.name, tensor: t, text: real ? `input '${v.name}' ${v.dtype} [${real.dims.join(', ')}] (the first examples of the data)` : `${shown} (seeded normal values)` });
      continue;
    }
    const intType = INT_TYPES[v.dtype];
    if (intType !== undefined) {
      const bound = indexBound(model, v.name);
      const values = Array.from({ length: n }, () => (bound === null ? 0 : rng.int(bound)));
      out.push({ name: v.name, tensor: intTensor(ort, intType, values, dims), text: `${shown} (${bound === null ? 'zeros' : `indices below ${bound}`})` });
      continue;
    }
    if (v.dtype === 'bool') {
      out.push({ name: v.name, tensor: new ort.Tensor('bool', new Uint8Array(n).fill(1), dims), text: `${shown} (true)` });
      continue;
    }
    return new ProbeUnavailable(`input '${v.name}' is ${v.dtype}, for which no valid probe values can be made up`);
  }
  return out;
}

/** Up to 8 real examples shaped for input `v`, when the dataset's example size fits its shape. */
function realExamples(v: OnnxValueInfo, examples: ProbeBatch | undefined): { values: Float32Array; dims: number[] } | null {
  if (examples === undefined || examples.count === 0 || v.shape === null || v.shape.length < 2) return null;
  const size = examples.inputs.length / examples.count;
  const batch = v.shape[0];
  const rest = v.shape.slice(1);
  if (!rest.every((d): d is number => typeof d === 'number' && d > 0) || sizeOf(rest) !== size) return null;
  const n = typeof batch === 'number' && batch > 0 ? batch : Math.min(8, examples.count);
  if (n > examples.count) return null;
  return { values: examples.inputs.slice(0, n * size), dims: [n, ...rest] };
}

/** A float output's values as float64 (float16 arrives as bits or as a Float16Array, depending on the platform). */
function floatValues(t: Feed): Float64Array | null {
  const d = t.data as unknown;
  if (t.type === 'float16') return d instanceof Uint16Array ? Float64Array.from(decodeF16Bits(d)) : Float64Array.from(d as ArrayLike<number>);
  if (d instanceof Float32Array || d instanceof Float64Array) return Float64Array.from(d);
  return null;
}

function compareOutput(name: string, ref: Feed, cand: Feed, tol: number): OutputDeviation {
  const base = { output: name, dtype: ref.type, entries: ref.size };
  const dimsR = ref.dims.join(', ');
  const dimsC = cand.dims.join(', ');
  if (ref.type !== cand.type || dimsR !== dimsC) {
    return { ...base, maxDeviation: Infinity, scale: 1, allowed: 0, differing: ref.size, ok: false, problem: `B gives ${ref.type} [${dimsR}], the aligned model ${cand.type} [${dimsC}]` };
  }
  const r = floatValues(ref);
  const c = floatValues(cand);
  if (r !== null && c !== null) {
    let scale = 1;
    for (const x of r) if (Number.isFinite(x)) scale = Math.max(scale, Math.abs(x));
    let max = 0;
    let differing = 0;
    for (let i = 0; i < r.length; i++) {
      const [x, y] = [r[i], c[i]];
      if (x === y || (Number.isNaN(x) && Number.isNaN(y))) continue;
      differing++;
      const d = Number.isFinite(x) && Number.isFinite(y) ? Math.abs(x - y) : Infinity;
      if (d > max) max = d;
    }
    const allowed = tol * scale;
    return { ...base, maxDeviation: max, scale, allowed, differing, ok: max <= allowed };
  }
  // Integer, bool and string outputs (argmax, masks): exactly equal.
  const [x, y] = [ref.data as ArrayLike<unknown>, cand.data as ArrayLike<unknown>];
  let differing = 0;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) differing++;
  return { ...base, maxDeviation: differing > 0 ? Infinity : 0, scale: 1, allowed: 0, differing, ok: differing === 0 };
}

/** The runtime cannot load the graph: an InputError naming the model (the graph itself is broken). */
function cannotLoad(model: OnnxModel, e: unknown): InputError {
  return new InputError(`${model.label}: ONNX Runtime cannot load the model (${String((e as Error).message ?? e).split('\n')[0]})`);
}

/**
 * A checker for parameter sets of `model`'s graph, or the reason no probe batch can be built for it.
 * Float weights are fed as inputs to one session (as the ONNX runner does); where they cannot be (bfloat16)
 * or the runtime refuses that form, each parameter set gets a session of its own with the weights embedded.
 * Throws an InputError when ONNX Runtime cannot load the graph at all.
 */
export async function createFunctionChecker(ort: OrtModule, model: OnnxModel, options: FunctionCheckOptions = {}): Promise<FunctionChecker | ProbeUnavailable> {
  for (const name of model.initializerNames) {
    const ext = model.initializers[name].external;
    if (ext !== null) throw new Error(`createFunctionChecker: initializer '${name}' still points at external data '${ext.location}'`);
  }
  const random = randomNode(model.graph);
  if (random !== null) return new ProbeUnavailable(`node ${random} draws random numbers, so two runs of one model differ`);
  // Probe batches to try in turn (see PROBE_SIZES); the first that the model runs on is kept.
  const probes: { feeds: Record<string, Feed>; text: string }[] = [];
  const weights = new Set(model.initializerNames);
  for (const size of hasInnerSymbols(model.graph.inputs.filter((v) => !weights.has(v.name))) ? PROBE_SIZES : [PROBE_DIM]) {
    const probe = buildProbe(ort, model, options, size);
    if (probe instanceof ProbeUnavailable) return probe;
    probes.push({ feeds: Object.fromEntries(probe.map((p) => [p.name, p.tensor])), text: probe.map((p) => p.text).join(', ') });
  }
  let chosen = 0;
  const outputs = model.graph.outputs.map((o) => o.name);
  const dtypes = [...model.graph.inputs, ...model.graph.outputs].map((v) => v.dtype);
  const half = dtypes.includes('float16') || dtypes.includes('bfloat16') || model.initializerNames.some((n) => ['float16', 'bfloat16'].includes(model.initializers[n].dtype));
  const tolerance = half ? FUNCTION_CHECK_TOLERANCE_HALF : FUNCTION_CHECK_TOLERANCE;
  // Failures are reported by the check itself; the runtime's own error log would only repeat them.
  const sessionOptions: OrtCommon.InferenceSession.SessionOptions = { graphOptimizationLevel: 'all', executionMode: 'sequential', logSeverityLevel: 4 };

  // Fed form: one session, weights as inputs.
  const floatWeights = model.initializerNames.filter((n) => isFloatDtype(model.initializers[n].dtype));
  const feedable = floatWeights.every((n) => model.initializers[n].dtype !== 'bfloat16');
  let session: OrtCommon.InferenceSession | null = null;
  if (feedable) {
    try {
      session = await ort.InferenceSession.create(serializeOnnx(initializersToInputs(model)), sessionOptions);
    } catch {
      session = null; // try the model as it is below: that error is the one to report
    }
  }
  if (session === null) {
    // The graph as stored must load, or nothing about it can be checked (nor used).
    try {
      const s = await ort.InferenceSession.create(serializeOnnx(model), sessionOptions);
      await s.release();
    } catch (e) {
      throw cannotLoad(model, e);
    }
  }

  const weightFeeds = (params: Params): Record<string, Feed> => {
    const f: Record<string, Feed> = {};
    for (const name of floatWeights) {
      const info = model.initializers[name];
      const t = params[name];
      if (t === undefined) throw new InputError(`${model.label}: the parameters lack weight '${name}'`);
      f[name] = floatTensor(ort, info.dtype, t.data, [...info.shape]) as Feed;
    }
    return f;
  };

  let disposed = false;
  const run = async (params: Params, feeds: Record<string, Feed>): Promise<Record<string, Feed>> => {
    if (session !== null) return session.run({ ...feeds, ...weightFeeds(params) }, outputs);
    const s = await ort.InferenceSession.create(serializeOnnx(withInitializers(model, params)), sessionOptions);
    try {
      return await s.run(feeds, outputs);
    } finally {
      await s.release();
    }
  };

  const message = (e: unknown): string => String((e as Error).message ?? e).split('\n')[0];
  return {
    get probe() {
      return probes[chosen].text;
    },
    async check(reference: Params, candidate: Params): Promise<FunctionCheckResult> {
      if (disposed) throw new Error('this function checker has been disposed');
      let ref: Record<string, Feed> | null = null;
      let firstError: unknown = null;
      for (let i = chosen; i < probes.length && ref === null; i++) {
        try {
          ref = await run(reference, probes[i].feeds);
          chosen = i;
        } catch (e) {
          if (e instanceof InputError) throw e;
          firstError ??= e;
        }
      }
      if (ref === null) {
        const tried = probes.length > 1 ? ` (nor with ${PROBE_SIZES.slice(1).join(' or ')} for its symbolic dimensions)` : '';
        return { status: 'skipped', reason: `ONNX Runtime could not run the model on the made-up probe batch (${probes[chosen].text})${tried}: ${message(firstError)}` };
      }
      const { feeds, text } = probes[chosen];
      let cand: Record<string, Feed>;
      try {
        cand = await run(candidate, feeds);
      } catch (e) {
        if (e instanceof InputError) throw e;
        const problem = `the aligned model fails to run: ${message(e)}`;
        const devs = outputs.map((o) => ({ output: o, dtype: '?', maxDeviation: Infinity, scale: 1, allowed: 0, differing: 0, entries: 0, ok: false, problem }));
        return { status: 'failed', probe: text, tolerance, outputs: devs };
      }
      const devs = outputs.map((o) => compareOutput(o, ref[o], cand[o], tolerance));
      return { status: devs.every((d) => d.ok) ? 'passed' : 'failed', probe: text, tolerance, outputs: devs };
    },
    async dispose() {
      disposed = true;
      const s = session;
      session = null;
      await s?.release();
    },
  };
}

/** The output that fails worst (largest deviation relative to what is allowed), or the first. */
export function worstOutput(outputs: readonly OutputDeviation[]): OutputDeviation | undefined {
  const ratio = (d: OutputDeviation): number => (d.ok ? -1 : d.allowed > 0 ? d.maxDeviation / d.allowed : Infinity);
  return [...outputs].sort((x, y) => ratio(y) - ratio(x))[0];
}
