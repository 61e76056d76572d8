/**
 * Benchmark: weight matching of ResNet pairs, ours versus the numpy+scipy reference
 * (bench/reference/weight_matching.py), same inputs, same machine, each run in its own fresh process.
 *
 * Cases (issue 6):
 *  - resnet20x4: CIFAR ResNet-20 at 4× width (stages of 64/128/256 channels, projection shortcuts,
 *    head `linear`), about 4.3 M parameters;
 *  - resnet50-shaped: every tensor of torchvision's ResNet-50 with its real name and shape (`conv1`, `bn1`,
 *    `layer1.0.conv1` ... `layer4.2.bn3`, `downsample.0/1`, `fc`; BatchNorm running stats and the scalar
 *    `num_batches_tracked` included), filled with random numbers: about 25.6 M parameters. Nothing here
 *    depends on the values being trained, only the sizes of the products and assignments do.
 * Each comes as a `random` pair (A and B drawn independently: the most passes, the worst case) and a
 * `trained-like` pair (B = a planted permutation of A plus noise of 0.5× each tensor's RMS).
 *
 * What is measured, on both sides:
 *  - time of matching only (ours: the `weightMatching` call with ONNX Runtime, `threads` intra-op threads;
 *    the reference: its `weight_matching` function with OPENBLAS_NUM_THREADS = threads), wall and CPU;
 *  - the reference follows the visiting order ours recorded (`ref=`), so both do the same steps and should
 *    reach the same permutations; the objectives are compared;
 *  - peak RSS while matching: each process resets its high-water mark (`echo 5 > /proc/self/clear_refs`)
 *    once both models are in memory, then reads VmHWM after matching. So the peak is "two models + what
 *    matching needs + the runtime", and input generation (ours) / file reading (the reference) are not in
 *    it. RSS at the reset is reported too, and the size of one model, so "peak < 3× one model" can be read.
 *
 *   node dist/bench/resnet.js [--quick] [--threads N] [--ref-timeout S] [--only PREFIX]   e.g. --only resnet50-shaped
 *   node dist/bench/resnet.js --child CASE_JSON DIR [--write-problem]     one run of ours (prints JSON)
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';
import type { Tensor } from '../src/tensor.js';
import { resnetSpec } from '../src/permutation-spec/resnet.js';
import { inversePermutation } from '../src/permute.js';
import { createRng } from '../src/random.js';
import { weightMatching } from '../src/match/weight-matching.js';
import { createOrtMatmul } from '../src/engine/ort-matmul.js';
import { plantedPair, referenceEnv, referenceMissing, writeProblem } from './wm.js';
import { fastest, procStatus, recovered, resetPeak, spawnJson, type Outcome } from './child.js';

export type ResnetArch = 'resnet20x4' | 'resnet50-shaped';

export interface ResnetCase {
  readonly arch: ResnetArch;
  readonly input: 'random' | 'trained-like';
  readonly seed: number;
  readonly noise?: number;
  /** Cap of each of our processes, seconds. */
  readonly timeoutS: number;
  /** Cap of each reference process, seconds. */
  readonly refTimeoutS: number;
  readonly reps: number;
  readonly threads: number;
}

export interface ResnetOurs {
  readonly seconds: number;
  readonly cpuSeconds: number;
  readonly iterations: number;
  readonly converged: boolean;
  readonly objectiveBefore: number;
  readonly objectiveAfter: number;
  readonly perms: Record<string, number[]>;
  /** VmRSS when matching started (both models loaded), MiB. */
  readonly rssAtStartMiB: number;
  /** VmHWM since that point, MiB. */
  readonly maxRssMiB: number;
  readonly plantedRecovered: number | null;
  readonly parameters: number;
  readonly tensors: number;
  readonly permutations: number;
  /** Seconds per phase of each pass, summed: see `phases` below. */
  readonly passSeconds: number[];
}

export interface ResnetRef {
  readonly seconds: number;
  readonly cpuSeconds: number;
  readonly iterations: number;
  readonly objectiveBefore: number;
  readonly objectiveAfter: number;
  readonly perms: Record<string, number[]>;
  readonly rssAtStartMiB: number;
  readonly maxRssMiB: number;
}

export interface ResnetRow {
  readonly c: ResnetCase;
  readonly ours: Outcome<ResnetOurs>;
  readonly ref: Outcome<ResnetRef>;
}

const REFERENCE = fileURLToPath(new URL('../../bench/reference/weight_matching.py', import.meta.url));
const SELF = fileURLToPath(import.meta.url);

export function resnetCases(quick: boolean, threads = 2, refTimeoutS = 300): ResnetCase[] {
  const base = { threads, refTimeoutS };
  const cases: ResnetCase[] = [
    { ...base, arch: 'resnet20x4', input: 'trained-like', seed: 11, noise: 0.5, timeoutS: 300, reps: quick ? 1 : 3 },
    { ...base, arch: 'resnet20x4', input: 'random', seed: 12, timeoutS: 300, reps: quick ? 1 : 2 },
  ];
  if (!quick) {
    cases.push({ ...base, arch: 'resnet50-shaped', input: 'trained-like', seed: 13, noise: 0.5, timeoutS: 600, reps: 1 });
    cases.push({ ...base, arch: 'resnet50-shaped', input: 'random', seed: 14, timeoutS: 600, reps: 1 });
  }
  return cases;
}

// ---------------------------------------------------------------------------------------------- shapes

type Kind = 'conv' | 'linear' | 'bias' | 'bn-weight' | 'bn-bias' | 'bn-mean' | 'bn-var' | 'counter';
type Shape = [name: string, shape: number[], kind: Kind];

function bn(prefix: string, c: number): Shape[] {
  return [
    [`${prefix}.weight`, [c], 'bn-weight'],
    [`${prefix}.bias`, [c], 'bn-bias'],
    [`${prefix}.running_mean`, [c], 'bn-mean'],
    [`${prefix}.running_var`, [c], 'bn-var'],
    [`${prefix}.num_batches_tracked`, [], 'counter'],
  ];
}

/** CIFAR ResNet-20 (3 stages × 3 BasicBlocks) with every width multiplied by `k`. */
export function resnet20Shapes(k = 4): Shape[] {
  const out: Shape[] = [['conv1.weight', [16 * k, 3, 3, 3], 'conv'], ...bn('bn1', 16 * k)];
  let inC = 16 * k;
  [16 * k, 32 * k, 64 * k].forEach((c, s) => {
    for (let b = 0; b < 3; b++) {
      const p = `layer${s + 1}.${b}`;
      out.push([`${p}.conv1.weight`, [c, inC, 3, 3], 'conv'], ...bn(`${p}.bn1`, c));
      out.push([`${p}.conv2.weight`, [c, c, 3, 3], 'conv'], ...bn(`${p}.bn2`, c));
      if (inC !== c) out.push([`${p}.shortcut.0.weight`, [c, inC, 1, 1], 'conv'], ...bn(`${p}.shortcut.1`, c));
      inC = c;
    }
  });
  out.push(['linear.weight', [10, inC], 'linear'], ['linear.bias', [10], 'bias']);
  return out;
}

/** torchvision ResNet-50: Bottleneck blocks [3, 4, 6, 3], expansion 4, 1000 classes. */
export function resnet50Shapes(): Shape[] {
  const out: Shape[] = [['conv1.weight', [64, 3, 7, 7], 'conv'], ...bn('bn1', 64)];
  let inC = 64;
  [3, 4, 6, 3].forEach((blocks, s) => {
    const planes = 64 << s;
    for (let b = 0; b < blocks; b++) {
      const p = `layer${s + 1}.${b}`;
      out.push([`${p}.conv1.weight`, [planes, inC, 1, 1], 'conv'], ...bn(`${p}.bn1`, planes));
      out.push([`${p}.conv2.weight`, [planes, planes, 3, 3], 'conv'], ...bn(`${p}.bn2`, planes));
      out.push([`${p}.conv3.weight`, [4 * planes, planes, 1, 1], 'conv'], ...bn(`${p}.bn3`, 4 * planes));
      if (b === 0) out.push([`${p}.downsample.0.weight`, [4 * planes, inC, 1, 1], 'conv'], ...bn(`${p}.downsample.1`, 4 * planes));
      inC = 4 * planes;
    }
  });
  out.push(['fc.weight', [1000, inC], 'linear'], ['fc.bias', [1000], 'bias']);
  return out;
}

export function shapesOf(arch: ResnetArch): Shape[] {
  return arch === 'resnet20x4' ? resnet20Shapes(4) : resnet50Shapes();
}

export function parameterCount(shapes: readonly Shape[]): number {
  let n = 0;
  for (const [, shape] of shapes) n += shape.reduce((x, y) => x * y, 1);
  return n;
}

/** Random values with each tensor's usual scale: He-normal convs/linears, BatchNorm stats near their init. */
export function randomResnet(shapes: readonly Shape[], seed: number): Record<string, Tensor> {
  const rng = createRng(seed);
  const params: Record<string, Tensor> = {};
  for (const [name, shape, kind] of shapes) {
    const size = shape.reduce((x, y) => x * y, 1);
    const data = new Float32Array(size);
    const fanIn = shape.slice(1).reduce((x, y) => x * y, 1);
    const std = Math.sqrt(2 / fanIn);
    for (let i = 0; i < size; i++) {
      switch (kind) {
        case 'conv':
        case 'linear':
          data[i] = std * rng.normal();
          break;
        case 'bias':
        case 'bn-bias':
        case 'bn-mean':
          data[i] = 0.1 * rng.normal();
          break;
        case 'bn-weight':
        case 'bn-var':
          data[i] = 0.5 + rng.next();
          break;
        case 'counter':
          // A fresh model's value. Never permuted, so any value only shifts the objective by a constant,
          // and a large one would hide the matching's share of it.
          data[i] = 0;
          break;
      }
    }
    params[name] = { shape, data };
  }
  return params;
}

// ------------------------------------------------------------------------------------------ child: ours

async function runOursChild(c: ResnetCase, dir: string, writeFiles: boolean): Promise<void> {
  const shapes = shapesOf(c.arch);
  const a = randomResnet(shapes, 1000 + c.seed);
  const spec = resnetSpec(a);
  let b: Record<string, Tensor>;
  let truth: Record<string, Int32Array> | null = null;
  if (c.input === 'random') b = randomResnet(shapes, 2000 + c.seed);
  else {
    const planted = plantedPair(spec, a, c.noise ?? 0.5, 3000 + c.seed);
    b = planted.b;
    truth = Object.fromEntries(Object.entries(planted.planted).map(([k, v]) => [k, inversePermutation(v)]));
  }
  const engine = await createOrtMatmul({ threads: c.threads });
  await engine.abt(new Float32Array(4), 2, new Float32Array(4), 2, 2);
  // Let the generation's garbage go before the peak is reset, so it does not count towards matching.
  (globalThis as { gc?: () => void }).gc?.();
  resetPeak();
  const rssAtStartMiB = procStatus('VmRSS');
  const passStarts: number[] = [];
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const res = await weightMatching({
    spec,
    paramsA: a,
    paramsB: b,
    seed: 0,
    engine,
    onProgress: (e) => {
      if (e.step === 0) passStarts.push(performance.now());
    },
  });
  const end = performance.now();
  const seconds = (end - t0) / 1000;
  const cpu = process.cpuUsage(c0);
  const maxRssMiB = procStatus('VmHWM');
  passStarts.push(end);
  const passSeconds = passStarts.slice(1).map((t, i) => (t - passStarts[i]) / 1000);
  const plantedRecovered = recovered(res.perms, truth).fraction;
  if (writeFiles) {
    writeProblem(dir, spec, a, b);
    writeFileSync(join(dir, 'orders.json'), JSON.stringify(res.history.map((h) => h.order)));
  }
  await engine.dispose?.();
  const out: ResnetOurs = {
    seconds,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    iterations: res.iterations,
    converged: res.converged,
    objectiveBefore: res.objectiveBefore,
    objectiveAfter: res.objectiveAfter,
    perms: Object.fromEntries(Object.entries(res.perms).map(([k, v]) => [k, Array.from(v)])),
    rssAtStartMiB,
    maxRssMiB,
    plantedRecovered,
    parameters: parameterCount(shapes),
    tensors: shapes.length,
    permutations: Object.keys(res.perms).length,
    passSeconds,
  };
  process.stdout.write(JSON.stringify(out) + '\n');
}

// -------------------------------------------------------------------------------------- the reference

/** Calls the reference's own functions as its main() does, with the same peak-RSS reset as ours. */
const REF_WRAPPER = String.raw`
import json, runpy, sys, time
import numpy as np
script, problem_dir, orders_path = sys.argv[1], sys.argv[2], sys.argv[3]
with open(orders_path) as f:
    orders = json.load(f)
ref = runpy.run_path(script)
axes, a, b = ref['load'](problem_dir)
def status(key):
    with open('/proc/self/status') as f:
        return next(int(l.split()[1]) for l in f if l.startswith(key + ':')) / 1024
try:
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')
except OSError:
    pass
rss_start = status('VmRSS')
p2a = ref['perm_to_axes'](axes)
before = ref['objective'](axes, {p: np.arange(a[ax[0][0]].shape[ax[0][1]]) for p, ax in p2a.items()}, a, b)
t0, c0 = time.perf_counter(), time.process_time()
perm, iterations = ref['weight_matching'](axes, a, b, seed=0, max_iter=100, orders=orders)
seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
peak = status('VmHWM')
print(json.dumps({'objectiveBefore': before, 'objectiveAfter': ref['objective'](axes, perm, a, b),
                  'iterations': iterations, 'seconds': seconds, 'cpuSeconds': cpu, 'rssAtStartMiB': rss_start,
                  'maxRssMiB': peak, 'perms': {p: v.tolist() for p, v in perm.items()}}))
`;

function runOurs(c: ResnetCase, dir: string, first: boolean): Outcome<ResnetOurs> {
  const args = ['--expose-gc', SELF, '--child', JSON.stringify(c), dir];
  if (first) args.push('--write-problem');
  return spawnJson<ResnetOurs>(process.execPath, args, c.timeoutS);
}

function runReference(c: ResnetCase, dir: string): Outcome<ResnetRef> {
  return spawnJson<ResnetRef>('python3', ['-c', REF_WRAPPER, REFERENCE, dir, join(dir, 'orders.json')], c.refTimeoutS, referenceEnv(c.threads));
}

export function runResnetBench(cases: readonly ResnetCase[], log: (line: string) => void = () => {}): ResnetRow[] {
  const missing = referenceMissing();
  const rows: ResnetRow[] = [];
  for (const c of cases) {
    const dir = mkdtempSync(join(tmpdir(), 'rebasin-resnet-bench-'));
    try {
      const ours: Outcome<ResnetOurs>[] = [];
      const ref: Outcome<ResnetRef>[] = [];
      for (let rep = 0; rep < c.reps; rep++) {
        log(`resnet: ${describe(c)}: run ${rep + 1}/${c.reps}: ours`);
        ours.push(runOurs(c, dir, rep === 0));
        if (!ours[0].ok || missing !== null) break;
        if (rep > 0 && !ref[0].ok) continue;
        log(`resnet: ${describe(c)}: run ${rep + 1}/${c.reps}: reference (our order, cap ${c.refTimeoutS} s)`);
        ref.push(runReference(c, dir));
      }
      rows.push({ c, ours: fastest(ours), ref: missing !== null ? { ok: false, reason: missing } : fastest(ref) });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return rows;
}

// ----------------------------------------------------------------------------------------- formatting

export function describe(c: ResnetCase): string {
  return `${c.arch} ${c.input === 'trained-like' ? `trained-like σ=${c.noise}` : 'random'}`;
}

const f = (x: number, d = 2): string => x.toFixed(d);

function modelMiB(c: ResnetCase): number {
  return (parameterCount(shapesOf(c.arch)) * 4) / 2 ** 20;
}

export function formatResnetBench(rows: readonly ResnetRow[]): string {
  const time = [
    '| case | params (M) / perms | one model (MiB) | passes ours / ref= | ours (s) | ref= (s) | ours/ref= | CPU s ours / ref= | objective ours / ref= (rel. diff) | same perms | planted recovered |',
    '|---|---|---:|---|---:|---:|---:|---|---|---|---:|',
  ];
  const mem = [
    '| case | one model (MiB) | RSS at start ours / ref= (MiB) | peak ours / ref= (MiB) | peak ÷ one model ours / ref= | peak − start ours / ref= (MiB) |',
    '|---|---:|---|---|---|---|',
  ];
  for (const { c, ours, ref } of rows) {
    const name = describe(c);
    const mib = modelMiB(c);
    const o = ours.ok ? ours.value : null;
    const r = ref.ok ? ref.value : null;
    const why = (x: Outcome<unknown>): string => (x.ok ? '' : ` (${x.reason})`);
    const rel = o && r ? (o.objectiveAfter - r.objectiveAfter) / Math.abs(r.objectiveAfter) : null;
    let same = '—';
    if (o && r) {
      let hit = 0;
      let total = 0;
      for (const [p, v] of Object.entries(o.perms)) {
        for (let i = 0; i < v.length; i++) if (v[i] === r.perms[p]?.[i]) hit++;
        total += v.length;
      }
      same = hit === total ? 'yes' : `${((100 * hit) / total).toFixed(1)}%`;
    }
    time.push(
      `| ${name} | ${(parameterCount(shapesOf(c.arch)) / 1e6).toFixed(2)} / ${o?.permutations ?? '—'} | ${f(mib, 1)} | ${o?.iterations ?? '—'} / ${r?.iterations ?? '—'} | ${o ? f(o.seconds) : '—' + why(ours)} | ${r ? f(r.seconds) : '—' + why(ref)} | ${o && r ? f(o.seconds / r.seconds) + '×' : '—'} | ${o ? f(o.cpuSeconds, 1) : '—'} / ${r ? f(r.cpuSeconds, 1) : '—'} | ${o ? o.objectiveAfter.toPrecision(9) : '—'} / ${r ? r.objectiveAfter.toPrecision(9) : '—'} (${rel === null ? '—' : rel.toExponential(1)}) | ${same} | ${o?.plantedRecovered != null ? (100 * o.plantedRecovered).toFixed(1) + '%' : '—'} |`,
    );
    mem.push(
      `| ${name} | ${f(mib, 1)} | ${o ? f(o.rssAtStartMiB, 0) : '—'} / ${r ? f(r.rssAtStartMiB, 0) : '—'} | ${o ? f(o.maxRssMiB, 0) : '—'} / ${r ? f(r.maxRssMiB, 0) : '—'} | ${o ? f(o.maxRssMiB / mib) + '×' : '—'} / ${r ? f(r.maxRssMiB / mib) + '×' : '—'} | ${o ? f(o.maxRssMiB - o.rssAtStartMiB, 0) : '—'} / ${r ? f(r.maxRssMiB - r.rssAtStartMiB, 0) : '—'} |`,
    );
  }
  return [...time, '', ...mem].join('\n');
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2);
  if (args[0] === '--child') {
    await runOursChild(JSON.parse(args[1]) as ResnetCase, args[2], args.includes('--write-problem'));
  } else {
    const t = args.indexOf('--threads');
    const rt = args.indexOf('--ref-timeout');
    const only = args.indexOf('--only');
    let cases = resnetCases(args.includes('--quick'), t >= 0 ? Number(args[t + 1]) : 2, rt >= 0 ? Number(args[rt + 1]) : 300);
    if (only >= 0) cases = cases.filter((c) => describe(c).startsWith(args[only + 1]));
    const rows = runResnetBench(cases, (l) => console.error(`${new Date().toISOString().slice(11, 19)} ${l}`));
    console.log(formatResnetBench(rows));
  }
}
