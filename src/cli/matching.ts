/** The matching step shared by align, merge and report: weight/cosine matching or activation matching. */
import { Option, type Command } from 'commander';
import { parseIntOption } from './common.js';
import { weightMatching } from '../match/weight-matching.js';
import { activationMatching, type LayerActivations } from '../match/activation-matching.js';
import { sliceDataset } from '../data/dataset.js';
import { InputError } from '../errors.js';
import type { Params } from '../tensor.js';
import type { Context } from './common.js';
import type { ModelFile } from './model-file.js';
import { resolveData, resolveRunner, type ResolvedSpec } from './resolve.js';

/** The flags of withMatchingOptions, plus the probe data that activation matching needs. */
export interface MatchFlags {
  method: string;
  spec: string;
  seed: number;
  maxIter: number;
  data?: string;
  probe: number;
}

export interface MatchOutcome {
  perms: Record<string, Int32Array>;
  iterations?: number;
  objectiveBefore?: number;
  objectiveAfter?: number;
}

export const METHODS = ['weight', 'cosine', 'activation'] as const;

/** The options every command that aligns shares: --method, --spec, --seed, --max-iter. */
export function withMatchingOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--method <m>', 'how to align B to A').choices(METHODS).default('weight'))
    .option('--spec <s>', 'auto (from the ONNX graph or state-dict names) | mlp | resnet | vgg | a spec JSON file', 'auto')
    .option('--seed <n>', 'seed of the matching order (and of the random permutation in the invariance check)', parseIntOption('--seed', 0), 0)
    .option('--max-iter <n>', 'maximum passes of weight matching', parseIntOption('--max-iter', 1, 100000), 100);
}

export async function alignmentPerms(ctx: Context, a: ModelFile | { path: string; params: Params; onnx?: undefined; files: readonly string[]; format: 'onnx' | 'safetensors' }, b: ModelFile, spec: ResolvedSpec, flags: MatchFlags): Promise<MatchOutcome> {
  const engine = await ctx.engine();
  if (flags.method === 'activation') {
    const data = resolveData(flags.data ?? undefined, { seed: flags.seed });
    const probeSet = sliceDataset(data, 0, Math.min(flags.probe ?? 1000, data.count));
    const runner = await resolveRunner(b, spec, engine);
    try {
      if (!runner.activations) throw new InputError('this model cannot report activations');
      const probe = { inputs: probeSet.inputs, count: probeSet.count };
      const [actA, actB] = [await runner.activations(a.params, probe), await runner.activations(b.params, probe)];
      const layers: Record<string, LayerActivations> = {};
      for (const name of Object.keys(spec.spec.permToAxes)) {
        const x = actA[name];
        const y = actB[name];
        if (!x || !y) throw new InputError(`activation matching: no activations found for permutation '${name}'`);
        layers[name] = { a: x.data, b: y.data, count: x.data.length / x.width, width: x.width };
      }
      const r = await activationMatching(layers, { engine });
      return { perms: r.perms };
    } finally {
      await runner.dispose?.();
    }
  }
  const r = await weightMatching({
    spec: spec.spec,
    paramsA: a.params,
    paramsB: b.params,
    seed: flags.seed,
    maxIter: flags.maxIter,
    score: flags.method === 'cosine' ? 'cosine' : 'dot',
    engine,
    onProgress: (e) => ctx.progress.update(`weight matching, pass ${e.pass + 1}: ${e.perm}`, e.step + 1, e.stepsPerPass),
  });
  ctx.progress.done();
  return { perms: r.perms, iterations: r.iterations, objectiveBefore: r.objectiveBefore, objectiveAfter: r.objectiveAfter };
}
