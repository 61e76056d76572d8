/**
 * REPAIR on ONNX graphs: which layers can be corrected, and their output statistics measured by ONNX Runtime.
 *
 * A layer is a Conv or Gemm node whose weight and bias are float initializers used by that node alone (a
 * shared tensor cannot be rescaled for one layer without changing the other). Exporters fold BatchNorm into
 * the Conv before it, so the Conv's output is where the BN statistics lived: the statistics are taken there,
 * before the nonlinearity or the residual add.
 *
 * Transformers (and MLPs exported as MatMul): a MatMul by a float weight [in, out] whose output only feeds
 * an Add of a bias [out] is a layer too, measured per unit over every token of the probe (tokens as rows);
 * its weight is [in, out], so its units lie on axis 1. That covers an MLP's hidden units (fc1, before its
 * GELU) and also q, k, v, the out-projection and fc2: on the trained ViT fixtures, correcting the MLP
 * hidden units alone raised the merged midpoint's loss in three of four cases, while correcting every such
 * layer lowered it in three and left it as it was in the fourth (BENCHMARKS.md, "Transformers"), so every
 * affine layer with a bias of its own is corrected, as REPAIR does for every conv of a ResNet.
 *
 * Not corrected (reported as skipped, with the reason):
 *  - a Conv or Gemm without a bias input: the correction needs a per-unit shift, and adding an initializer
 *    would change the graph, which rebasin never does (it writes new values into the existing tensors);
 *  - a layer whose output is a graph output (the logits): REPAIR renormalises hidden units only;
 *  - ConvTranspose, MatMul of two activations (attention), and layers fed through Identity/Transpose of
 *    their weight.
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
  /** The tap's unit axis: 1 for Conv/Gemm ([N, C, ...]), -1 for a MatMul layer ([..., tokens, C]). */
  unitAxis: number;
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

interface GraphIndex {
  readonly uses: ReadonlyMap<string, number>;
  readonly consumers: ReadonlyMap<string, readonly OnnxNode[]>;
  readonly graphOutputs: ReadonlySet<string>;
}

const isStandard = (n: OnnxNode): boolean => n.domain === '' || n.domain === 'ai.onnx';

/** A float initializer (the values REPAIR can rewrite), or not. */
function isFloatInitializer(model: OnnxModel, name: string | undefined): name is string {
  return name !== undefined && name !== '' && model.initializers[name] !== undefined && isFloatDtype(model.initializers[name].dtype);
}

/** A scalar float initializer or Constant node's value, when `name` is one (GELU's √2 and ½). */
function isConstantInput(model: OnnxModel, name: string): boolean {
  if (model.initializers[name] !== undefined) return true;
  return model.graph.nodes.some((n) => n.opType === 'Constant' && n.outputs[0] === name);
}

const SEQUENCE_FIRST = 'its input has the batch off axis 0 (tokens transposed to sequence-first), which the statistics cannot count';

/**
 * Whether `value` comes (through reshapes and casts) from a Transpose that moves axis 0: tokens laid out
 * sequence-first, as nn.MultiheadAttention does inside nn.TransformerEncoderLayer. The statistics taps read
 * axis 0 as the batch (a [T, N, C] value, or its [T·N, C] reshape, would be counted wrongly), so such a
 * layer is left alone rather than corrected from wrong numbers.
 */
function sequenceFirst(model: OnnxModel, value: string): boolean {
  let v = value;
  for (let step = 0; step < 8; step++) {
    const producer = model.graph.nodes.find((n) => n.outputs.includes(v));
    if (producer === undefined) return false;
    if (producer.opType === 'Transpose') {
      const perm = producer.attributes.perm;
      return Array.isArray(perm) && perm[0] !== 0;
    }
    if (!['Reshape', 'Flatten', 'Identity', 'Cast'].includes(producer.opType)) return false;
    v = producer.inputs[0];
  }
  return false;
}

/**
 * The activation `value` feeds, if any (to name MLP hidden layers in the plan): Relu, Gelu, or GELU written
 * out as PyTorch exports it, x·½·(1 + erf(x/√2)) (x divided or multiplied by a constant into an Erf, and x
 * itself into a Mul).
 */
function activationAfter(model: OnnxModel, value: string, index: GraphIndex): string | null {
  const next = (index.consumers.get(value) ?? []).filter(isStandard);
  const direct = next.find((n) => ['Relu', 'Gelu'].includes(n.opType) && n.inputs[0] === value);
  if (direct !== undefined) return direct.opType;
  const intoErf = next.some(
    (n) =>
      (n.opType === 'Div' || n.opType === 'Mul') &&
      n.inputs.length === 2 &&
      n.inputs.some((i) => i !== value && isConstantInput(model, i)) &&
      (index.consumers.get(n.outputs[0]) ?? []).some((m) => m.opType === 'Erf' && isStandard(m)),
  );
  const gated = next.some((n) => n.opType === 'Mul');
  return intoErf && gated ? 'GELU (Erf)' : null;
}

/**
 * A MatMul by a weight [in, out] whose output only goes into an Add of a bias [out] (see the module
 * comment), or the reason it is not a layer REPAIR corrects.
 */
function matMulLayer(model: OnnxModel, node: OnnxNode, index: GraphIndex): { layer: OnnxRepairLayer } | { reason: string } {
  const [x, weight] = node.inputs;
  if (!isFloatInitializer(model, weight)) {
    return { reason: isFloatInitializer(model, x) ? 'its weight is its first input (W·x); only x·W is repaired' : 'a product of two activations (attention), no weight of its own' };
  }
  const wShape = model.initializers[weight].shape;
  if (wShape.length !== 2) return { reason: `its weight has shape [${wShape.join(', ')}], expected [in, out]` };
  if (sequenceFirst(model, x)) return { reason: SEQUENCE_FIRST };
  const units = wShape[1];
  const mm = node.outputs[0];
  const after = index.consumers.get(mm) ?? [];
  const add = after.length === 1 && after[0].opType === 'Add' && isStandard(after[0]) ? after[0] : null;
  if (add === null || index.graphOutputs.has(mm)) return { reason: 'its output goes elsewhere than into one Add of a bias (no bias to shift)' };
  const bias = add.inputs.find((i) => i !== mm);
  if (!isFloatInitializer(model, bias)) return { reason: 'the Add after it adds no float initializer (no bias to shift)' };
  const bShape = model.initializers[bias].shape;
  // One value per unit, broadcast along the last axis: [out], [1, out], [1, 1, out].
  if (bShape.length === 0 || bShape[bShape.length - 1] !== units || bShape.slice(0, -1).some((d) => d !== 1)) {
    return { reason: `its bias has shape [${bShape.join(', ')}], not one value per each of its ${units} units` };
  }
  if ((index.uses.get(weight) ?? 0) > 1 || (index.uses.get(bias) ?? 0) > 1) return { reason: 'its weight or bias is shared with another node' };
  const out = add.outputs[0];
  if (index.graphOutputs.has(out)) return { reason: 'its output is a graph output (the logits are not renormalised)' };
  const activation = activationAfter(model, out, index);
  const opType = activation === null ? 'MatMul+Add' : `MatMul+Add (${activation})`;
  return { layer: { name: out, value: out, opType, weight, bias, axis: 1, biasScale: 1, unitAxis: -1 } };
}

/** The Conv, Gemm and MatMul+Add layers of `model` that REPAIR can correct, in graph order, and those it cannot. */
export function onnxRepairPlan(model: OnnxModel): OnnxRepairPlan {
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
  const graphOutputs = new Set(g.outputs.map((o) => o.name));
  const isFloatInit = (name: string | undefined): boolean => name !== undefined && name !== '' && model.initializers[name] !== undefined && isFloatDtype(model.initializers[name].dtype);

  const layers: OnnxRepairLayer[] = [];
  const skipped: { node: string; reason: string }[] = [];
  for (const node of g.nodes) {
    const domainOk = node.domain === '' || node.domain === 'ai.onnx';
    if (!domainOk) continue;
    if (node.opType === 'ConvTranspose') {
      skipped.push({ node: nodeLabel(node), reason: 'ConvTranspose layers are not repaired' });
      continue;
    }
    if (node.opType === 'MatMul') {
      const m = matMulLayer(model, node, { uses, consumers, graphOutputs });
      if ('reason' in m) skipped.push({ node: nodeLabel(node), reason: m.reason });
      else layers.push(m.layer);
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
    if (node.opType === 'Gemm' && sequenceFirst(model, node.inputs[0])) {
      skip(SEQUENCE_FIRST);
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
    layers.push({ name: out, value: out, opType: node.opType, weight, bias, axis, biasScale, unitAxis: 1 });
  }
  return { layers, skipped };
}

/** A value to measure per unit, keyed by `name` in the LayerStats. */
export interface OnnxStatsTap {
  name: string;
  value: string;
  /** The value's unit axis (negative: from the end); default 1, the channels of [N, C, ...]. */
  unitAxis?: number;
}

/**
 * A StatsFn measuring each plan layer's output (or any tapped value, e.g. a BatchNorm's input) on `probe`
 * with ONNX Runtime (one session, the tapped values added as extra graph outputs). Every spatial position
 * of a conv output counts as one sample of its channel, as BatchNorm counts them, and every token of a
 * MatMul layer's output one sample of its unit. Call dispose() when done.
 */
export async function onnxStats(
  model: OnnxModel,
  layers: readonly OnnxStatsTap[],
  probe: ProbeBatch,
  options: { threads?: number; batchSize?: number } = {},
): Promise<{ stats: StatsFn; dispose: () => Promise<void> }> {
  const taps: Record<string, OnnxTap> = Object.create(null);
  for (const l of layers) taps[l.name] = { value: l.value, axis: l.unitAxis ?? 1 };
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
