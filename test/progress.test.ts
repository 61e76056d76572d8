/**
 * Progress output: off a terminal (stderr piped to a child's parent, as in logs, CI and nohup) one plain line
 * every interval and nothing for a short run; on a terminal one line redrawn in place. Checked on real child
 * processes whose stderr is a pipe, and on the CLI itself.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createProgress } from '../src/cli/progress.js';

const progressModule = fileURLToPath(new URL('../src/cli/progress.js', import.meta.url));
const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const MODELS = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', 'test', 'fixtures', 'models');
const PLAIN_LINE = /^(.+): (\d+)\/(\d+), (\d+)%, (\d+) s$/;

/** A child that reports `units` steps of work spread over `ms` (real timers), with stderr piped back here. */
function child(ms: number, options: string, units = 40) {
  const script = `
    import { createProgress } from ${JSON.stringify(progressModule)};
    const p = createProgress(${options});
    const t0 = Date.now();
    let i = 0;
    const tick = () => {
      const done = Math.min(${units}, ((Date.now() - t0) / ${ms}) * ${units});
      p.update('evaluating (passes)', done, ${units});
      if (Date.now() - t0 < ${ms}) setTimeout(tick, 10); else { p.done(); process.stdout.write('end'); }
    };
    tick();`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, 'end');
  return r.stderr;
}

test('stderr piped: one plain line per interval, counts and percent rising, elapsed seconds, no carriage returns', () => {
  const err = child(1300, '{ intervalMs: 250 }');
  assert.doesNotMatch(err, /\r|\x1b/);
  assert.ok(err.endsWith('\n'));
  const lines = err.trimEnd().split('\n');
  // 1.3 s at one line per 0.25 s after the first update: 5 lines (4 to 5 on a busy machine, never more).
  assert.ok(lines.length >= 3 && lines.length <= 5, `${lines.length} lines:\n${err}`);
  let last = -1;
  for (const line of lines) {
    const m = PLAIN_LINE.exec(line);
    assert.ok(m, `not a plain progress line: ${JSON.stringify(line)}`);
    assert.equal(m[1], 'evaluating (passes)');
    assert.equal(m[3], '40');
    const done = Number(m[2]);
    assert.ok(done >= last && done <= 40, line);
    // The percent is of the fractional progress, which lies in [done, done + 1).
    const percent = Number(m[4]);
    assert.ok(percent >= Math.floor((100 * done) / 40) && percent <= Math.floor((100 * (done + 1)) / 40), line);
    last = done;
  }
  assert.ok(last > 0, 'the work was seen to advance');
});

test('stderr piped: a run shorter than the interval prints nothing; --quiet prints nothing however long', () => {
  assert.equal(child(300, '{ intervalMs: 1000 }'), '');
  assert.equal(child(600, '{ intervalMs: 100, quiet: true }'), '');
});

test('the default interval is a few seconds: a 1 s run with stderr piped prints nothing', () => {
  assert.equal(child(1000, '{}'), '');
});

test('plain lines: fractional progress shows whole units and the percent of the fraction; done() restarts the clock', () => {
  let t = 0;
  const written: string[] = [];
  const p = createProgress({ stream: { isTTY: false, write: (s: string) => written.push(s) }, intervalMs: 1000, now: () => t });
  p.update('sweep', 0, 25); // starts the clock, prints nothing
  t = 999;
  p.update('sweep', 1.5, 25);
  assert.deepEqual(written, []);
  t = 1000;
  p.update('sweep', 2.75, 25);
  assert.deepEqual(written, ['sweep: 2/25, 11%, 1 s\n']);
  t = 1500;
  p.update('sweep', 3, 25); // within the interval of the last line
  t = 4400;
  p.update('sweep', 25, 25);
  assert.deepEqual(written.slice(1), ['sweep: 25/25, 100%, 4 s\n']);
  p.done();
  t = 5000;
  p.update('next', 1, 2); // a new task: its clock starts here, no line yet
  t = 5999;
  p.update('next', 1, 2);
  assert.equal(written.length, 2);
  t = 6000;
  p.update('next', 2, 2);
  assert.deepEqual(written.slice(2), ['next: 2/2, 100%, 1 s\n']);
});

test('terminal: one line redrawn in place with whole counts, cleared at the end', () => {
  const written: string[] = [];
  let t = 0;
  const p = createProgress({ stream: { isTTY: true, columns: 80, write: (s: string) => written.push(s) }, now: () => (t += 100) });
  p.update('sweep before alignment', 2.6, 10);
  p.done();
  assert.equal(written.length, 2);
  assert.match(written[0], /^\r\[#{6}\.{18}\] 2\/10, 26% sweep before alignment +$/);
  assert.equal(written[1], '\r\x1b[2K');
});

test('CLI with stderr piped: a short barrier run prints no progress at all, and its numbers are unchanged by progress', () => {
  const args = ['barrier', join(MODELS, 'resnet_a.onnx'), join(MODELS, 'resnet_b.onnx'), '--data', `${join(MODELS, 'fmnist_test256-images-idx3-ubyte.gz')},${join(MODELS, 'fmnist_test256-labels-idx1-ubyte.gz')}`, '--points', '2', '--json'];
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
  const seconds = (Date.now() - t0) / 1000;
  assert.equal(r.status, 0, r.stderr);
  // Under the default interval nothing is printed; on a machine so slow that the run takes longer, only plain
  // progress lines, at most one per interval.
  const lines = r.stderr.split('\n').filter((l) => l !== '');
  for (const l of lines) assert.match(l, PLAIN_LINE);
  assert.ok(lines.length <= Math.floor(seconds / 5), `${lines.length} lines in ${seconds} s`);
  const quiet = spawnSync(process.execPath, [cli, '--quiet', ...args], { encoding: 'utf8' });
  assert.equal(quiet.stderr, '');
  assert.equal(quiet.stdout, r.stdout);
});
