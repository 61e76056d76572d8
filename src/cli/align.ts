/** `rebasin align A B -o OUT`: permute B's hidden units to match A's and write the aligned B. */
import { Command } from 'commander';
import { applyPermutation, churn } from '../permute.js';
import { alignmentPerms, withMatchingOptions, type MatchFlags } from './matching.js';
import { readModels, writeModelLike } from './model-file.js';
import { assertOutputs, dataFiles, resolveSpec } from './resolve.js';
import { makeContext, parseFloatOption, parseIntOption, type GlobalOptions } from './common.js';
import { writeFileAtomic } from '../io/atomic.js';

interface AlignFlags extends MatchFlags {
  output: string;
  perms?: string;
  json?: boolean;
}

export function alignCommand(globals: () => GlobalOptions): Command {
  return withMatchingOptions(new Command('align')
    .description("permute model B's hidden units to line up with model A's and write the aligned B (same function as B)")
    .argument('<A>', 'reference model (.onnx or .safetensors)')
    .argument('<B>', 'model to align (same architecture)')
    .requiredOption('-o, --output <file>', 'where to write the aligned B (format of B)'))
    .option('--data <d>', 'probe data for --method activation (fashion-mnist, synthetic, IDX folder, .npz, x.npy,y.npy)')
    .option('--probe <n>', 'probe examples for activation matching', parseIntOption('--probe', 1), 1000)
    .option('--scale <x>', 'multiply raw probe input values by x (default: 1/255 for 8-bit images, else 1)', parseFloatOption('--scale', -1e12, 1e12))
    .option('--perms <file>', 'also write the permutations as JSON')
    .option('--json', 'print the result as JSON')
    .action(async (a: string, b: string, flags: AlignFlags) => {
      const g = globals();
      const ctx = makeContext(g);
      const models = readModels([a, b]);
      const spec = resolveSpec(flags.spec, models);
      const inputs = [...models.flatMap((m) => m.files), ...spec.files, ...dataFiles(flags.method === 'activation' ? flags.data : undefined)];
      assertOutputs([flags.output, flags.perms], inputs);
      const result = await alignmentPerms(ctx, models[0], models[1], spec, flags);
      const aligned = applyPermutation(spec.spec, result.perms, models[1].params);
      const written = writeModelLike(models[1], aligned, flags.output, inputs);
      if (flags.perms) {
        const json = JSON.stringify(Object.fromEntries(Object.entries(result.perms).map(([k, v]) => [k, Array.from(v)])), null, 1);
        writeFileAtomic(flags.perms, new TextEncoder().encode(json), { inputs: [...inputs, ...written] });
      }
      const summary = {
        a,
        b,
        output: written,
        method: flags.method,
        spec: spec.source,
        passes: result.iterations ?? null,
        objectiveBefore: result.objectiveBefore ?? null,
        objectiveAfter: result.objectiveAfter ?? null,
        churn: Object.fromEntries(Object.entries(result.perms).map(([k, p]) => [k, churn(p)])),
      };
      if (flags.json) ctx.out(JSON.stringify(summary, null, 2));
      else {
        ctx.out(`aligned ${b} to ${a} (${flags.method} matching, spec: ${spec.source}) -> ${written.join(', ')}`);
        if (result.iterations !== undefined) ctx.out(`  ${result.iterations} passes, objective ${result.objectiveBefore?.toFixed(4)} -> ${result.objectiveAfter?.toFixed(4)}`);
        for (const [name, c] of Object.entries(summary.churn)) ctx.out(`  ${name.padEnd(28)} ${String(result.perms[name].length).padStart(6)} units  ${(100 * c).toFixed(1).padStart(5)}% moved`);
      }
    });
}
