/**
 * `rebasin merge A B [C ...] -o OUT`: align every model to A, then write the interpolation (two models, at
 * --alpha) or the uniform average (more models), in A's format.
 */
import { Command } from 'commander';
import { applyPermutation } from '../permute.js';
import { interpolate } from '../measure/barrier.js';
import type { Params, Tensor } from '../tensor.js';
import { readModels, writeModelLike } from './model-file.js';
import { resolveSpec } from './resolve.js';
import { alignmentPerms } from './matching.js';
import { makeContext, parseFloatOption, parseIntOption, type GlobalOptions } from './common.js';
import { InputError } from '../errors.js';
import { assertNotInput } from '../io/atomic.js';

interface MergeFlags {
  output: string;
  alpha: number;
  align: boolean;
  method: string;
  spec: string;
  seed: number;
  maxIter: number;
  data?: string;
  probe: number;
}

export function mergeCommand(globals: () => GlobalOptions): Command {
  return new Command('merge')
    .description('align models to the first and merge them: (1-alpha)·A + alpha·P(B) for two, the average for more')
    .argument('<models...>', 'two or more models of one architecture (.onnx or .safetensors)')
    .requiredOption('-o, --output <file>', 'where to write the merged model (format of the first model)')
    .option('--alpha <a>', 'interpolation weight of B for two models', parseFloatOption('--alpha', 0, 1), 0.5)
    .option('--no-align', 'merge without aligning (the naive average)')
    .option('--method <m>', 'weight | cosine | activation', 'weight')
    .option('--spec <s>', 'auto | mlp | resnet | vgg | a spec JSON file', 'auto')
    .option('--seed <n>', 'seed of the permutation visiting order', parseIntOption('--seed', 0), 0)
    .option('--max-iter <n>', 'maximum passes of weight matching', parseIntOption('--max-iter', 1, 100000), 100)
    .option('--data <d>', 'probe data for --method activation')
    .option('--probe <n>', 'probe examples for activation matching', parseIntOption('--probe', 1), 1000)
    .action(async (paths: string[], flags: MergeFlags) => {
      if (paths.length < 2) throw new InputError('merge needs at least two models');
      const ctx = makeContext(globals());
      const models = readModels(paths);
      const inputs = models.flatMap((m) => m.files);
      assertNotInput(flags.output, inputs);
      const spec = resolveSpec(flags.spec, models);
      const aligned: Params[] = [models[0].params];
      for (const m of models.slice(1)) {
        if (!flags.align) {
          aligned.push(m.params);
          continue;
        }
        ctx.info(`aligning ${m.path} to ${models[0].path}`);
        const { perms } = await alignmentPerms(ctx, models[0], m, spec, flags);
        aligned.push(applyPermutation(spec.spec, perms, m.params));
      }
      const merged = aligned.length === 2 ? interpolate(aligned[0], aligned[1], flags.alpha) : average(aligned);
      const written = writeModelLike(models[0], merged, flags.output, inputs);
      ctx.out(
        `merged ${paths.length} models (${flags.align ? `aligned by ${flags.method} matching` : 'not aligned'}${paths.length === 2 ? `, alpha ${flags.alpha}` : ', uniform average'}) -> ${written.join(', ')}`,
      );
    });
}

function average(sets: readonly Params[]): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  for (const [name, t] of Object.entries(sets[0])) {
    const acc = new Float64Array(t.data.length);
    for (const s of sets) {
      const d = s[name].data;
      for (let i = 0; i < acc.length; i++) acc[i] += d[i];
    }
    out[name] = { shape: t.shape, data: Float32Array.from(acc, (v) => v / sets.length) };
  }
  return out;
}
