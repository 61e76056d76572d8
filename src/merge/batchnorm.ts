/**
 * REPAIR for networks that keep their BatchNorm layers (a state dict, not a BN-folded export): the merged
 * net's BN layers still carry the running statistics averaged from the endpoints, which no longer describe
 * the activations they normalise (the interpolated pre-BN activations have less variance). The fix (Jordan
 * et al. §4, "reset BN statistics") is to recompute each BN's running_mean / running_var from the merged
 * net's own pre-BN activations on a probe batch; gamma and beta stay as merged.
 *
 * The caller supplies the measurement (a StatsFn giving each BN's pre-BN per-channel mean and population
 * std under the given params, with every BN in eval mode). Layers are reset in order, each measured after the
 * earlier ones were reset, since an earlier BN's new statistics change what the later ones see.
 *
 * The CLI cannot use this for safetensors files: they carry no graph to run. An ONNX export has BN folded
 * into the convs, which onnx-repair.ts handles.
 */
import type { Params, Tensor } from '../tensor.js';
import { InputError } from '../errors.js';
import type { StatsFn } from './repair.js';

export interface BatchNormLayer {
  /** Key of the layer's pre-BN statistics. */
  name: string;
  runningMean: string;
  runningVar: string;
}

export interface ResetBatchNormOptions {
  params: Params;
  layers: readonly BatchNormLayer[];
  stats: StatsFn;
  /**
   * Examples behind each channel's statistics (rows of the probe, times H·W for convs): PyTorch stores the
   * unbiased variance n/(n−1)·σ² in running_var. Leave out to store the population variance.
   */
  samples?: number;
}

export async function resetBatchNormStats(o: ResetBatchNormOptions): Promise<Record<string, Tensor>> {
  let params: Record<string, Tensor> = { ...o.params };
  const correction = o.samples !== undefined && o.samples > 1 ? o.samples / (o.samples - 1) : 1;
  for (const layer of o.layers) {
    const s = (await o.stats(params))[layer.name];
    if (s === undefined) throw new Error(`resetBatchNormStats: no statistics for '${layer.name}'`);
    const mean = params[layer.runningMean];
    const variance = params[layer.runningVar];
    if (mean === undefined || variance === undefined) throw new InputError(`BatchNorm '${layer.name}': no '${layer.runningMean}' or '${layer.runningVar}' in the parameters`);
    if (mean.data.length !== s.mean.length || variance.data.length !== s.mean.length) {
      throw new InputError(`BatchNorm '${layer.name}': ${mean.data.length} running statistics for ${s.mean.length} channels`);
    }
    params = {
      ...params,
      [layer.runningMean]: { shape: mean.shape, data: Float32Array.from(s.mean) },
      [layer.runningVar]: { shape: variance.shape, data: Float32Array.from(s.std, (d) => d * d * correction) },
    };
  }
  return params;
}
