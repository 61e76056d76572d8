/**
 * A tiny, naive reference forward pass for tests: Linear, Conv2d (NCHW activations, OIHW weights,
 * stride, zero padding), BatchNorm in eval mode (running statistics), ReLU, max pool, global average
 * pool and residual add, plus whole-network forwards for the ResNet, VGG and MLP naming conventions.
 *
 * Written for being obviously correct, not fast: plain loops, float64 accumulation. The network
 * forwards read the structure from the tensor names themselves and never consult a permutation spec,
 * so they are an independent truth to test the specs against.
 */
import type { Params, Tensor } from '../../src/tensor.js';

function need(params: Params, name: string): Tensor {
  const t = params[name];
  if (t === undefined) throw new Error(`forward: missing tensor '${name}'`);
  return t;
}

/** x [N, in] → [N, out]; torch weight (out, in), flax kernel (in, out). */
export function linear(x: Tensor, w: Tensor, b?: Tensor, layout: 'torch' | 'flax' = 'torch'): Tensor {
  const [n, fin] = x.shape;
  const fout = layout === 'torch' ? w.shape[0] : w.shape[1];
  const win = layout === 'torch' ? w.shape[1] : w.shape[0];
  if (win !== fin) throw new Error(`linear: input has ${fin} features, weight takes ${win}`);
  const out = new Float32Array(n * fout);
  for (let s = 0; s < n; s++) {
    for (let o = 0; o < fout; o++) {
      let acc = b === undefined ? 0 : b.data[o];
      for (let i = 0; i < fin; i++) {
        const wv = layout === 'torch' ? w.data[o * fin + i] : w.data[i * fout + o];
        acc += x.data[s * fin + i] * wv;
      }
      out[s * fout + o] = acc;
    }
  }
  return { shape: [n, fout], data: out };
}

/** x [N, C, H, W], w [O, C, KH, KW] → [N, O, H', W'] with H' = floor((H + 2p − KH) / s) + 1. */
export function conv2d(x: Tensor, w: Tensor, b?: Tensor, stride = 1, padding = 0): Tensor {
  const [n, c, h, wd] = x.shape;
  const [o, wc, kh, kw] = w.shape;
  if (wc !== c) throw new Error(`conv2d: input has ${c} channels, weight takes ${wc}`);
  const oh = Math.floor((h + 2 * padding - kh) / stride) + 1;
  const ow = Math.floor((wd + 2 * padding - kw) / stride) + 1;
  const out = new Float32Array(n * o * oh * ow);
  for (let s = 0; s < n; s++) {
    for (let oc = 0; oc < o; oc++) {
      for (let y = 0; y < oh; y++) {
        for (let xx = 0; xx < ow; xx++) {
          let acc = b === undefined ? 0 : b.data[oc];
          for (let ic = 0; ic < c; ic++) {
            for (let ky = 0; ky < kh; ky++) {
              const iy = y * stride - padding + ky;
              if (iy < 0 || iy >= h) continue;
              for (let kx = 0; kx < kw; kx++) {
                const ix = xx * stride - padding + kx;
                if (ix < 0 || ix >= wd) continue;
                acc += x.data[((s * c + ic) * h + iy) * wd + ix] * w.data[((oc * c + ic) * kh + ky) * kw + kx];
              }
            }
          }
          out[((s * o + oc) * oh + y) * ow + xx] = acc;
        }
      }
    }
  }
  return { shape: [n, o, oh, ow], data: out };
}

/** Eval-mode BatchNorm over axis 1 of [N, C, ...]: γ·(x − mean)/√(var + ε) + β. */
export function batchNorm(x: Tensor, params: Params, prefix: string, eps = 1e-5): Tensor {
  const gamma = need(params, `${prefix}.weight`).data;
  const beta = need(params, `${prefix}.bias`).data;
  const mean = need(params, `${prefix}.running_mean`).data;
  const variance = need(params, `${prefix}.running_var`).data;
  const [n, c] = x.shape;
  let inner = 1;
  for (const d of x.shape.slice(2)) inner *= d;
  const out = new Float32Array(x.data.length);
  for (let s = 0; s < n; s++) {
    for (let ch = 0; ch < c; ch++) {
      const scale = gamma[ch] / Math.sqrt(variance[ch] + eps);
      for (let i = 0; i < inner; i++) {
        const k = (s * c + ch) * inner + i;
        out[k] = (x.data[k] - mean[ch]) * scale + beta[ch];
      }
    }
  }
  return { shape: x.shape, data: out };
}

export function relu(x: Tensor): Tensor {
  return { shape: x.shape, data: x.data.map((v) => (v > 0 ? v : 0)) };
}

export function add(a: Tensor, b: Tensor): Tensor {
  if (a.shape.join() !== b.shape.join()) throw new Error(`add: shapes [${a.shape}] and [${b.shape}] differ`);
  return { shape: a.shape, data: a.data.map((v, i) => v + b.data[i]) };
}

/** [N, C, H, W] → [N, C, H/k, W/k], max over each k×k window (floor on odd sizes). */
export function maxPool2d(x: Tensor, k = 2): Tensor {
  const [n, c, h, w] = x.shape;
  const oh = Math.floor(h / k);
  const ow = Math.floor(w / k);
  const out = new Float32Array(n * c * oh * ow);
  for (let p = 0; p < n * c; p++) {
    for (let y = 0; y < oh; y++) {
      for (let xx = 0; xx < ow; xx++) {
        let m = -Infinity;
        for (let dy = 0; dy < k; dy++) {
          for (let dx = 0; dx < k; dx++) m = Math.max(m, x.data[(p * h + y * k + dy) * w + xx * k + dx]);
        }
        out[(p * oh + y) * ow + xx] = m;
      }
    }
  }
  return { shape: [n, c, oh, ow], data: out };
}

/** [N, C, H, W] → [N, C]: the mean over all spatial positions (adaptive average pool to 1×1 + flatten). */
export function globalAvgPool(x: Tensor): Tensor {
  const [n, c, h, w] = x.shape;
  const out = new Float32Array(n * c);
  for (let p = 0; p < n * c; p++) {
    let acc = 0;
    for (let i = 0; i < h * w; i++) acc += x.data[p * h * w + i];
    out[p] = acc / (h * w);
  }
  return { shape: [n, c], data: out };
}

function convSame(params: Params, prefix: string, x: Tensor, stride: number): Tensor {
  const w = need(params, `${prefix}.weight`);
  return conv2d(x, w, params[`${prefix}.bias`], stride, (w.shape[2] - 1) >> 1);
}

function numericKeys(params: Params, re: RegExp): number[] {
  const found = new Set<number>();
  for (const name of Object.keys(params)) {
    const m = re.exec(name);
    if (m) found.add(Number(m[1]));
  }
  return [...found].sort((a, b) => a - b);
}

/**
 * A ResNet from its state-dict names (CIFAR style `shortcut.0/1`, or torchvision `downsample.0/1`;
 * BasicBlock, or Bottleneck when `conv3` exists). The stem is a stride-1 "same" conv (the CIFAR
 * stem; torchvision's stride and max pool change nothing about permutation invariance). The first
 * block of every stage but the first has stride 2. Head: global average pool, then `linear` or `fc`.
 */
export function resnetForward(params: Params, x: Tensor, prefix = ''): Tensor {
  let h = relu(batchNorm(convSame(params, `${prefix}conv1`, x, 1), params, `${prefix}bn1`));
  const stages = numericKeys(params, new RegExp(`^${prefix.replace(/\./g, '\\.')}layer(\\d+)\\.`));
  stages.forEach((stage, si) => {
    const blocks = numericKeys(params, new RegExp(`^${prefix.replace(/\./g, '\\.')}layer${stage}\\.(\\d+)\\.`));
    blocks.forEach((block, bi) => {
      const p = `${prefix}layer${stage}.${block}`;
      const stride = si > 0 && bi === 0 ? 2 : 1;
      const bottleneck = `${p}.conv3.weight` in params;
      let r: Tensor;
      if (bottleneck) {
        r = relu(batchNorm(convSame(params, `${p}.conv1`, h, 1), params, `${p}.bn1`));
        r = relu(batchNorm(convSame(params, `${p}.conv2`, r, stride), params, `${p}.bn2`));
        r = batchNorm(convSame(params, `${p}.conv3`, r, 1), params, `${p}.bn3`);
      } else {
        r = relu(batchNorm(convSame(params, `${p}.conv1`, h, stride), params, `${p}.bn1`));
        r = batchNorm(convSame(params, `${p}.conv2`, r, 1), params, `${p}.bn2`);
      }
      const sc = `${p}.shortcut.0.weight` in params ? `${p}.shortcut` : `${p}.downsample.0.weight` in params ? `${p}.downsample` : null;
      const skip = sc === null ? h : batchNorm(convSame(params, `${sc}.0`, h, stride), params, `${sc}.1`);
      h = relu(add(r, skip));
    });
  });
  const head = `${prefix}linear.weight` in params ? `${prefix}linear` : `${prefix}fc`;
  return linear(globalAvgPool(h), need(params, `${head}.weight`), params[`${head}.bias`]);
}

/**
 * A VGG from its names: `features.N` convs ("same" padding, + BatchNorm when `features.N+1` has
 * running stats), each followed by ReLU and a 2×2 max pool while the map is larger than 1×1; then
 * global average pooling (adaptive pool to 1×1), flatten, and the `classifier.M` Linear layers with
 * ReLU between them.
 */
export function vggForward(params: Params, x: Tensor): Tensor {
  let h = x;
  for (const i of numericKeys(params, /^features\.(\d+)\.weight$/)) {
    if (params[`features.${i}.weight`].shape.length !== 4) continue;
    h = convSame(params, `features.${i}`, h, 1);
    if (`features.${i + 1}.running_mean` in params) h = batchNorm(h, params, `features.${i + 1}`);
    h = relu(h);
    if (h.shape[2] > 1) h = maxPool2d(h, 2);
  }
  h = globalAvgPool(h);
  const heads = numericKeys(params, /^classifier\.(\d+)\.weight$/);
  heads.forEach((m, k) => {
    h = linear(h, params[`classifier.${m}.weight`], params[`classifier.${m}.bias`]);
    if (k + 1 < heads.length) h = relu(h);
  });
  return h;
}

/** An MLP given its layer prefixes in order: Linear, ReLU, ..., Linear. `sep` joins prefix and leaf. */
export function mlpForwardNamed(
  params: Params,
  layers: readonly string[],
  x: Tensor,
  layout: 'torch' | 'flax' = 'torch',
  sep = '.',
): Tensor {
  let h = x;
  layers.forEach((name, k) => {
    const w = need(params, `${name}${sep}${layout === 'torch' ? 'weight' : 'kernel'}`);
    h = linear(h, w, params[`${name}${sep}bias`], layout);
    if (k + 1 < layers.length) h = relu(h);
  });
  return h;
}
