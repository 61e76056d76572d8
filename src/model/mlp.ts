/**
 * The built-in MLP model: a chain of Linear layers with ReLU between them, in PyTorch's (out, in) weight
 * layout. It evaluates params that come without a graph (safetensors, the demo) and is what the trainer
 * trains. All products go through a MatmulEngine, so the same code runs on ONNX Runtime or in pure TS.
 */
import type { Params, Tensor } from '../tensor.js';
import { InputError } from '../errors.js';
import type { MatmulEngine } from '../engine/matmul.js';

// The loss every runner reports lives with the runner contract; the MLP's trainer and tests use it from here.
export { crossEntropy } from '../engine/runner.js';

export interface MlpLayer {
  readonly weight: string;
  readonly bias: string | null;
}

export interface MlpArch {
  readonly layers: readonly MlpLayer[];
}

export function mlpArch(names: readonly string[], weight = '.weight', bias: string | null = '.bias'): MlpArch {
  return { layers: names.map((n) => ({ weight: n + weight, bias: bias === null ? null : n + bias })) };
}

/** Widths [in, h1, ..., out] read from the params, checking that the layers chain. */
export function mlpWidths(arch: MlpArch, params: Params): number[] {
  const widths: number[] = [];
  arch.layers.forEach((layer, i) => {
    const w = params[layer.weight];
    if (w === undefined || w.shape.length !== 2) {
      throw new InputError(`MLP layer ${i}: expected a 2-D tensor '${layer.weight}' (out, in)`);
    }
    const [out, inp] = w.shape;
    if (i === 0) widths.push(inp);
    else if (widths[i] !== inp) {
      throw new InputError(`MLP layer ${i}: '${layer.weight}' takes ${inp} inputs but the previous layer gives ${widths[i]}`);
    }
    widths.push(out);
    if (layer.bias !== null) {
      const b = params[layer.bias];
      if (b === undefined || b.shape.length !== 1 || b.shape[0] !== out) {
        throw new InputError(`MLP layer ${i}: expected bias '${layer.bias}' of shape [${out}]`);
      }
    }
  });
  return widths;
}

function checkInputs(widths: readonly number[], inputs: Float32Array, batch: number): void {
  if (inputs.length !== batch * widths[0]) {
    throw new InputError(`MLP input: expected ${batch} × ${widths[0]} values, got ${inputs.length}`);
  }
}

export interface MlpForward {
  /** Output logits, batch × out. */
  logits: Float32Array;
  /** Post-ReLU activations of each hidden layer (batch × width), when requested. */
  hidden: Float32Array[];
  /** Inputs to each layer (the network input, then each hidden activation); kept for backward. */
  layerInputs: Float32Array[];
}

export async function mlpForward(
  arch: MlpArch,
  params: Params,
  inputs: Float32Array,
  batch: number,
  engine: MatmulEngine,
): Promise<MlpForward> {
  const widths = mlpWidths(arch, params);
  checkInputs(widths, inputs, batch);
  let h = inputs;
  const hidden: Float32Array[] = [];
  const layerInputs: Float32Array[] = [];
  for (let l = 0; l < arch.layers.length; l++) {
    const w = params[arch.layers[l].weight];
    const out = widths[l + 1];
    layerInputs.push(h);
    // Engines return a fresh array owned by the caller, so it is safe to finish it in place.
    const bias = arch.layers[l].bias;
    let y: Float32Array;
    if (bias !== null && engine.abtAddRow) {
      // The bias added inside the product: a JS pass over the output less (sweep: ~25% faster).
      y = await engine.abtAddRow(h, batch, w.data, out, widths[l], params[bias].data);
    } else {
      y = await engine.abt(h, batch, w.data, out, widths[l]);
      if (bias !== null) addRowVector(y, params[bias].data, batch, out);
    }
    if (l < arch.layers.length - 1) {
      relu(y);
      hidden.push(y);
    }
    h = y;
  }
  return { logits: h, hidden, layerInputs };
}

/**
 * The logits alone (batch × out): in one call where the engine runs whole chains of dense layers (ONNX
 * Runtime: about a third less time per barrier sweep than layer by layer, the activations never copied out),
 * else as mlpForward does. Evaluation needs nothing more.
 */
export async function mlpLogits(arch: MlpArch, params: Params, inputs: Float32Array, batch: number, engine: MatmulEngine): Promise<Float32Array> {
  if (!engine.denseChain) return (await mlpForward(arch, params, inputs, batch, engine)).logits;
  const widths = mlpWidths(arch, params);
  checkInputs(widths, inputs, batch);
  const layers = arch.layers.map((layer, l) => ({
    weight: params[layer.weight].data,
    outputs: widths[l + 1],
    inputs: widths[l],
    bias: layer.bias === null ? null : params[layer.bias].data,
  }));
  return engine.denseChain(layers, inputs, batch);
}

/**
 * max(x, 0) in place, on the bits: a negative float has its sign bit set, and `v & ~(v >> 31)` clears such
 * a value to +0 without a branch (about 5× the compare-and-store loop here, where half the values are
 * negative and the branch is unpredictable). −0 becomes +0; NaN never reaches here (weights are checked).
 */
export function relu(y: Float32Array): void {
  const bits = new Int32Array(y.buffer, y.byteOffset, y.length);
  for (let i = 0; i < bits.length; i++) {
    const v = bits[i];
    bits[i] = v & ~(v >> 31);
  }
}

function addRowVector(m: Float32Array, v: Float32Array, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let c = 0; c < cols; c++) m[base + c] += v[c];
  }
}

/** A fresh MLP with PyTorch's default Linear initialisation (uniform ±1/√fan_in), from a seeded RNG. */
export function initMlp(widths: readonly number[], names: readonly string[], uniform: () => number): Record<string, Tensor> {
  const params: Record<string, Tensor> = Object.create(null);
  for (let l = 0; l + 1 < widths.length; l++) {
    const [fanIn, fanOut] = [widths[l], widths[l + 1]];
    const bound = 1 / Math.sqrt(fanIn);
    const w = new Float32Array(fanOut * fanIn);
    for (let i = 0; i < w.length; i++) w[i] = (2 * uniform() - 1) * bound;
    const b = new Float32Array(fanOut);
    for (let i = 0; i < b.length; i++) b[i] = (2 * uniform() - 1) * bound;
    params[`${names[l]}.weight`] = { shape: [fanOut, fanIn], data: w };
    params[`${names[l]}.bias`] = { shape: [fanOut], data: b };
  }
  return params;
}
