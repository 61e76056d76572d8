/**
 * Every command's --json, as the CLI prints it (a child process on the committed fixtures), against the
 * JSON Schema files in schema/ (validated by test/helpers/json-schema.ts, itself tested first), and the
 * conventions the schemas cannot state: one churn shape in align and report, `points` counting the
 * points, fractions not percent.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { schemaValidator } from './helpers/json-schema.js';
import { REPORT_DATA_ID } from '../src/report/html.js';

const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const schemaDir = fileURLToPath(new URL('../../schema/', import.meta.url));
const fx = fileURLToPath(new URL('../../test/fixtures/models/', import.meta.url));
const slice = `${fx}fmnist_test256-images-idx3-ubyte.gz,${fx}fmnist_test256-labels-idx1-ubyte.gz`;
const validate = schemaValidator(schemaDir);

function run(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, '--quiet', ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function json(args: string[]): Record<string, any> {
  const r = run(args);
  assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

function assertValid(file: string, value: unknown): void {
  const errors = validate(file, value);
  assert.deepEqual(errors, [], `${file}:\n${errors.slice(0, 10).join('\n')}`);
}

test('the schema validator catches what it claims to check', () => {
  const ok = { format: 'rebasin-report', version: 1, data: { name: 'x', count: 1, preprocessing: 'none' }, report: {} };
  const errs = validate('report.json', ok);
  assert.ok(errs.some((e) => e.includes("missing required 'title'")), errs.join('\n'));
  assert.deepEqual(validate('common.json', {}), []); // no constraints at the top of common.json
  const data = (v: unknown) => validate('report.json', { ...ok, data: v }).filter((e) => e.startsWith('$.data'));
  assert.deepEqual(data({ name: 'x', count: 1, preprocessing: 'p' }), []);
  assert.match(data({ name: 'x', count: 1.5, preprocessing: 'p' }).join(), /expected integer, got number/);
  assert.match(data({ name: 'x', count: 0, preprocessing: 'p' }).join(), /< minimum 1/);
  assert.match(data({ name: 'x', count: 1 }).join(), /missing required 'preprocessing'/);
  assert.match(data({ name: 'x', count: 1, preprocessing: 'p', extra: 1 }).join(), /unexpected property 'extra'/);
  assert.match(validate('report.json', { ...ok, version: 2 }).join(), /expected 1, got 2/);
  assert.match(validate('report.json', { ...ok, format: 'rebasin-align' }).join(), /expected "rebasin-report"/);
  const merge = (v: unknown) => validate('merge.json', { data: v }).filter((e) => e.startsWith('$.data'));
  assert.deepEqual(merge(null), []);
  assert.match(merge(3).join(), /matches no anyOf branch/);
  const align = (churn: unknown) => validate('align.json', { churn }).filter((e) => e.startsWith('$.churn'));
  assert.deepEqual(align([{ name: 'fc1', size: 3, churn: 0.5 }]), []);
  assert.match(align({ fc1: 0.5 }).join(), /expected array, got object/);
  assert.match(align([{ name: 'fc1', size: 3, churn: 50 }]).join(), /> maximum 1/);
  // Every schema file loads and uses only supported keywords.
  for (const f of readdirSync(schemaDir).filter((n) => n.endsWith('.json'))) validate(f, {});
});

test('every command\'s --json matches its schema; churn, points and fractions agree across commands', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rebasin-schema-'));
  try {
    const [a, b] = [`${fx}mlp_a.onnx`, `${fx}mlp_b.onnx`];
    const data = ['--data', slice, '--limit', '64', '--probe', '64'];

    const align = json(['align', a, b, '-o', join(dir, 'b_aligned.onnx'), '--json']);
    assertValid('align.json', align);

    const report = json(['report', a, b, ...data, '--points', '4', '--repair', '--json', '--html', join(dir, 'r.html')]);
    assertValid('report.json', report);
    const r = report.report;
    // One churn shape: the same pair, method and seed give align's churn exactly.
    assert.deepEqual(r.churn, align.churn);
    assert.deepEqual(r.churn.map((c: { name: string }) => c.name), ['fc1', 'fc2']);
    // points counts the points; the repaired path is the aligned one, point for point.
    assert.equal(r.points, 5);
    assert.equal(r.naive.curve.length, 5);
    assert.equal(r.repaired.curve.length, 5);
    assert.equal(r.repaired.of, 'aligned');
    // Fractions: the reduction as (before - after) / before, accuracy in [0, 1].
    assert.ok(Math.abs(r.reduction - (r.naive.barrier.loss - r.aligned.barrier.loss) / r.naive.barrier.loss) < 1e-12);
    assert.ok(r.reduction > 0.5 && r.reduction <= 1, `reduction ${r.reduction}`);
    const html = readFileSync(join(dir, 'r.html'), 'utf8');
    const block = new RegExp(`<script type="application/json" id="${REPORT_DATA_ID}">([^<]*)</script>`).exec(html);
    assert.ok(block);
    assertValid('html-report.json', JSON.parse(block[1]));

    const barrier = json(['barrier', a, b, ...data, '--points', '2', '--align', '--repair', '--json']);
    assertValid('barrier.json', barrier);
    assert.equal(barrier.points, 3);
    assert.equal(barrier.repaired.of, 'aligned');
    const plain = json(['barrier', a, b, ...data, '--points', '1', '--json']);
    assertValid('barrier.json', plain);
    assert.equal(plain.aligned, null);

    const merge = json(['merge', a, b, '-o', join(dir, 'merged.onnx'), ...data, '--repair', '--json']);
    assertValid('merge.json', merge);
    assert.equal(merge.warning, null);
    const bare = json(['merge', `${fx}mlp_a.safetensors`, `${fx}mlp_b.safetensors`, '-o', join(dir, 'merged.safetensors'), '--json']);
    assertValid('merge.json', bare);

    const demo = json(['demo', '--points', '2', '--epochs', '2', '--json']);
    assertValid('demo.json', demo);
    assert.equal(demo.reports[0].points, 3);

    assertValid('spec.json', json(['spec', `${fx}resnet_a.onnx`, '--json']));
    assertValid('spec.json', json(['spec', `${fx}mlp_a.safetensors`, '--json']));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
