/**
 * Benchmark: our weight matching versus the numpy+scipy port of the reference algorithm
 * (bench/reference/weight_matching.py), on the same inputs, on the same machine, one case at a time.
 *
 * Every case runs three times, each in its own fresh process so that peak RSS belongs to that run alone:
 *  - ours:      `weightMatching` with the chosen engine (ONNX Runtime, or the pure-JS fallback);
 *  - ref:       the reference with its own seeded visiting order;
 *  - ref=:      the reference following the visiting order ours recorded (`--orders`), so both do the same
 *               steps and the time ratio compares like with like.
 * Times are of matching only: ours times the `weightMatching` call (which includes its objective before /
 * after and per pass); for the reference we time its `weight_matching` function, the span its own
 * "seconds" covers. Process start-up, input generation and file writing are outside both. CPU time (all
 * threads) is reported beside wall time: it is less disturbed by other load on a shared machine.
 * Each side runs `reps` times, interleaved, in fresh processes; the best is reported. Ours also reports a
 * second matching in the same process ("warm": V8 has compiled the hot loops by then).
 *
 * Inputs (see DESIGN.md, "Benchmark inputs"):
 *  - random:       A and B drawn independently, He-style init (N(0, 2/fan_in) weights, small biases);
 *  - trained-like: B = a random permutation of A plus Gaussian noise (σ = noise × each tensor's RMS), the
 *                  shape of a real matching problem; we also report how much of the planted permutation
 *                  ours recovers;
 *  - fixture:      the real trained pair test/fixtures/models/mlp_{a,b}.safetensors (784-128-128-10).
 *
 * The reference's child process runs with OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE removed from its env only
 * (this machine sets them for old OpenBLAS builds; they slow a current numpy), and reports which OpenBLAS
 * kernel and how many threads numpy runs.
 *
 *   node dist/bench/wm.js [--quick] [--threads N]        all cases (the quick set with --quick)
 *   node dist/bench/wm.js --child CASE_JSON DIR          one run of ours (used by the parent; prints JSON)
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';
import type { Params, Tensor } from '../src/tensor.js';
import { take } from '../src/tensor.js';
import type { PermutationSpec } from '../src/permutation-spec/spec.js';
import { permSizes } from '../src/permutation-spec/spec.js';
import { mlpSpec } from '../src/permutation-spec/mlp.js';
import { inferMlpSpec } from '../src/permutation-spec/auto.js';
import { readSafetensorsFile } from '../src/io/safetensors-fs.js';
import { toParams } from '../src/io/safetensors.js';
import { inversePermutation, randomPerms } from '../src/permute.js';
import { createRng } from '../src/random.js';
import { weightMatching } from '../src/match/weight-matching.js';
import type { MatmulEngine } from '../src/engine/matmul.js';
import { jsMatmul } from '../src/engine/matmul.js';
import { createOrtMatmul } from '../src/engine/ort-matmul.js';
import { writeProblem } from './reference/problem.js';
import { fastest, recovered, spawnJson, type Outcome } from './child.js';

export { writeProblem };

export type WmInput = 'random' | 'trained-like' | 'fixture';

export interface WmCase {
  /** Short label, e.g. '784-512x3-10'. */
  readonly label: string;
  readonly input: WmInput;
  /** Layer widths (input, hidden..., output); unused for 'fixture'. */
  readonly widths?: readonly number[];
  readonly engine: 'ort' | 'js';
  /** Seed of the inputs; the matching itself always uses seed 0 on both sides. */
  readonly seed: number;
  /** trained-like only: noise σ as a fraction of each tensor's RMS. */
  readonly noise?: number;
  /** Wall-clock cap of each process of this case, seconds. */
  readonly timeoutS: number;
  /** Fresh processes per side; the best time is reported (the machine is shared, so noise only adds). */
  readonly reps: number;
  /** Matmul threads on both sides: ONNX Runtime intra-op threads and OPENBLAS_NUM_THREADS. */
  readonly threads: number;
}

/** What one run of ours prints (the --child mode). */
export interface OursRun {
  /** The first matching in a fresh process (cold JIT). */
  readonly seconds: number;
  /** A second, identical matching in the same process; null when not run. */
  readonly warmSeconds: number | null;
  /** CPU time (all threads of the process) of the first matching. */
  readonly cpuSeconds: number;
  readonly iterations: number;
  readonly converged: boolean;
  readonly objectiveBefore: number;
  readonly objectiveAfter: number;
  readonly orders: string[][];
  readonly perms: Record<string, number[]>;
  readonly maxRssMiB: number;
  /** trained-like only: fraction of hidden units matched to the planted partner. */
  readonly plantedRecovered: number | null;
  readonly units: number;
}

export interface RefRun {
  readonly seconds: number;
  /** CPU time (all threads) of the matching call. */
  readonly cpuSeconds: number;
  readonly iterations: number;
  readonly objectiveBefore: number;
  readonly objectiveAfter: number;
  readonly perms: Record<string, number[]>;
  readonly maxRssMiB: number;
  readonly blas: string;
}

export type { Outcome } from './child.js';

export interface WmBenchRow {
  readonly wmCase: WmCase;
  readonly ours: Outcome<OursRun>;
  readonly ref: Outcome<RefRun>;
  readonly refSameOrder: Outcome<RefRun>;
}

export const FIXTURE_A = fileURLToPath(new URL('../../test/fixtures/models/mlp_a.safetensors', import.meta.url));
export const FIXTURE_B = fileURLToPath(new URL('../../test/fixtures/models/mlp_b.safetensors', import.meta.url));
const REFERENCE = fileURLToPath(new URL('../../bench/reference/weight_matching.py', import.meta.url));
const SELF = fileURLToPath(import.meta.url);

const W512 = [784, 512, 512, 512, 10];
const W128 = [784, 128, 128, 128, 10];
const W2048 = [784, 2048, 2048, 2048, 10];

export function wmCases(quick: boolean, threads = 2): WmCase[] {
  const reps = quick ? 3 : 5;
  const cases: Omit<WmCase, 'threads'>[] = [
    { label: '784-512x3-10', input: 'random', widths: W512, engine: 'ort', seed: 1, timeoutS: 300, reps },
    { label: '784-512x3-10', input: 'trained-like', widths: W512, engine: 'ort', seed: 2, noise: 0.5, timeoutS: 300, reps },
    { label: '784-128x3-10', input: 'random', widths: W128, engine: 'ort', seed: 3, timeoutS: 120, reps },
    { label: '784-128x3-10', input: 'random', widths: W128, engine: 'js', seed: 3, timeoutS: 120, reps },
    { label: 'fixture 784-128-128-10', input: 'fixture', engine: 'ort', seed: 0, timeoutS: 120, reps },
  ];
  if (!quick) {
    cases.push({ label: '784-2048x3-10', input: 'trained-like', widths: W2048, engine: 'ort', seed: 4, noise: 0.5, timeoutS: 600, reps: 2 });
    cases.push({ label: '784-2048x3-10', input: 'random', widths: W2048, engine: 'ort', seed: 5, timeoutS: 600, reps: 1 });
  }
  return cases.map((c) => ({ ...c, threads }));
}

// ---------------------------------------------------------------------------------------------- inputs

/** He-style random MLP in torch layout: weights N(0, 2/fan_in), biases N(0, 0.01²). */
export function heMlp(widths: readonly number[], seed: number): Record<string, Tensor> {
  const rng = createRng(seed);
  const params: Record<string, Tensor> = {};
  for (let i = 0; i + 1 < widths.length; i++) {
    const [fanIn, fanOut] = [widths[i], widths[i + 1]];
    const w = new Float32Array(fanIn * fanOut);
    const std = Math.sqrt(2 / fanIn);
    for (let j = 0; j < w.length; j++) w[j] = std * rng.normal();
    const b = new Float32Array(fanOut);
    for (let j = 0; j < b.length; j++) b[j] = 0.01 * rng.normal();
    params[`layer${i}.weight`] = { shape: [fanOut, fanIn], data: w };
    params[`layer${i}.bias`] = { shape: [fanOut], data: b };
  }
  return params;
}

/** B = planted(A) + noise: every permuted axis of A gathered by a random permutation, then noise added. */
export function plantedPair(
  spec: PermutationSpec,
  a: Params,
  noise: number,
  seed: number,
): { b: Record<string, Tensor>; planted: Record<string, Int32Array> } {
  const planted = randomPerms(permSizes(spec, a), seed);
  const rng = createRng(seed + 7919);
  const b: Record<string, Tensor> = {};
  for (const [name, t] of Object.entries(a)) {
    let out: Tensor = t;
    (spec.axesToPerm[name] ?? []).forEach((p, axis) => {
      if (p !== null) out = take(out, planted[p], axis);
    });
    let ss = 0;
    for (let i = 0; i < t.data.length; i++) ss += t.data[i] * t.data[i];
    const sigma = noise * Math.sqrt(ss / Math.max(1, t.data.length));
    const data = Float32Array.from(out.data);
    for (let i = 0; i < data.length; i++) data[i] += sigma * rng.normal();
    b[name] = { shape: t.shape, data };
  }
  return { b, planted };
}

interface Problem {
  spec: PermutationSpec;
  a: Params;
  b: Params;
  /** The permutation matching should find (inverse of the planted one), when known. */
  truth: Record<string, Int32Array> | null;
}

function buildProblem(c: WmCase): Problem {
  if (c.input === 'fixture') {
    const a = toParams(readSafetensorsFile(FIXTURE_A)).params;
    const b = toParams(readSafetensorsFile(FIXTURE_B)).params;
    return { spec: inferMlpSpec(a), a, b, truth: null };
  }
  const widths = c.widths ?? [];
  const spec = mlpSpec(widths.length - 2);
  const a = heMlp(widths, 1000 + c.seed);
  if (c.input === 'random') return { spec, a, b: heMlp(widths, 2000 + c.seed), truth: null };
  // take(take(A, π), p) = A needs p = π⁻¹: that is what matching B back onto A should return.
  const { b, planted } = plantedPair(spec, a, c.noise ?? 0.5, 3000 + c.seed);
  const truth = Object.fromEntries(Object.entries(planted).map(([k, v]) => [k, inversePermutation(v)]));
  return { spec, a, b, truth };
}

// ------------------------------------------------------------------------------------------ child: ours

/**
 * Peak RSS of this process image. Linux keeps ru_maxrss (process.resourceUsage().maxRSS) across fork + exec,
 * so a child spawned by a large parent would report the parent's size; VmHWM starts afresh at exec.
 */
function peakRssMiB(): number {
  try {
    const m = /^VmHWM:\s*(\d+)\s*kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]) / 1024;
  } catch {
    /* not Linux */
  }
  return process.resourceUsage().maxRSS / 1024;
}

async function runOursChild(c: WmCase, dir: string, warm: boolean, writeFiles: boolean): Promise<void> {
  const { spec, a, b, truth } = buildProblem(c);
  let engine: MatmulEngine = jsMatmul;
  if (c.engine === 'ort') {
    engine = await createOrtMatmul({ threads: c.threads });
    // One tiny product first, so session warm-up is not billed to matching.
    await engine.abt(new Float32Array(4), 2, new Float32Array(4), 2, 2);
  }
  // Garbage from building the inputs is collected first, as bench/resnet.ts and bench/sweep.ts do, so it is
  // not billed to matching (the CLI reads its inputs from files and leaves little of it).
  const collect = () => (globalThis as { gc?: () => void }).gc?.();
  collect();
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const res = await weightMatching({ spec, paramsA: a, paramsB: b, seed: 0, engine });
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(c0);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  const maxRssMiB = peakRssMiB();
  // The same matching again in the same process: the steady state, once V8 has compiled the hot loops
  // (what a library caller matching many pairs sees; the first run is what one CLI call sees).
  let warmSeconds: number | null = null;
  if (warm) {
    collect();
    const t1 = performance.now();
    await weightMatching({ spec, paramsA: a, paramsB: b, seed: 0, engine });
    warmSeconds = (performance.now() - t1) / 1000;
  }
  const { fraction: plantedRecovered, units } = recovered(res.perms, truth);
  // Files for the reference are written after the peak-RSS reading, so they do not count towards it.
  if (writeFiles) {
    writeProblem(dir, spec, a, b);
    writeFileSync(join(dir, 'orders.json'), JSON.stringify(res.history.map((h) => h.order)));
  }
  await engine.dispose?.();
  const out: OursRun = {
    seconds,
    cpuSeconds,
    warmSeconds,
    iterations: res.iterations,
    converged: res.converged,
    objectiveBefore: res.objectiveBefore,
    objectiveAfter: res.objectiveAfter,
    orders: res.history.map((h) => h.order),
    perms: Object.fromEntries(Object.entries(res.perms).map(([k, v]) => [k, Array.from(v)])),
    maxRssMiB,
    plantedRecovered,
    units,
  };
  process.stdout.write(JSON.stringify(out) + '\n');
}

// -------------------------------------------------------------------------------------- the reference

/**
 * Loads the reference script as a module (runpy, without running its main) and calls its functions as its
 * main() does: load, objective before, weight_matching (timed: wall and CPU), objective after. Adds peak RSS
 * and the OpenBLAS kernel/threads numpy actually uses (read from numpy's bundled OpenBLAS through ctypes;
 * falls back to numpy's build config).
 */
const REF_WRAPPER = String.raw`
import ctypes, glob, json, os, resource, runpy, sys, time
import numpy as np
script, problem_dir = sys.argv[1], sys.argv[2]
orders = None
if len(sys.argv) > 3:
    with open(sys.argv[3]) as f:
        orders = json.load(f)
# The reference module's own functions, called as its main() calls them, so CPU time can be read too.
ref = runpy.run_path(script)
axes, a, b = ref['load'](problem_dir)
p2a = ref['perm_to_axes'](axes)
before = ref['objective'](axes, {p: np.arange(a[ax[0][0]].shape[ax[0][1]]) for p, ax in p2a.items()}, a, b)
t0, c0 = time.perf_counter(), time.process_time()
perm, iterations = ref['weight_matching'](axes, a, b, seed=0, max_iter=100, orders=orders)
seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
res = {'objectiveBefore': before, 'objectiveAfter': ref['objective'](axes, perm, a, b), 'iterations': iterations,
       'seconds': seconds, 'cpuSeconds': cpu, 'perms': {p: v.tolist() for p, v in perm.items()}}
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork + exec, so it would report the parent's RSS.
try:
    with open('/proc/self/status') as f:
        res['maxRssMiB'] = next(int(l.split()[1]) for l in f if l.startswith('VmHWM:')) / 1024
except (OSError, StopIteration):
    res['maxRssMiB'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
def blas():
    import numpy
    libs = glob.glob(os.path.join(os.path.dirname(numpy.__file__), '..', 'numpy.libs', '*openblas*'))
    for path in libs:
        lib = ctypes.CDLL(path)
        for pre in ('scipy_openblas_', 'openblas_'):
            for suf in ('64_', ''):
                try:
                    core = getattr(lib, pre + 'get_corename' + suf)
                    threads = getattr(lib, pre + 'get_num_threads' + suf)
                    config = getattr(lib, pre + 'get_config' + suf)
                except AttributeError:
                    continue
                core.restype = ctypes.c_char_p
                config.restype = ctypes.c_char_p
                return '%s, kernel %s, %d threads' % (config().decode().split('  ')[0], core().decode(), threads())
    try:
        deps = numpy.show_config(mode='dicts')['Build Dependencies']['blas']
        return '%s %s (threads unknown)' % (deps.get('name'), deps.get('version'))
    except Exception as e:
        return 'unknown (%s)' % e
res['blas'] = blas()
print(json.dumps(res))
`;

/** The child env of python: this machine's OpenBLAS overrides removed (see the module comment). */
export function referenceEnv(threads?: number): NodeJS.ProcessEnv {
  const env = { ...process.env };
  if (threads !== undefined) env.OPENBLAS_NUM_THREADS = String(threads);
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  return env;
}

function runReference(dir: string, sameOrder: boolean, timeoutS: number, threads: number): Outcome<RefRun> {
  const args = ['-c', REF_WRAPPER, REFERENCE, dir];
  if (sameOrder) args.push(join(dir, 'orders.json'));
  return spawnJson<RefRun>('python3', args, timeoutS, referenceEnv(threads));
}

function runOurs(c: WmCase, dir: string, first: boolean): Outcome<OursRun> {
  const args = ['--expose-gc', SELF, '--child', JSON.stringify(c), dir, '--warm'];
  if (first) args.push('--write-problem');
  return spawnJson<OursRun>(process.execPath, args, c.timeoutS);
}

/**
 * child.ts's fastest run (highest peak RSS over all runs), with the lowest warm time and CPU time seen
 * (results other than time are the same in every run: same inputs, same seed); else the first failure,
 * or null when nothing ran.
 */
function best<T extends { seconds: number; cpuSeconds: number; maxRssMiB: number; warmSeconds?: number | null }>(runs: readonly Outcome<T>[]): Outcome<T> | null {
  if (runs.length === 0) return null;
  const top = fastest(runs);
  if (!top.ok) return top;
  const ok = runs.filter((r): r is { ok: true; value: T } => r.ok).map((r) => r.value);
  const warm = ok.map((r) => r.warmSeconds).filter((w): w is number => typeof w === 'number');
  return {
    ok: true,
    value: { ...top.value, cpuSeconds: Math.min(...ok.map((r) => r.cpuSeconds)), ...(warm.length > 0 ? { warmSeconds: Math.min(...warm) } : {}) },
  };
}

/** Whether python3 with numpy and scipy runs here; a reason string when it does not. */
export function referenceMissing(): string | null {
  try {
    execFileSync('python3', ['-c', 'import numpy, scipy.optimize'], { stdio: 'ignore' });
    return null;
  } catch (e) {
    return `python3 with numpy+scipy not available (${(e as Error).message.split('\n')[0]})`;
  }
}

export function runWmBench(cases: readonly WmCase[], log: (line: string) => void = () => {}): WmBenchRow[] {
  const missing = referenceMissing();
  const rows: WmBenchRow[] = [];
  for (const c of cases) {
    const dir = mkdtempSync(join(tmpdir(), 'rebasin-wm-bench-'));
    try {
      // Interleaved ours / ref / ref= per repetition, so a burst of load elsewhere hits all three alike.
      const ours: Outcome<OursRun>[] = [];
      const ref: Outcome<RefRun>[] = [];
      const refSameOrder: Outcome<RefRun>[] = [];
      for (let rep = 0; rep < c.reps; rep++) {
        log(`wm: ${describeCase(c)}: run ${rep + 1}/${c.reps}: ours`);
        ours.push(runOurs(c, dir, rep === 0));
        if (!ours[0].ok) break;
        if (missing !== null) continue;
        log(`wm: ${describeCase(c)}: run ${rep + 1}/${c.reps}: reference, own order`);
        ref.push(runReference(dir, false, c.timeoutS, c.threads));
        log(`wm: ${describeCase(c)}: run ${rep + 1}/${c.reps}: reference, our order`);
        refSameOrder.push(runReference(dir, true, c.timeoutS, c.threads));
        // A side that timed out once is not run again: it would only time out again.
        if (!ref[ref.length - 1].ok && !refSameOrder[refSameOrder.length - 1].ok) break;
      }
      const noRef: Outcome<RefRun> = { ok: false, reason: missing ?? 'ours failed, so no problem files' };
      rows.push({
        wmCase: c,
        ours: best(ours) ?? { ok: false, reason: 'not run' },
        ref: best(ref) ?? noRef,
        refSameOrder: best(refSameOrder) ?? noRef,
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return rows;
}

// ----------------------------------------------------------------------------------------- formatting

export function describeCase(c: WmCase): string {
  const input = c.input === 'trained-like' ? `trained-like σ=${c.noise}` : c.input;
  return `${c.label} ${input} [${c.engine}]`;
}

function secs(o: Outcome<{ seconds: number }>): string {
  return o.ok ? o.value.seconds.toFixed(3) : `— (${o.reason})`;
}

function warmOf(o: Outcome<OursRun>): Outcome<{ seconds: number }> {
  if (!o.ok) return o;
  return o.value.warmSeconds === null ? { ok: false, reason: 'not run' } : { ok: true, value: { seconds: o.value.warmSeconds } };
}

function ratio(ours: Outcome<{ seconds: number }>, ref: Outcome<{ seconds: number }>): string {
  return ours.ok && ref.ok ? `${(ours.value.seconds / ref.value.seconds).toFixed(2)}×` : '—';
}

function passes(o: Outcome<{ iterations: number }>): string {
  return o.ok ? String(o.value.iterations) : '—';
}

function objective(o: Outcome<{ objectiveAfter: number }>): string {
  return o.ok ? o.value.objectiveAfter.toPrecision(8) : '—';
}

function cpu(o: Outcome<{ cpuSeconds: number }>): string {
  return o.ok ? o.value.cpuSeconds.toFixed(3) : '—';
}

function rss(o: Outcome<{ maxRssMiB: number }>): string {
  return o.ok ? o.value.maxRssMiB.toFixed(0) : '—';
}

/** Relative difference of our final objective from a reference's (positive: ours is higher). */
function objectiveGap(ours: Outcome<OursRun>, ref: Outcome<RefRun>): string {
  if (!ours.ok || !ref.ok) return '—';
  const g = (ours.value.objectiveAfter - ref.value.objectiveAfter) / Math.abs(ref.value.objectiveAfter);
  return g === 0 ? '0' : `${g > 0 ? '+' : ''}${g.toExponential(1)}`;
}

function samePerms(ours: Outcome<OursRun>, ref: Outcome<RefRun>): string {
  if (!ours.ok || !ref.ok) return '—';
  let same = 0;
  let total = 0;
  for (const [p, v] of Object.entries(ours.value.perms)) {
    const w = ref.value.perms[p] ?? [];
    for (let i = 0; i < v.length; i++) if (v[i] === w[i]) same++;
    total += v.length;
  }
  return same === total ? 'yes' : `${((100 * same) / total).toFixed(1)}%`;
}

/** Two markdown tables: time (with ratios and peak RSS), then objectives. */
export function formatWmBench(rows: readonly WmBenchRow[]): string {
  const time = [
    '| case | passes ours / ref / ref= | ours (s) | ours warm (s) | ref (s) | ref= (s) | ours/ref | ours/ref= | ours warm/ref= | CPU s ours / ref= | peak RSS MiB ours / ref= |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|',
  ];
  const obj = [
    '| case | objective before | after: ours | ref | ref= | ours vs ref | ours vs ref= | same perms as ref= | planted recovered |',
    '|---|---:|---:|---:|---:|---:|---:|---|---:|',
  ];
  for (const { wmCase, ours, ref, refSameOrder } of rows) {
    const name = describeCase(wmCase);
    time.push(
      `| ${name} | ${passes(ours)} / ${passes(ref)} / ${passes(refSameOrder)} | ${secs(ours)} | ${secs(warmOf(ours))} | ${secs(ref)} | ${secs(refSameOrder)} | ${ratio(ours, ref)} | ${ratio(ours, refSameOrder)} | ${ratio(warmOf(ours), refSameOrder)} | ${cpu(ours)} / ${cpu(refSameOrder)} | ${rss(ours)} / ${rss(refSameOrder)} |`,
    );
    const recovered = ours.ok && ours.value.plantedRecovered !== null ? `${(100 * ours.value.plantedRecovered).toFixed(1)}%` : '—';
    obj.push(
      `| ${name} | ${ours.ok ? ours.value.objectiveBefore.toPrecision(8) : '—'} | ${objective(ours)} | ${objective(ref)} | ${objective(refSameOrder)} | ${objectiveGap(ours, ref)} | ${objectiveGap(ours, refSameOrder)} | ${samePerms(ours, refSameOrder)} | ${recovered} |`,
    );
  }
  return [...time, '', ...obj].join('\n');
}

/** The BLAS line the reference reported (the first successful run's), or null. */
export function referenceBlas(rows: readonly WmBenchRow[]): string | null {
  for (const r of rows) if (r.refSameOrder.ok) return r.refSameOrder.value.blas;
  for (const r of rows) if (r.ref.ok) return r.ref.value.blas;
  return null;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2);
  if (args[0] === '--child') {
    await runOursChild(JSON.parse(args[1]) as WmCase, args[2], args.includes('--warm'), args.includes('--write-problem'));
  } else {
    const t = args.indexOf('--threads');
    const rows = runWmBench(wmCases(args.includes('--quick'), t >= 0 ? Number(args[t + 1]) : 2), (l) => console.error(l));
    console.log(formatWmBench(rows));
    const blas = referenceBlas(rows);
    if (blas) console.log(`\nreference numpy BLAS: ${blas}`);
  }
}
