/**
 * What a model runner is, whatever runs the model (the built-in MLP in model/, an ONNX graph on ONNX
 * Runtime in engine/): evaluate a param set on a dataset, give its outputs on a probe batch, and, for
 * activation matching, the activations that each permutation acts on. It sits with the runtimes, below
 * the MLP (model/) and the measuring code (measure/) that use it, so engine imports neither of them.
 */
import type { Params } from '../tensor.js';

/** Mean loss and accuracy of one param set on a dataset (accuracy as a fraction). */
export interface Evaluation {
  loss: number;
  accuracy: number;
}

export interface ProbeBatch {
  inputs: Float32Array;
  count: number;
}

export interface LabelledData extends ProbeBatch {
  labels: Int32Array;
}

export interface UnitActivations {
  /** rows × width, row-major. */
  data: Float32Array;
  width: number;
  /**
   * Number of rows when it is not the probe's count: a convolution's channels seen at every spatial position
   * give count × H × W rows (each position counted as one more sample). Absent means probe.count.
   */
  rows?: number;
}

/** Called after each batch of a pass over the data: `done` of `total` examples evaluated so far. */
export type BatchProgress = (done: number, total: number) => void;

export interface ModelRunner {
  /** Mean loss and accuracy of `params` on `data`; `onBatch`, when given, hears of each batch as it ends. */
  evaluate(params: Params, data: LabelledData, onBatch?: BatchProgress): Promise<Evaluation>;
  /** Raw outputs (e.g. logits) on a probe batch, flattened. */
  outputs(params: Params, probe: ProbeBatch): Promise<Float32Array>;
  /** Activations of the units each permutation acts on, keyed by permutation name. */
  activations?(params: Params, probe: ProbeBatch): Promise<Record<string, UnitActivations>>;
}

/** Mean softmax cross-entropy and accuracy of logits (batch × classes) against integer labels. */
export function crossEntropy(logits: Float32Array, labels: Int32Array, batch: number, classes: number): { loss: number; correct: number } {
  let loss = 0;
  let correct = 0;
  for (let s = 0; s < batch; s++) {
    const base = s * classes;
    let max = -Infinity;
    let arg = 0;
    for (let c = 0; c < classes; c++) {
      if (logits[base + c] > max) {
        max = logits[base + c];
        arg = c;
      }
    }
    let sum = 0;
    for (let c = 0; c < classes; c++) sum += Math.exp(logits[base + c] - max);
    loss += Math.log(sum) + max - logits[base + labels[s]];
    if (arg === labels[s]) correct++;
  }
  return { loss: loss / batch, correct };
}
