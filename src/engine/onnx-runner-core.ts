/**
 * A ModelRunner for any ONNX classifier, on an ONNX Runtime module passed in (onnxruntime-node from
 * onnx-runner.ts, onnxruntime-web in the browser page); this file imports no Node module. The model's float initializers become
 * graph inputs (initializersToInputs), so ONE inference session gives outputs and activations for every
 * parameter set — model A, model B, each interpolated α — by feeding the weights alongside the data batch;
 * the model file on disk is never touched.
 *
 * evaluate() is the exception: a pass over a whole dataset runs on a session of its own, built for that one
 * parameter set with the weights as constant initializers (withInitializers) and released at the end of the
 * pass. ONNX Runtime rewrites and pre-packs only constant weights (blocked-layout convolution kernels, packed
 * GEMM operands); weights fed as inputs are re-read in the plain layout on every run. Building the session
 * costs about one batch of a conv net, and the pass then runs much faster (BENCHMARKS.md, "Evaluation
 * speed"). The numbers are the same to float rounding: only the order of the sums inside a kernel differs.
 *
 * Activations ("taps") are intermediate values added as extra graph outputs. They are added to the same
 * session up front rather than to a second, lazily built one: ONNX Runtime computes only what the requested
 * fetches need, and every tap lies on the path to the logits anyway, so an evaluate that fetches only the
 * logits costs the same with or without the taps (measured on the ResNet fixture: within run-to-run noise),
 * while a second session would cost a second graph load and its memory.
 */
import type * as OrtCommon from 'onnxruntime-common';
import { InputError } from '../errors.js';
import { floatToHalfBits, decodeF16Bits } from '../io/dtype.js';
import { type OnnxDim, type OnnxDtype, type OnnxModel, initializersToInputs, serializeOnnx, withInitializers } from '../io/onnx.js';
import type { Params, Tensor } from '../tensor.js';
import { shapeToString } from '../tensor.js';
import { crossEntropy, type BatchProgress, type Evaluation, type LabelledData, type ModelRunner, type ProbeBatch, type UnitActivations } from './runner.js';

export interface OnnxTap {
  /** Name of the graph value (a node output) whose units the permutation acts on, e.g. '/Relu_output_0'. */
  value: string;
  /**
   * The value's unit (channel) axis, e.g. 1 for [N, C] and [N, C, H, W]; negative counts from the end.
   * Every other non-batch position counts as one more sample: a [N, C, H, W] tap gives N·H·W rows of C
   * values (reported as UnitActivations.rows), the usual way to match convolution channels by activations.
   */
  axis: number;
}

export interface OnnxRunnerOptions {
  /** The data input; default: the one graph input that is not a weight. */
  input?: string;
  /** The logits output; default: the one graph output. */
  output?: string;
  /** Examples per session run (default 500). A model with a fixed batch dimension uses that instead. */
  batchSize?: number;
  /** Per permutation name, the value holding its units; needed for activations(). */
  taps?: Record<string, OnnxTap>;
  /** ONNX Runtime intra-op threads (default: ONNX Runtime's own choice). */
  threads?: number;
  /**
   * evaluate() on a session built with the weights as constants (default true; see the top of this file).
   * false evaluates on the one weight-fed session, as outputs() does.
   */
  constantWeights?: boolean;
}

export interface OnnxRunner extends ModelRunner {
  /** The data input's shape as the graph records it, batch dimension first, e.g. ['N', 1, 28, 28]. */
  readonly inputShape: OnnxDim[];
  activations(params: Params, probe: ProbeBatch): Promise<Record<string, UnitActivations>>;
  /** Releases the session. */
  dispose(): Promise<void>;
}

type FeedType = 'float32' | 'float16' | 'float64';

/** One weight input: its name, shape, the dtype ONNX Runtime expects, and a conversion buffer reused across calls. */
interface WeightInput {
  readonly name: string;
  readonly shape: readonly number[];
  readonly size: number;
  readonly type: FeedType;
  buffer: Uint16Array | Float64Array | null;
}

function feedTypeOf(dtype: OnnxDtype | null, what: string, label: string): FeedType {
  if (dtype === 'float32' || dtype === 'float16' || dtype === 'float64') return dtype;
  // onnxruntime-node's Tensor has no bfloat16 type, so such weights cannot be fed from JS.
  throw new InputError(`${label}: ${what} is ${dtype ?? 'of unknown type'}; only float32, float16 and float64 can be fed to ONNX Runtime`);
}

const sizeOf = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** Any ORT output as float32 (float16 arrives as raw bits, float64 as Float64Array). */
function toFloat32(t: OrtCommon.Tensor): Float32Array {
  const d = t.data as unknown;
  if (d instanceof Float32Array) return d;
  if (t.type === 'float16') {
    // Depending on the platform ORT hands float16 back as Uint16Array bits or as a Float16Array.
    return d instanceof Uint16Array ? decodeF16Bits(d) : Float32Array.from(d as ArrayLike<number>);
  }
  if (d instanceof Float64Array) return Float32Array.from(d);
  throw new Error(`cannot read an ONNX Runtime output of type ${t.type} as floats`);
}

/**
 * Rows of `t` with its `axis` as columns: a tensor of shape [d0, …, dk] becomes a (Π_{i≠axis} d_i) × d_axis
 * matrix, rows in row-major order of the other axes (so for [N, C, H, W] and axis 1, row n·H·W + h·W + w is
 * the channel vector at pixel (h, w) of example n). Writes `batchRows` rows into `out` from row `at`.
 */
function axisLastRows(src: Float32Array, shape: readonly number[], axis: number, out: Float32Array, at: number, batchRows: number): void {
  const width = shape[axis];
  const inner = sizeOf(shape.slice(axis + 1));
  const base = at * width;
  if (inner === 1) {
    out.set(src.subarray(0, batchRows * width), base);
    return;
  }
  const outer = batchRows / inner;
  for (let o = 0; o < outer; o++) {
    const from = o * width * inner;
    const to = base + o * inner * width;
    for (let c = 0; c < width; c++) {
      const s = from + c * inner;
      for (let i = 0; i < inner; i++) out[to + i * width + c] = src[s + i];
    }
  }
}

/**
 * The parts of an ONNX Runtime module the runner uses. onnxruntime-node and onnxruntime-web both export these
 * (from onnxruntime-common), so either module object can be passed as it is.
 */
export interface OrtModule {
  readonly InferenceSession: typeof OrtCommon.InferenceSession;
  readonly Tensor: typeof OrtCommon.Tensor;
}

/** createOnnxRunner on a given ONNX Runtime module: onnxruntime-node, onnxruntime-web, or any with the same API. */
export async function createOnnxRunnerWith(ort: OrtModule, model: OnnxModel, options: OnnxRunnerOptions = {}): Promise<OnnxRunner> {
  const label = model.label;
  const weightNames = new Set(model.initializerNames);

  // Non-float initializers (shape constants) stay inside the graph, which ONNX Runtime loads from bytes here,
  // so their data must be in the model: readOnnxFile loads external data into it.
  for (const name of model.initializerNames) {
    const info = model.initializers[name];
    if (info.external !== null) {
      throw new InputError(`${label}: initializer '${name}' still points at external data '${info.external.location}'; load the model with readOnnxFile`);
    }
  }
  const fed = initializersToInputs(model);

  // --- the data input and the logits output
  const dataInputs = fed.graph.inputs.filter((v) => !weightNames.has(v.name));
  const named = options.input ?? (dataInputs.length === 1 ? dataInputs[0].name : null);
  if (named === null) {
    throw new InputError(`${label}: the graph has ${dataInputs.length} data inputs (${dataInputs.map((v) => `'${v.name}'`).join(', ')}); say which one takes the examples`);
  }
  const input: string = named;
  const inputInfo = dataInputs.find((v) => v.name === input);
  if (inputInfo === undefined) {
    throw new InputError(`${label}: no data input named '${input}' (the graph's data inputs: ${dataInputs.map((v) => `'${v.name}'`).join(', ') || 'none'})`);
  }
  const inputType = feedTypeOf(inputInfo.dtype, `input '${input}'`, label);
  if (inputInfo.shape === null || inputInfo.shape.length < 2) {
    throw new InputError(`${label}: input '${input}' has ${inputInfo.shape === null ? 'no recorded shape' : `shape [${inputInfo.shape.join(', ')}]`}; expected a batch dimension followed by the example's shape`);
  }
  const inputShape = [...inputInfo.shape];
  const batchDim = inputShape[0];
  const fixedBatch = typeof batchDim === 'number' && batchDim > 0 ? batchDim : null;
  const batchSize = fixedBatch ?? options.batchSize ?? 500;
  if (!Number.isInteger(batchSize) || batchSize <= 0) throw new InputError(`batch size must be a positive integer, got ${batchSize}`);

  const outputs = fed.graph.outputs.map((v) => v.name);
  const chosen = options.output ?? (outputs.length === 1 ? outputs[0] : null);
  if (chosen === null || !outputs.includes(chosen)) {
    throw new InputError(
      chosen === null
        ? `${label}: the graph has ${outputs.length} outputs (${outputs.map((n) => `'${n}'`).join(', ')}); say which one holds the logits`
        : `${label}: no graph output named '${chosen}' (outputs: ${outputs.map((n) => `'${n}'`).join(', ')})`,
    );
  }
  const output: string = chosen;

  // --- weights fed as inputs, in their stored dtype
  const weights: WeightInput[] = model.initializerNames
    .filter((n) => fed.graph.inputs.some((v) => v.name === n))
    .map((name) => {
      const info = model.initializers[name];
      return { name, shape: info.shape, size: sizeOf(info.shape), type: feedTypeOf(info.dtype, `weight '${name}'`, label), buffer: null };
    });

  // --- taps: extra graph outputs
  const taps = Object.entries(options.taps ?? {});
  const produced = new Set(fed.graph.nodes.flatMap((n) => n.outputs));
  for (const [perm, tap] of taps) {
    if (!produced.has(tap.value)) {
      throw new InputError(`${label}: tap for permutation '${perm}' names '${tap.value}', which no node of the graph produces`);
    }
    if (!Number.isInteger(tap.axis)) throw new InputError(`${label}: tap '${perm}' axis must be an integer, got ${tap.axis}`);
  }
  const extra = [...new Set(taps.map(([, t]) => t.value))].filter((v) => !outputs.includes(v));
  let proto = fed.proto;
  if (extra.length > 0) {
    // A plain-object copy of the graph with more outputs; only ONNX Runtime reads it. An output listed with
    // its name alone gets its type from the graph's own shape inference.
    const g = fed.proto.graph!;
    proto = { ...fed.proto, graph: { ...g, output: [...(g.output ?? []), ...extra.map((name) => ({ name }))] } };
  }
  const bytes = serializeOnnx({ ...fed, proto });

  const sessionOptions: OrtCommon.InferenceSession.SessionOptions = { graphOptimizationLevel: 'all', executionMode: 'sequential' };
  if (options.threads !== undefined) sessionOptions.intraOpNumThreads = options.threads;
  let session: OrtCommon.InferenceSession | null;
  try {
    session = await ort.InferenceSession.create(bytes, sessionOptions);
  } catch (e) {
    throw new InputError(`${label}: ONNX Runtime cannot load the model (${(e as Error).message.split('\n')[0]})`);
  }

  // --- the example shape, checked against each dataset
  const exampleDims = inputShape.slice(1);
  function exampleShape(data: ProbeBatch): number[] {
    const size = data.count > 0 ? data.inputs.length / data.count : 0;
    const known = exampleDims.filter((d): d is number => typeof d === 'number' && d > 0);
    const unknown = exampleDims.length - known.length;
    const knownSize = sizeOf(known);
    const shown = `[${exampleDims.map((d) => d ?? '?').join(', ')}]`;
    const bad = (): InputError =>
      new InputError(
        `${label}: input '${input}' takes examples of shape ${shown}${unknown === 0 ? ` (${knownSize} values)` : ''}; the data has ${data.count} examples of ${Number.isInteger(size) ? size : data.inputs.length / Math.max(1, data.count)} values`,
      );
    if (data.count === 0 && data.inputs.length === 0) return []; // nothing will be run
    if (!Number.isInteger(size) || data.inputs.length !== data.count * size) throw bad();
    if (unknown === 0) {
      if (knownSize !== size) throw bad();
      return known;
    }
    // One symbolic dimension besides the batch can be inferred from the example size; more cannot.
    if (unknown > 1 || size % knownSize !== 0) throw bad();
    return exampleDims.map((d) => (typeof d === 'number' && d > 0 ? d : size / knownSize));
  }

  // Reused buffers: converted weights live in WeightInput.buffer; converted or padded input batches here.
  let inputBuffer: Float32Array | Float64Array | Uint16Array | null = null;

  /** Every weight present in `params` with its graph shape; a clear InputError otherwise. */
  function checkWeights(params: Params): void {
    const missing = weights.filter((w) => params[w.name] === undefined).map((w) => w.name);
    if (missing.length > 0) {
      const names = missing.slice(0, 5).map((n) => `'${n}'`).join(', ') + (missing.length > 5 ? `, … (${missing.length} in all)` : '');
      throw new InputError(`${label}: the parameters lack weight ${names}`);
    }
    for (const w of weights) {
      const t = params[w.name];
      if (t.data.length !== w.size || t.shape.length !== w.shape.length || t.shape.some((d, i) => d !== w.shape[i])) {
        throw new InputError(`${label}: weight '${w.name}' has shape ${shapeToString(w.shape)}, the parameters give ${shapeToString(t.shape)}`);
      }
    }
  }

  function weightFeeds(params: Params): Record<string, OrtCommon.Tensor> {
    checkWeights(params);
    const feeds: Record<string, OrtCommon.Tensor> = Object.create(null);
    for (const w of weights) {
      const t = params[w.name];
      if (w.type === 'float32') {
        // Wrapped, not copied: ONNX Runtime reads the caller's array and never writes to inputs.
        feeds[w.name] = new ort.Tensor('float32', t.data, w.shape);
      } else if (w.type === 'float16') {
        const buf = (w.buffer ??= new Uint16Array(w.size)) as Uint16Array;
        for (let i = 0; i < w.size; i++) buf[i] = floatToHalfBits(t.data[i]);
        feeds[w.name] = new ort.Tensor('float16', buf, w.shape);
      } else {
        const buf = (w.buffer ??= new Float64Array(w.size)) as Float64Array;
        buf.set(t.data);
        feeds[w.name] = new ort.Tensor('float64', buf, w.shape);
      }
    }
    return feeds;
  }

  /** The input tensor for examples [start, start+n) of `data`: a view when possible, else a reused buffer. */
  function inputTensor(data: ProbeBatch, shape: number[], start: number, n: number): OrtCommon.Tensor {
    const size = sizeOf(shape);
    const rows = fixedBatch ?? n;
    const view = data.inputs.subarray(start * size, (start + n) * size);
    const dims = [rows, ...shape];
    if (inputType === 'float32' && rows === n) return new ort.Tensor('float32', view, dims);
    const want = rows * size;
    const Ctor = inputType === 'float32' ? Float32Array : inputType === 'float64' ? Float64Array : Uint16Array;
    if (!(inputBuffer instanceof Ctor) || inputBuffer.length !== want) inputBuffer = new Ctor(want);
    const buf = inputBuffer;
    if (buf instanceof Uint16Array) {
      for (let i = 0; i < view.length; i++) buf[i] = floatToHalfBits(view[i]);
    } else {
      buf.set(view);
    }
    buf.fill(0, view.length); // padding rows of a fixed-size batch
    return new ort.Tensor(inputType, buf, dims);
  }

  // Calls share the conversion buffers, so they run one at a time.
  let queue: Promise<unknown> = Promise.resolve();
  function exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = queue.then(fn);
    queue = run.catch(() => undefined);
    return run;
  }

  function liveSession(): OrtCommon.InferenceSession {
    if (session === null) throw new Error('this ONNX runner has been disposed');
    return session;
  }

  /** Runs `s` over `data` in batches (with `feeds` besides the data), calling `each` with each batch's fetches. */
  async function forEachBatch(
    s: OrtCommon.InferenceSession,
    feeds: Record<string, OrtCommon.Tensor>,
    data: ProbeBatch,
    fetches: string[],
    each: (out: Record<string, OrtCommon.Tensor>, start: number, n: number) => void,
  ): Promise<void> {
    const shape = exampleShape(data);
    for (let start = 0; start < data.count; start += batchSize) {
      const n = Math.min(batchSize, data.count - start);
      feeds[input] = inputTensor(data, shape, start, n);
      each(await s.run(feeds, fetches), start, n);
    }
  }

  /**
   * A session of the original graph with `params`' weights stored in it as constants (see the top of this
   * file); the caller releases it. Non-weight entries of `params` are ignored, as the fed session ignores them.
   */
  async function constantWeightSession(params: Params): Promise<OrtCommon.InferenceSession> {
    checkWeights(params);
    const values: Record<string, Tensor> = Object.create(null);
    for (const w of weights) values[w.name] = params[w.name];
    const baked = serializeOnnx(withInitializers(model, values));
    try {
      return await ort.InferenceSession.create(baked, sessionOptions);
    } catch (e) {
      throw new InputError(`${label}: ONNX Runtime cannot load the model with these weights (${(e as Error).message.split('\n')[0]})`);
    }
  }

  function logitsOf(t: OrtCommon.Tensor, n: number): { logits: Float32Array; classes: number } {
    if (t.dims.length !== 2) {
      throw new InputError(`${label}: output '${output}' has shape [${t.dims.join(', ')}]; expected classification logits [N, classes]`);
    }
    const classes = t.dims[1];
    return { logits: toFloat32(t).subarray(0, n * classes), classes };
  }

  return {
    inputShape,

    evaluate(params: Params, data: LabelledData, onBatch?: BatchProgress): Promise<Evaluation> {
      return exclusive(async () => {
        const fed = liveSession();
        const own = options.constantWeights === false || data.count === 0 ? null : await constantWeightSession(params);
        let loss = 0;
        let correct = 0;
        try {
          await forEachBatch(own ?? fed, own ? Object.create(null) : weightFeeds(params), data, [output], (out, start, n) => {
            const { logits, classes } = logitsOf(out[output], n);
            const labels = data.labels.subarray(start, start + n);
            for (let i = 0; i < n; i++) {
              if (!(labels[i] >= 0 && labels[i] < classes)) {
                throw new InputError(`${label}: label ${labels[i]} of example ${start + i} is out of range for ${classes} classes`);
              }
            }
            const ce = crossEntropy(logits, labels, n, classes);
            loss += ce.loss * n;
            correct += ce.correct;
            onBatch?.(start + n, data.count);
          });
        } finally {
          await own?.release();
        }
        return data.count === 0 ? { loss: NaN, accuracy: NaN } : { loss: loss / data.count, accuracy: correct / data.count };
      });
    },

    outputs(params: Params, probe: ProbeBatch): Promise<Float32Array> {
      return exclusive(async () => {
        let result: Float32Array | null = null;
        await forEachBatch(liveSession(), weightFeeds(params), probe, [output], (out, start, n) => {
          const { logits, classes } = logitsOf(out[output], n);
          result ??= new Float32Array(probe.count * classes);
          result.set(logits, start * classes);
        });
        return result ?? new Float32Array(0);
      });
    },

    activations(params: Params, probe: ProbeBatch): Promise<Record<string, UnitActivations>> {
      if (taps.length === 0) return Promise.reject(new Error('createOnnxRunner: taps are needed for activations'));
      return exclusive(async () => {
        const values = [...new Set(taps.map(([, t]) => t.value))];
        const result: Record<string, UnitActivations & { rows: number }> = Object.create(null);
        await forEachBatch(liveSession(), weightFeeds(params), probe, values, (out, start, n) => {
          for (const [perm, tap] of taps) {
            const t = out[tap.value];
            const dims = t.dims.map(Number);
            const axis = tap.axis < 0 ? tap.axis + dims.length : tap.axis;
            if (axis <= 0 || axis >= dims.length) {
              throw new InputError(`${label}: tap '${perm}' axis ${tap.axis} is not a unit axis of '${tap.value}' (shape [${dims.join(', ')}]; axis 0 is the batch)`);
            }
            const width = dims[axis];
            const perExample = sizeOf(dims.slice(1)) / width;
            // A fixed-size batch may carry padding rows at the end: only the first n examples are kept.
            const batchRows = n * perExample;
            let r = result[perm];
            if (r === undefined) {
              r = { data: new Float32Array(probe.count * perExample * width), width, rows: probe.count * perExample };
              result[perm] = r;
            }
            if (r.width !== width || r.rows !== probe.count * perExample) {
              throw new Error(`tap '${perm}' changed shape between batches`);
            }
            axisLastRows(toFloat32(t), dims, axis, r.data, start * perExample, batchRows);
          }
        });
        return result;
      });
    },

    async dispose() {
      const s = session;
      session = null;
      if (s !== null) await exclusive(() => s.release());
    },
  };
}
