/** `rebasin spec MODEL`: print the permutation spec rebasin derives (a table, or the JSON to save and edit). */
import { Command } from 'commander';
import { specToJson } from '../spec/json.js';
import { formatSpecTable } from '../spec/table.js';
import { writeFileAtomic } from '../io/atomic.js';
import { readModels } from './model-file.js';
import { resolveSpec } from './resolve.js';
import { makeContext, type GlobalOptions } from './common.js';

export function specCommand(globals: () => GlobalOptions): Command {
  return new Command('spec')
    .description('show the permutation spec of a model: which axis of which tensor each permutation acts on')
    .argument('<model>', 'a model (.onnx or .safetensors)')
    .option('--spec <s>', 'auto | mlp | resnet | vgg | a spec JSON file (to check it against the model)', 'auto')
    .option('--json', 'print the spec as JSON (the format --spec FILE reads)')
    .option('-o, --output <file>', 'write the spec JSON to a file')
    .action((path: string, flags: { spec: string; json?: boolean; output?: string }) => {
      const g = globals();
      const ctx = makeContext(g);
      const models = readModels([path]);
      const { spec, source, files } = resolveSpec(flags.spec, models);
      const json = specToJson(spec, { kind: source, description: `derived by rebasin from ${path}` });
      if (flags.output) writeFileAtomic(flags.output, new TextEncoder().encode(json), { inputs: [...models[0].files, ...files] });
      if (flags.json) ctx.out(json);
      else ctx.out(`${path}: spec from ${source}\n${formatSpecTable(spec, models[0].params)}`);
    });
}
