/**
 * Assignments on a second thread (src/match/assignment-thread.ts): weight matching must give exactly the
 * result of a run without it — same permutations, passes, objectives and history — while really sending
 * steps to the thread.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Params } from '../src/tensor.js';
import type { PermutationSpec } from '../src/spec/spec.js';
import { mlpSpec } from '../src/spec/mlp.js';
import { resnetSpec } from '../src/spec/resnet.js';
import { weightMatching, type AssignmentThread, type WeightMatchingOptions } from '../src/match/weight-matching.js';
import { createAssignmentThread } from '../src/match/assignment-thread.js';
import { createOrtMatmul } from '../src/engine/ort-matmul.js';
import { jsMatmul } from '../src/engine/matmul.js';
import { randomMlp } from './helpers/mlp.js';
import { randomResnet, resnet20Shapes } from '../bench/resnet.js';

test('matching with assignments on a second thread gives exactly the result without it', async () => {
  const thread = createAssignmentThread();
  const ort = await createOrtMatmul();
  let sent = 0;
  const counting: AssignmentThread = { allocate: (n) => thread.allocate(n), solve: (...args) => (sent++, thread.solve(...args)) };
  try {
    const ra = randomResnet(resnet20Shapes(1), 41);
    const cases: Array<{ label: string; spec: PermutationSpec; a: Params; b: Params }> = [
      { label: 'mlp', spec: mlpSpec(3), a: randomMlp([30, 64, 48, 64, 10], 'torch', 81), b: randomMlp([30, 64, 48, 64, 10], 'torch', 82) },
      { label: 'resnet20', spec: resnetSpec(ra), a: ra, b: randomResnet(resnet20Shapes(1), 42) },
    ];
    const modes: Array<Partial<WeightMatchingOptions>> = [
      { engine: ort },
      { engine: ort, score: 'cosine' },
      { engine: jsMatmul, lowMemory: true },
      { engine: jsMatmul, plain: true },
    ];
    for (const { label, spec, a, b } of cases) {
      const sentBefore = sent;
      for (const mode of modes) {
        const what = `${label} ${JSON.stringify({ ...mode, engine: mode.engine?.name })}`;
        const events: string[] = [];
        const before = sent;
        const alone = await weightMatching({ spec, paramsA: a, paramsB: b, seed: 5, ...mode });
        const paired = await weightMatching({ spec, paramsA: a, paramsB: b, seed: 5, ...mode, assignmentThread: counting, onProgress: (e) => events.push(`${e.pass}.${e.step}`) });
        assert.deepEqual(paired, alone, what);
        // A ResNet has many permutations that share no tensor; an MLP only its first and last hidden layer.
        if (label !== 'mlp') assert.ok(sent - before >= 5, `${what}: ${sent - before} assignments sent to the thread`);
        // Progress still arrives in step order.
        const sorted = [...events].sort((x, y) => Number(x.split('.')[0]) - Number(y.split('.')[0]) || Number(x.split('.')[1]) - Number(y.split('.')[1]));
        assert.deepEqual(events, sorted, what);
        assert.ok(alone.iterations >= 2, `${what}: ${alone.iterations} passes`);
      }
      assert.ok(sent > sentBefore, `${label}: no assignment was sent to the thread`);
    }
  } finally {
    await thread.close();
    await ort.dispose?.();
  }
});

test('a closed assignment thread rejects instead of hanging', async () => {
  const thread = createAssignmentThread();
  await thread.close();
  await assert.rejects(thread.solve(thread.allocate(4), 2, undefined), /closed|exited/);
});
