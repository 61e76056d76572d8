/** `rebasin align A B -o OUT`: permute B's hidden units to match A's and write the aligned B. */
import { Command } from 'commander';
import { applyPermutation, churn } from '../permute.js';
import { alignmentPerms, withMatchingOptions, type MatchFlags, type MatchOutcome } from './matching.js';
import { assertModelName, modelOutputs, readModels, sniffModelFormat, writeModelLike } from './model-file.js';
import { assertOutputs, dataFiles, resolveSpec } from './resolve.js';
import { makeContext, parseFloatOption, parseIntOption, type Context, type GlobalOptions } from './common.js';
import { InputError } from '../errors.js';
import { weightMatchingFrom } from '../match/weight-matching.js';
import { shapeStubs } from '../match/param-source.js';
import { openSafetensorsSource } from '../match/param-source-fs.js';
import { writePermutedSafetensors } from '../io/safetensors-stream.js';
import { writeFileAtomic } from '../io/atomic.js';

interface AlignFlags extends MatchFlags {
  output: string;
  perms?: string;
  json?: boolean;
  lowMemory?: boolean;
}

interface AlignOutcome extends MatchOutcome {
  written: string[];
  specSource: string;
  inputs: string[];
}

/** The usual path: both models in memory, any format and method. */
async function alignInMemory(ctx: Context, a: string, b: string, flags: AlignFlags): Promise<AlignOutcome> {
  const models = readModels([a, b]);
  const spec = resolveSpec(flags.spec, models);
  const inputs = [...models.flatMap((m) => m.files), ...spec.files, ...dataFiles(flags.method === 'activation' ? flags.data : undefined)];
  assertOutputs([...modelOutputs(models[1], flags.output), flags.perms], inputs);
  assertModelName(models[1], flags.output);
  const result = await alignmentPerms(ctx, models[0], models[1], spec, flags);
  const aligned = applyPermutation(spec.spec, result.perms, models[1].params);
  const written = writeModelLike(models[1], aligned, flags.output, inputs);
  return { ...result, written, specSource: spec.source, inputs };
}

/**
 * --low-memory: safetensors read tensor by tensor for matching and for writing, so neither model is ever
 * held whole (see weightMatchingFrom). Weight and cosine matching only: activations need the graph.
 */
async function alignStreamed(ctx: Context, a: string, b: string, flags: AlignFlags): Promise<AlignOutcome> {
  if (flags.method === 'activation') throw new InputError('--low-memory works with --method weight or cosine (activation matching runs the whole model)');
  for (const path of [a, b]) {
    if (sniffModelFormat(path) !== 'safetensors') throw new InputError(`${path}: --low-memory reads safetensors files; this one is ONNX`);
  }
  const sourceA = openSafetensorsSource(a);
  try {
    const sourceB = openSafetensorsSource(b);
    try {
      // Specs are built from names and shapes alone, so shape-only stand-ins serve the spec resolution.
      const stubs = [sourceA, sourceB].map((s, i) => ({ path: [a, b][i], format: 'safetensors' as const, params: shapeStubs(s), files: [[a, b][i]] }));
      const spec = resolveSpec(flags.spec, stubs);
      const inputs = [a, b, ...spec.files];
      assertOutputs([...modelOutputs(stubs[1], flags.output), flags.perms], inputs);
      assertModelName(stubs[1], flags.output);
      const r = await weightMatchingFrom({
        spec: spec.spec,
        sourceA,
        sourceB,
        seed: flags.seed,
        maxIter: flags.maxIter,
        score: flags.method === 'cosine' ? 'cosine' : 'dot',
        engine: await ctx.engine(),
        onProgress: (e) => ctx.progress.update(`weight matching, pass ${e.pass + 1}: ${e.perm}`, e.step + 1, e.stepsPerPass),
      });
      ctx.progress.done();
      writePermutedSafetensors(b, flags.output, spec.spec, r.perms, { inputs });
      return { perms: r.perms, iterations: r.iterations, objectiveBefore: r.objectiveBefore, objectiveAfter: r.objectiveAfter, written: [flags.output], specSource: spec.source, inputs };
    } finally {
      sourceB.close();
    }
  } finally {
    sourceA.close();
  }
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
    .option('--low-memory', 'safetensors only: read both models tensor by tensor instead of whole (for models larger than memory)')
    .action(async (a: string, b: string, flags: AlignFlags) => {
      const g = globals();
      const ctx = makeContext(g);
      const result = flags.lowMemory ? await alignStreamed(ctx, a, b, flags) : await alignInMemory(ctx, a, b, flags);
      const { written, inputs } = result;
      if (flags.perms) {
        const json = JSON.stringify(Object.fromEntries(Object.entries(result.perms).map(([k, v]) => [k, Array.from(v)])), null, 1);
        writeFileAtomic(flags.perms, new TextEncoder().encode(json), { inputs: [...inputs, ...written] });
      }
      const summary = {
        a,
        b,
        output: written,
        method: flags.method,
        spec: result.specSource,
        passes: result.iterations ?? null,
        objectiveBefore: result.objectiveBefore ?? null,
        objectiveAfter: result.objectiveAfter ?? null,
        churn: Object.fromEntries(Object.entries(result.perms).map(([k, p]) => [k, churn(p)])),
      };
      if (flags.json) ctx.out(JSON.stringify(summary, null, 2));
      else {
        ctx.out(`aligned ${b} to ${a} (${flags.method} matching, spec: ${result.specSource}) -> ${written.join(', ')}`);
        if (result.iterations !== undefined) ctx.out(`  ${result.iterations} passes, objective ${result.objectiveBefore?.toFixed(4)} -> ${result.objectiveAfter?.toFixed(4)}`);
        for (const [name, c] of Object.entries(summary.churn)) ctx.out(`  ${name.padEnd(28)} ${String(result.perms[name].length).padStart(6)} units  ${(100 * c).toFixed(1).padStart(5)}% moved`);
      }
    });
}
