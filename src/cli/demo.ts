/** `rebasin demo`: the main job on a built-in default (see src/demo.ts). */
import { Command } from 'commander';
import { runDemo } from '../demo.js';
import { loadFashionMnist } from '../data/load.js';
import { formatReport } from '../report/text.js';
import { reportToJson } from '../pipeline/alignment-report.js';
import { InputError } from '../errors.js';
import { jsonDocument } from '../report/json.js';
import { makeContext, parseIntOption, parseList, EXIT_CHECK_FAILED, type GlobalOptions } from './common.js';

interface DemoFlags {
  seed: number;
  data: string;
  width?: number;
  hidden?: number[];
  epochs?: number;
  points: number;
  limit?: number;
  json?: boolean;
  check?: boolean;
}

export function demoCommand(globals: () => GlobalOptions): Command {
  return new Command('demo')
    .description('train two small MLPs from different seeds, then align them three ways and report (no data or models needed)')
    .option('--seed <n>', 'seed for data, initialisation, batch order and matching', parseIntOption('--seed', 0), 0)
    .option('--data <name>', "'synthetic' (built-in 3-cluster 2-D task) or 'fashion-mnist' (Debian's dataset-fashion-mnist)", 'synthetic')
    .option('--width <n>', 'hidden width for --data fashion-mnist, 3 hidden layers (default 512)', parseIntOption('--width', 1, 16384))
    .option('--hidden <widths>', 'hidden widths, comma-separated (default 12,12; with fashion-mnist 3 × --width)', parseList('--hidden'))
    .option('--epochs <n>', 'training epochs (default 20 synthetic, 2 fashion-mnist)', parseIntOption('--epochs', 1, 10000))
    .option('--points <k>', 'steps K of the interpolation: α = 0, 1/K, ..., 1 (K+1 points)', parseIntOption('--points', 1, 10000), 24)
    .option('--limit <n>', 'use only the first n training examples, fashion-mnist (default: all 60 000)', parseIntOption('--limit', 1))
    .option('--json', 'print every number as JSON instead of the text reports (format rebasin-demo, schema/demo.json)')
    .option('--check', 'exit with code 1 when any check fails')
    .action(async (flags: DemoFlags) => {
      const g = globals();
      const ctx = makeContext(g);
      let data;
      let hidden = flags.hidden;
      if (flags.data === 'fashion-mnist') {
        data = { train: loadFashionMnist('train', { limit: flags.limit }), test: loadFashionMnist('test') };
        hidden ??= Array(3).fill(flags.width ?? 512);
      } else if (flags.data !== 'synthetic') {
        throw new InputError(`--data must be 'synthetic' or 'fashion-mnist', got '${flags.data}'`);
      }
      const epochs = flags.epochs ?? (flags.data === 'fashion-mnist' ? 2 : 20);
      const engine = await ctx.engine();
      const result = await runDemo({
        seed: flags.seed,
        engine,
        data,
        hidden,
        epochs,
        points: flags.points,
        onProgress: (what, done, total) => ctx.progress.update(what, done, total),
      });
      ctx.progress.done();
      if (flags.json) {
        ctx.out(JSON.stringify(jsonDocument('demo', { dataset: result.dataset, widths: result.widths, seed: flags.seed, epochs, reports: result.reports.map(reportToJson) }), null, 2));
      } else {
        ctx.out(`rebasin demo: two MLPs ${result.widths.join(' -> ')} (ReLU) trained from seeds ${2 * flags.seed + 1} and ${2 * flags.seed + 2} on ${result.dataset.train} for ${epochs} epochs, measured on ${result.dataset.test}; final training loss ${result.a.trainLoss.toFixed(4)} / ${result.b.trainLoss.toFixed(4)}\n`);
        for (const r of result.reports) ctx.out(`${formatReport(r, { color: ctx.color })}\n`);
      }
      if (flags.check && result.reports.some((r) => r.checks.some((c) => c.status === 'FAIL'))) {
        process.exitCode = EXIT_CHECK_FAILED;
      }
    });
}
