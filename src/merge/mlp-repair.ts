/**
 * REPAIR for the built-in MLP (params without a graph, e.g. safetensors): the hidden Linear layers, with
 * their pre-activation statistics computed by the plain forward pass. The output layer is not repaired.
 */
import type { MatmulEngine } from '../engine/matmul.js';
import { mlpForward, type MlpArch } from '../model/mlp.js';
import type { ProbeBatch } from '../measure/runner.js';
import type { Params } from '../tensor.js';
import { columnStats, type LayerStats, type RepairLayer, type StatsFn } from './repair.js';

/** The hidden layers of `arch` that have a bias (a torch Linear's weight is [out, in]: units on axis 0). */
export function mlpRepairPlan(arch: MlpArch): { layers: RepairLayer[]; skipped: { node: string; reason: string }[] } {
  const layers: RepairLayer[] = [];
  const skipped: { node: string; reason: string }[] = [];
  arch.layers.slice(0, -1).forEach((l) => {
    if (l.bias === null) skipped.push({ node: l.weight, reason: 'the layer has no bias' });
    else layers.push({ name: l.weight, weight: l.weight, bias: l.bias, axis: 0 });
  });
  return { layers, skipped };
}

/** Pre-ReLU statistics of each plan layer on `probe`: the net truncated after layer l outputs exactly them. */
export function mlpStats(arch: MlpArch, layers: readonly RepairLayer[], probe: ProbeBatch, engine: MatmulEngine): StatsFn {
  return async (params: Params): Promise<LayerStats> => {
    const out: LayerStats = {};
    for (const layer of layers) {
      const l = arch.layers.findIndex((x) => x.weight === layer.weight);
      const { logits } = await mlpForward({ layers: arch.layers.slice(0, l + 1) }, params, probe.inputs, probe.count, engine);
      out[layer.name] = columnStats(logits, probe.count, logits.length / probe.count);
    }
    return out;
  };
}
