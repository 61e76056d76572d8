import type { WeightLayout } from '../../src/permutation-spec/mlp.js';
import type { Params, Tensor } from '../../src/tensor.js';
import { createRng } from '../../src/random.js';

/** Random params of an MLP with the given widths, in torch (out,in) or flax (in,out) layout. */
export function randomMlp(widths: number[], layout: WeightLayout, seed: number, prefix = 'layer'): Record<string, Tensor> {
  const rng = createRng(seed);
  const params: Record<string, Tensor> = {};
  for (let i = 0; i + 1 < widths.length; i++) {
    const [fanIn, fanOut] = [widths[i], widths[i + 1]];
    const shape = layout === 'torch' ? [fanOut, fanIn] : [fanIn, fanOut];
    const w = new Float32Array(fanIn * fanOut);
    for (let j = 0; j < w.length; j++) w[j] = rng.normal() / Math.sqrt(fanIn);
    const b = new Float32Array(fanOut);
    for (let j = 0; j < b.length; j++) b[j] = 0.1 * rng.normal();
    params[`${prefix}${i}.weight`] = { shape, data: w };
    params[`${prefix}${i}.bias`] = { shape: [fanOut], data: b };
  }
  return params;
}

/** A plain forward pass (ReLU between layers), written independently of the library's code. */
export function mlpForward(params: Params, layers: number, layout: WeightLayout, x: Float32Array, batch: number): Float32Array {
  let h = x;
  for (let l = 0; l < layers; l++) {
    const w = params[`layer${l}.weight`];
    const b = params[`layer${l}.bias`];
    const [fanOut, fanIn] = layout === 'torch' ? [w.shape[0], w.shape[1]] : [w.shape[1], w.shape[0]];
    const out = new Float32Array(batch * fanOut);
    for (let s = 0; s < batch; s++) {
      for (let o = 0; o < fanOut; o++) {
        let acc = b.data[o];
        for (let i = 0; i < fanIn; i++) {
          const wv = layout === 'torch' ? w.data[o * fanIn + i] : w.data[i * fanOut + o];
          acc += wv * h[s * fanIn + i];
        }
        out[s * fanOut + o] = l < layers - 1 ? Math.max(0, acc) : acc;
      }
    }
    h = out;
  }
  return h;
}

export function randomInputs(n: number, seed: number): Float32Array {
  const rng = createRng(seed);
  return Float32Array.from({ length: n }, () => rng.normal());
}
