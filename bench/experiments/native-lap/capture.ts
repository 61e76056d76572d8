/**
 * Experiment (not part of the library): how fast would a native build of our assignment solver be? Captures
 * the cost matrices of a 784-512x3-10 random weight-matching run (bench/lap.ts captureMatchingRun), solves
 * them as matching does (each warm-started from the same permutation's previous solve) with the library's
 * solver (the WebAssembly route), and writes what lap.c needs to solve the same chain natively and check it
 * gets the same answers. See README.md here.
 *
 *   node dist/bench/experiments/native-lap/capture.js DIR [WIDTH]
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { captureMatchingRun } from '../../lap.js';
import { solveAssignment, type AssignmentResult } from '../../../src/match/lap.js';

const [dir, widthArg] = process.argv.slice(2);
if (!dir) {
  console.error('usage: capture.js DIR [WIDTH]');
  process.exit(2);
}
const n = Number(widthArg ?? 512);
const { matrices, perms } = await captureMatchingRun(n, Infinity);
const names = [...new Set(perms)].sort();

let best = Infinity;
let answers: AssignmentResult[] = [];
for (let rep = 0; rep < 20; rep++) {
  const warm = new Map<string, AssignmentResult>();
  answers = [];
  const t0 = performance.now();
  matrices.forEach((c, i) => {
    const r = solveAssignment(c, n, n, { maximize: true, warmStart: warm.get(perms[i]) });
    warm.set(perms[i], r);
    answers.push(r);
  });
  best = Math.min(best, performance.now() - t0);
}

mkdirSync(dir, { recursive: true });
const mats = new Float64Array(matrices.length * n * n);
matrices.forEach((c, i) => mats.set(c, i * n * n));
writeFileSync(join(dir, 'mats.f64'), new Uint8Array(mats.buffer));
const rows = new Int32Array(matrices.length * n);
answers.forEach((r, i) => rows.set(r.rowToCol, i * n));
writeFileSync(join(dir, 'rows.i32'), new Uint8Array(rows.buffer));
writeFileSync(join(dir, 'steps.txt'), `${n} ${matrices.length} ${names.length}\n${perms.map((p) => names.indexOf(p)).join(' ')}\n`);
console.log(`library (WebAssembly): ${matrices.length} warm-started solves of ${n} x ${n}, best of 20: ${best.toFixed(2)} ms`);
