/**
 * REPAIR (Jordan et al. 2022, "REPAIR: REnormalizing Permuted Activations for Interpolation Repair").
 *
 * Interpolating two aligned networks shrinks the variance of their hidden units ("variance collapse"): the
 * units of A and P(B) are not perfectly correlated, so their average has a smaller spread than either. The
 * fix renormalises every repaired layer of the merged net so that each output unit c has the mean and
 * standard deviation one would expect of the interpolated network:
 *
 *   μ*_c = Σₖ wₖ·μₖ,c      σ*_c = Σₖ wₖ·σₖ,c        (wₖ = the endpoints' interpolation weights: 1−α, α)
 *
 * For a layer y = W·x + β·b the correction y' = s·(y − μ_c) + μ*_c with s = σ*_c / σ_c (μ_c, σ_c measured on
 * the merged net) is again a layer of the same form, so it is folded into the weights instead of adding a
 * normalisation op:
 *
 *   W'[c] = s·W[c]          b'[c] = s·b[c] + (μ*_c − s·μ_c) / β
 *
 * where W[c] is the slice of the weight along its output-channel axis and β the bias multiplier (1 for Conv,
 * Gemm's beta). That is the BatchNorm-folded form that exporters write: the statistics are those of the
 * layer's OUTPUT, before any nonlinearity or residual add.
 *
 * Sequential mode (default) corrects layer by layer in the given order, measuring each layer's statistics
 * after the earlier layers were corrected; 'oneshot' measures once and corrects every layer from those
 * numbers. Sequential costs one probe pass per layer but is more faithful: a corrected early layer changes
 * the inputs of the later ones.
 */
import type { Params, Tensor } from '../tensor.js';
import { axisSplit, shapeToString } from '../tensor.js';
import { InputError } from '../errors.js';

/** Per-unit statistics of one layer's output over a probe batch (population std). */
export interface UnitStats {
  mean: Float64Array;
  std: Float64Array;
}

export type LayerStats = Record<string, UnitStats>;

/** Measures every repaired layer's output statistics for a parameter set (on a fixed probe batch). */
export type StatsFn = (params: Params) => Promise<LayerStats>;

export interface RepairLayer {
  /** Key of the layer in the stats records. */
  name: string;
  /** Param holding the weight; scaled along `axis`. */
  weight: string;
  /** Param holding the bias (one value per output unit). */
  bias: string;
  /** The weight's output-unit axis (0 for Conv and torch Linear, 1 for Gemm with transB=0). */
  axis: number;
  /** Multiplier of the bias in the layer (Gemm's beta); default 1. */
  biasScale?: number;
}

export type RepairMode = 'sequential' | 'oneshot';

export interface RepairOptions {
  /** The merged (interpolated) parameters to correct. Not modified. */
  merged: Params;
  /** The aligned endpoints the merged net was interpolated from, e.g. [A, P(B)]. */
  endpoints: readonly Params[];
  /** For two endpoints: the weight of the second (θ = (1−α)·A + α·P(B)). */
  alpha?: number;
  /** Interpolation weights of the endpoints (summing to 1); default [1−α, α] for two, uniform otherwise. */
  weights?: readonly number[];
  stats: StatsFn;
  /** The layers to correct, in graph order (earlier layers first). */
  layers: readonly RepairLayer[];
  mode?: RepairMode;
  /** The endpoints' statistics when already measured (a sweep measures them once for every α). */
  endpointStats?: readonly LayerStats[];
  onLayer?: (done: number, total: number, layer: string) => void;
}

export interface LayerCorrection {
  name: string;
  /** Smallest, geometric-mean and largest scale s applied to the layer's units. */
  minScale: number;
  meanScale: number;
  maxScale: number;
  /** Units left unscaled because the merged net's unit had (numerically) no variance. */
  deadUnits: number;
}

export interface RepairResult {
  params: Record<string, Tensor>;
  corrections: LayerCorrection[];
}

/** Mean and population std of each column of a rows × width matrix, in float64. */
export function columnStats(data: Float32Array, rows: number, width: number): UnitStats {
  const mean = new Float64Array(width);
  const std = new Float64Array(width);
  if (rows === 0) return { mean, std };
  for (let r = 0; r < rows; r++) {
    const base = r * width;
    for (let c = 0; c < width; c++) mean[c] += data[base + c];
  }
  for (let c = 0; c < width; c++) mean[c] /= rows;
  // Two-pass variance: the sums of squared deviations do not cancel catastrophically.
  for (let r = 0; r < rows; r++) {
    const base = r * width;
    for (let c = 0; c < width; c++) {
      const d = data[base + c] - mean[c];
      std[c] += d * d;
    }
  }
  for (let c = 0; c < width; c++) std[c] = Math.sqrt(std[c] / rows);
  return { mean, std };
}

/** The interpolation weights of the endpoints, checked. */
export function endpointWeights(count: number, alpha?: number, weights?: readonly number[]): number[] {
  if (weights !== undefined) {
    if (weights.length !== count) throw new Error(`repair: ${weights.length} weights for ${count} endpoints`);
    return [...weights];
  }
  if (alpha !== undefined) {
    if (count !== 2) throw new Error(`repair: alpha needs exactly two endpoints, got ${count}`);
    return [1 - alpha, alpha];
  }
  return Array.from({ length: count }, () => 1 / count);
}

/** The statistics each unit should have: the weighted average of the endpoints' means and stds. */
export function targetStats(endpointStats: readonly LayerStats[], weights: readonly number[], layer: string): UnitStats {
  const first = endpointStats[0][layer];
  if (first === undefined) throw new Error(`repair: no statistics for layer '${layer}'`);
  const n = first.mean.length;
  const mean = new Float64Array(n);
  const std = new Float64Array(n);
  endpointStats.forEach((s, k) => {
    const st = s[layer];
    if (st === undefined || st.mean.length !== n) throw new Error(`repair: endpoint ${k} has no statistics of width ${n} for layer '${layer}'`);
    for (let c = 0; c < n; c++) {
      mean[c] += weights[k] * st.mean[c];
      std[c] += weights[k] * st.std[c];
    }
  });
  return { mean, std };
}

/**
 * One layer's correction applied to `params` (a new record; only the layer's weight and bias are new
 * tensors). `current` are the merged net's statistics of the layer, `target` what they should be.
 */
export function correctLayer(params: Params, layer: RepairLayer, current: UnitStats, target: UnitStats): { params: Record<string, Tensor>; correction: LayerCorrection } {
  const w = params[layer.weight];
  const b = params[layer.bias];
  if (w === undefined) throw new InputError(`repair: no weight '${layer.weight}' for layer '${layer.name}'`);
  if (b === undefined) throw new InputError(`repair: no bias '${layer.bias}' for layer '${layer.name}'`);
  const { outer, n, inner } = axisSplit(w.shape, layer.axis);
  if (b.data.length !== n || current.mean.length !== n || target.mean.length !== n) {
    throw new InputError(
      `repair: layer '${layer.name}' has ${n} units on axis ${layer.axis} of '${layer.weight}' ${shapeToString(w.shape)}, but bias '${layer.bias}' ${shapeToString(b.shape)} and the statistics have ${b.data.length} and ${current.mean.length}`,
    );
  }
  const beta = layer.biasScale ?? 1;
  if (!(beta !== 0 && Number.isFinite(beta))) throw new InputError(`repair: layer '${layer.name}' has bias multiplier ${beta}; cannot shift its outputs`);

  const scale = new Float64Array(n);
  let dead = 0;
  for (let c = 0; c < n; c++) {
    const sd = current.std[c];
    // A unit with no spread on the probe cannot be rescaled (0/0); only its mean is moved.
    if (!(sd > 1e-12) || !Number.isFinite(target.std[c])) {
      scale[c] = 1;
      dead++;
    } else scale[c] = target.std[c] / sd;
  }

  const wd = new Float32Array(w.data.length);
  for (let o = 0; o < outer; o++) {
    for (let c = 0; c < n; c++) {
      const s = scale[c];
      const base = (o * n + c) * inner;
      for (let i = 0; i < inner; i++) wd[base + i] = w.data[base + i] * s;
    }
  }
  const bd = new Float32Array(n);
  for (let c = 0; c < n; c++) bd[c] = scale[c] * b.data[c] + (target.mean[c] - scale[c] * current.mean[c]) / beta;

  let min = Infinity;
  let max = -Infinity;
  let logSum = 0;
  let live = 0;
  for (let c = 0; c < n; c++) {
    min = Math.min(min, scale[c]);
    max = Math.max(max, scale[c]);
    if (scale[c] > 0) {
      logSum += Math.log(scale[c]);
      live++;
    }
  }
  return {
    params: { ...params, [layer.weight]: { shape: w.shape, data: wd }, [layer.bias]: { shape: b.shape, data: bd } },
    correction: { name: layer.name, minScale: min, meanScale: live > 0 ? Math.exp(logSum / live) : 0, maxScale: max, deadUnits: dead },
  };
}

/** Measures the endpoints' statistics (once per repair or sweep). */
export async function measureEndpoints(stats: StatsFn, endpoints: readonly Params[]): Promise<LayerStats[]> {
  const out: LayerStats[] = [];
  for (const e of endpoints) out.push(await stats(e));
  return out;
}

/** The merged parameters with every layer's output statistics renormalised (see the module comment). */
export async function repairMerged(options: RepairOptions): Promise<RepairResult> {
  const { merged, endpoints, layers } = options;
  if (endpoints.length < 1) throw new Error('repair: no endpoints');
  const weights = endpointWeights(endpoints.length, options.alpha, options.weights);
  const ends = options.endpointStats ?? (await measureEndpoints(options.stats, endpoints));
  const targets = layers.map((l) => targetStats(ends, weights, l.name));
  const mode = options.mode ?? 'sequential';

  let params: Record<string, Tensor> = { ...merged };
  const corrections: LayerCorrection[] = [];
  let measured: LayerStats | null = null;
  for (let i = 0; i < layers.length; i++) {
    if (mode === 'sequential' || measured === null) measured = await options.stats(params);
    const current = measured[layers[i].name];
    if (current === undefined) throw new Error(`repair: the statistics lack layer '${layers[i].name}'`);
    const r = correctLayer(params, layers[i], current, targets[i]);
    params = r.params;
    corrections.push(r.correction);
    options.onLayer?.(i + 1, layers.length, layers[i].name);
  }
  return { params, corrections };
}
