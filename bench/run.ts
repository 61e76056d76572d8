/**
 * `npm run bench`: the linear-assignment benchmark, weight matching of MLP pairs, weight matching of ResNet
 * pairs, and the MLP barrier sweep, each against its numpy/scipy reference on the same inputs and machine.
 * Prints one table per section with ratios.
 *
 *   npm run bench                     full run (LAP n = 256/1024/2048/4096; MLP matching up to width 2048;
 *                                     ResNet-20×4 and ResNet-50-shaped pairs; the 25-point sweep, 3 runs)
 *   npm run bench -- --quick          LAP n = 256/1024; MLP matching without width 2048; ResNet-20×4 only;
 *                                     one sweep run (< ~3 min once the sweep's pair is trained and cached)
 *   npm run bench -- --write          also replace the results section of BENCHMARKS.md with this run
 *   npm run bench -- --threads N      matmul threads on both sides of matching and the sweep (default 2)
 *   npm run bench -- --ref-timeout S  cap of each ResNet reference process (default 300 s)
 *   npm run bench -- --skip-lap | --skip-wm | --skip-resnet | --skip-sweep | --skip-stream
 *                                     (the streamed-matching memory run, bench/stream.ts, is full-run only)
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { availableParallelism, loadavg, cpus, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { runLapBench, formatLapBench, runLapInMatchingBench, formatLapInMatching } from './lap.js';
import { runWmBench, formatWmBench, wmCases, referenceBlas, referenceEnv } from './wm.js';
import { runResnetBench, formatResnetBench, resnetCases } from './resnet.js';
import { runSweepBench, formatSweepBench, sweepCase } from './sweep.js';
import { runStreamBench, formatStreamBench, streamCases } from './stream.js';

const BENCHMARKS_MD = fileURLToPath(new URL('../../BENCHMARKS.md', import.meta.url));
const START = '<!-- bench:results:start -->';
const END = '<!-- bench:results:end -->';

interface Machine {
  cpu: string;
  nproc: number;
  memGiB: number;
  node: string;
  ort: string;
  python: string;
}

function machine(): Machine {
  let cpu = cpus()[0]?.model ?? 'unknown';
  try {
    const m = /^model name\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) cpu = m[1].trim();
  } catch {
    /* not Linux: keep os.cpus() */
  }
  let ort = 'unknown';
  try {
    const pkg = fileURLToPath(new URL('../../node_modules/onnxruntime-node/package.json', import.meta.url));
    ort = (JSON.parse(readFileSync(pkg, 'utf8')) as { version: string }).version;
  } catch {
    /* leave unknown */
  }
  let python = 'python3 not available';
  try {
    python = execFileSync(
      'python3',
      ['-c', 'import sys, numpy, scipy; print("python %s, numpy %s, scipy %s" % (sys.version.split()[0], numpy.__version__, scipy.__version__))'],
      { encoding: 'utf8', env: referenceEnv(), stdio: ['ignore', 'pipe', 'ignore'] },
    ).trim();
  } catch {
    /* leave as is */
  }
  return { cpu, nproc: availableParallelism(), memGiB: totalmem() / 2 ** 30, node: process.version, ort, python };
}

function load(): string {
  return loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');
}

function resultsSection(body: string): string {
  return `${START}\n${body.trim()}\n${END}`;
}

/** Replaces the results section of BENCHMARKS.md (or appends one), leaving the hand-written text alone. */
function writeResults(body: string): void {
  const section = resultsSection(body);
  let text = existsSync(BENCHMARKS_MD) ? readFileSync(BENCHMARKS_MD, 'utf8') : '# Benchmarks\n';
  const a = text.indexOf(START);
  const b = text.indexOf(END);
  if (a >= 0 && b > a) text = text.slice(0, a) + section + text.slice(b + END.length);
  else text = `${text.trimEnd()}\n\n${section}\n`;
  writeFileSync(BENCHMARKS_MD, text);
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const quick = args.includes('--quick');
  const t = args.indexOf('--threads');
  const threads = t >= 0 ? Number(args[t + 1]) : 2;
  if (!Number.isInteger(threads) || threads < 1) throw new Error(`--threads needs a positive integer, got ${args[t + 1]}`);
  const rt = args.indexOf('--ref-timeout');
  const refTimeout = rt >= 0 ? Number(args[rt + 1]) : 300;
  if (!(refTimeout > 0)) throw new Error(`--ref-timeout needs a positive number of seconds, got ${args[rt + 1]}`);
  const write = args.includes('--write');
  const m = machine();
  const started = new Date();
  const loadBefore = load();
  const out: string[] = [];
  const say = (s = ''): void => {
    console.log(s);
    out.push(s);
  };
  const progress = (s: string): void => console.error(s);

  say(`Run ${started.toISOString()} — \`npm run bench${args.length > 0 ? ' -- ' + args.join(' ') : ''}\``);
  say();
  say(`- machine: ${m.cpu}, ${m.nproc} cores, ${m.memGiB.toFixed(0)} GiB; node ${m.node}, onnxruntime-node ${m.ort}; ${m.python}`);
  say(`- load average (1/5/15 min) at start: ${loadBefore}`);

  let lapTable: string | null = null;
  if (!args.includes('--skip-lap')) {
    const sizes = quick ? [256, 1024] : [256, 1024, 2048, 4096];
    progress(`lap: n = ${sizes.join(', ')} ...`);
    lapTable = formatLapBench(runLapBench(sizes));
    progress('lap: the assignments of weight-matching runs, warm-started ...');
    const inMatching = [await runLapInMatchingBench(512, 60), ...(quick ? [] : [await runLapInMatchingBench(1024, 40)])];
    lapTable += '\n\n' + formatLapInMatching(inMatching);
  }
  let wmTable: string | null = null;
  let blas: string | null = null;
  if (!args.includes('--skip-wm')) {
    const rows = runWmBench(wmCases(quick, threads), progress);
    wmTable = formatWmBench(rows);
    blas = referenceBlas(rows);
  }
  let resnetTable: string | null = null;
  if (!args.includes('--skip-resnet')) {
    resnetTable = formatResnetBench(runResnetBench(resnetCases(quick, threads, refTimeout), progress));
  }
  let sweepTable: string | null = null;
  if (!args.includes('--skip-sweep')) {
    sweepTable = formatSweepBench(runSweepBench(sweepCase(quick, threads), progress));
  }
  let streamTable: string | null = null;
  if (!quick && !args.includes('--skip-stream')) {
    streamTable = formatStreamBench(runStreamBench(streamCases(false, threads), progress));
  }
  const seconds = (Date.now() - started.getTime()) / 1000;
  say(`- load average at end: ${load()}; whole run ${seconds.toFixed(0)} s`);
  if (blas) say(`- weight matching, reference numpy BLAS (OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE unset for it): ${blas}; ours: ONNX Runtime, ${threads} intra-op thread(s)`);
  if (resnetTable !== null || sweepTable !== null) say(`- ResNet matching and the sweep: ${threads} thread(s) on both sides (ONNX Runtime intra-op / OPENBLAS_NUM_THREADS)`);
  if (lapTable !== null) {
    say();
    say('### Linear assignment: ours vs scipy.optimize.linear_sum_assignment (single thread both)');
    say();
    say('Random matrices cold; then the assignments of real weight-matching runs (each step\'s cost matrix');
    say('captured), ours warm-started from the same permutation\'s previous solve as matching does, summed over the');
    say('steps, against scipy on the same matrices (it has no warm start).');
    say();
    say('```');
    say(lapTable);
    say('```');
  }
  if (wmTable !== null) {
    say();
    say('### Weight matching: ours vs the numpy+scipy reference (bench/reference/weight_matching.py)');
    say();
    say('ref = reference with its own seeded order; ref= = reference following our visiting order (same steps).');
    say('Times: best of the runs, matching only. Ratios < 1× mean ours is faster.');
    say();
    say(wmTable);
  }
  if (resnetTable !== null) {
    say();
    say('### Weight matching of ResNet pairs: ours vs the reference (bench/resnet.ts)');
    say();
    say('ref= follows our visiting order. Times: matching only, best of the runs. Peak RSS: high-water mark reset once');
    say('both models are in memory, read after matching (so it is two models + runtime + what matching needs).');
    say();
    say(resnetTable);
  }
  if (sweepTable !== null) {
    say();
    say('### Loss-barrier sweep of a trained MLP pair: ours vs bench/reference/sweep.py (bench/sweep.ts)');
    say();
    say('Times: the 25-point sweep only (weights and test set in memory), best of the runs.');
    say();
    say(sweepTable);
  }
  if (streamTable !== null) {
    say();
    say('### Memory: matching a ResNet-50-shaped pair streamed from safetensors vs in memory (bench/stream.ts)');
    say();
    say('Each side in its own process, ONNX Runtime, same seed: streamed = ParamSources + weightMatchingFrom +');
    say('writePermutedSafetensors; in memory = what `align` does (read both files, weightMatching, write B).');
    say('Peak = whole-process VmHWM (runtime included, never reset); one model = its float32 size.');
    say();
    say(streamTable);
  }
  if (write) {
    writeResults(out.join('\n'));
    console.error(`wrote the results section of ${BENCHMARKS_MD}`);
  }
}

await main();
