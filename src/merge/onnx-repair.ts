/**
 * REPAIR on ONNX graphs: which layers can be corrected, and their output statistics measured by ONNX Runtime.
 *
 * A layer is a Conv or Gemm node whose weight and bias are float initializers used by that node alone (a
 * shared tensor cannot be rescaled for one layer without changing the other). Exporters fold BatchNorm into
 * the Conv before it, so the Conv's output is where the BN statistics lived: the statistics are taken there,
 * before the nonlinearity or the residual add.
 *
 * Not corrected (reported as skipped, with the reason):
 *  - a Conv or Gemm without a bias input: the correction needs a per-unit shift, and adding an initializer
 *    would change the graph, which rebasin never does (it writes new values into the existing tensors);
 *  - a layer whose output is a graph output (the logits): REPAIR renormalises hidden units only;
 *  - ConvTranspose, MatMul(+Add) and layers fed through Identity/Transpose of their weight.
 */
import type { OnnxModel, OnnxNode } from '../io/onnx.js';
import { isFloatDtype } from '../io/onnx.js';
import { createOnnxRunner, type OnnxTap } from '../engine/onnx-runner.js';
import type { ProbeBatch } from '../measure/runner.js';
import type { Params } from '../tensor.js';
import { columnStats, type LayerStats, type RepairLayer, type StatsFn } from './repair.js';

export interface OnnxRepairLayer extends RepairLayer {
  /** The node's output value (the tap). */
  value: string;
  opType: string;
}

export interface OnnxRepairPlan {
  layers: OnnxRepairLayer[];
  skipped: { node: string; reason: string }[];
}

function attr(node: OnnxNode, name: string, dflt: number): number {
  const v = node.attributes[name];
  return typeof v === 'number' ? v : dflt;
}

/** How a node is named in messages and skip reasons. */
export function nodeLabel(node: OnnxNode): string {
  return `${node.opType} '${node.name || node.outputs[0]}'`;
}

/** The Conv/Gemm layers of `model` that REPAIR can correct, in graph order, and those it cannot. */
export function onnxRepairPlan(model: OnnxModel): OnnxRepairPlan {
  const g = model.graph;
  const uses = new Map<string, number>();
  for (const n of g.nodes) for (const i of n.inputs) if (i !== '') uses.set(i, (uses.get(i) ?? 0) + 1);
  const graphOutputs = new Set(g.outputs.map((o) => o.name));
  const isFloatInit = (name: string | undefined): boolean => name !== undefined && name !== '' && model.initializers[name] !== undefined && isFloatDtype(model.initializers[name].dtype);

  const layers: OnnxRepairLayer[] = [];
  const skipped: { node: string; reason: string }[] = [];
  for (const node of g.nodes) {
    const domainOk = node.domain === '' || node.domain === 'ai.onnx';
    if (!domainOk) continue;
    if (node.opType === 'ConvTranspose' || node.opType === 'MatMul') {
      skipped.push({ node: nodeLabel(node), reason: `${node.opType} layers are not repaired` });
      continue;
    }
    if (node.opType !== 'Conv' && node.opType !== 'Gemm') continue;
    const out = node.outputs[0];
    const [, weight, bias] = node.inputs;
    const skip = (reason: string) => skipped.push({ node: nodeLabel(node), reason });
    if (graphOutputs.has(out)) {
      skip('its output is a graph output (the logits are not renormalised)');
      continue;
    }
    if (!isFloatInit(weight)) {
      skip('its weight is not a float initializer');
      continue;
    }
    if (bias === undefined || bias === '') {
      skip('it has no bias input, and adding one would change the graph');
      continue;
    }
    if (!isFloatInit(bias)) {
      skip('its bias is not a float initializer');
      continue;
    }
    if ((uses.get(weight) ?? 0) > 1 || (uses.get(bias) ?? 0) > 1) {
      skip('its weight or bias is shared with another node');
      continue;
    }
    const wShape = model.initializers[weight].shape;
    let axis = 0;
    let biasScale = 1;
    if (node.opType === 'Gemm') {
      if (wShape.length !== 2) {
        skip(`its weight has shape [${wShape.join(', ')}], expected 2-D`);
        continue;
      }
      axis = attr(node, 'transB', 0) === 1 ? 0 : 1;
      biasScale = attr(node, 'beta', 1);
      if (biasScale === 0 || attr(node, 'alpha', 1) === 0) {
        skip('its alpha or beta is 0');
        continue;
      }
    } else if (wShape.length < 3) {
      skip(`its weight has shape [${wShape.join(', ')}], expected [out, in, kernel...]`);
      continue;
    }
    const units = wShape[axis];
    const bShape = model.initializers[bias].shape;
    const bSize = bShape.reduce((a, b) => a * b, 1);
    // The bias must hold one value per output unit (Gemm also allows [1, N] or broadcast shapes).
    if (bSize !== units || bShape.filter((d) => d !== 1).length > 1) {
      skip(`its bias has shape [${bShape.join(', ')}], not one value per each of its ${units} units`);
      continue;
    }
    layers.push({ name: out, value: out, opType: node.opType, weight, bias, axis, biasScale });
  }
  return { layers, skipped };
}

/** A value to measure per channel (axis 1), keyed by `name` in the LayerStats. */
export interface OnnxStatsTap {
  name: string;
  value: string;
}

/**
 * A StatsFn measuring each plan layer's output (or any tapped value, e.g. a BatchNorm's input) on `probe`
 * with ONNX Runtime (one session, the tapped values added as extra graph outputs). Every spatial position
 * of a conv output counts as one sample of its channel, as BatchNorm counts them. Call dispose() when done.
 */
export async function onnxStats(
  model: OnnxModel,
  layers: readonly OnnxStatsTap[],
  probe: ProbeBatch,
  options: { threads?: number; batchSize?: number } = {},
): Promise<{ stats: StatsFn; dispose: () => Promise<void> }> {
  const taps: Record<string, OnnxTap> = Object.create(null);
  for (const l of layers) taps[l.name] = { value: l.value, axis: 1 };
  const runner = await createOnnxRunner(model, { taps, threads: options.threads, batchSize: options.batchSize });
  return {
    stats: async (params: Params): Promise<LayerStats> => {
      const acts = await runner.activations(params, probe);
      const out: LayerStats = {};
      for (const l of layers) {
        const a = acts[l.name];
        const rows = a.rows ?? probe.count;
        out[l.name] = columnStats(a.data, rows, a.width);
      }
      return out;
    },
    dispose: () => runner.dispose(),
  };
}
