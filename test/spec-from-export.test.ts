/**
 * --spec EXPORT.onnx: a state dict's spec mapped from an ONNX export of the same network (permutation-spec/from-export.ts).
 *
 * The oracle is ONNX Runtime on an export that keeps every state-dict name (BatchNorm unfolded): the state
 * dict permuted by the mapped spec (random permutations) is written into that graph and run; its logits must
 * be the unpermuted model's, which are PyTorch's own (expected.json). The spec itself is mapped from the
 * *folded* export, whose weights are anonymous and whose BatchNorm tensors are gone. A wrongly placed
 * BatchNorm changes the logits (checked below), so the oracle can fail.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { readModel, type ModelFile } from '../src/cli/model-file.js';
import { resolveSpec } from '../src/cli/resolve.js';
import { applyPermutation } from '../src/permute.js';
import { randomSpecPerms } from '../src/permutation-spec/heads.js';
import { permSizes, specFromAxes, type PermutationSpec } from '../src/permutation-spec/spec.js';
import { builtinSpec } from '../src/permutation-spec/auto.js';
import { serializeOnnx, withInitializers, type OnnxModel } from '../src/io/onnx.js';
import type { Params, Tensor } from '../src/tensor.js';

const exportDir = fileURLToPath(new URL('../../test/fixtures/export/', import.meta.url));
const modelDir = fileURLToPath(new URL('../../test/fixtures/models/', import.meta.url));
const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const expected = JSON.parse(readFileSync(join(exportDir, 'resnet20.expected.json'), 'utf8')) as {
  input_shape: number[];
  input: number[];
  logits_a: number[];
  logits_b: number[];
};

/** Logits of `graph` with the state dict's tensors written into its same-named initializers. */
async function logits(graph: OnnxModel, params: Params, input: Float32Array, shape: readonly number[]): Promise<Float32Array> {
  const own: Record<string, Tensor> = {};
  for (const [name, t] of Object.entries(params)) if (Object.hasOwn(graph.initializers, name) && t.data.length > 1) own[name] = t;
  const session = await ort.InferenceSession.create(serializeOnnx(withInitializers(graph, own)));
  try {
    const out = await session.run({ input: new ort.Tensor('float32', input, [...shape]) });
    return out.logits.data as Float32Array;
  } finally {
    await session.release();
  }
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function scrambled(spec: PermutationSpec, params: Params, seed: number): Params {
  return applyPermutation(spec, randomSpecPerms(spec, permSizes(spec, params), seed), params);
}

/** The spec's partition of state-dict axes: which axes share a permutation (names aside). */
function partition(spec: PermutationSpec): string[] {
  return Object.values(spec.permToAxes)
    .map((axes) => axes.map((r) => `${r.tensor}:${r.axis}`).sort().join(' '))
    .sort();
}

const probe = Float32Array.from(expected.input);

test('ResNet-20 state dict (.pt, names no built-in spec knows) from its folded export: permuting keeps PyTorch\'s logits', async () => {
  const a = readModel(join(exportDir, 'resnet20-a.pt'));
  const resolved = resolveSpec(join(exportDir, 'resnet20-a.onnx'), [a]);
  const spec = resolved.spec;
  // Every state-dict tensor with more than one entry is placed; only head.bias (the logits) and the scalars stay.
  const unplaced = Object.keys(a.params).filter((t) => a.params[t].data.length > 1 && !(resolved.spec.axesToPerm[t] ?? []).some((p) => p !== null));
  assert.deepEqual(unplaced, ['head.bias']);
  // 128 state-dict entries; the 21 integer num_batches_tracked are kept aside as they are (not float params).
  assert.equal(Object.keys(a.params).length, 107);
  const byHow = Object.values(resolved.fromExport!.matches).map((m) => m.how);
  assert.ok(byHow.filter((h) => h === 'batchnorm').length === 4 * 21, 'all 21 BatchNorm modules placed by the conv they follow');

  const oracle = readModel(join(exportDir, 'resnet20-a.bn.onnx')).onnx!;
  const before = await logits(oracle, a.params, probe, expected.input_shape);
  assert.ok(maxDiff(before, expected.logits_a) < 1e-5, 'the unfolded export runs the state dict as PyTorch does');
  for (const seed of [1, 2, 3]) {
    const after = await logits(oracle, scrambled(spec, a.params, seed), probe, expected.input_shape);
    assert.ok(maxDiff(after, expected.logits_a) < 1e-5, `seed ${seed}: max |Δ logits| ${maxDiff(after, expected.logits_a)}`);
  }

  // The oracle notices a BatchNorm placed after the wrong conv: give body.7.n1 the channel space of body.8.c1.
  const axes: Record<string, (string | null)[]> = {};
  for (const [t, p] of Object.entries(spec.axesToPerm)) axes[t] = [...p];
  for (const s of ['weight', 'bias', 'running_mean', 'running_var']) axes[`body.7.n1.${s}`] = [...axes['body.8.n1.weight']];
  assert.notEqual(axes['body.8.n1.weight'][0], spec.axesToPerm['body.7.n1.weight'][0]);
  const wrong = specFromAxes(axes);
  const broken = await logits(oracle, scrambled(wrong, a.params, 1), probe, expected.input_shape);
  assert.ok(maxDiff(broken, expected.logits_a) > 1e-3, `a misplaced BatchNorm changes the logits: ${maxDiff(broken, expected.logits_a)}, ${Math.max(...expected.logits_a.map(Math.abs))}`);
});

test('the export of model A gives model B its spec (values are read from A); B alone is refused, naming the tensors', async () => {
  const a = readModel(join(exportDir, 'resnet20-a.pt'));
  const b = readModel(join(exportDir, 'resnet20-b.pt'));
  const exportA = join(exportDir, 'resnet20-a.onnx');
  const both = resolveSpec(exportA, [b, a]).spec;
  assert.deepEqual(partition(both), partition(resolveSpec(exportA, [a]).spec));
  const oracle = readModel(join(exportDir, 'resnet20-a.bn.onnx')).onnx!;
  const after = await logits(oracle, scrambled(both, b.params, 7), probe, expected.input_shape);
  assert.ok(maxDiff(after, expected.logits_b) < 1e-5);
  // A's export and B's weights alone: several [4, 4, 3, 3] convs whose values match none of B's.
  assert.throws(() => resolveSpec(exportA, [b]), /export weights and \d+ tensors of .*resnet20-b\.pt have shape \[\d+, \d+, 3, 3\] \('onnx::Conv_\d+'.*'body\.\d\.c\d\.weight'.*weights are not this model's/);
  // Shape-only stand-ins (--low-memory) say so.
  const stub: ModelFile = { ...a, params: Object.fromEntries(Object.entries(a.params).map(([k, t]) => [k, { shape: t.shape, data: new Float32Array(0) }])) };
  assert.throws(() => resolveSpec(exportA, [stub]), /with --low-memory the values are not read/);
});

test('the Fashion-MNIST ResNet pair (safetensors) from its folded export: same partition as the built-in resnet spec, logits kept', async () => {
  const a = readModel(join(modelDir, 'resnet_a.safetensors'));
  const b = readModel(join(modelDir, 'resnet_b.safetensors'));
  const resolved = resolveSpec(join(modelDir, 'resnet_a.onnx'), [a, b]);
  // An independent spec written from the names (permutation-spec/resnet.ts) groups exactly the same axes.
  assert.deepEqual(partition(resolved.spec), partition(builtinSpec('resnet', a.params)));
  // Fixed spaces are reported in the state dict's names.
  assert.deepEqual(resolved.fixed?.map((f) => f.axes.map((r) => `${r.tensor}:${r.axis}`)), [['conv1.weight:1'], ['linear.weight:0', 'linear.bias:0']]);
  // The BatchNorm-keeping export names every tensor; its shortcut.1.bias is an Identity alias of bn2.bias.
  const oracle = readModel(join(modelDir, 'resnet_a.bn.onnx')).onnx!;
  const images = new Float32Array(8 * 784).map((_, i) => ((i * 7919) % 256) / 255);
  const before = await logits(oracle, a.params, images, [8, 1, 28, 28]);
  const after = await logits(oracle, scrambled(resolved.spec, a.params, 11), images, [8, 1, 28, 28]);
  assert.ok(maxDiff(before, after) < 1e-4, `max |Δ logits| ${maxDiff(before, after)}`);
  // The unfolded export maps by name and alias alone, to the same partition.
  const byName = resolveSpec(join(modelDir, 'resnet_a.bn.onnx'), [a]);
  assert.deepEqual(partition(byName.spec), partition(resolved.spec));
  assert.equal(byName.fromExport!.matches['layer2.0.shortcut.1.bias'].how, 'alias');
});

test('renamed tensors (no name in common with the export) are placed by shape and values', () => {
  const a = readModel(join(modelDir, 'resnet_a.safetensors'));
  const rename = (t: string) => `net.${t.split('.').slice(0, -1).reverse().join('_')}.${t.split('.').at(-1)}`;
  const renamed: ModelFile = { ...a, params: Object.fromEntries(Object.entries(a.params).map(([k, t]) => [rename(k), t])) };
  const spec = resolveSpec(join(modelDir, 'resnet_a.onnx'), [renamed]).spec;
  const renamedPartition = partition(builtinSpec('resnet', a.params)).map((line) =>
    line.split(' ').map((ax) => `${rename(ax.split(':')[0])}:${ax.split(':')[1]}`).sort().join(' '),
  ).sort();
  assert.deepEqual(partition(spec), renamedPartition);
});

test('CLI: align two .pt state dicts with --spec EXPORT.onnx; the aligned B computes what B computes', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rebasin-export-'));
  try {
    const out = join(dir, 'b-aligned.safetensors');
    const r = spawnSync(process.execPath, [cli, 'align', join(exportDir, 'resnet20-a.pt'), join(exportDir, 'resnet20-b.pt'), '--spec', join(exportDir, 'resnet20-a.onnx'), '-o', out], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /spec from ONNX export .*resnet20-a\.onnx: tensors placed \d+ by name, \d+ by shape, \d+ by values, 84 by the conv they follow/);
    assert.match(r.stdout, /aligned .*resnet20-b\.pt/);
    const aligned = readModel(out);
    const b = readModel(join(exportDir, 'resnet20-b.pt'));
    assert.ok(Object.keys(b.params).some((t) => maxDiff(aligned.params[t].data, b.params[t].data) > 0), 'alignment moved some units');
    const oracle = readModel(join(exportDir, 'resnet20-a.bn.onnx')).onnx!;
    const got = await logits(oracle, aligned.params, probe, expected.input_shape);
    assert.ok(maxDiff(got, expected.logits_b) < 1e-5, `max |Δ logits| ${maxDiff(got, expected.logits_b)}`);
    // A safetensors file is not a spec.
    const bad = spawnSync(process.execPath, [cli, 'spec', join(modelDir, 'resnet_a.safetensors'), '--spec', join(modelDir, 'resnet_b.safetensors')], { encoding: 'utf8' });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /a spec file is a rebasin-spec JSON file or an ONNX export of the network, not a safetensors file/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('MatMul exports (transposed anonymous weights, [8, 8] square among them): placed transposed, as the names-based MLP spec', () => {
  const m = readModel(join(exportDir, 'mlp3d.pt'));
  const resolved = resolveSpec(join(exportDir, 'mlp3d.onnx'), [m]);
  assert.deepEqual(partition(resolved.spec), partition(builtinSpec('mlp', m.params)));
  for (const w of ['0.weight', '2.weight', '4.weight']) assert.equal((resolved.fromExport!.matches[w] as { transposed: boolean }).transposed, true, w);
  // Independent forward pass: relu(x·W0ᵀ + b0) … on the state dict itself, before and after permuting.
  const forward = (p: Params, x: Float32Array): Float32Array => {
    let h = x;
    for (const [k, relu] of [[0, true], [2, true], [4, false]] as const) {
      const w = p[`${k}.weight`];
      const b = p[`${k}.bias`];
      const [out, inp] = w.shape;
      const y = new Float32Array(out);
      for (let o = 0; o < out; o++) {
        let s = b.data[o];
        for (let i = 0; i < inp; i++) s += w.data[o * inp + i] * h[i];
        y[o] = relu ? Math.max(0, s) : s;
      }
      h = y;
    }
    return h;
  };
  const x = Float32Array.from([0.3, -1.2, 0.8, 0.1, -0.5, 2.0]);
  assert.ok(maxDiff(forward(m.params, x), forward(scrambled(resolved.spec, m.params, 5), x)) < 1e-6);
});
