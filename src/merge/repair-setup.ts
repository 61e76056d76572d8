/**
 * Everything REPAIR of a merged net needs from one of its models (model-specific, computed once): the layers
 * to correct, the BatchNorm nodes to reset, and a way to measure layer statistics on a probe batch. The
 * merge and report commands build it once and repair each merged net they write or sweep with it.
 */
import type { Params } from '../tensor.js';
import { InputError } from '../errors.js';
import type { OnnxModel } from '../io/onnx.js';
import type { ProbeBatch } from '../measure/runner.js';
import type { MatmulEngine } from '../engine/matmul.js';
import { inferMlp } from '../permutation-spec/auto.js';
import { repairMerged, type LayerStats, type RepairLayer, type RepairMode, type RepairResult, type StatsFn } from './repair.js';
import { onnxRepairPlan, onnxStats } from './onnx-repair.js';
import { hasBatchNorm, onnxBatchNormPlan, onnxBatchNormStats, repairOnnxBatchNorm } from './onnx-bn-repair.js';
import type { BatchNormLayer } from './batchnorm.js';
import { mlpRepairPlan, mlpStats } from './mlp-repair.js';

/** The model a repair is set up for: its file (named in refusals), its params and, for ONNX, its graph. */
export interface RepairModel {
  readonly path: string;
  readonly params: Params;
  readonly onnx?: OnnxModel;
}

/** What one repair of a merged net needs besides the setup: the merge, its endpoints and their weights. */
export interface RepairRequest {
  merged: Params;
  endpoints: readonly Params[];
  alpha?: number;
  weights?: readonly number[];
  mode?: RepairMode;
  endpointStats?: readonly LayerStats[];
  onLayer?: (done: number, total: number, layer: string) => void;
}

export interface RepairSetup {
  /** The layers REPAIR corrects (their output statistics set to the endpoints' interpolation). */
  layers: RepairLayer[];
  /** BatchNorm nodes whose running statistics are reset instead (ONNX graphs that keep them). */
  batchNorm: BatchNormLayer[];
  skipped: { node: string; reason: string }[];
  stats: StatsFn;
  /** Repairs one merged net: REPAIR of `layers` and, in graph order with them, the BN resets. */
  repair: (r: RepairRequest) => Promise<RepairResult>;
  dispose: () => Promise<void>;
}

/**
 * The layers REPAIR corrects in `model` and a way to measure them on `probe`: the ONNX graph's Conv/Gemm
 * outputs, or a safetensors MLP's hidden pre-activations. An ONNX graph that keeps BatchNormalization nodes
 * gets those nodes' statistics reset from the merged net's own activations, and REPAIR for the Conv/Gemm
 * layers not followed by a BN. Safetensors models with BatchNorm (or any other non-MLP) carry no graph to
 * run, so their statistics cannot be measured: that is refused, naming the way out.
 */
export async function repairSetup(model: RepairModel, probe: ProbeBatch, engine: MatmulEngine): Promise<RepairSetup> {
  const noLayer = (skipped: { node: string; reason: string }[], none: string) =>
    new InputError(`${model.path}: no layer can be repaired (${skipped.slice(0, 3).map((s) => `${s.node}: ${s.reason}`).join('; ') || none})`);
  if (model.onnx && hasBatchNorm(model.onnx)) {
    const plan = onnxBatchNormPlan(model.onnx);
    if (plan.steps.length === 0) throw noLayer(plan.skipped, 'no BatchNormalization, Conv or Gemm layers');
    const { stats, dispose } = await onnxBatchNormStats(model.onnx, plan, probe);
    return { layers: plan.layers, batchNorm: plan.batchNorm, skipped: plan.skipped, stats, dispose, repair: (r) => repairOnnxBatchNorm({ ...r, plan, stats }) };
  }
  const withRepair = (layers: RepairLayer[], skipped: { node: string; reason: string }[], stats: StatsFn, dispose: () => Promise<void>): RepairSetup => ({
    layers,
    batchNorm: [],
    skipped,
    stats,
    dispose,
    repair: (r) => repairMerged({ ...r, stats, layers }),
  });
  if (model.onnx) {
    const plan = onnxRepairPlan(model.onnx);
    if (plan.layers.length === 0) throw noLayer(plan.skipped, 'no Conv or Gemm layers');
    const { stats, dispose } = await onnxStats(model.onnx, plan.layers, probe);
    return withRepair(plan.layers, plan.skipped, stats, dispose);
  }
  const bn = Object.keys(model.params).find((k) => /running_(mean|var)$/.test(k));
  if (bn !== undefined) {
    throw new InputError(
      `${model.path}: --repair needs to run the network to reset its BatchNorm statistics ('${bn}'), and a safetensors file has no graph; repair the ONNX export instead`,
    );
  }
  let mlp;
  try {
    mlp = inferMlp(model.params);
  } catch (e) {
    throw new InputError(`${model.path}: --repair needs to run the network, and this safetensors file is not a plain MLP (${(e as Error).message}); repair the ONNX export instead`);
  }
  if (mlp.layout !== 'torch') throw new InputError(`${model.path}: --repair supports torch-layout MLPs only; give the ONNX export`);
  const arch = { layers: mlp.layers.map((l) => ({ weight: l.weight, bias: l.bias })) };
  const plan = mlpRepairPlan(arch);
  if (plan.layers.length === 0) throw new InputError(`${model.path}: no hidden layer with a bias to repair`);
  return withRepair(plan.layers, plan.skipped, mlpStats(arch, plan.layers, probe, engine), async () => undefined);
}
