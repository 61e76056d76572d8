/**
 * Does REPAIR help a merged ViT? The midpoint θ(½) = ½·A + ½·P(B) of the trained fixture pairs
 * (test/fixtures/vit, both attention styles), aligned by weight and by activation matching, evaluated on
 * the Fashion-MNIST test set with the layers REPAIR corrects chosen four ways:
 *  - none: the plain merge;
 *  - mlp: the MLP hidden layers only (fc1: MatMul+Add before GELU);
 *  - matmul: every MatMul+Add by a weight (fc1, and q, k, v, the out-projection and fc2 where they are
 *    MatMuls);
 *  - plan: what `merge --repair` corrects (onnxRepairPlan: those, the patch-embedding Conv and any Gemm).
 * Statistics on the first `probe` test images (as `merge --repair --data` takes them), sequential mode.
 *
 *   node dist/bench/experiments/vit-repair.js [probe=1000] [limit=10000]
 */
import { readModels } from '../../src/cli/model-file.js';
import { resolveData, resolveRunner, resolveSpec } from '../../src/cli/resolve.js';
import { matchPerms } from '../../src/pipeline/alignment-report.js';
import { interpolate } from '../../src/measure/barrier.js';
import { applyPermutation } from '../../src/permute.js';
import { sliceDataset } from '../../src/data/dataset.js';
import { defaultMatmul } from '../../src/engine/ort-matmul.js';
import { onnxRepairPlan, onnxStats, type OnnxRepairLayer } from '../../src/merge/onnx-repair.js';
import { repairMerged } from '../../src/merge/repair.js';

const probeCount = Number(process.argv[2] ?? 1000);
const limit = Number(process.argv[3] ?? 10000);

for (const style of ['sep', 'fused']) {
  const paths = [`test/fixtures/vit/vit_${style}_a.onnx`, `test/fixtures/vit/vit_${style}_b.onnx`];
  const models = readModels(paths);
  const onnx = models[0].onnx!;
  const spec = resolveSpec('auto', models, { averages: true });
  const engine = await defaultMatmul();
  const data = resolveData('fashion-mnist', { limit, model: models[0] });
  const probeSet = sliceDataset(data, 0, probeCount);
  const probe = { inputs: probeSet.inputs, count: probeSet.count };
  const runner = await resolveRunner(models[0], spec, engine);
  const plan = onnxRepairPlan(onnx);
  const variants: [string, OnnxRepairLayer[]][] = [
    ['mlp', plan.layers.filter((l) => l.opType.startsWith('MatMul+Add ('))],
    ['matmul', plan.layers.filter((l) => l.opType.startsWith('MatMul'))],
    ['plan', plan.layers],
  ];
  const evaluate = async (p: Parameters<typeof runner.evaluate>[0]) => runner.evaluate(p, { inputs: data.inputs, labels: data.labels, count: data.count });
  const endA = await evaluate(models[0].params);
  const endB = await evaluate(models[1].params);
  console.log(`${style}: A loss ${endA.loss.toFixed(4)} acc ${(100 * endA.accuracy).toFixed(2)}%, B loss ${endB.loss.toFixed(4)} acc ${(100 * endB.accuracy).toFixed(2)}% (${data.count} test images, probe ${probeCount})`);
  for (const method of ['weight', 'activation'] as const) {
    const { perms } = await matchPerms({ method, a: models[0].params, b: models[1].params, spec: spec.spec, seed: 0, maxIter: 100, engine, runner, probe });
    const alignedB = applyPermutation(spec.spec, perms, models[1].params);
    const merged = interpolate(models[0].params, alignedB, 0.5);
    const plain = await evaluate(merged);
    const row = [`none ${plain.loss.toFixed(4)} / ${(100 * plain.accuracy).toFixed(2)}%`];
    for (const [label, layers] of variants) {
      const { stats, dispose } = await onnxStats(onnx, layers, probe);
      try {
        const r = await repairMerged({ merged, endpoints: [models[0].params, alignedB], alpha: 0.5, stats, layers });
        const e = await evaluate(r.params);
        row.push(`${label} (${layers.length}) ${e.loss.toFixed(4)} / ${(100 * e.accuracy).toFixed(2)}%`);
      } finally {
        await dispose();
      }
    }
    console.log(`  ${method} matching, midpoint loss / accuracy: ${row.join(', ')}`);
  }
  await runner.dispose?.();
}
