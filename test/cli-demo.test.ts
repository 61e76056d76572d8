import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

function run(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env: { ...process.env, ...env } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('rebasin demo prints the three reports, every check passes, weight matching collapses the barrier', () => {
  const t0 = Date.now();
  const r = run(['demo', '--seed', '0']);
  assert.equal(r.code, 0, r.stderr);
  for (const title of ['RUN 1 - weight matching', 'RUN 2 - activation matching', 'CHECK - align-to-self']) {
    assert.ok(r.stdout.includes(title), `missing ${title}`);
  }
  assert.equal((r.stdout.match(/FAIL/g) ?? []).length, 0);
  assert.equal((r.stdout.match(/PASS {4}permutation invariance/g) ?? []).length, 3);
  assert.match(r.stdout, /PASS {4}align-to-self/);
  assert.match(r.stdout, /verdict: barrier collapsed/);
  // stderr is not a TTY here: nothing but plain progress lines (one every few seconds, none in a short run).
  assert.equal(r.stderr.replace(/^.+: \d+\/\d+, \d+%, \d+ s\n/gm, ''), '');
  assert.ok(Date.now() - t0 < 30_000);
});

test('rebasin demo --json gives every number, and is deterministic for a seed', () => {
  const a = run(['demo', '--seed', '3', '--json', '--points', '8']);
  const b = run(['demo', '--seed', '3', '--json', '--points', '8']);
  assert.equal(a.code, 0, a.stderr);
  assert.equal(a.stdout, b.stdout);
  const j = JSON.parse(a.stdout);
  assert.equal(j.reports.length, 3);
  const [weight, , self] = j.reports;
  assert.equal(weight.naive.curve.length, 9);
  assert.ok(weight.aligned.barrier.loss <= weight.naive.barrier.loss);
  assert.ok(Object.values(self.perms).every((p) => (p as number[]).every((v, i) => v === i)));
  assert.equal(self.checks[1].status, 'PASS');
});

test('bad usage exits with code 2 and one clear line, no stack trace', () => {
  for (const args of [['demo', '--data', 'nope'], ['demo', '--seed', '-1'], ['demo', '--bogus'], ['no-such-command']]) {
    const r = run(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.ok(!/\n\s+at /.test(r.stderr), `stack trace for ${args.join(' ')}: ${r.stderr}`);
    assert.ok(r.stderr.trim().length > 0);
  }
});

test('--help works on the program and on commands', () => {
  const r = run(['--help']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /demo/);
  assert.equal(run(['demo', '--help']).code, 0);
});
