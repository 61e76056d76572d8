/**
 * The CLI as a user runs it (a child process): align, merge, barrier, report, spec and train on the real
 * fixtures; exit codes, outputs, written files, and inputs left byte-identical.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, readFileSync, writeFileSync, readdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { readSafetensorsFile } from '../src/io/safetensors-fs.js';
import { toParams } from '../src/io/safetensors.js';
import { maxAbsDiff } from '../src/tensor.js';

const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const fixtures = fileURLToPath(new URL('../../test/fixtures/models/', import.meta.url));
const slice = `${fixtures}fmnist_test256-images-idx3-ubyte.gz,${fixtures}fmnist_test256-labels-idx1-ubyte.gz`;

function run(args: string[]) {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function hashes(dir: string): Record<string, string> {
  return Object.fromEntries(readdirSync(dir).map((f) => [f, createHash('sha256').update(readFileSync(join(dir, f))).digest('hex')]));
}

/** A scratch copy of the fixtures, so a bug that writes to an input cannot damage the committed files. */
function workspace(): string {
  const dir = mkdtempSync(join(tmpdir(), 'rebasin-cli-'));
  for (const f of readdirSync(fixtures)) copyFileSync(join(fixtures, f), join(dir, f));
  return dir;
}

async function logits(model: string, x: Float32Array, n: number): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(model);
  const out = await s.run({ input: new ort.Tensor('float32', x, [n, 784]) });
  await s.release();
  return out.logits.data as Float32Array;
}

function probeInputs(n: number): Float32Array {
  return Float32Array.from({ length: n * 784 }, (_, i) => ((i * 7919) % 256) / 255);
}

test('align writes a B that computes what B computes, for ONNX (embedded and external data) and safetensors', async () => {
  const dir = workspace();
  try {
    const before = hashes(dir);
    const x = probeInputs(8);
    for (const [a, b, out] of [
      ['mlp_a.onnx', 'mlp_b.onnx', 'b_aligned.onnx'],
      ['mlp_a.ext.onnx', 'mlp_b.onnx', 'b_aligned2.onnx'],
    ]) {
      const outPath = join(dir, out);
      const r = run(['align', join(dir, a), join(dir, b), '-o', outPath, '--perms', join(dir, 'perms.json')]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /fc1 +128 units/);
      const diff = maxAbsDiff(await logits(join(dir, b), x, 8), await logits(outPath, x, 8));
      assert.ok(diff <= 1e-4, `aligned B differs from B by ${diff}`);
      const perms = JSON.parse(readFileSync(join(dir, 'perms.json'), 'utf8'));
      assert.deepEqual(Object.keys(perms).sort(), ['fc1', 'fc2']);
    }
    // safetensors in, safetensors out, same keys and dtypes.
    const out = join(dir, 'b_aligned.safetensors');
    const r = run(['align', join(dir, 'mlp_a.safetensors'), join(dir, 'mlp_b.safetensors'), '-o', out, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const summary = JSON.parse(r.stdout);
    assert.ok(summary.objectiveAfter > summary.objectiveBefore);
    const orig = readSafetensorsFile(join(dir, 'mlp_b.safetensors'));
    const aligned = readSafetensorsFile(out);
    assert.deepEqual([...aligned.order].sort(), [...orig.order].sort());
    for (const k of orig.order) assert.equal(aligned.tensors[k].dtype, orig.tensors[k].dtype);
    assert.deepEqual(aligned.metadata, orig.metadata);
    // --low-memory (tensor by tensor) writes the same bytes as the in-memory path, for a ResNet with BatchNorm.
    const whole = join(dir, 'rb_whole.safetensors');
    const streamed = join(dir, 'rb_streamed.safetensors');
    assert.equal(run(['align', join(dir, 'resnet_a.safetensors'), join(dir, 'resnet_b.safetensors'), '-o', whole]).code, 0);
    const low = run(['align', join(dir, 'resnet_a.safetensors'), join(dir, 'resnet_b.safetensors'), '-o', streamed, '--low-memory']);
    assert.equal(low.code, 0, low.stderr);
    assert.deepEqual(readFileSync(streamed), readFileSync(whole));
    // --low-memory reads ONNX too (test/stream-onnx.test.ts), but both models must be of one format.
    const mixed = run(['align', join(dir, 'mlp_a.onnx'), join(dir, 'mlp_b.safetensors'), '-o', join(dir, 'x.onnx'), '--low-memory']);
    assert.equal(mixed.code, 2);
    assert.match(mixed.stderr, /mix formats/);
    // Every input is byte-identical afterwards.
    const after = hashes(dir);
    for (const [f, h] of Object.entries(before)) assert.equal(after[f], h, `${f} changed`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('merge writes the midpoint of A and aligned B; the naive merge is worse on real data', () => {
  const dir = workspace();
  try {
    const aligned = join(dir, 'merged.onnx');
    const naive = join(dir, 'naive.onnx');
    assert.equal(run(['merge', join(dir, 'mlp_a.onnx'), join(dir, 'mlp_b.onnx'), '-o', aligned]).code, 0);
    assert.equal(run(['merge', join(dir, 'mlp_a.onnx'), join(dir, 'mlp_b.onnx'), '-o', naive, '--no-align']).code, 0);
    const lossOf = (model: string) => {
      const r = run(['barrier', model, model, '--data', slice, '--points', '1', '--json']);
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout).naive.curve[0].loss as number;
    };
    const [merged, plain, a] = [lossOf(aligned), lossOf(naive), lossOf(join(dir, 'mlp_a.onnx'))];
    assert.ok(merged < plain, `aligned merge loss ${merged} vs naive merge ${plain}`);
    assert.ok(merged < a + 0.5, `aligned merge loss ${merged} vs A ${a}`);
    // Three models: the uniform average of the aligned models, written as safetensors.
    const three = join(dir, 'three.safetensors');
    const r = run(['merge', join(dir, 'mlp_a.safetensors'), join(dir, 'mlp_b.safetensors'), join(dir, 'mlp_a.safetensors'), '-o', three]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(existsSync(three));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('barrier and report measure the real pair; report writes JSON and HTML; --check passes', () => {
  const dir = workspace();
  try {
    const r = run(['barrier', join(dir, 'mlp_a.onnx'), join(dir, 'mlp_b.onnx'), '--data', slice, '--points', '10', '--align', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    const pytorch = JSON.parse(readFileSync(join(dir, 'mlp_interp.expected.json'), 'utf8')).test256;
    assert.ok(Math.abs(j.naive.barrier.loss - pytorch.barrier) < 1e-4);
    assert.ok(j.aligned.barrier.loss < 0.25 * j.naive.barrier.loss);
    const rep = run(['report', join(dir, 'mlp_a.onnx'), join(dir, 'mlp_b.onnx'), '--data', slice, '--points', '6', '--json', join(dir, 'r.json'), '--html', join(dir, 'r.html'), '--check']);
    assert.equal(rep.code, 0, rep.stderr);
    assert.match(rep.stdout, /verdict: barrier collapsed/);
    const saved = JSON.parse(readFileSync(join(dir, 'r.json'), 'utf8'));
    assert.equal(saved.report.naive.curve.length, 7);
    assert.match(readFileSync(join(dir, 'r.html'), 'utf8'), /rebasin-data/);
    // B is A under another name: the align-to-self check applies and passes.
    copyFileSync(join(dir, 'mlp_a.onnx'), join(dir, 'copy_of_a.onnx'));
    const self = run(['report', join(dir, 'mlp_a.onnx'), join(dir, 'copy_of_a.onnx'), '--data', slice, '--points', '2', '--check']);
    assert.equal(self.code, 0, self.stderr);
    assert.match(self.stdout, /PASS {4}align-to-self/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('spec prints the derived spec; its JSON round-trips through --spec FILE', () => {
  const dir = workspace();
  try {
    const table = run(['spec', join(dir, 'resnet_a.onnx')]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /permutation\s+size/);
    const json = run(['spec', join(dir, 'mlp_a.safetensors'), '--json']);
    assert.equal(json.code, 0);
    writeFileSync(join(dir, 'spec.json'), json.stdout);
    const again = run(['spec', join(dir, 'mlp_a.safetensors'), '--spec', join(dir, 'spec.json'), '--json']);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(JSON.parse(again.stdout).axes, JSON.parse(json.stdout).axes);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('train writes an ONNX model that ONNX Runtime runs and a safetensors twin', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rebasin-train-'));
  try {
    const onnx = join(dir, 'm.onnx');
    const r = run(['train', '--data', 'synthetic:600', '--hidden', '8,8', '--epochs', '5', '--lr', '0.01', '--batch', '32', '-o', onnx]);
    assert.equal(r.code, 0, r.stderr);
    const st = join(dir, 'm.safetensors');
    assert.equal(run(['train', '--data', 'synthetic:600', '--hidden', '8,8', '--epochs', '5', '--lr', '0.01', '--batch', '32', '-o', st]).code, 0);
    const params = toParams(readSafetensorsFile(st)).params;
    assert.deepEqual(Object.keys(params).sort(), ['fc1.bias', 'fc1.weight', 'fc2.bias', 'fc2.weight', 'fc3.bias', 'fc3.weight']);
    const s = await ort.InferenceSession.create(onnx);
    const x = Float32Array.from([0, 2, -1.7, -1, 1.7, -1]);
    const out = await s.run({ input: new ort.Tensor('float32', x, [3, 2]) });
    // Points at the three cluster centres are classified as their clusters.
    const y = out.logits.data as Float32Array;
    const argmax = [0, 1, 2].map((i) => [0, 1, 2].reduce((best, c) => (y[i * 3 + c] > y[i * 3 + best] ? c : best), 0));
    assert.deepEqual(argmax, [0, 1, 2]);
    await s.release();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad inputs: exit 2, one clear line, inputs untouched', () => {
  const dir = workspace();
  try {
    writeFileSync(join(dir, 'corrupt.onnx'), readFileSync(join(dir, 'mlp_a.onnx')).subarray(0, 5000));
    writeFileSync(join(dir, 'notes.txt'), 'hello');
    writeFileSync(join(dir, 'spec.json'), run(['spec', join(dir, 'mlp_a.onnx'), '--json']).stdout);
    const before = hashes(dir);
    const a = join(dir, 'mlp_a.onnx');
    const cases: [string[], RegExp][] = [
      [['align', join(dir, 'missing.onnx'), a, '-o', join(dir, 'x.onnx')], /missing\.onnx: no such file/],
      [['align', a, join(dir, 'resnet_b.onnx'), '-o', join(dir, 'x.onnx')], /resnet_b\.onnx|not in|does not have|shape/],
      [['align', a, join(dir, 'corrupt.onnx'), '-o', join(dir, 'x.onnx')], /corrupt\.onnx/],
      [['align', a, join(dir, 'notes.txt'), '-o', join(dir, 'x.onnx')], /notes\.txt: not a (safetensors or ONNX|valid ONNX) model/],
      [['align', a, join(dir, 'mlp_b.onnx'), '-o', a], /is the input file/],
      [['align', a, join(dir, 'mlp_b.onnx'), '-o', join(dir, 'x.onnx'), '--spec', join(dir, 'notes.txt')], /notes\.txt/],
      [['merge', a, join(dir, 'mlp_b.safetensors'), '-o', join(dir, 'x.onnx')], /mix formats/],
      [['barrier', a, join(dir, 'mlp_b.onnx'), '--data', join(dir, 'notes.txt')], /notes\.txt/],
      // Outputs never land on an input: external data, a spec file, a dataset file, or another output.
      [['align', join(dir, 'mlp_a.ext.onnx'), join(dir, 'mlp_b.onnx'), '-o', join(dir, 'x.onnx'), '--perms', join(dir, 'mlp_a.ext.onnx.data')], /is the input file/],
      [['align', a, join(dir, 'mlp_b.onnx'), '-o', join(dir, 'x.onnx'), '--perms', join(dir, 'x.onnx')], /two outputs/],
      [['align', a, join(dir, 'mlp_b.onnx'), '-o', join(dir, 'spec.json'), '--spec', join(dir, 'spec.json')], /is the input file/],
      [['align', a, join(dir, 'mlp_b.onnx'), '-o', join(dir, 'x.gz')], /name the output \*\.onnx/],
      [['merge', join(dir, 'mlp_a.safetensors'), join(dir, 'mlp_b.safetensors'), '-o', join(dir, 'merged.bin')], /name the output \*\.safetensors/],
      [['align', join(dir, 'mlp_a.ext.onnx'), join(dir, 'mlp_a.ext.onnx'), '-o', join(dir, 'y.onnx'), '--perms', join(dir, 'y.onnx.data')], /two outputs/],
      [['report', join(dir, 'mlp_a.ext.onnx'), join(dir, 'mlp_b.onnx'), '--data', slice, `--json=${join(dir, 'mlp_a.ext.onnx.data')}`], /is the input file/],
      [['report', a, join(dir, 'mlp_b.onnx'), '--data', slice, '--html', join(dir, 'r.html'), '--json', join(dir, 'r.html')], /two outputs/],
      [['merge', a, join(dir, 'mlp_b.onnx'), '--data', `${join(dir, 'fmnist_test256-images-idx3-ubyte.gz')},${join(dir, 'fmnist_test256-labels-idx1-ubyte.gz')}`, '-o', join(dir, 'fmnist_test256-labels-idx1-ubyte.gz')], /is the input file/],
      [['train', '--data', `${join(dir, 'fmnist_test256-images-idx3-ubyte.gz')},${join(dir, 'fmnist_test256-labels-idx1-ubyte.gz')}`, '-o', join(dir, 'fmnist_test256-labels-idx1-ubyte.gz')], /is the input file|must end in/],
    ];
    for (const [args, message] of cases) {
      const r = run(args);
      assert.equal(r.code, 2, `${args.join(' ')}: exit ${r.code}, ${r.stderr}`);
      assert.match(r.stderr, message);
      assert.equal(r.stderr.trim().split('\n').length, 1, `more than one line: ${r.stderr}`);
    }
    const after = hashes(dir);
    for (const [f, h] of Object.entries(before)) assert.equal(after[f], h, `${f} changed`);
    assert.ok(!existsSync(join(dir, 'x.onnx')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
