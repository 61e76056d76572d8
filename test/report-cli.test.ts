/**
 * The report's honesty as a user sees it (the CLI as a child process, on the committed narrow ResNet pair
 * with BatchNorm folded by the exporter, where weight matching does not help): the verdict names what
 * the numbers say, the hint follows the evidence, --repair measures the aligned path, and merge warns
 * on stderr (also with --quiet) when the merge it wrote is far worse than its parents.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { verdictOf } from '../src/measure/checks.js';

const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const fx = fileURLToPath(new URL('../../test/fixtures/models/', import.meta.url));
const data = ['--data', `${fx}fmnist_test256-images-idx3-ubyte.gz,${fx}fmnist_test256-labels-idx1-ubyte.gz`, '--limit', '128', '--probe', '64'];

function run(args: string[]) {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('report on a folded-BatchNorm ResNet pair: the verdict names the change, --repair is measured, the hint says what to try', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rebasin-report-cli-'));
  try {
    const out = join(dir, 'r.json');
    const r = run(['report', `${fx}resnet_a.onnx`, `${fx}resnet_b.onnx`, ...data, '--points', '2', '--repair', '--json', out]);
    assert.equal(r.code, 0, r.stderr);
    const rep = JSON.parse(readFileSync(out, 'utf8')).report;
    const [before, after] = [rep.naive.barrier.loss, rep.aligned.barrier.loss];
    assert.equal(rep.verdict, verdictOf(before, after));
    assert.match(r.stdout, new RegExp(`\\nverdict: barrier ${rep.verdict} `));
    // Weight matching does not remove this pair's barrier: the verdict must not claim it did.
    assert.ok(!['collapsed', 'no barrier to remove'].includes(rep.verdict), `${before} -> ${after}: ${rep.verdict}`);
    assert.equal(rep.hint, 'hint: this net has BatchNorm folded into its convolutions, whose activation statistics averaged weights lose: try --method activation --repair');
    assert.match(r.stdout, /\nhint: this net has BatchNorm folded/);
    // REPAIR on the aligned path, point for point, starting and ending at the aligned endpoints.
    assert.equal(rep.repaired.of, 'aligned');
    assert.equal(rep.repaired.curve.length, 3);
    assert.equal(rep.repaired.curve[0].loss, rep.aligned.curve[0].loss);
    assert.equal(rep.repaired.midpoint.without.loss, rep.aligned.curve[1].loss);
    assert.ok(rep.repaired.midpoint.with.loss < rep.repaired.midpoint.without.loss);
    assert.match(r.stdout, /with REPAIR \(sequential\) on the aligned path: barrier /);
    // Align-to-self ran on A (B is not A) and passed.
    assert.match(r.stdout, /PASS {4}align-to-self {12}all permutations are the identity/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('merge warns, once and also with --quiet, when the merge it wrote is far worse than its parents', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rebasin-merge-warn-'));
  try {
    // The naive average of the ResNet pair is at chance on this data.
    const bad = run(['--quiet', 'merge', `${fx}resnet_a.onnx`, `${fx}resnet_b.onnx`, '-o', join(dir, 'naive.onnx'), '--no-align', ...data, '--json']);
    assert.equal(bad.code, 0, bad.stderr);
    const lines = bad.stderr.trim().split('\n');
    assert.equal(lines.length, 1, bad.stderr);
    assert.match(lines[0], /^rebasin: warning: .*naive\.onnx: the merged model is far worse than its parents on this data: accuracy .*; merge with alignment \(without --no-align\)$/);
    const j = JSON.parse(bad.stdout);
    assert.equal(`rebasin: warning: ${join(dir, 'naive.onnx')}: ${j.warning}`, lines[0]);
    const merged = j.evaluation[j.evaluation.length - 1];
    const worst = Math.min(j.evaluation[0].accuracy, j.evaluation[1].accuracy);
    assert.ok(merged.accuracy < worst - (worst - 0.1) / 2, `merged ${merged.accuracy} vs worse parent ${worst}`);
    // The aligned MLP merge is close to its parents: no warning.
    const good = run(['--quiet', 'merge', `${fx}mlp_a.onnx`, `${fx}mlp_b.onnx`, '-o', join(dir, 'mlp.onnx'), ...data]);
    assert.equal(good.code, 0, good.stderr);
    assert.equal(good.stderr, '');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
