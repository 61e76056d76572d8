/**
 * Benchmark: our exact assignment solver versus scipy.optimize.linear_sum_assignment (C++) on the same
 * matrix bytes, on two kinds of input:
 *  - uniform:  i.i.d. uniform [0, 1) costs, minimised — the hard, textbook case;
 *  - planted:  a hidden permutation of strong similarities (1) plus Gaussian noise (σ = 0.2), maximised —
 *              shaped like the similarity matrices of real weight matching, and much easier.
 * Python times only the linear_sum_assignment call; we time only solveAssignment (including its copy of\n * the input). Best of a few runs for n ≤ 1024, one run above. Single-threaded on both sides.
 *
 *   node dist/bench/lap.js [sizes...]      (default 256 1024 2048 4096; then the assignments of real
 *                                          weight-matching runs, warm-started as matching does, vs scipy)
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';
import { solveAssignment } from '../src/match/lap.js';
import { createRng, shuffledRange } from '../src/random.js';

export type LapMatrixKind = 'uniform' | 'planted';

export interface LapBenchRow {
  readonly kind: LapMatrixKind;
  readonly n: number;
  readonly oursSeconds: number;
  /** null when python3/scipy could not be run. */
  readonly scipySeconds: number | null;
  /** ours / scipy. */
  readonly ratio: number | null;
  readonly oursObjective: number;
  readonly scipyObjective: number | null;
  /** Objectives agree within 1e-9 relative. */
  readonly objectivesEqual: boolean | null;
}

export function makeLapMatrix(kind: LapMatrixKind, n: number, seed: number): Float64Array {
  const rng = createRng(seed);
  const c = new Float64Array(n * n);
  if (kind === 'uniform') {
    for (let k = 0; k < c.length; k++) c[k] = rng.next();
  } else {
    const perm = shuffledRange(n, rng);
    for (let k = 0; k < c.length; k++) c[k] = 0.2 * rng.normal();
    for (let i = 0; i < n; i++) c[i * n + perm[i]] += 1;
  }
  return c;
}

const REF_SCRIPT = fileURLToPath(new URL('../../bench/lap_ref.py', import.meta.url));

function repsFor(n: number): number {
  return n <= 256 ? 5 : n <= 1024 ? 3 : 1;
}

export function runLapBench(sizes: readonly number[] = [256, 1024, 2048, 4096]): LapBenchRow[] {
  const kinds: LapMatrixKind[] = ['uniform', 'planted'];
  const cases = sizes.flatMap((n) => kinds.map((kind) => ({ kind, n, maximize: kind === 'planted' })));
  const dir = mkdtempSync(join(tmpdir(), 'rebasin-lap-bench-'));
  let scipyMissing = false;
  try {
    // One case at a time, scipy then ours back to back, so both see the same machine load.
    return cases.map((cs, k) => {
      const c = makeLapMatrix(cs.kind, cs.n, 1000 + k);
      const reps = repsFor(cs.n);
      let s: { seconds: number; objective: number } | null = null;
      if (!scipyMissing) {
        const path = join(dir, 'm.f64');
        const list = join(dir, 'list.txt');
        writeFileSync(path, new Uint8Array(c.buffer, c.byteOffset, c.byteLength));
        writeFileSync(list, `${path} ${cs.n} ${cs.n} ${cs.maximize ? 1 : 0} ${reps}\n`);
        try {
          const stdout = execFileSync('python3', [REF_SCRIPT, list], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
          s = (JSON.parse(stdout) as Array<{ seconds: number; objective: number }>)[0];
        } catch (e) {
          scipyMissing = true;
          console.error(`lap bench: scipy reference not run (${(e as Error).message.split('\n')[0]})`);
        }
        rmSync(path, { force: true });
      }
      let best = Infinity;
      let objective = NaN;
      for (let r = 0; r < reps; r++) {
        const t0 = performance.now();
        const res = solveAssignment(c, cs.n, cs.n, { maximize: cs.maximize });
        best = Math.min(best, (performance.now() - t0) / 1000);
        objective = res.objective;
      }
      return {
        kind: cs.kind,
        n: cs.n,
        oursSeconds: best,
        scipySeconds: s ? s.seconds : null,
        ratio: s ? best / s.seconds : null,
        oursObjective: objective,
        scipyObjective: s ? s.objective : null,
        objectivesEqual: s ? Math.abs(objective - s.objective) <= 1e-9 * Math.max(1, Math.abs(s.objective)) : null,
      };
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function formatLapBench(rows: readonly LapBenchRow[]): string {
  const lines = ['kind      n      ours (s)   scipy (s)  ours/scipy  objectives'];
  for (const r of rows) {
    lines.push(
      [
        r.kind.padEnd(8),
        String(r.n).padStart(5),
        r.oursSeconds.toFixed(4).padStart(11),
        (r.scipySeconds === null ? '—' : r.scipySeconds.toFixed(4)).padStart(11),
        (r.ratio === null ? '—' : r.ratio.toFixed(2) + '×').padStart(11),
        r.objectivesEqual === null ? '  (no scipy)' : r.objectivesEqual ? '  equal' : `  DIFFER ${r.oursObjective} vs ${r.scipyObjective}`,
      ].join(' '),
    );
  }
  return lines.join('\n');
}

export interface LapInMatchingRow {
  readonly label: string;
  readonly n: number;
  readonly steps: number;
  /** Σ over the steps: ours warm-started as matching does, ours cold, scipy (cold: it has no warm start). */
  readonly warmSeconds: number;
  readonly coldSeconds: number;
  readonly scipySeconds: number | null;
  readonly objectivesEqual: boolean | null;
}

/**
 * Each assignment step's cost matrix of a real weight-matching run (784-w-w-w-10 random pair, ONNX Runtime
 * products, one product per step: no kept matrices), with the permutation each step solved for; at most
 * `maxSteps` of them.
 */
export async function captureMatchingRun(width: number, maxSteps: number): Promise<{ matrices: Float64Array[]; perms: string[] }> {
  const [{ weightMatching }, { mlpSpec }, { createOrtMatmul }, { heMlp }] = await Promise.all([
    import('../src/match/weight-matching.js'),
    import('../src/permutation-spec/mlp.js'),
    import('../src/engine/ort-matmul.js'),
    import('./wm.js'),
  ]);
  const widths = [784, width, width, width, 10];
  const engine = await createOrtMatmul({ threads: 2 });
  const matrices: Float64Array[] = [];
  const perms: string[] = [];
  const capturing = {
    name: 'capture',
    abt: async (a: Float32Array, m: number, b: Float32Array, n: number, k: number) => {
      const out = await engine.abt(a, m, b, n, k);
      if (matrices.length < maxSteps) matrices.push(Float64Array.from(out));
      return out;
    },
  };
  // One product per step (no kept matrices, no splitting), so each product is a step's whole cost matrix.
  await weightMatching({
    spec: mlpSpec(3),
    paramsA: heMlp(widths, 5),
    paramsB: heMlp(widths, 1005),
    engine: capturing,
    seed: 0,
    incremental: false,
    lowMemory: false,
    onProgress: (e) => {
      if (!e.reused && perms.length < maxSteps) perms.push(e.perm);
    },
  });
  await engine.dispose?.();
  return { matrices, perms };
}

/**
 * The assignments of a real weight-matching run (captureMatchingRun): each step's cost matrix solved again by
 * ours warm-started from the same permutation's previous solve (as matching does), by ours cold, and by scipy,
 * and the times summed over the steps.
 */
export async function runLapInMatchingBench(width: number, maxSteps: number): Promise<LapInMatchingRow> {
  const { matrices, perms } = await captureMatchingRun(width, maxSteps);
  const n = width;
  const warm = new Map<string, { colPotential: Float64Array; rowPotential: Float64Array; rowToCol: Int32Array }>();
  let warmSeconds = 0;
  let coldSeconds = 0;
  const objectives: number[] = [];
  matrices.forEach((c, i) => {
    let t0 = performance.now();
    const w = solveAssignment(c, n, n, { maximize: true, warmStart: warm.get(perms[i]) });
    warmSeconds += (performance.now() - t0) / 1000;
    warm.set(perms[i], { colPotential: w.colPotential, rowPotential: w.rowPotential, rowToCol: w.rowToCol });
    t0 = performance.now();
    const cold = solveAssignment(c, n, n, { maximize: true });
    coldSeconds += (performance.now() - t0) / 1000;
    objectives.push(w.objective, cold.objective);
  });
  let scipySeconds: number | null = null;
  let objectivesEqual: boolean | null = null;
  const dir = mkdtempSync(join(tmpdir(), 'rebasin-lap-bench-'));
  try {
    const list = matrices.map((c, i) => {
      const path = join(dir, `m${i}.f64`);
      writeFileSync(path, new Uint8Array(c.buffer, c.byteOffset, c.byteLength));
      return `${path} ${n} ${n} 1 1`;
    });
    writeFileSync(join(dir, 'list.txt'), list.join('\n') + '\n');
    const stdout = execFileSync('python3', [REF_SCRIPT, join(dir, 'list.txt')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 24 });
    const ref = JSON.parse(stdout) as Array<{ seconds: number; objective: number }>;
    scipySeconds = ref.reduce((sum, r) => sum + r.seconds, 0);
    objectivesEqual = ref.every((r, i) => [objectives[2 * i], objectives[2 * i + 1]].every((o) => Math.abs(o - r.objective) <= 1e-9 * Math.max(1, Math.abs(r.objective))));
  } catch (e) {
    console.error(`lap bench: scipy reference not run (${(e as Error).message.split('\n')[0]})`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return { label: `784-${width}x3-10 random`, n, steps: matrices.length, warmSeconds, coldSeconds, scipySeconds, objectivesEqual };
}

export function formatLapInMatching(rows: readonly LapInMatchingRow[]): string {
  const lines = ['matching run              n  steps  ours warm (s)  ours cold (s)  scipy (s)  warm/scipy  objectives'];
  for (const r of rows) {
    lines.push(
      [
        r.label.padEnd(22),
        String(r.n).padStart(5),
        String(r.steps).padStart(6),
        r.warmSeconds.toFixed(4).padStart(14),
        r.coldSeconds.toFixed(4).padStart(14),
        (r.scipySeconds === null ? '—' : r.scipySeconds.toFixed(4)).padStart(10),
        (r.scipySeconds === null ? '—' : (r.warmSeconds / r.scipySeconds).toFixed(2) + '×').padStart(11),
        r.objectivesEqual === null ? '  (no scipy)' : r.objectivesEqual ? '  equal' : '  DIFFER',
      ].join(' '),
    );
  }
  return lines.join('\n');
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2).map(Number).filter((n) => Number.isInteger(n) && n > 0);
  console.log(formatLapBench(runLapBench(args.length > 0 ? args : undefined)));
  console.log(formatLapInMatching([await runLapInMatchingBench(512, 60), await runLapInMatchingBench(1024, 40)]));
}
