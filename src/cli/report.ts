/**
 * `rebasin report A B --data D`: the full alignment report (churn, barrier before/after, checks, verdict) as
 * text, JSON and a self-contained HTML page. `rebasin barrier A B --data D [--align]`: the interpolation
 * curve(s) and barrier alone. Both are measurements: no input is written to.
 */
import { Command } from 'commander';
import { alignmentReport, narrowest, reportToJson, type AlignMethod, type AlignmentReport, type RepairedPath } from '../pipeline/alignment-report.js';
import { barrierOf, reduction, sweep, type CurvePoint } from '../measure/barrier.js';
import { normalisationOf, reportHint } from '../measure/advice.js';
import { jsonDocument } from '../report/json.js';
import { formatReport } from '../report/text.js';
import { renderHtmlReport } from '../report/html.js';
import { sliceDataset } from '../data/dataset.js';
import { writeFileAtomic } from '../io/atomic.js';
import { formatNumber, plural } from '../measure/checks.js';
import { readModels } from './model-file.js';
import { dataFiles, resolveData, resolveRunner, resolveSpec } from './resolve.js';
import { assertOutputs, type OutputRequest } from './outputs.js';
import { withMatchingOptions } from './matching.js';
import { makeContext, parseIntOption, parseFloatOption, EXIT_CHECK_FAILED, type GlobalOptions } from './common.js';
import { applyPermutation } from '../permute.js';
import { repairedSweep, type RepairedSweepOptions } from '../merge/repair-sweep.js';
import { parseRepairMode } from './merge.js';
import { repairSetup } from '../merge/repair-setup.js';

interface MeasureFlags {
  scale?: number;
  maxIter: number;
  data?: string;
  method: string;
  spec: string;
  seed: number;
  points: number;
  limit?: number;
  probe: number;
  json?: boolean | string;
  html?: string;
  check?: boolean;
  align?: boolean;
  repair?: boolean;
  repairMode?: string;
  strict?: boolean;
  force?: boolean;
}

function measureOptions(cmd: Command): Command {
  return withMatchingOptions(cmd)
    .argument('<A>', 'model A (.onnx, or an MLP as .safetensors)')
    .argument('<B>', 'model B (same architecture)')
    .requiredOption('--data <d>', 'evaluation data: fashion-mnist[:train|:test], synthetic[:N], an IDX folder, a .npz file, or x.npy,y.npy')
    .option('--points <k>', 'steps K of the interpolation: α = 0, 1/K, ..., 1 (K+1 points; JSON "points" counts them)', parseIntOption('--points', 1, 10000), 24)
    .option('--limit <n>', 'evaluate on the first n examples only (default: all of them)', parseIntOption('--limit', 1))
    .option('--repair', 'also measure the path with REPAIR (each interpolated net renormalised on the first --probe examples): the aligned path, or for barrier without --align the naive one')
    .option('--repair-mode <m>', 'sequential (layer by layer, re-measuring) | oneshot', 'sequential')
    .option('--scale <x>', 'multiply raw input values by x (default: 1/255 for 8-bit images, else 1)', parseFloatOption('--scale', -1e12, 1e12))
    .option('--probe <n>', 'probe examples for activation matching and the invariance check', parseIntOption('--probe', 1), 1000);
}

async function measure(paths: [string, string], flags: MeasureFlags, g: GlobalOptions, align: boolean, outputs: (OutputRequest | undefined)[] = []) {
  const ctx = makeContext(g);
  const models = readModels(paths);
  // Both endpoints are evaluated on A's graph and interpolated: B's graph must be A's, Constant values included.
  const spec = resolveSpec(flags.spec, models, { strict: flags.strict, averages: true });
  // Before any work: no output may land on a file this command reads.
  const inputs = [...models.flatMap((m) => m.files), ...spec.files, ...dataFiles(flags.data)];
  assertOutputs(outputs, inputs, { force: flags.force });
  const data = resolveData(flags.data, { limit: flags.limit, seed: flags.seed, scale: flags.scale, model: models[0] });
  const engine = await ctx.engine();
  const evalData = { inputs: data.inputs, labels: data.labels, count: data.count };
  const probeSet = sliceDataset(data, 0, Math.min(flags.probe, data.count));
  const probe = { inputs: probeSet.inputs, count: probeSet.count };
  const repairMode = flags.repair ? parseRepairMode(flags.repairMode ?? 'sequential') : null;
  // REPAIR along the path that is measured last (the aligned one with --align): each interior α renormalised.
  const repaired = async (b: typeof models[0]['params']): Promise<CurvePoint[] | null> => {
    if (repairMode === null) return null;
    const setup = await repairSetup(models[0], probe, engine);
    try {
      const sweepOptions: RepairedSweepOptions = {
        a: models[0].params,
        b,
        points: flags.points,
        evaluate: (p) => runner.evaluate(p, evalData),
        stats: setup.stats,
        layers: setup.layers,
        mode: repairMode,
        onPoint: (i, n) => ctx.progress.update('interpolating with repair', i, n),
      };
      // The setup's own repair: REPAIR of its layers and, for graphs that keep BatchNorm, the BN resets.
      const curve = await repairedSweep({ ...sweepOptions, repair: setup.repair });
      ctx.progress.done();
      return curve;
    } finally {
      await setup.dispose();
    }
  };
  const runner = await resolveRunner(models[0], spec, engine);
  const normalisation = normalisationOf(Object.keys(models[0].params), models[0].onnx);
  try {
    if (!align) {
      const curve = await sweep(models[0].params, models[1].params, flags.points, (p, _alpha, onBatch) => runner.evaluate(p, evalData, onBatch), (i, n) => ctx.progress.update('interpolating', i, n));
      ctx.progress.done();
      return { ctx, data, spec, curve, report: null, repairedCurve: await repaired(models[1].params), repairMode, inputs };
    }
    const report = await alignmentReport({
      a: models[0].params,
      b: models[1].params,
      spec: spec.spec,
      runner,
      data: evalData,
      probe,
      method: flags.method as AlignMethod,
      points: flags.points,
      seed: flags.seed,
      maxIter: flags.maxIter,
      engine,
      title: `${paths[1]} aligned to ${paths[0]} (${flags.method} matching)`,
      normalisation,
      onStage: (stage, done, total) => ctx.progress.update(stage, done, total),
    });
    ctx.progress.done();
    const repairedCurve = await repaired(applyPermutation(spec.spec, report.perms, models[1].params));
    return { ctx, data, spec, curve: null, report: withRepair(report, repairedCurve, repairMode, normalisation, spec.spec.heads !== undefined), repairedCurve, repairMode, inputs };
  } finally {
    await runner.dispose?.();
  }
}

/** The report with its aligned path's REPAIR measurement attached, and the hint redone with it. */
function withRepair(report: AlignmentReport, curve: CurvePoint[] | null, mode: string | null, normalisation: ReturnType<typeof normalisationOf>, attention: boolean): AlignmentReport {
  const repaired = curve === null || mode === null ? null : repairedPath('aligned', mode, report.aligned.curve, curve);
  const hint = reportHint({
    method: report.method,
    verdict: report.verdict,
    normalisation,
    narrowestWidth: narrowest(report.churn),
    repaired: repaired === null ? null : { before: report.aligned.barrier.loss, after: repaired.barrier.loss },
    attention,
  });
  return { ...report, repaired, hint };
}

function repairedPath(of: RepairedPath['of'], mode: string, base: readonly CurvePoint[], curve: CurvePoint[]): RepairedPath {
  const barrier = barrierOf(curve);
  return { of, mode, curve, barrier, reduction: reduction(barrierOf(base).loss, barrier.loss), midpoint: midpoints(base, curve) };
}

function curveTable(title: string, curve: readonly CurvePoint[]): string {
  const lines = [title, '  alpha    loss      accuracy'];
  for (const p of curve) lines.push(`  ${p.alpha.toFixed(3)}  ${p.loss.toFixed(5).padStart(9)}  ${(100 * p.accuracy).toFixed(2).padStart(7)}%`);
  const b = barrierOf(curve);
  lines.push(`  loss barrier ${formatNumber(b.loss)} at alpha ${b.argmaxAlpha.toFixed(3)}; endpoint-max barrier ${formatNumber(b.lossOverEndpoints)}; accuracy barrier ${(100 * b.accuracy).toFixed(2)} pts`);
  return lines.join('\n');
}

export function barrierCommand(globals: () => GlobalOptions): Command {
  return measureOptions(new Command('barrier').description('measure the loss and accuracy along the straight line between two models, before (and with --align, after) alignment'))
    .option('--align', 'also align B to A and measure again')
    .option('--json', 'print the curves and barriers as JSON (format rebasin-barrier, schema/barrier.json)')
    .action(async (a: string, b: string, flags: MeasureFlags) => {
      const g = globals();
      const { ctx, data, curve, report, repairedCurve, repairMode } = await measure([a, b], flags, g, flags.align === true);
      const naive = report ? report.naive.curve : (curve as CurvePoint[]);
      const base = report ? report.aligned.curve : naive;
      const repaired = repairedCurve && repairMode ? repairedPath(report ? 'aligned' : 'naive', repairMode, base, repairedCurve) : null;
      if (flags.json) {
        const doc = jsonDocument('barrier', {
          data: { name: data.name, count: data.count, preprocessing: data.preprocessing },
          points: naive.length,
          naive: { curve: naive, barrier: barrierOf(naive) },
          aligned: report ? { method: report.method, curve: report.aligned.curve, barrier: report.aligned.barrier, reduction: report.reduction } : null,
          repaired,
        });
        ctx.out(JSON.stringify(doc, null, 2));
        return;
      }
      ctx.out(`data: ${data.name}, ${plural(data.count, 'example')} (${data.preprocessing})`);
      ctx.out(curveTable('before alignment:', naive));
      if (report) {
        ctx.out(curveTable(`after alignment (${flags.method} matching):`, report.aligned.curve));
        ctx.out(`reduction of the loss barrier: ${percent(report.reduction)}`);
      }
      if (repaired) {
        ctx.out(sideBySide(`${repaired.of} path without and with REPAIR (${repaired.mode}):`, base, repaired.curve));
        ctx.out(`reduction of the ${repaired.of} loss barrier by repair: ${percent(repaired.reduction)}`);
      }
    });
}

/** A fraction (JSON's unit) as text's percent. */
function percent(fraction: number | null): string {
  return fraction === null ? 'n/a' : `${(100 * fraction).toFixed(1)}%`;
}

/** The curve points nearest α = 0.5 of both curves (the merge the user would write). */
function midpoints(base: readonly CurvePoint[], repaired: readonly CurvePoint[]) {
  const i = base.reduce((best, p, k) => (Math.abs(p.alpha - 0.5) < Math.abs(base[best].alpha - 0.5) ? k : best), 0);
  return { alpha: base[i].alpha, without: { loss: base[i].loss, accuracy: base[i].accuracy }, with: { loss: repaired[i].loss, accuracy: repaired[i].accuracy } };
}

function sideBySide(title: string, base: readonly CurvePoint[], repaired: readonly CurvePoint[]): string {
  const lines = [title, '  alpha    loss     +repair     accuracy  +repair'];
  base.forEach((p, i) => {
    const r = repaired[i];
    lines.push(
      `  ${p.alpha.toFixed(3)}  ${p.loss.toFixed(5).padStart(9)}  ${r.loss.toFixed(5).padStart(9)}   ${(100 * p.accuracy).toFixed(2).padStart(7)}%  ${(100 * r.accuracy).toFixed(2).padStart(7)}%`,
    );
  });
  const [b0, b1] = [barrierOf(base), barrierOf(repaired)];
  lines.push(`  loss barrier ${formatNumber(b0.loss)} -> ${formatNumber(b1.loss)} with repair; accuracy barrier ${(100 * b0.accuracy).toFixed(2)} -> ${(100 * b1.accuracy).toFixed(2)} pts`);
  return lines.join('\n');
}

export function reportCommand(globals: () => GlobalOptions): Command {
  return measureOptions(new Command('report').description('align B to A and report: churn, barrier before vs after, the three checks (align-to-self runs on A), a verdict and, when the result is poor, a hint'))
    .option('--html <file>', 'also write a self-contained HTML page with the plots')
    .option('--json [file]', 'write every number as JSON (format rebasin-report, schema/report.json) to the file (--json=FILE, or --json FILE when FILE is not a model or data file), or with no file or - to stdout instead of the text report')
    .option('--force', 'write --json/--html even over a file that looks like a model or data file (never over an input)')
    .option('--check', 'exit with code 1 when any check fails')
    .action(async (a: string, b: string, flags: MeasureFlags) => {
      const g = globals();
      const jsonToStdout = flags.json === true || flags.json === '-';
      const jsonFile = typeof flags.json === 'string' && !jsonToStdout ? flags.json : undefined;
      const outputs: (OutputRequest | undefined)[] = [
        flags.html === undefined ? undefined : { path: flags.html, option: '--html', kind: 'text' },
        jsonFile === undefined ? undefined : { path: jsonFile, option: '--json', kind: 'text' },
      ];
      const { ctx, data, report, inputs } = await measure([a, b], flags, g, true, outputs);
      if (!report) return;
      const json = jsonDocument('report', { data: { name: data.name, count: data.count, preprocessing: data.preprocessing }, report: reportToJson(report) });
      if (jsonFile) writeFileAtomic(jsonFile, new TextEncoder().encode(JSON.stringify(json, null, 2)), { inputs });
      if (flags.html) {
        const html = renderHtmlReport([report], { title: `rebasin report: ${b} aligned to ${a}`, subtitle: `${data.name}, ${data.count} examples (${data.preprocessing})` });
        writeFileAtomic(flags.html, new TextEncoder().encode(html), { inputs });
        ctx.info(`wrote ${flags.html}`);
      }
      if (jsonToStdout) ctx.out(JSON.stringify(json, null, 2));
      else ctx.out(`data: ${data.name}, ${plural(data.count, 'example')} (${data.preprocessing})\n\n${formatReport(report, { color: ctx.color })}`);
      if (flags.check && report.checks.some((c) => c.status === 'FAIL')) process.exitCode = EXIT_CHECK_FAILED;
    });
}
