/**
 * align --perms-in: permutations read back from a file are checked against the spec and applied instead of
 * matching. Oracle: the file align --perms wrote gives byte for byte the model that matching wrote; every
 * malformed file is refused naming what is wrong; error lines share one prefix.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { permsFromJson } from '../src/permutation-spec/perms-file.js';
import { specFromAxes } from '../src/permutation-spec/spec.js';

const models = fileURLToPath(new URL('../../test/fixtures/models/', import.meta.url));
const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const rebasin = (args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });

test('align --perms-in with the file align --perms wrote reproduces the aligned model byte for byte; malformed files are refused', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rebasin-perms-in-'));
  try {
    const [a, b] = [join(models, 'mlp_a.safetensors'), join(models, 'mlp_b.safetensors')];
    const perms = join(dir, 'perms.json');
    const matched = rebasin(['align', a, b, '-o', join(dir, 'matched.safetensors'), '--perms', perms]);
    assert.equal(matched.status, 0, matched.stderr);
    const applied = rebasin(['align', a, b, '-o', join(dir, 'applied.safetensors'), '--perms-in', perms]);
    assert.equal(applied.status, 0, applied.stderr);
    assert.match(applied.stdout, /permutations from .*perms\.json/);
    assert.doesNotMatch(applied.stdout, /pass/, 'no matching ran');
    assert.deepEqual(readFileSync(join(dir, 'applied.safetensors')), readFileSync(join(dir, 'matched.safetensors')));
    // The same through --low-memory (streamed writer).
    const streamed = rebasin(['align', a, b, '-o', join(dir, 'streamed.safetensors'), '--perms-in', perms, '--low-memory']);
    assert.equal(streamed.status, 0, streamed.stderr);
    assert.deepEqual(readFileSync(join(dir, 'streamed.safetensors')), readFileSync(join(dir, 'matched.safetensors')));

    const good = JSON.parse(readFileSync(perms, 'utf8')) as Record<string, number[]>;
    const name = Object.keys(good)[0];
    const cases: [string, unknown, RegExp][] = [
      ['short', { ...good, [name]: good[name].slice(1) }, new RegExp(`'${name}' must be an array of 128 unit indices, got 127`)],
      ['twice', { ...good, [name]: [good[name][1], ...good[name].slice(1)] }, new RegExp(`'${name}' is not a permutation: unit ${good[name][1]} appears twice`)],
      ['range', { ...good, [name]: [128, ...good[name].slice(1)] }, /\[0\] is 128, not a unit index from 0 to 127/],
      ['extra', { ...good, 'fc9': [0] }, /permutation 'fc9' not in the spec/],
      ['missing', { [name]: good[name] }, /no permutation 'fc2' \(128 units\), which the spec has/],
    ];
    for (const [label, value, message] of cases) {
      const file = join(dir, `${label}.json`);
      writeFileSync(file, JSON.stringify(value));
      const r = rebasin(['align', a, b, '-o', join(dir, `${label}.safetensors`), '--perms-in', file]);
      assert.equal(r.status, 2, `${label}: ${r.stderr}`);
      assert.match(r.stderr, message, label);
      assert.match(r.stderr, /^rebasin: /, label);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('perms files: a report --json document is read through its perms field; head groups must stay whole', () => {
  const flat = specFromAxes({ w: ['p', null] });
  assert.deepEqual(Array.from(permsFromJson(JSON.stringify({ format: 'rebasin-report', perms: { p: [1, 0, 2] } }), 'r.json', flat, { p: 3 }).p), [1, 0, 2]);
  // The shape `report --json` really writes (schema/report.json): the report, perms inside, under "report".
  const reportDoc = { format: 'rebasin-report', version: 1, data: 'fashion-mnist', report: { perms: { p: [2, 0, 1] }, churn: [] } };
  assert.deepEqual(Array.from(permsFromJson(JSON.stringify(reportDoc), 'r.json', flat, { p: 3 }).p), [2, 0, 1]);
  const heads = specFromAxes({ q: ['qk', null], v: ['v', null] }, { attn: { count: 2, perms: ['qk', 'v'] } });
  const whole = { qk: [2, 3, 1, 0], v: [3, 2, 0, 1] };
  assert.deepEqual(Array.from(permsFromJson(JSON.stringify(whole), 'h.json', heads, { qk: 4, v: 4 }).v), [3, 2, 0, 1]);
  assert.throws(() => permsFromJson(JSON.stringify({ qk: [0, 2, 1, 3], v: [0, 1, 2, 3] }), 'h.json', heads, { qk: 4, v: 4 }), /'qk' \(head group 'attn', 2 heads of 2\) sends the units of head 0 to more than one head/);
  assert.throws(() => permsFromJson(JSON.stringify({ qk: [2, 3, 0, 1], v: [0, 1, 2, 3] }), 'h.json', heads, { qk: 4, v: 4 }), /head group 'attn': 'qk' moves head 0 to head 1 but 'v' to head 0/);
  assert.throws(() => permsFromJson('[1, 2]', 'x.json', flat, { p: 3 }), /expected an object of permutation name/);
  assert.throws(() => permsFromJson('{', 'x.json', flat, { p: 3 }), /x\.json: not JSON/);
});

test('every error line starts with "rebasin: " (commander usage errors and our own checks alike)', () => {
  for (const args of [['align', 'x.safetensors'], ['align', '--bogus', 'a', 'b', '-o', 'c'], ['nosuch'], ['align', 'a', 'b', '-o', 'c', '--max-iter', 'zero'], ['align', 'missing-a.safetensors', 'missing-b.safetensors', '-o', 'c.safetensors']]) {
    const r = rebasin(args);
    assert.equal(r.status, 2, args.join(' '));
    const first = r.stderr.split('\n')[0];
    assert.match(first, /^rebasin: /, `${args.join(' ')}: ${first}`);
  }
});
