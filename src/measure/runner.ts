/**
 * What the measuring code needs from a model, whatever it is (the built-in MLP, an ONNX graph):
 * evaluate a param set on a dataset, give its outputs on a probe batch, and, for activation matching,
 * the activations that each permutation acts on.
 */
import type { Params } from '../tensor.js';
import type { Evaluation } from './barrier.js';

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
