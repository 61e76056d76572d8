/**
 * The permutation spec of a plain MLP: a chain of Linear (Dense) layers with elementwise activations.
 * Hidden layer i's units are permuted by `P_i`: rows of its weight and its bias, and the input axis of
 * the next layer's weight. The network's input and output axes are never permuted.
 */
import { specFromAxes, type PermutationSpec } from './spec.js';

export type WeightLayout = 'torch' | 'flax';

export interface MlpSpecOptions {
  /** 'torch': weights are (out, in) (PyTorch Linear); 'flax': (in, out) (flax Dense kernel, Keras). */
  layout?: WeightLayout;
  /** Name prefix of each of the hiddenLayers + 1 linear layers; default layer0, layer1, ... */
  names?: readonly string[];
  /** Suffix of the weight tensor's name; default '.weight'. */
  weight?: string;
  /** Suffix of the bias tensor's name, or null when the layers have no bias; default '.bias'. */
  bias?: string | null;
  /** Name of hidden layer i's permutation; default P_i. */
  permName?: (i: number) => string;
}

export function mlpSpec(hiddenLayers: number, options: MlpSpecOptions = {}): PermutationSpec {
  if (!Number.isInteger(hiddenLayers) || hiddenLayers < 1) {
    throw new Error(`mlpSpec: hiddenLayers must be an integer >= 1, got ${hiddenLayers}`);
  }
  const layout = options.layout ?? 'torch';
  const names = options.names ?? Array.from({ length: hiddenLayers + 1 }, (_, i) => `layer${i}`);
  if (names.length !== hiddenLayers + 1) {
    throw new Error(`mlpSpec: ${hiddenLayers} hidden layers need ${hiddenLayers + 1} layer names, got ${names.length}`);
  }
  const weight = options.weight ?? '.weight';
  const bias = options.bias === undefined ? '.bias' : options.bias;
  const perm = options.permName ?? ((i: number) => `P_${i}`);
  const axes: Record<string, (string | null)[]> = Object.create(null);
  for (let i = 0; i <= hiddenLayers; i++) {
    const out = i < hiddenLayers ? perm(i) : null;
    const inp = i > 0 ? perm(i - 1) : null;
    axes[names[i] + weight] = layout === 'torch' ? [out, inp] : [inp, out];
    if (bias !== null) axes[names[i] + bias] = [out];
  }
  return specFromAxes(axes);
}
