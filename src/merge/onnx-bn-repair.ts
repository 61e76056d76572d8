/**
 * REPAIR on ONNX graphs that keep their BatchNormalization nodes (PyTorch's exporter with constant folding
 * off or training=PRESERVE, TF/Keras exports). Such a merged net still carries, in each BN's input_mean /
 * input_var initializers (inputs 3 and 4), the running statistics averaged from the endpoints, which no
 * longer describe its own pre-BN activations. The repair resets them from the merged net's activations on a
 * probe batch (resetBatchNormStats, batchnorm.ts); scale and B stay as merged.
 *
 * A Conv/Gemm whose output goes only into reset BNs needs no correction of its own (the BN normalises away
 * any per-channel affine change of it). Every other Conv/Gemm that onnx-repair.ts can correct (a BN-folded
 * layer beside the BNs) is corrected as there. Both kinds are processed in graph order, one step per layer,
 * each measured after the earlier ones were reset or corrected ('oneshot' measures the corrected layers once,
 * on the plain merge; BN resets are always sequential).
 *
 * The variance is stored as the population variance of the probe: ONNX's BatchNormalization divides by
 * sqrt(var + epsilon) with var as stored, so the probe's pre-BN activations come out exactly standardised.
 *
 * Not reset (reported as skipped, with the reason): a BN in training mode (it normalises by the batch's own
 * statistics, nothing stored is used), a BN whose mean or var is not a float initializer of its own (shared
 * or computed), and a BN on a graph input.
 */
import type { OnnxModel, OnnxNode } from '../io/onnx.js';
import { isFloatDtype } from '../io/onnx.js';
import type { ProbeBatch } from '../measure/runner.js';
import type { Params, Tensor } from '../tensor.js';
import { resetBatchNormStats, type BatchNormLayer } from './batchnorm.js';
import { nodeLabel, onnxRepairPlan, onnxStats, type OnnxRepairLayer } from './onnx-repair.js';
import {
  correctLayer,
  endpointWeights,
  measureEndpoints,
  targetStats,
  type LayerCorrection,
  type LayerStats,
  type RepairMode,
  type RepairResult,
  type StatsFn,
  type UnitStats,
} from './repair.js';

export interface OnnxBatchNormLayer extends BatchNormLayer {
  /** The BN's input X: the pre-BN activation that is measured (the tap). */
  value: string;
  epsilon: number;
}

export type OnnxRepairStep = { kind: 'batchnorm'; layer: OnnxBatchNormLayer } | { kind: 'repair'; layer: OnnxRepairLayer };

export interface OnnxBatchNormPlan {
  /** BN nodes whose statistics are reset, in graph order. */
  batchNorm: OnnxBatchNormLayer[];
  /** Conv/Gemm layers corrected by REPAIR proper (not followed by a reset BN), in graph order. */
  layers: OnnxRepairLayer[];
  /** Both, interleaved in graph order. */
  steps: OnnxRepairStep[];
  skipped: { node: string; reason: string }[];
}

const isStandard = (n: OnnxNode): boolean => n.domain === '' || n.domain === 'ai.onnx';

/** The BN nodes of `model` whose statistics can be reset, and the Conv/Gemm layers REPAIR corrects beside them. */
export function onnxBatchNormPlan(model: OnnxModel): OnnxBatchNormPlan {
  const g = model.graph;
  const uses = new Map<string, number>();
  const consumers = new Map<string, OnnxNode[]>();
  for (const n of g.nodes) {
    for (const i of n.inputs) {
      if (i === '') continue;
      uses.set(i, (uses.get(i) ?? 0) + 1);
      consumers.set(i, [...(consumers.get(i) ?? []), n]);
    }
  }
  const graphInputs = new Set(g.inputs.map((i) => i.name));
  const ownFloatInit = (name: string | undefined): boolean =>
    name !== undefined && name !== '' && model.initializers[name] !== undefined && isFloatDtype(model.initializers[name].dtype) && uses.get(name) === 1;
  const size = (name: string): number => model.initializers[name].shape.reduce((a, b) => a * b, 1);

  const batchNorm: OnnxBatchNormLayer[] = [];
  const bnNodes = new Set<OnnxNode>();
  const bnAt: number[] = [];
  const skipped: { node: string; reason: string }[] = [];
  for (const [at, node] of g.nodes.entries()) {
    if (node.opType !== 'BatchNormalization' || !isStandard(node)) continue;
    const skip = (reason: string) => skipped.push({ node: nodeLabel(node), reason });
    const [x, , , mean, variance] = node.inputs;
    // Opset 14+ says so in training_mode; before, a training-mode BN also writes its running statistics out.
    if (node.attributes.training_mode === 1 || node.outputs.slice(1).some((o) => o !== '')) {
      skip('it runs in training mode (normalises by batch statistics), so no stored statistics are used');
      continue;
    }
    if (!ownFloatInit(mean) || !ownFloatInit(variance)) {
      skip('its input_mean or input_var is not a float initializer used by this node alone');
      continue;
    }
    if (size(mean) !== size(variance)) {
      skip(`its input_mean and input_var hold ${size(mean)} and ${size(variance)} values`);
      continue;
    }
    if (graphInputs.has(x) || model.initializers[x] !== undefined) {
      skip('its input is a graph input, not an activation');
      continue;
    }
    const eps = node.attributes.epsilon;
    batchNorm.push({ name: node.name || node.outputs[0], value: x, runningMean: mean, runningVar: variance, epsilon: typeof eps === 'number' ? eps : 1e-5 });
    bnNodes.add(node);
    bnAt.push(at);
  }

  // A Conv/Gemm feeding only reset BNs is left to them; its "no bias" skip reason is moot as well.
  const feedsOnlyBn = (n: OnnxNode): boolean => {
    const c = consumers.get(n.outputs[0]) ?? [];
    return c.length > 0 && c.every((m) => bnNodes.has(m) && m.inputs[0] === n.outputs[0]);
  };
  const leftToBn = new Set(g.nodes.filter((n) => (n.opType === 'Conv' || n.opType === 'Gemm') && isStandard(n) && feedsOnlyBn(n)).map((n) => n.outputs[0]));
  const labelsLeftToBn = new Set(g.nodes.filter((n) => leftToBn.has(n.outputs[0])).map(nodeLabel));
  const folded = onnxRepairPlan(model);
  const layers = folded.layers.filter((l) => !leftToBn.has(l.value));
  skipped.push(...folded.skipped.filter((s) => !labelsLeftToBn.has(s.node)));

  // Stats keys must not collide: a BN named like a Conv output gets a suffix.
  const taken = new Set(layers.map((l) => l.name));
  for (const b of batchNorm) {
    while (taken.has(b.name)) b.name = `${b.name} (BatchNormalization)`;
    taken.add(b.name);
  }

  const order = new Map<string, number>();
  g.nodes.forEach((n, i) => n.outputs.forEach((o) => order.set(o, i)));
  const steps: OnnxRepairStep[] = [
    ...batchNorm.map((layer, i) => ({ kind: 'batchnorm' as const, layer, at: bnAt[i] })),
    ...layers.map((layer) => ({ kind: 'repair' as const, layer, at: order.get(layer.value)! })),
  ]
    .sort((a, b) => a.at - b.at)
    .map(({ at: _at, ...s }) => s as OnnxRepairStep);
  return { batchNorm, layers, steps, skipped };
}

/** Whether `model` has BatchNormalization nodes at all (what makes --repair take this path). */
export function hasBatchNorm(model: OnnxModel): boolean {
  return model.graph.nodes.some((n) => n.opType === 'BatchNormalization' && isStandard(n));
}

/**
 * A StatsFn measuring every BN's input and every corrected layer's output of the plan on `probe` (one ONNX
 * Runtime session). Call dispose() when done.
 */
export function onnxBatchNormStats(
  model: OnnxModel,
  plan: OnnxBatchNormPlan,
  probe: ProbeBatch,
  options: { threads?: number; batchSize?: number } = {},
): Promise<{ stats: StatsFn; dispose: () => Promise<void> }> {
  return onnxStats(model, [...plan.batchNorm, ...plan.layers], probe, options);
}

export interface OnnxBatchNormRepairOptions {
  /** The merged (interpolated) parameters. Not modified. */
  merged: Params;
  /** The aligned endpoints: the targets of the corrected Conv/Gemm layers (unused when there are none). */
  endpoints: readonly Params[];
  alpha?: number;
  weights?: readonly number[];
  plan: OnnxBatchNormPlan;
  /** Measures every plan key (onnxBatchNormStats). */
  stats: StatsFn;
  /** For the Conv/Gemm corrections only: BN resets always re-measure. */
  mode?: RepairMode;
  endpointStats?: readonly LayerStats[];
  onLayer?: (done: number, total: number, layer: string) => void;
}

/**
 * What a reset did to a BN, as a LayerCorrection: the scale is the change of the BN's gain on its input,
 * sqrt((old var + ε) / (new var + ε)) per channel (above 1 where the merged net's activations had collapsed).
 * Channels constant on the probe are counted as dead units.
 */
function resetCorrection(layer: OnnxBatchNormLayer, before: Tensor, after: Tensor): LayerCorrection {
  let min = Infinity;
  let max = -Infinity;
  let logSum = 0;
  let dead = 0;
  for (let c = 0; c < after.data.length; c++) {
    const s = Math.sqrt((before.data[c] + layer.epsilon) / (after.data[c] + layer.epsilon));
    min = Math.min(min, s);
    max = Math.max(max, s);
    logSum += Math.log(s);
    if (!(after.data[c] > 1e-12)) dead++;
  }
  const n = after.data.length;
  return { name: layer.name, minScale: min, meanScale: n > 0 ? Math.exp(logSum / n) : 0, maxScale: max, deadUnits: dead };
}

/** The merged net with its BN statistics reset and its other repairable layers corrected, in graph order. */
export async function repairOnnxBatchNorm(o: OnnxBatchNormRepairOptions): Promise<RepairResult> {
  const { plan } = o;
  let targets = new Map<string, UnitStats>();
  if (plan.layers.length > 0) {
    if (o.endpoints.length < 1) throw new Error('repair: no endpoints');
    const weights = endpointWeights(o.endpoints.length, o.alpha, o.weights);
    const ends = o.endpointStats ?? (await measureEndpoints(o.stats, o.endpoints));
    targets = new Map(plan.layers.map((l) => [l.name, targetStats(ends, weights, l.name)]));
  }
  // Oneshot: one measurement (of the plain merge) serves every Conv/Gemm correction. A BN reset always
  // measures afresh: statistics taken under the earlier BNs' stale ones do not normalise anything (on the
  // ResNet fixture's aligned midpoint, resetting every BN from one measurement gave a loss near 100).
  let first: LayerStats | null = null;
  const layerStats: StatsFn =
    (o.mode ?? 'sequential') === 'sequential'
      ? o.stats
      : async (p) => {
          first ??= await o.stats(p);
          return first;
        };

  let params: Record<string, Tensor> = { ...o.merged };
  const corrections: LayerCorrection[] = [];
  for (let i = 0; i < plan.steps.length; i++) {
    const step = plan.steps[i];
    if (step.kind === 'batchnorm') {
      const before = params[step.layer.runningVar];
      params = await resetBatchNormStats({ params, layers: [step.layer], stats: o.stats });
      corrections.push(resetCorrection(step.layer, before, params[step.layer.runningVar]));
    } else {
      const current = (await layerStats(params))[step.layer.name];
      if (current === undefined) throw new Error(`repair: the statistics lack layer '${step.layer.name}'`);
      const r = correctLayer(params, step.layer, current, targets.get(step.layer.name)!);
      params = r.params;
      corrections.push(r.correction);
    }
    o.onLayer?.(i + 1, plan.steps.length, step.layer.name);
  }
  return { params, corrections };
}
