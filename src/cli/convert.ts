/**
 * `rebasin convert MODEL.pt -o MODEL.safetensors`: a PyTorch state dict (torch.save, read without running
 * anything from it: io/torch-checkpoint.ts) written as safetensors, every tensor as stored (dtype, shape,
 * order; integer buffers such as BatchNorm's num_batches_tracked included).
 */
import { extname } from 'node:path';
import { Command } from 'commander';
import { InputError } from '../errors.js';
import { writeSafetensorsFile } from '../io/safetensors-fs.js';
import { readTorchCheckpointFile } from '../io/torch-checkpoint-fs.js';
import { makeContext, type GlobalOptions } from './common.js';
import { assertOutputs } from './outputs.js';

export function convertCommand(globals: () => GlobalOptions): Command {
  return new Command('convert')
    .description('convert a PyTorch state dict (.pt/.pth from torch.save) to safetensors; nothing in the file is run')
    .argument('<model>', 'a torch.save file: a state dict, or a checkpoint dict holding one under state_dict, model_state_dict, model, module or net')
    .requiredOption('-o, --output <file>', 'the safetensors file to write (*.safetensors)')
    .action((path: string, flags: { output: string }) => {
      const ctx = makeContext(globals());
      assertOutputs([{ path: flags.output, option: '-o', kind: 'model' }], [path]);
      if (extname(flags.output).toLowerCase() !== '.safetensors') throw new InputError(`${flags.output}: convert writes safetensors; name the output *.safetensors`);
      const { file, wrapper } = readTorchCheckpointFile(path);
      writeSafetensorsFile(flags.output, file, { inputs: [path] });
      const dtypes = new Map<string, number>();
      for (const name of file.order) dtypes.set(file.tensors[name].dtype, (dtypes.get(file.tensors[name].dtype) ?? 0) + 1);
      const summary = [...dtypes].map(([d, n]) => `${n} ${d}`).join(', ');
      ctx.info(`${path}: ${file.order.length} tensors (${summary})${wrapper !== null ? ` from its '${wrapper}' entry` : ''} -> ${flags.output}`);
    });
}
