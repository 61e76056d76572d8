/** `rebasin align A B -o OUT`: permute B's hidden units to match A's and write the aligned B. */
import { Command } from 'commander';
import { applyPermutation } from '../permute.js';
import { churnOf, permsToJson } from '../pipeline/alignment-report.js';
import { plural } from '../measure/checks.js';
import { jsonDocument } from '../report/json.js';
import { alignmentPerms, withMatchingOptions, type MatchFlags, type MatchOutcome } from './matching.js';
import { assertModelName, modelOutputs, readModels, sniffModelFormat, writeModelLike, type ModelFile } from './model-file.js';
import { dataFiles, exportMappingNote, partialSpecNote, resolveSpec, specPermutesNothing, type ResolvedSpec } from './resolve.js';
import { assertSameFunction, assertSameFunctionStreamed, type FunctionCheckSummary } from './function-check.js';
import { makeContext, parseFloatOption, parseIntOption, type Context, type GlobalOptions } from './common.js';
import { InputError } from '../errors.js';
import { weightMatchingChecked } from '../match/sorted-start.js';
import { shapeStubs, type ParamSource } from '../match/param-source.js';
import { openSafetensorsSource } from '../match/param-source-fs.js';
import { openOnnxSource } from '../match/param-source-onnx.js';
import { writePermutedSafetensors } from '../io/safetensors-stream.js';
import { writePermutedOnnx } from '../io/onnx-stream.js';
import type { OnnxModel } from '../io/onnx.js';
import { writeFileAtomic } from '../io/atomic.js';
import { assertOutputs, type OutputRequest } from './outputs.js';
import { readText } from './model-file.js';
import { permsFromJson } from '../permutation-spec/perms-file.js';
import { permSizes } from '../permutation-spec/spec.js';
import type { Params } from '../tensor.js';

/** --perms-in: the permutations of a file, checked against the spec (perms-file.ts), in place of matching. */
function permsFromFile(path: string, spec: ResolvedSpec, params: Params): MatchOutcome {
  return { perms: permsFromJson(readText(path), path, spec.spec, permSizes(spec.spec, params)) };
}

/** The file --perms-in reads, among the inputs no output may overwrite. */
function permsInput(flags: AlignFlags): string[] {
  return flags.permsIn === undefined ? [] : [flags.permsIn];
}

interface AlignFlags extends MatchFlags {
  output: string;
  perms?: string;
  /** Apply the permutations of this file (as --perms writes) instead of matching. */
  permsIn?: string;
  json?: boolean;
  lowMemory?: boolean;
  force?: boolean;
}

/** align's outputs: the model (and its external data) and the permutations file. */
function alignOutputs(modelFiles: readonly string[], flags: AlignFlags): (OutputRequest | undefined)[] {
  return [
    ...modelFiles.map((path) => ({ path, option: '-o', kind: 'model' as const })),
    flags.perms === undefined ? undefined : { path: flags.perms, option: '--perms', kind: 'text' as const },
  ];
}

interface AlignOutcome extends MatchOutcome {
  written: string[];
  specSource: string;
  inputs: string[];
  /** The spec permutes nothing: the output is B unchanged. */
  nothingToPermute: boolean;
  functionCheck: FunctionCheckSummary;
}

/**
 * What align says about the spec before matching: a partial spec (channel spaces left fixed around ops the
 * derivation does not understand) and a spec that permutes nothing at all (then the output is B itself).
 */
function announceSpec(ctx: Context, spec: ResolvedSpec, a: string, b: string): boolean {
  const note = partialSpecNote(spec, a);
  if (note !== null) ctx.warn(note);
  const mapping = exportMappingNote(spec);
  if (mapping !== null) ctx.info(mapping);
  const nothing = specPermutesNothing(spec);
  if (nothing) ctx.warn(`the spec (${spec.source}) permutes nothing: every channel space is fixed, so the output is ${b} unchanged`);
  return nothing;
}

/** The usual path: both models in memory, any format and method. */
async function alignInMemory(ctx: Context, a: string, b: string, flags: AlignFlags): Promise<AlignOutcome> {
  const models = readModels([a, b]);
  // B keeps its own graph (and its own Constant values): only the structure must be A's.
  const spec = resolveSpec(flags.spec, models, { strict: flags.strict, averages: false });
  const inputs = [...models.flatMap((m) => m.files), ...spec.files, ...permsInput(flags), ...dataFiles(flags.permsIn === undefined && flags.method === 'activation' && !specPermutesNothing(spec) ? flags.data : undefined)];
  assertOutputs(alignOutputs(modelOutputs(models[1], flags.output), flags), inputs, { force: flags.force });
  assertModelName(models[1], flags.output);
  const nothingToPermute = announceSpec(ctx, spec, a, b);
  const result: MatchOutcome = nothingToPermute
    ? { perms: {} }
    : flags.permsIn !== undefined
      ? permsFromFile(flags.permsIn, spec, models[1].params)
      : await alignmentPerms(ctx, models[0], models[1], spec, flags);
  const aligned = applyPermutation(spec.spec, result.perms, models[1].params);
  // Before writing: P(B) must compute what B computes (ONNX; safetensors carry no graph to run).
  const functionCheck = nothingToPermute
    ? ({ status: 'not applicable', reason: 'nothing was permuted' } as const)
    : await assertSameFunction(ctx, models[1], [{ label: b, reference: models[1].params, candidate: aligned }], {
        seed: flags.seed,
        output: flags.output,
        specSource: spec.source,
      });
  const written = writeModelLike(models[1], aligned, flags.output, inputs);
  return { ...result, written, specSource: spec.source, inputs, nothingToPermute, functionCheck };
}

/**
 * --low-memory: both models read tensor by tensor for matching and for writing, so neither is ever held
 * whole (see weightMatchingFrom): safetensors files, or ONNX models (their weights normally in external
 * data files). Both must be of one format, as in memory. Weight and cosine matching only: activations
 * need the whole model run.
 */
async function alignStreamed(ctx: Context, a: string, b: string, flags: AlignFlags): Promise<AlignOutcome> {
  if (flags.method === 'activation' && flags.permsIn === undefined) throw new InputError('--low-memory works with --method weight or cosine (activation matching runs the whole model)');
  const formats = [a, b].map(sniffModelFormat);
  if (formats[0] !== formats[1]) throw new InputError(`the models mix formats (${formats.join(', ')}); give both as ONNX or both as safetensors`);
  const format = formats[0];
  const open = (path: string): ParamSource & { files?: readonly string[]; model?: OnnxModel } =>
    format === 'onnx' ? openOnnxSource(path) : openSafetensorsSource(path);
  const sourceA = open(a);
  try {
    const sourceB = open(b);
    try {
      // Specs are built from names, shapes and (for ONNX) the graph, so shape-only stand-ins serve the spec
      // resolution, and the output checks see every file each source reads (ONNX external data too).
      const stubs: ModelFile[] = [sourceA, sourceB].map((s, i) => ({
        path: [a, b][i],
        format,
        params: shapeStubs(s),
        files: s.files ?? [[a, b][i]],
        ...(s.model !== undefined ? { onnx: s.model } : {}),
      }));
      const spec = resolveSpec(flags.spec, stubs, { strict: flags.strict, averages: false });
      const inputs = [...stubs.flatMap((m) => m.files), ...spec.files, ...permsInput(flags)];
      assertOutputs(alignOutputs(modelOutputs(stubs[1], flags.output), flags), inputs, { force: flags.force });
      assertModelName(stubs[1], flags.output);
      const nothingToPermute = announceSpec(ctx, spec, a, b);
      const r: MatchOutcome = nothingToPermute
        ? { perms: {} }
        : flags.permsIn !== undefined
          ? permsFromFile(flags.permsIn, spec, stubs[1].params)
          : await weightMatchingChecked({
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
      let functionCheck: FunctionCheckSummary = { status: 'not applicable', reason: nothingToPermute ? 'nothing was permuted' : 'safetensors files carry no graph to run' };
      if (format === 'onnx' && !nothingToPermute) {
        const floatBytes = Object.values(stubs[1].params).reduce((n, t) => n + 4 * t.shape.reduce((x, y) => x * y, 1), 0);
        functionCheck = await assertSameFunctionStreamed(ctx, b, floatBytes, spec.spec, r.perms, { seed: flags.seed, output: flags.output, specSource: spec.source });
      }
      let written: string[];
      if (format === 'onnx') written = writePermutedOnnx(b, flags.output, spec.spec, r.perms, { inputs });
      else {
        writePermutedSafetensors(b, flags.output, spec.spec, r.perms, { inputs });
        written = [flags.output];
      }
      return { perms: r.perms, iterations: r.iterations, objectiveBefore: r.objectiveBefore, objectiveAfter: r.objectiveAfter, start: r.start, written, specSource: spec.source, inputs, nothingToPermute, functionCheck };
    } finally {
      sourceB.close();
    }
  } finally {
    sourceA.close();
  }
}

export function alignCommand(globals: () => GlobalOptions): Command {
  return withMatchingOptions(new Command('align')
    .description(
      "permute model B's hidden units to line up with model A's and write the aligned B (same function as B). ONNX: B's graph must be A's, and the aligned B is run against B on a probe batch before it is written (exit 2 if they differ)",
    )
    .argument('<A>', 'reference model (.onnx or .safetensors)')
    .argument('<B>', 'model to align (same architecture)')
    .requiredOption('-o, --output <file>', 'where to write the aligned B (format of B)'))
    .option('--data <d>', 'probe data for --method activation (fashion-mnist, synthetic, IDX folder, .npz, x.npy,y.npy)')
    .option('--probe <n>', 'probe examples for activation matching', parseIntOption('--probe', 1), 1000)
    .option('--scale <x>', 'multiply raw probe input values by x (default: 1/255 for 8-bit images, else 1)', parseFloatOption('--scale', -1e12, 1e12))
    .option('--perms <file>', 'also write the permutations as JSON')
    .option('--perms-in <file>', 'apply the permutations of this file (as --perms or report --json wrote them) instead of matching; checked against the spec: every permutation, its length, a true permutation, attention heads kept whole')
    .option('--force', 'write --perms even over a file that looks like a model or data file (never over an input)')
    .option('--json', 'print the result as JSON (format rebasin-align, schema/align.json)')
    .option('--low-memory', 'read both models tensor by tensor instead of whole, for models larger than memory (safetensors, or ONNX with or without external data; weight or cosine matching; the function check runs for models up to 128 MiB of weights and is reported skipped above)')
    .action(async (a: string, b: string, flags: AlignFlags) => {
      const g = globals();
      const ctx = makeContext(g);
      const result = flags.lowMemory ? await alignStreamed(ctx, a, b, flags) : await alignInMemory(ctx, a, b, flags);
      const { written, inputs } = result;
      if (flags.perms) {
        const json = JSON.stringify(permsToJson(result.perms), null, 1);
        writeFileAtomic(flags.perms, new TextEncoder().encode(json), { inputs: [...inputs, ...written] });
      }
      const summary = jsonDocument('align', {
        a,
        b,
        output: written,
        method: flags.method,
        spec: result.specSource,
        passes: result.iterations ?? null,
        objectiveBefore: result.objectiveBefore ?? null,
        objectiveAfter: result.objectiveAfter ?? null,
        ...(result.start !== undefined ? { start: result.start } : {}),
        churn: churnOf(result.perms),
        unchanged: result.nothingToPermute,
        functionCheck: result.functionCheck,
      });
      if (flags.json) ctx.out(JSON.stringify(summary, null, 2));
      else if (result.nothingToPermute) {
        ctx.out(`nothing to align: the spec (${result.specSource}) permutes no channel space; wrote ${b} unchanged -> ${written.join(', ')}`);
      } else {
        const how = flags.permsIn !== undefined ? `permutations from ${flags.permsIn}` : `${flags.method} matching`;
        ctx.out(`aligned ${b} to ${a} (${how}, spec: ${result.specSource}) -> ${written.join(', ')}`);
        if (result.iterations !== undefined) ctx.out(`  ${plural(result.iterations, 'pass', 'passes')}, objective ${result.objectiveBefore?.toFixed(4)} -> ${result.objectiveAfter?.toFixed(4)}`);
        if (result.start === 'sorted') ctx.out('  descent from the identity stalled below the sorted start; kept the descent from the sorted start');
        for (const c of summary.churn) ctx.out(`  ${c.name.padEnd(28)} ${String(c.size).padStart(6)} units  ${(100 * c.churn).toFixed(1).padStart(5)}% moved`);
      }
    });
}
