/** A ModelRunner for the built-in MLP (params without a graph: safetensors, the demo). */
import type { Params } from '../tensor.js';
import type { MatmulEngine } from '../engine/matmul.js';
import { crossEntropy, type ModelRunner, type UnitActivations } from '../engine/runner.js';
import { mlpForward, mlpLogits, mlpWidths, type MlpArch } from './mlp.js';

export function mlpRunner(
  arch: MlpArch,
  engine: MatmulEngine,
  options: {
    /** Permutation name of each hidden layer, in order (the spec's names). */
    hiddenPerms?: readonly string[];
    batchSize?: number;
  } = {},
): ModelRunner {
  const batchSize = options.batchSize ?? 1000;
  return {
    async evaluate(params, data) {
      const widths = mlpWidths(arch, params);
      const [inW, classes] = [widths[0], widths[widths.length - 1]];
      let loss = 0;
      let correct = 0;
      for (let start = 0; start < data.count; start += batchSize) {
        const n = Math.min(batchSize, data.count - start);
        const x = data.inputs.subarray(start * inW, (start + n) * inW);
        const logits = await mlpLogits(arch, params, x, n, engine);
        const ce = crossEntropy(logits, data.labels.subarray(start, start + n), n, classes);
        loss += ce.loss * n;
        correct += ce.correct;
      }
      return { loss: loss / data.count, accuracy: correct / data.count };
    },
    async outputs(params, probe) {
      return mlpLogits(arch, params, probe.inputs, probe.count, engine);
    },
    async activations(params: Params, probe) {
      const names = options.hiddenPerms;
      if (!names) throw new Error('mlpRunner: hiddenPerms are needed for activations');
      const { hidden } = await mlpForward(arch, params, probe.inputs, probe.count, engine);
      const out: Record<string, UnitActivations> = Object.create(null);
      hidden.forEach((h, i) => {
        out[names[i]] = { data: h, width: h.length / probe.count };
      });
      return out;
    },
  };
}
