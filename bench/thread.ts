/**
 * Benchmark (issue 6): weight matching with assignments on a second thread (assignmentThread) against the
 * same run without it, in one process, same inputs and seed; both must give identical results.
 *
 *   node dist/bench/thread.js [--quick]
 */
import { performance } from 'node:perf_hooks';
import type { Params } from '../src/tensor.js';
import type { PermutationSpec } from '../src/spec/spec.js';
import { mlpSpec } from '../src/spec/mlp.js';
import { resnetSpec } from '../src/spec/resnet.js';
import { weightMatching } from '../src/match/weight-matching.js';
import { createOrtMatmul } from '../src/engine/ort-matmul.js';
import { createAssignmentThread } from '../src/match/assignment-thread.js';
import { heMlp } from './wm.js';
import { randomResnet, resnet50Shapes, resnet20Shapes } from './resnet.js';

interface Case {
  readonly label: string;
  readonly make: () => { spec: PermutationSpec; a: Params; b: Params };
  readonly reps: number;
}

const mlp = (w: number) => () => {
  const widths = [784, w, w, w, 10];
  return { spec: mlpSpec(3), a: heMlp(widths, 1), b: heMlp(widths, 1001) };
};
const resnet = (shapes: ReturnType<typeof resnet50Shapes>) => () => {
  const a = randomResnet(shapes, 14);
  return { spec: resnetSpec(a), a, b: randomResnet(shapes, 1014) };
};

const quick = process.argv.includes('--quick');
const cases: Case[] = [
  { label: '784-512x3-10 random', make: mlp(512), reps: 5 },
  { label: 'resnet20x4 random', make: resnet(resnet20Shapes(4)), reps: 3 },
  ...(quick ? [] : [
    { label: '784-2048x3-10 random', make: mlp(2048), reps: 1 },
    { label: 'resnet50-shaped random', make: resnet(resnet50Shapes()), reps: 1 },
  ]),
];

const engine = await createOrtMatmul({ threads: 2 });
const thread = createAssignmentThread();
console.log('| case | passes | without thread (s) | with thread (s) | ratio | steps sent to the thread / solved | same result |');
console.log('|---|---:|---:|---:|---:|---|---|');
for (const c of cases) {
  const { spec, a, b } = c.make();
  let best = [Infinity, Infinity];
  let sent = 0;
  let solved = 0;
  let same = true;
  let passes = 0;
  // Warm both paths once (V8 compiles per thread), then alternate which goes first.
  for (let rep = 0; rep <= c.reps; rep++) {
    const runs: Array<[number, Awaited<ReturnType<typeof weightMatching>>]> = [];
    for (const useThread of rep % 2 === 0 ? [false, true] : [true, false]) {
      let count = 0;
      const counting = { allocate: (n: number) => thread.allocate(n), solve: (...args: Parameters<typeof thread.solve>) => (count++, thread.solve(...args)) };
      let steps = 0;
      const t0 = performance.now();
      const r = await weightMatching({ spec, paramsA: a, paramsB: b, engine, seed: 0, assignmentThread: useThread ? counting : undefined, onProgress: (e) => { if (!e.reused) steps++; } });
      const s = (performance.now() - t0) / 1000;
      if (rep > 0 || c.reps === 1) best[useThread ? 1 : 0] = Math.min(best[useThread ? 1 : 0], s);
      if (useThread) [sent, solved] = [count, steps];
      passes = r.iterations;
      runs.push([useThread ? 1 : 0, r]);
    }
    same &&= JSON.stringify(runs[0][1].perms) === JSON.stringify(runs[1][1].perms) && runs[0][1].objectiveAfter === runs[1][1].objectiveAfter;
    if (c.reps === 1) break;
  }
  console.log(`| ${c.label} | ${passes} | ${best[0].toFixed(3)} | ${best[1].toFixed(3)} | ${(best[1] / best[0]).toFixed(2)}× | ${sent} / ${solved} | ${same ? 'yes' : 'NO'} |`);
}
await thread.close();
await engine.dispose?.();
