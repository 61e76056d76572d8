/**
 * Benchmark: our exact assignment solver versus scipy.optimize.linear_sum_assignment (C++) on the same
 * matrix bytes, on two kinds of input:
 *  - uniform:  i.i.d. uniform [0, 1) costs, minimised — the hard, textbook case;
 *  - planted:  a hidden permutation of strong similarities (1) plus Gaussian noise (σ = 0.2), maximised —
 *              shaped like the similarity matrices of real weight matching, and much easier.
 * Python times only the linear_sum_assignment call; we time only solveAssignment (including its copy of\n * the input). Best of a few runs for n ≤ 1024, one run above. Single-threaded on both sides.
 *
 *   node dist/bench/lap.js [sizes...]      (default 256 1024 2048 4096)
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

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2).map(Number).filter((n) => Number.isInteger(n) && n > 0);
  console.log(formatLapBench(runLapBench(args.length > 0 ? args : undefined)));
}
