/**
 * Issue 15's end to end: `rebasin report a.onnx b.onnx --method activation` on ViT pairs PyTorch exported,
 * in both attention styles (hand-written separate q/k/v, and nn.TransformerEncoderLayer's fused in_proj at
 * width 64), and `rebasin align` writing an aligned B. Oracles independent of the report's code: PyTorch's
 * own loss and accuracy of each model on the same 256 images (vit*.expected.json, written by make_vit.py),
 * and ONNX Runtime run here on the written aligned model against B.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { loadIdxPair } from '../src/data/load.js';
import { schemaValidator } from './helpers/json-schema.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const cli = join(root, 'dist/src/cli/main.js');
const vit = (f: string) => join(root, 'test/fixtures/vit', f);
const images = join(root, 'test/fixtures/models/fmnist_test256-images-idx3-ubyte.gz');
const labels = join(root, 'test/fixtures/models/fmnist_test256-labels-idx1-ubyte.gz');
const data = `${images},${labels}`;
const validate = schemaValidator(join(root, 'schema'));

function rebasin(...args: string[]): string {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env: { ...process.env, ORT_DISABLE_TELEMETRY: '1' } });
  assert.equal(r.status, 0, `rebasin ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

interface Expected { models: Record<string, { test256: { loss: number; accuracy: number } }> }

const PAIRS = [
  { style: 'separate q/k/v', a: 'vit_sep_a', b: 'vit_sep_b', expected: 'vit.expected.json' },
  { style: 'fused in_proj (nn.TransformerEncoderLayer), width 64', a: 'vit_fused64_a', b: 'vit_fused64_b', expected: 'vit64.expected.json' },
];

for (const pair of PAIRS) {
  test(`report --method activation on a PyTorch ViT pair (${pair.style}): PyTorch's endpoints, the barrier falls, heads kept whole`, () => {
    const out = JSON.parse(rebasin('report', vit(`${pair.a}.onnx`), vit(`${pair.b}.onnx`), '--method', 'activation', '--data', data, '--json', '--quiet'));
    assert.deepEqual(validate('report.json', out), []);
    const r = out.report;
    const torch = (JSON.parse(readFileSync(vit(pair.expected), 'utf8')) as Expected).models;
    // The evaluator against PyTorch on the same 256 images.
    for (const [end, name] of [['a', pair.a], ['b', pair.b]] as const) {
      assert.equal(r.endpoints[end].accuracy, torch[name].test256.accuracy, `${name} accuracy`);
      assert.ok(Math.abs(r.endpoints[end].loss - torch[name].test256.loss) < 1e-4, `${name} loss ${r.endpoints[end].loss} vs PyTorch ${torch[name].test256.loss}`);
    }
    assert.ok(r.aligned.barrier.loss < 0.9 * r.naive.barrier.loss, `barrier ${r.naive.barrier.loss} -> ${r.aligned.barrier.loss}: not reduced`);
    for (const c of r.checks) assert.equal(c.status, 'PASS', `${c.name}: ${c.detail ?? ''}`);
    // Every attention permutation moves whole heads: 4 heads, so d = size / 4 units stay together.
    const heads = r.churn.filter((c: { name: string }) => /attn/.test(c.name));
    assert.equal(heads.length, 4, 'two blocks, each a qk and a v permutation');
    for (const { name, size } of heads) {
      const sigma: number[] = r.perms[name];
      const d = size / 4;
      for (let h = 0; h < 4; h++) {
        const target = Math.floor(sigma[h * d] / d);
        for (let i = 0; i < d; i++) assert.equal(Math.floor(sigma[h * d + i] / d), target, `${name}: head ${h} split`);
      }
    }
  });
}

test('align --method activation writes a ViT (fused in_proj) that ONNX Runtime finds computing B\'s logits', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rebasin-vit-'));
  try {
    const out = join(dir, 'b_aligned.onnx');
    rebasin('align', vit('vit_fused64_a.onnx'), vit('vit_fused64_b.onnx'), '--method', 'activation', '--data', data, '-o', out, '--quiet');
    const x = loadIdxPair(images, labels);
    const feed = { input: new ort.Tensor('float32', x.inputs, [x.count, 1, 28, 28]) };
    const logits = async (path: string) => {
      const s = await ort.InferenceSession.create(path);
      try {
        return (await s.run(feed)).logits.data as Float32Array;
      } finally {
        await s.release();
      }
    };
    const [b, aligned] = [await logits(vit('vit_fused64_b.onnx')), await logits(out)];
    let worst = 0;
    for (let k = 0; k < b.length; k++) worst = Math.max(worst, Math.abs(b[k] - aligned[k]));
    assert.ok(worst < 1e-4, `aligned B's logits differ from B's by ${worst}`);
    // And it is not B itself: the weights moved.
    assert.notDeepEqual(readFileSync(out), readFileSync(vit('vit_fused64_b.onnx')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
