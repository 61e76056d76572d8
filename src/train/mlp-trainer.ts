/**
 * A small trainer for the built-in MLP: softmax cross-entropy, backpropagation written out by hand for
 * Linear + ReLU, and Adam. ONNX Runtime has no autodiff in Node, and tfjs is slow here (DESIGN.md), so this
 * is what trains the demo's nets and test models. Deterministic for a seed (init and batch order).
 */
import type { Tensor } from '../tensor.js';
import type { MatmulEngine } from '../engine/matmul.js';
import { transpose } from '../engine/matmul.js';
import { createRng, shuffledRange } from '../random.js';
import { mlpArch, mlpForward, mlpWidths, initMlp, crossEntropy, type MlpArch } from '../model/mlp.js';

export interface TrainData {
  inputs: Float32Array;
  labels: Int32Array;
  count: number;
  features: number;
  numClasses: number;
}

export interface TrainOptions {
  /** Hidden widths, e.g. [12, 12]. */
  hidden: readonly number[];
  epochs: number;
  seed: number;
  batchSize?: number;
  learningRate?: number;
  /** Layer name prefixes; default fc1, fc2, ... (PyTorch-style). */
  names?: readonly string[];
  engine: MatmulEngine;
  onEpoch?: (e: { epoch: number; epochs: number; loss: number; accuracy: number }) => void;
}

export interface TrainResult {
  params: Record<string, Tensor>;
  arch: MlpArch;
  /** Mean training loss of each epoch. */
  losses: number[];
}

export async function trainMlp(data: TrainData, options: TrainOptions): Promise<TrainResult> {
  const widths = [data.features, ...options.hidden, data.numClasses];
  const names = options.names ?? widths.slice(1).map((_, i) => `fc${i + 1}`);
  const arch = mlpArch(names);
  const rng = createRng(options.seed);
  const params = initMlp(widths, names, () => rng.next());
  const batchSize = options.batchSize ?? 32;
  const lr = options.learningRate ?? 1e-2;
  const engine = options.engine;
  const adam = new Adam(Object.values(params).map((t) => t.data.length), lr);
  const losses: number[] = [];
  const xb = new Float32Array(batchSize * data.features);
  const yb = new Int32Array(batchSize);

  for (let epoch = 0; epoch < options.epochs; epoch++) {
    const order = shuffledRange(data.count, rng);
    let lossSum = 0;
    let correct = 0;
    for (let start = 0; start < data.count; start += batchSize) {
      const b = Math.min(batchSize, data.count - start);
      for (let s = 0; s < b; s++) {
        const idx = order[start + s];
        xb.set(data.inputs.subarray(idx * data.features, (idx + 1) * data.features), s * data.features);
        yb[s] = data.labels[idx];
      }
      const x = xb.subarray(0, b * data.features);
      const y = yb.subarray(0, b);
      const { loss, correct: right, grads } = await mlpGradients(arch, params, x, y, b, engine);
      lossSum += loss * b;
      correct += right;
      adam.step(Object.values(params).map((t) => t.data), Object.keys(params).map((k) => grads[k]));
    }
    losses.push(lossSum / data.count);
    options.onEpoch?.({ epoch, epochs: options.epochs, loss: lossSum / data.count, accuracy: correct / data.count });
  }
  return { params, arch, losses };
}

/** Mean cross-entropy of a batch and its gradient with respect to every weight and bias. */
export async function mlpGradients(
  arch: MlpArch,
  params: Record<string, Tensor>,
  x: Float32Array,
  labels: Int32Array,
  batch: number,
  engine: MatmulEngine,
): Promise<{ loss: number; correct: number; grads: Record<string, Float32Array> }> {
  const widths = mlpWidths(arch, params);
  const fwd = await mlpForward(arch, params, x, batch, engine);
  const ce = crossEntropy(fwd.logits, labels, batch, widths[widths.length - 1]);
  const grads = await backward(arch, params, widths, fwd.layerInputs, fwd.logits, labels, batch, engine);
  return { loss: ce.loss, correct: ce.correct, grads };
}

async function backward(
  arch: MlpArch,
  params: Record<string, Tensor>,
  widths: number[],
  layerInputs: Float32Array[],
  logits: Float32Array,
  labels: Int32Array,
  batch: number,
  engine: MatmulEngine,
): Promise<Record<string, Float32Array>> {
  const classes = widths[widths.length - 1];
  // dL/dlogits = (softmax − onehot) / batch
  let delta: Float32Array = new Float32Array(batch * classes);
  for (let s = 0; s < batch; s++) {
    const base = s * classes;
    let max = -Infinity;
    for (let c = 0; c < classes; c++) max = Math.max(max, logits[base + c]);
    let sum = 0;
    for (let c = 0; c < classes; c++) sum += Math.exp(logits[base + c] - max);
    for (let c = 0; c < classes; c++) {
      delta[base + c] = (Math.exp(logits[base + c] - max) / sum - (c === labels[s] ? 1 : 0)) / batch;
    }
  }
  const grads: Record<string, Float32Array> = Object.create(null);
  for (let l = arch.layers.length - 1; l >= 0; l--) {
    const [inW, outW] = [widths[l], widths[l + 1]];
    const x = layerInputs[l];
    const layer = arch.layers[l];
    // dW (out × in) = δᵀ · X
    grads[layer.weight] = await engine.abt(transpose(delta, batch, outW), outW, transpose(x, batch, inW), inW, batch);
    if (layer.bias !== null) {
      const db = new Float32Array(outW);
      for (let s = 0; s < batch; s++) for (let o = 0; o < outW; o++) db[o] += delta[s * outW + o];
      grads[layer.bias] = db;
    }
    if (l > 0) {
      // dX (batch × in) = δ · W, then through the ReLU that produced X.
      const w = params[layer.weight].data;
      const dx = await engine.abt(delta, batch, transpose(w, outW, inW), inW, outW);
      for (let i = 0; i < dx.length; i++) if (x[i] <= 0) dx[i] = 0;
      delta = dx;
    }
  }
  return grads;
}

class Adam {
  private readonly m: Float32Array[];
  private readonly v: Float32Array[];
  private t = 0;
  constructor(sizes: number[], private readonly lr: number, private readonly beta1 = 0.9, private readonly beta2 = 0.999, private readonly eps = 1e-8) {
    this.m = sizes.map((n) => new Float32Array(n));
    this.v = sizes.map((n) => new Float32Array(n));
  }
  /** Updates `values` in place: the trainer owns the params it is building. */
  step(values: Float32Array[], grads: Float32Array[]): void {
    this.t++;
    const c1 = 1 - this.beta1 ** this.t;
    const c2 = 1 - this.beta2 ** this.t;
    values.forEach((w, k) => {
      const g = grads[k];
      const m = this.m[k];
      const v = this.v[k];
      for (let i = 0; i < w.length; i++) {
        m[i] = this.beta1 * m[i] + (1 - this.beta1) * g[i];
        v[i] = this.beta2 * v[i] + (1 - this.beta2) * g[i] * g[i];
        w[i] -= (this.lr * (m[i] / c1)) / (Math.sqrt(v[i] / c2) + this.eps);
      }
    });
  }
}
