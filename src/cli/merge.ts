/**
 * `rebasin merge A B [C ...] -o OUT`: align the models into one basin, then write the interpolation (two
 * models, at --alpha) or the uniform average (more models), in A's format. Two models are aligned pairwise
 * (B to A); three or more by MergeMany (each matched to the mean of the others until nothing changes) for
 * weight/cosine matching, or each to the first for activation matching.
 *
 * --repair renormalises the merged net (REPAIR): each repaired layer's output units get the mean and std
 * interpolated from the aligned endpoints', measured on the first --probe examples of --data; an ONNX graph
 * with BatchNormalization nodes gets their running statistics reset from the merged net's activations. With --data,
 * the per-model and merged loss/accuracy are reported, with a warning (stderr, also with --quiet) when the
 * merge as written is far worse than its parents (measure/advice.ts, mergeWarning).
 */
import { Command } from 'commander';
import { applyPermutation } from '../permute.js';
import { interpolate } from '../measure/barrier.js';
import type { Params, Tensor } from '../tensor.js';
import { assertModelName, modelOutputs, readModels, writeModelLike, type ModelFile } from './model-file.js';
import { dataFiles, partialSpecNote, resolveData, resolveRunner, resolveSpec, specPermutesNothing, type ResolvedSpec } from './resolve.js';
import { assertOutputs } from './outputs.js';
import { assertSameFunction } from './function-check.js';
import { alignmentPerms, withMatchingOptions, type MatchFlags } from './matching.js';
import { makeContext, parseFloatOption, parseIntOption, type Context, type GlobalOptions } from './common.js';
import { InputError } from '../errors.js';
import { sliceDataset } from '../data/dataset.js';
import { repairSetup } from '../merge/repair-setup.js';
import { mergeMany, averageParams } from '../merge/merge-many.js';
import type { RepairMode, LayerCorrection } from '../merge/repair.js';
import type { ProbeBatch } from '../measure/runner.js';
import { mergeWarning, normalisationOf } from '../measure/advice.js';
import { jsonDocument } from '../report/json.js';

interface MergeFlags extends MatchFlags {
  output: string;
  alpha: number;
  align: boolean;
  limit?: number;
  repair?: boolean;
  repairMode: string;
  json?: boolean;
}

export const REPAIR_MODES = ['sequential', 'oneshot'] as const;

export function parseRepairMode(v: string): RepairMode {
  if (!(REPAIR_MODES as readonly string[]).includes(v)) throw new InputError(`--repair-mode must be one of ${REPAIR_MODES.join(', ')}, got '${v}'`);
  return v as RepairMode;
}

export function describeCorrections(corrections: readonly LayerCorrection[]): string[] {
  return corrections.map(
    (c) => `  ${c.name}: scale ${c.minScale.toFixed(3)}..${c.maxScale.toFixed(3)} (geometric mean ${c.meanScale.toFixed(3)})${c.deadUnits > 0 ? `, ${c.deadUnits} constant units only shifted` : ''}`,
  );
}

async function alignAll(ctx: Context, models: ModelFile[], spec: ResolvedSpec, flags: MergeFlags, probe?: ProbeBatch): Promise<{ aligned: Params[]; how: string }> {
  if (!flags.align) return { aligned: models.map((m) => m.params), how: 'not aligned' };
  if (specPermutesNothing(spec)) return { aligned: models.map((m) => m.params), how: 'not aligned: the spec permutes nothing' };
  if (models.length > 2 && flags.method !== 'activation') {
    ctx.info(`aligning ${models.length} models into one basin (MergeMany, ${flags.method} matching)`);
    const r = await mergeMany({
      spec: spec.spec,
      models: models.map((m) => m.params),
      seed: flags.seed,
      matchIter: flags.maxIter,
      score: flags.method === 'cosine' ? 'cosine' : 'dot',
      engine: await ctx.engine(),
      onProgress: (e) => ctx.progress.update(`MergeMany round ${e.round + 1}`, e.step + 1, e.models),
    });
    ctx.progress.done();
    return {
      aligned: models.map((m, i) => applyPermutation(spec.spec, r.perms[i], m.params)),
      how: `aligned by MergeMany (${flags.method} matching, ${r.iterations} round${r.iterations === 1 ? '' : 's'}${r.converged ? '' : ', not converged'})`,
    };
  }
  const aligned: Params[] = [models[0].params];
  for (const m of models.slice(1)) {
    ctx.info(`aligning ${m.path} to ${models[0].path}`);
    const { perms } = await alignmentPerms(ctx, models[0], m, spec, flags, probe);
    aligned.push(applyPermutation(spec.spec, perms, m.params));
  }
  return { aligned, how: `aligned by ${flags.method} matching${models.length > 2 ? ' to the first model' : ''}` };
}

export function mergeCommand(globals: () => GlobalOptions): Command {
  return withMatchingOptions(new Command('merge')
    .description(
      'align models into one basin and merge them: (1-alpha)·A + alpha·P(B) for two, the average for more. ONNX: every graph must be the first one\'s, Constant node values included, and each aligned model is run against its original on a probe batch before anything is written (exit 2 if they differ)',
    )
    .argument('<models...>', 'two or more models of one architecture (.onnx or .safetensors)')
    .requiredOption('-o, --output <file>', 'where to write the merged model (format of the first model)')
    .option('--alpha <a>', 'interpolation weight of B for two models', parseFloatOption('--alpha', 0, 1), 0.5)
    .option('--no-align', 'merge without aligning (the naive average)'))
    .option('--data <d>', 'data: probe for --method activation and --repair; with it, every model and the merge are evaluated')
    .option('--probe <n>', 'probe examples for activation matching and repair statistics', parseIntOption('--probe', 1), 1000)
    .option('--limit <n>', 'evaluate on the first n examples only (default: all of them)', parseIntOption('--limit', 1))
    .option('--scale <x>', 'multiply raw input values by x (default: 1/255 for 8-bit images, else 1)', parseFloatOption('--scale', -1e12, 1e12))
    .option('--repair', 'renormalise the merged net (REPAIR): match each unit\'s mean/std to the interpolation of the endpoints\', or reset the BatchNorm statistics of an ONNX graph that keeps them (needs --data)')
    .option('--repair-mode <m>', 'sequential (layer by layer, re-measuring) | oneshot', 'sequential')
    .option('--json', 'print the result (and evaluations) as JSON (format rebasin-merge, schema/merge.json)')
    .action(async (paths: string[], flags: MergeFlags) => {
      if (paths.length < 2) throw new InputError('merge needs at least two models');
      const repairMode = parseRepairMode(flags.repairMode);
      if (flags.repair && flags.data === undefined) throw new InputError('--repair needs --data: the statistics are measured on its first --probe examples');
      const g = globals();
      const ctx = makeContext(g);
      const models = readModels(paths);
      // The merge is written into the first model's graph: every graph must be it, Constant values included.
      const spec = resolveSpec(flags.spec, models, { strict: flags.strict, averages: true });
      const inputs = [...models.flatMap((m) => m.files), ...spec.files, ...dataFiles(flags.data)];
      assertOutputs(modelOutputs(models[0], flags.output).map((path) => ({ path, option: '-o', kind: 'model' as const })), inputs);
      assertModelName(models[0], flags.output);
      if (flags.align) {
        const note = partialSpecNote(spec, paths[0]);
        if (note !== null) ctx.warn(note);
        if (specPermutesNothing(spec)) ctx.warn(`the spec (${spec.source}) permutes nothing: every channel space is fixed, so this merge averages unaligned models`);
      }
      const data = flags.data !== undefined ? resolveData(flags.data, { limit: flags.limit, seed: flags.seed, scale: flags.scale, model: models[0] }) : null;

      const engine = await ctx.engine();
      // Set up the repair statistics before aligning, so a model that cannot be repaired fails at once.
      const probeSet = data ? sliceDataset(data, 0, Math.min(flags.probe, data.count)) : null;
      const probe = probeSet ? { inputs: probeSet.inputs, count: probeSet.count } : undefined;
      const setup = flags.repair && probe ? await repairSetup(models[0], probe, engine) : null;
      let aligned: Params[];
      let how: string;
      let plain: Record<string, Tensor>;
      let merged: Record<string, Tensor>;
      let corrections: LayerCorrection[] = [];
      try {
        ({ aligned, how } = await alignAll(ctx, models, spec, flags, probe));
        // Before anything is written: each aligned model must compute what its model computes. The graphs
        // are one (resolveSpec compared them), so the first model's serves every check.
        const permuted = models.map((m, i) => ({ label: m.path, reference: m.params, candidate: aligned[i] })).filter((r) => r.candidate !== r.reference);
        await assertSameFunction(ctx, models[0], permuted, { seed: flags.seed, examples: probe, output: flags.output, specSource: spec.source });
        const weights = aligned.length === 2 ? [1 - flags.alpha, flags.alpha] : aligned.map(() => 1 / aligned.length);
        plain = aligned.length === 2 ? interpolate(aligned[0], aligned[1], flags.alpha) : averageParams(aligned);
        merged = plain;
        if (setup) {
          const r = await setup.repair({
            merged: plain,
            endpoints: aligned,
            weights,
            mode: repairMode,
            onLayer: (i, n) => ctx.progress.update('repairing', i, n),
          });
          ctx.progress.done();
          merged = r.params;
          corrections = r.corrections;
        }
      } finally {
        await setup?.dispose();
      }
      const skipped = setup?.skipped ?? [];
      const written = writeModelLike(models[0], merged, flags.output, inputs);

      // Evaluation: every input model, the plain merge and (with --repair) the repaired one.
      let evaluation: { label: string; loss: number; accuracy: number }[] | null = null;
      let warning: string | null = null;
      if (data) {
        const evalData = { inputs: data.inputs, labels: data.labels, count: data.count };
        try {
          const runner = await resolveRunner(models[0], spec, engine);
          try {
            evaluation = [];
            const passes = models.length + (flags.repair ? 2 : 1);
            const evaluate = async (params: typeof plain) => {
              const pass = evaluation?.length ?? 0;
              return runner.evaluate(params, evalData, (n, total) => ctx.progress.update('evaluating (passes)', pass + n / total, passes));
            };
            for (const m of models) evaluation.push({ label: m.path, ...(await evaluate(m.params)) });
            evaluation.push({ label: flags.repair ? 'merged (before repair)' : 'merged', ...(await evaluate(plain)) });
            if (flags.repair) evaluation.push({ label: 'merged + repair', ...(await evaluate(merged)) });
            ctx.progress.done();
            // The model as written against its parents: a chance-level merge must not pass in silence.
            warning = mergeWarning({
              parents: evaluation.slice(0, models.length),
              merged: evaluation[evaluation.length - 1],
              classes: data.numClasses,
              aligned: flags.align && !specPermutesNothing(spec),
              method: flags.method as 'weight' | 'cosine' | 'activation',
              repaired: flags.repair === true,
              normalisation: normalisationOf(Object.keys(models[0].params), models[0].onnx),
            });
            if (warning !== null) ctx.warn(`${flags.output}: ${warning}`);
          } finally {
            await runner.dispose?.();
          }
        } catch (e) {
          if (!(e instanceof InputError)) throw e;
          ctx.info(`not evaluated: ${e.message}`);
        }
      }

      const summary = `merged ${paths.length} models (${how}${paths.length === 2 ? `, alpha ${flags.alpha}` : ', uniform average'}${flags.repair ? `, repaired (${repairMode}, ${corrections.length} layers)` : ''}) -> ${written.join(', ')}`;
      if (flags.json) {
        const doc = jsonDocument('merge', {
          output: written,
          models: paths,
          aligned: flags.align,
          how,
          alpha: paths.length === 2 ? flags.alpha : null,
          repair: flags.repair ? { mode: repairMode, corrections, skipped } : null,
          data: data ? { name: data.name, count: data.count, preprocessing: data.preprocessing } : null,
          evaluation,
          warning,
        });
        ctx.out(JSON.stringify(doc, null, 2));
        return;
      }
      ctx.out(summary);
      if (flags.repair) {
        ctx.out('repair corrections:');
        for (const line of describeCorrections(corrections)) ctx.out(line);
        for (const s of skipped) ctx.out(`  skipped ${s.node}: ${s.reason}`);
      }
      if (evaluation && data) {
        ctx.out(`evaluation on ${data.name}, ${data.count} examples:`);
        const width = Math.max(...evaluation.map((e) => e.label.length));
        for (const e of evaluation) ctx.out(`  ${e.label.padEnd(width)}  loss ${e.loss.toFixed(4)}  accuracy ${(100 * e.accuracy).toFixed(2)}%`);
      }
    });
}
