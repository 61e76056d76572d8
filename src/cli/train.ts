/** `rebasin train --data D -o model.onnx|.safetensors`: train the built-in MLP (for experiments and tests). */
import { Command } from 'commander';
import { extname } from 'node:path';
import { trainMlp } from '../train/mlp-trainer.js';
import { mlpToOnnx } from '../io/onnx-mlp.js';
import { writeOnnxFile } from '../io/onnx-file.js';
import { paramsToSafetensors } from '../io/safetensors.js';
import { writeSafetensorsFile } from '../io/safetensors-fs.js';
import { InputError } from '../errors.js';
import { dataFiles, resolveData } from './resolve.js';
import { assertOutputs } from './outputs.js';
import { makeContext, parseFloatOption, parseIntOption, parseList, type GlobalOptions } from './common.js';

interface TrainFlags {
  data: string;
  hidden: number[];
  epochs: number;
  seed: number;
  lr: number;
  batch: number;
  limit?: number;
  scale?: number;
  output: string;
}

export function trainCommand(globals: () => GlobalOptions): Command {
  return new Command('train')
    .description('train an MLP (ReLU, softmax cross-entropy, Adam) and write it as ONNX or safetensors')
    .requiredOption('--data <d>', 'training data: synthetic[:N], fashion-mnist:train, an IDX folder, a .npz file, x.npy,y.npy')
    .requiredOption('-o, --output <file>', 'output model: .onnx or .safetensors (PyTorch state-dict names fc1.weight, ...)')
    .option('--hidden <widths>', 'hidden widths, comma-separated', parseList('--hidden'), [128, 128])
    .option('--epochs <n>', 'epochs', parseIntOption('--epochs', 1, 100000), 3)
    .option('--seed <n>', 'seed of initialisation and batch order', parseIntOption('--seed', 0), 0)
    .option('--lr <x>', 'Adam learning rate', parseFloatOption('--lr', 1e-8, 10), 1e-3)
    .option('--batch <n>', 'batch size', parseIntOption('--batch', 1, 1 << 20), 128)
    .option('--limit <n>', 'train on the first n examples only', parseIntOption('--limit', 1))
    .option('--scale <x>', 'multiply raw input values by x (default: 1/255 for 8-bit images, else 1)', parseFloatOption('--scale', -1e12, 1e12))
    .action(async (flags: TrainFlags) => {
      const ctx = makeContext(globals());
      // Checked first: an empty or non-regular output path is refused whatever its extension.
      assertOutputs([{ path: flags.output, option: '-o', kind: 'model' }], dataFiles(flags.data));
      const ext = extname(flags.output).toLowerCase();
      if (ext !== '.onnx' && ext !== '.safetensors') throw new InputError(`${flags.output}: the output must end in .onnx or .safetensors`);
      const data = resolveData(flags.data, { limit: flags.limit, seed: flags.seed, scale: flags.scale });
      const features = data.inputs.length / data.count;
      const result = await trainMlp(
        { inputs: data.inputs, labels: data.labels, count: data.count, features, numClasses: data.numClasses },
        {
          hidden: flags.hidden,
          epochs: flags.epochs,
          seed: flags.seed,
          learningRate: flags.lr,
          batchSize: flags.batch,
          engine: await ctx.engine(),
          onEpoch: (e) => {
            ctx.progress.done();
            ctx.info(`epoch ${e.epoch + 1}/${e.epochs}: loss ${e.loss.toFixed(4)}, accuracy ${(100 * e.accuracy).toFixed(2)}%`);
          },
        },
      );
      if (ext === '.onnx') writeOnnxFile(flags.output, mlpToOnnx(result.arch, result.params), result.params, { externalData: false });
      else writeSafetensorsFile(flags.output, paramsToSafetensors(result.params, { metadata: { format: 'pt', producer: 'rebasin train' } }));
      ctx.out(
        `trained MLP ${[features, ...flags.hidden, data.numClasses].join(' -> ')} on ${data.name} (${data.count} examples, ${data.preprocessing}), ${flags.epochs} epochs, seed ${flags.seed}: final loss ${result.losses[result.losses.length - 1].toFixed(4)} -> ${flags.output}`,
      );
    });
}
