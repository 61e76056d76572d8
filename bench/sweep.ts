/**
 * Benchmark: the full loss-barrier sweep of a trained 784-512-512-512-10 MLP pair on the 10 000
 * Fashion-MNIST test images, 25 points (α = 0, 1/24, ..., 1), ours versus a numpy reference
 * (bench/reference/sweep.py) on the same weights, each in a fresh process.
 *
 * The pair: two nets trained from different seeds with rebasin's own trainer (src/train/mlp-trainer.ts)
 * on the Fashion-MNIST training set, cached under bench/out/ (git-ignored) so later runs reuse them.
 * B is aligned to A by weight matching first (not timed here: bench/wm.ts times matching); the sweep is
 * then run on A and aligned B. Both sides do the same work: at each α, θ = (1 − α)·A + α·B (float64
 * arithmetic rounded to float32 on both sides, endpoints exact), a forward pass over all 10 000 images,
 * mean softmax cross-entropy and accuracy. The reference reads the IDX files itself (its own decoding
 * and /255 scaling), so agreeing losses also check our data loading.
 *
 * Measured: wall and CPU time of the sweep only (weights and data already in memory on both sides);
 * peak RSS while sweeping (each process resets its high-water mark once weights and data are loaded, as in
 * bench/resnet.ts); the barrier (paper definition) and each point's loss on both sides.
 *
 *   node dist/bench/sweep.js [--quick] [--threads N]
 *   node dist/bench/sweep.js --child JSON DIR        one run of ours (prints JSON)
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';
import type { Params } from '../src/tensor.js';
import { loadFashionMnist, findFashionMnist } from '../src/data/load.js';
import { trainMlp } from '../src/train/mlp-trainer.js';
import { mlpArch } from '../src/model/mlp.js';
import { mlpRunner } from '../src/model/mlp-runner.js';
import { inferMlpSpec } from '../src/permutation-spec/auto.js';
import { weightMatching } from '../src/match/weight-matching.js';
import { applyPermutation } from '../src/permute.js';
import { sweep, barrierOf, type CurvePoint } from '../src/measure/barrier.js';
import { createOrtMatmul } from '../src/engine/ort-matmul.js';
import { paramsToSafetensors, serializeSafetensors, toParams } from '../src/io/safetensors.js';
import { readSafetensorsFile } from '../src/io/safetensors-fs.js';
import { referenceEnv, referenceMissing } from './wm.js';
import { fastest, procStatus, resetPeak, spawnJson, type Outcome } from './child.js';

export interface SweepCase {
  readonly hidden: readonly number[];
  /** Intervals of the α grid: points = K + 1. */
  readonly intervals: number;
  /** Test images evaluated at every point. */
  readonly images: number;
  readonly epochs: number;
  readonly reps: number;
  readonly threads: number;
  readonly timeoutS: number;
}

export interface SweepRun {
  readonly seconds: number;
  readonly cpuSeconds: number;
  readonly curve: CurvePoint[];
  readonly rssAtStartMiB: number;
  readonly maxRssMiB: number;
}

export interface SweepOursRun extends SweepRun {
  /** Test loss / accuracy of A and B, and the barrier before alignment (not timed). */
  readonly naiveBarrier: number;
  readonly matchPasses: number;
  readonly parameters: number;
  readonly trainSeconds: number | null;
}

export interface SweepRow {
  readonly c: SweepCase;
  readonly ours: Outcome<SweepOursRun>;
  readonly ref: Outcome<SweepRun>;
}

const SELF = fileURLToPath(import.meta.url);
const REFERENCE = fileURLToPath(new URL('../../bench/reference/sweep.py', import.meta.url));
const OUT = fileURLToPath(new URL('../../bench/out/', import.meta.url));

export function sweepCase(quick: boolean, threads = 2): SweepCase {
  return { hidden: [512, 512, 512], intervals: 24, images: 10000, epochs: 2, reps: quick ? 1 : 3, threads, timeoutS: 600 };
}

// ------------------------------------------------------------------------------------------ child: ours

function cachePath(c: SweepCase, seed: number): string {
  return join(OUT, `sweep-mlp-${c.hidden.join('x')}-e${c.epochs}-seed${seed}.safetensors`);
}

/** A net trained on the Fashion-MNIST training set, from the cache when there (seconds spent: null then). */
async function trainedNet(c: SweepCase, seed: number, engine: Awaited<ReturnType<typeof createOrtMatmul>>): Promise<{ params: Params; seconds: number | null }> {
  const path = cachePath(c, seed);
  if (existsSync(path)) return { params: toParams(readSafetensorsFile(path)).params, seconds: null };
  const train = loadFashionMnist('train');
  const t0 = performance.now();
  const { params } = await trainMlp(
    { inputs: train.inputs, labels: train.labels, count: train.count, features: 784, numClasses: 10 },
    { hidden: c.hidden, epochs: c.epochs, seed, batchSize: 128, learningRate: 1e-3, engine },
  );
  const seconds = (performance.now() - t0) / 1000;
  mkdirSync(OUT, { recursive: true });
  writeFileSync(path, serializeSafetensors(paramsToSafetensors(params)));
  return { params, seconds };
}

async function runOursChild(c: SweepCase, dir: string, writeFiles: boolean): Promise<void> {
  const engine = await createOrtMatmul({ threads: c.threads });
  const na = await trainedNet(c, 1, engine);
  const nb = await trainedNet(c, 2, engine);
  const a = na.params;
  const spec = inferMlpSpec(a);
  const matched = await weightMatching({ spec, paramsA: a, paramsB: nb.params, seed: 0, engine });
  const b = applyPermutation(spec, matched.perms, nb.params);
  const test = loadFashionMnist('test', { limit: c.images });
  const data = { inputs: test.inputs, labels: test.labels, count: test.count };
  const names = Object.keys(a).filter((k) => k.endsWith('.weight')).map((k) => k.slice(0, -'.weight'.length));
  const runner = mlpRunner(mlpArch(names), engine);
  const evaluate = (p: Params) => runner.evaluate(p, data);

  // Warm-up of the session and the JIT on one tiny evaluation, not billed to the sweep.
  await runner.evaluate(a, { inputs: data.inputs.subarray(0, 784 * 10), labels: data.labels.subarray(0, 10), count: 10 });
  (globalThis as { gc?: () => void }).gc?.();
  resetPeak();
  const rssAtStartMiB = procStatus('VmRSS');
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const curve = await sweep(a, b, c.intervals, evaluate);
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(c0);
  const maxRssMiB = procStatus('VmHWM');

  // The barrier before alignment, for context only (not timed, not compared).
  const naive = barrierOf(await sweep(a, nb.params, 4, evaluate)).loss;
  if (writeFiles) {
    writeFileSync(join(dir, 'a.safetensors'), serializeSafetensors(paramsToSafetensors(a)));
    writeFileSync(join(dir, 'b.safetensors'), serializeSafetensors(paramsToSafetensors(b)));
  }
  await engine.dispose?.();
  let parameters = 0;
  for (const t of Object.values(a)) parameters += t.data.length;
  const trainSeconds = na.seconds === null && nb.seconds === null ? null : (na.seconds ?? 0) + (nb.seconds ?? 0);
  const out: SweepOursRun = {
    seconds,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    curve,
    rssAtStartMiB,
    maxRssMiB,
    naiveBarrier: naive,
    matchPasses: matched.iterations,
    parameters,
    trainSeconds,
  };
  process.stdout.write(JSON.stringify(out) + '\n');
}

// ------------------------------------------------------------------------------------------ the parent

/** Whether the Fashion-MNIST files are installed; a reason when not. */
function dataMissing(): string | null {
  try {
    findFashionMnist('train');
    findFashionMnist('test');
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

export function runSweepBench(c: SweepCase, log: (line: string) => void = () => {}): SweepRow {
  const noData = dataMissing();
  if (noData !== null) return { c, ours: { ok: false, reason: noData }, ref: { ok: false, reason: noData } };
  const missing = referenceMissing();
  const dir = mkdtempSync(join(tmpdir(), 'rebasin-sweep-bench-'));
  try {
    const ours: Outcome<SweepOursRun>[] = [];
    const ref: Outcome<SweepRun>[] = [];
    const test = findFashionMnist('test');
    for (let rep = 0; rep < c.reps; rep++) {
      const cached = existsSync(cachePath(c, 1)) && existsSync(cachePath(c, 2));
      log(`sweep: run ${rep + 1}/${c.reps}: ours${cached ? '' : ' (training the pair first: about a minute per net, cached in bench/out/)'}`);
      const args = ['--expose-gc', SELF, '--child', JSON.stringify(c), dir];
      if (rep === 0) args.push('--write-files');
      ours.push(spawnJson<SweepOursRun>(process.execPath, args, c.timeoutS + (cached ? 0 : 1200)));
      if (!ours[0].ok || missing !== null) break;
      log(`sweep: run ${rep + 1}/${c.reps}: reference`);
      ref.push(
        spawnJson<SweepRun>(
          'python3',
          [REFERENCE, join(dir, 'a.safetensors'), join(dir, 'b.safetensors'), test.images, test.labels, String(c.images), String(c.intervals)],
          c.timeoutS,
          referenceEnv(c.threads),
        ),
      );
    }
    return { c, ours: fastest(ours), ref: missing !== null ? { ok: false, reason: missing } : fastest(ref) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ----------------------------------------------------------------------------------------- formatting

export function formatSweepBench(row: SweepRow): string {
  const { c, ours, ref } = row;
  const o = ours.ok ? ours.value : null;
  const r = ref.ok ? ref.value : null;
  const why = (x: Outcome<unknown>): string => (x.ok ? '' : ` (${x.reason})`);
  const mib = o ? (o.parameters * 4) / 2 ** 20 : NaN;
  const bo = o ? barrierOf(o.curve) : null;
  const br = r ? barrierOf(r.curve) : null;
  let maxLossDiff = NaN;
  let maxAccDiff = NaN;
  if (o && r) {
    maxLossDiff = Math.max(...o.curve.map((p, i) => Math.abs(p.loss - r.curve[i].loss)));
    maxAccDiff = Math.max(...o.curve.map((p, i) => Math.abs(p.accuracy - r.curve[i].accuracy)));
  }
  const mid = (x: SweepRun | null): string => {
    const p = x?.curve.find((q) => q.alpha === 0.5);
    return p ? p.loss.toFixed(6) : '—';
  };
  const name = `784-${c.hidden.join('-')}-10, ${c.intervals + 1} points × ${c.images} images`;
  const lines = [
    '| case | ours (s) | ref (s) | ours/ref | CPU s ours / ref | barrier (loss) ours / ref | loss at α = ½ ours / ref | max \\|Δ loss\\| over points | max \\|Δ acc\\| | peak RSS ours / ref (MiB) | RSS at start ours / ref | one model (MiB) |',
    '|---|---:|---:|---:|---|---|---|---:|---:|---|---|---:|',
    `| ${name} | ${o ? o.seconds.toFixed(2) : '—' + why(ours)} | ${r ? r.seconds.toFixed(2) : '—' + why(ref)} | ${o && r ? (o.seconds / r.seconds).toFixed(2) + '×' : '—'} | ${o ? o.cpuSeconds.toFixed(1) : '—'} / ${r ? r.cpuSeconds.toFixed(1) : '—'} | ${bo ? bo.loss.toPrecision(4) : '—'} / ${br ? br.loss.toPrecision(4) : '—'} | ${mid(o)} / ${mid(r)} | ${o && r ? maxLossDiff.toExponential(1) : '—'} | ${o && r ? maxAccDiff.toExponential(1) : '—'} | ${o ? o.maxRssMiB.toFixed(0) : '—'} / ${r ? r.maxRssMiB.toFixed(0) : '—'} | ${o ? o.rssAtStartMiB.toFixed(0) : '—'} / ${r ? r.rssAtStartMiB.toFixed(0) : '—'} | ${mib.toFixed(2)} |`,
  ];
  if (o) {
    const [first, last] = [o.curve[0], o.curve[o.curve.length - 1]];
    lines.push(
      '',
      `Pair: trained ${c.epochs} epochs each (seeds 1, 2; Adam 1e-3, batch 128) on the 60 000 training images${o.trainSeconds !== null ? `, ${o.trainSeconds.toFixed(0)} s to train in this run` : ', from the cache in bench/out/'}; ` +
        `test loss / accuracy A ${first.loss.toFixed(4)} / ${(100 * first.accuracy).toFixed(2)}%, B ${last.loss.toFixed(4)} / ${(100 * last.accuracy).toFixed(2)}%; ` +
        `barrier before alignment ${o.naiveBarrier.toFixed(4)} (5 points), after weight matching (${o.matchPasses} passes) ${bo?.loss.toPrecision(3)} at α = ${bo?.argmaxAlpha.toFixed(3)} (0 when every interpolated point is at or below the straight line between the endpoints).`,
    );
  }
  return lines.join('\n');
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2);
  if (args[0] === '--child') {
    await runOursChild(JSON.parse(args[1]) as SweepCase, args[2], args.includes('--write-files'));
  } else {
    const t = args.indexOf('--threads');
    const row = runSweepBench(sweepCase(args.includes('--quick'), t >= 0 ? Number(args[t + 1]) : 2), (l) => console.error(l));
    console.log(formatSweepBench(row));
  }
}
