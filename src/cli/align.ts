/** `rebasin align A B -o OUT`: permute B's hidden units to match A's and write the aligned B. */
import { Command } from 'commander';
import { writeFileSync } from 'node:fs';
import { applyPermutation, churn } from '../permute.js';
import { alignmentPerms, withMatchingOptions, type MatchFlags } from './matching.js';
import { readModels, writeModelLike } from './model-file.js';
import { resolveSpec } from './resolve.js';
import { makeContext, parseIntOption, type GlobalOptions } from './common.js';
import { assertNotInput } from '../io/atomic.js';

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
    .option('--perms <file>', 'also write the permutations as JSON')
    .option('--json', 'print the result as JSON')
    .action(async (a: string, b: string, flags: AlignFlags) => {
      const g = globals();
      const ctx = makeContext(g);
      const models = readModels([a, b]);
      const inputs = models.flatMap((m) => m.files);
      assertNotInput(flags.output, inputs);
      if (flags.perms) assertNotInput(flags.perms, inputs);
      const spec = resolveSpec(flags.spec, models);
      const result = await alignmentPerms(ctx, models[0], models[1], spec, flags);
      const aligned = applyPermutation(spec.spec, result.perms, models[1].params);
      const written = writeModelLike(models[1], aligned, flags.output, inputs);
      if (flags.perms) writeFileSync(flags.perms, JSON.stringify(Object.fromEntries(Object.entries(result.perms).map(([k, v]) => [k, Array.from(v)])), null, 1));
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
      if (flags.json || g.json) ctx.out(JSON.stringify(summary, null, 2));
      else {
        ctx.out(`aligned ${b} to ${a} (${flags.method} matching, spec: ${spec.source}) -> ${written.join(', ')}`);
        if (result.iterations !== undefined) ctx.out(`  ${result.iterations} passes, objective ${result.objectiveBefore?.toFixed(4)} -> ${result.objectiveAfter?.toFixed(4)}`);
        for (const [name, c] of Object.entries(summary.churn)) ctx.out(`  ${name.padEnd(28)} ${String(result.perms[name].length).padStart(6)} units  ${(100 * c).toFixed(1).padStart(5)}% moved`);
      }
    });
}
