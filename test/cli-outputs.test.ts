/**
 * What the CLI writes to, and what an interruption leaves (issue 16): the CLI run as a child process in a
 * scratch folder, the inputs checked byte for byte afterwards.
 * - an optional-value option (`report --json [file]`) never takes a model given after it as its value;
 * - JSON/HTML/perms/spec output never lands on a model-looking file (by extension or first bytes) without
 *   --force, never on an input, never twice on one file through a linked folder; `-o` never replaces a
 *   FIFO or a device node, and an empty path is an error;
 * - SIGINT/SIGTERM during a write leave no temp file and exit 130/143 (faults injected by a preloaded
 *   module that wraps fs.renameSync, so the real CLI runs);
 * - an ONNX output with external data commits with the rename of the .onnx alone: a crash before it
 *   leaves the old pair computing the old function, afterwards the new pair computes the new one (checked
 *   in ONNX Runtime against the same merge written with embedded weights).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { keepPositionals, looksLikeModelFile } from '../src/cli/outputs.js';
import { Command } from 'commander';
import { readOnnxFile, writeOnnxFile } from '../src/io/onnx-file.js';
import { parseOnnx } from '../src/io/onnx.js';
import { trackedTempFiles } from '../src/io/atomic.js';

const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const fixtures = fileURLToPath(new URL('../../test/fixtures/models/', import.meta.url));
const IMAGES = 'fmnist_test256-images-idx3-ubyte.gz';
const LABELS = 'fmnist_test256-labels-idx1-ubyte.gz';
const FAST = ['--limit', '64', '--probe', '32', '--points', '2'];

function run(args: string[], cwd: string, env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [...(env.PRELOAD ? ['--import', env.PRELOAD] : []), cli, ...args], { cwd, encoding: 'utf8', env: { ...process.env, ...env } });
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

/** Hashes of every regular file under `dir` (links and special files by kind), to prove nothing changed. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of readdirSync(dir)) {
    const p = join(dir, f);
    const st = lstatSync(p);
    out[f] = st.isFile() ? createHash('sha256').update(readFileSync(p)).digest('hex') : st.isSymbolicLink() ? 'link' : st.isFIFO() ? 'fifo' : 'other';
  }
  return out;
}

function workspace(files: string[] = ['mlp_a.onnx', 'mlp_b.onnx', 'mlp_a.ext.onnx', 'mlp_a.ext.onnx.data', 'mlp_a.safetensors', IMAGES, LABELS]): string {
  const dir = mkdtempSync(join(tmpdir(), 'rebasin-outputs-'));
  for (const f of files) copyFileSync(join(fixtures, f), join(dir, f));
  return dir;
}

const DATA = `${IMAGES},${LABELS}`;

test('report --json never takes a model after it as the JSON path; --json=FILE, --json FILE and --json - work', () => {
  const dir = workspace();
  try {
    const before = snapshot(dir);
    // The case: A was taken as the JSON path and overwritten with exit 0.
    const swallowed = run(['report', '--json', 'mlp_a.onnx', 'mlp_b.onnx', 'mlp_a.ext.onnx', '--data', DATA, ...FAST], dir);
    assert.equal(swallowed.code, 2, swallowed.stderr);
    assert.match(swallowed.stderr, /too many arguments/);
    assert.match(swallowed.stderr, /--json takes no model or data file such as 'mlp_a\.onnx'.*--json=FILE/);
    // A model with no telling extension is recognised by its first bytes.
    copyFileSync(join(dir, 'mlp_a.onnx'), join(dir, 'modelA'));
    const sniffed = run(['report', '--json', 'modelA', 'mlp_b.onnx', 'mlp_a.onnx', '--data', DATA, ...FAST], dir);
    assert.equal(sniffed.code, 2, sniffed.stderr);
    assert.deepEqual(snapshot(dir), { ...before, modelA: before['mlp_a.onnx'] });

    // Bare --json before the models: JSON on stdout, the models read as models.
    const bare = run(['report', '--json', 'mlp_a.onnx', 'mlp_b.onnx', '--data', DATA, ...FAST], dir);
    assert.equal(bare.code, 0, bare.stderr);
    assert.equal(JSON.parse(bare.stdout).format, 'rebasin-report');
    const dash = run(['report', 'mlp_a.onnx', 'mlp_b.onnx', '--json', '-', '--data', DATA, ...FAST], dir);
    assert.equal(dash.code, 0, dash.stderr);
    assert.equal(JSON.parse(dash.stdout).format, 'rebasin-report');
    assert.ok(!existsSync(join(dir, '-')));
    const named = run(['report', 'mlp_a.onnx', 'mlp_b.onnx', '--data', DATA, ...FAST, '--json', 'r.json'], dir);
    assert.equal(named.code, 0, named.stderr);
    assert.equal(JSON.parse(readFileSync(join(dir, 'r.json'), 'utf8')).format, 'rebasin-report');
    assert.doesNotMatch(named.stdout, /^\{/); // the text report, not JSON, on stdout
    const explicit = run(['report', 'mlp_a.onnx', 'mlp_b.onnx', '--data', DATA, ...FAST, '--json=out'], dir);
    assert.equal(explicit.code, 0, explicit.stderr);
    assert.equal(JSON.parse(readFileSync(join(dir, 'out'), 'utf8')).format, 'rebasin-report');
    for (const [f, h] of Object.entries(before)) assert.equal(snapshot(dir)[f], h, `${f} changed`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('keepPositionals: only a refused word after a bare optional-value option moves it; required values are skipped', () => {
  const cmd = new Command('x').option('--json [file]').option('--html <file>').option('-q');
  const accepts = (w: string) => !w.endsWith('.onnx');
  assert.deepEqual(keepPositionals(cmd.options, ['--json', 'a.onnx', 'b.onnx'], accepts), ['a.onnx', 'b.onnx', '--json']);
  assert.deepEqual(keepPositionals(cmd.options, ['--json', 'r.json', 'a.onnx'], accepts), ['--json', 'r.json', 'a.onnx']);
  assert.deepEqual(keepPositionals(cmd.options, ['--json', 'a.onnx', '--', 'x'], accepts), ['a.onnx', '--json', '--', 'x']);
  // --html takes its value whatever it is: '--json' here is that value, not an option.
  assert.deepEqual(keepPositionals(cmd.options, ['--html', '--json', 'a.onnx'], accepts), ['--html', '--json', 'a.onnx']);
  assert.deepEqual(keepPositionals(cmd.options, ['--json=a.onnx', 'b.onnx'], accepts), ['--json=a.onnx', 'b.onnx']);
  assert.deepEqual(keepPositionals(cmd.options, ['a.onnx', '--json', '-q'], accepts), ['a.onnx', '--json', '-q']);
});

test('looksLikeModelFile: by extension, and by the first bytes of an existing file (not of a JSON or HTML report)', () => {
  const dir = workspace(['mlp_a.onnx', 'mlp_a.safetensors', IMAGES]);
  try {
    for (const f of ['x.onnx', 'x.SAFETENSORS', 'x.pt', 'x.pth', 'x.data', 'x.npz']) assert.notEqual(looksLikeModelFile(join(dir, f)), null, f);
    for (const [src, name] of [['mlp_a.onnx', 'a'], ['mlp_a.safetensors', 'b'], [IMAGES, 'c']]) {
      copyFileSync(join(dir, src), join(dir, name));
      assert.notEqual(looksLikeModelFile(join(dir, name)), null, src);
    }
    writeFileSync(join(dir, 'old.json'), '{"format": "rebasin-report"}');
    writeFileSync(join(dir, 'old.html'), '<!doctype html>');
    writeFileSync(join(dir, 'notes'), 'hello');
    for (const f of ['old.json', 'old.html', 'notes', 'new.json', 'r']) assert.equal(looksLikeModelFile(join(dir, f)), null, f);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('outputs refused before any work: model-looking files without --force, inputs, one file twice through a linked folder, FIFOs, devices, empty paths', () => {
  const dir = workspace();
  try {
    mkdirSync(join(dir, 'od'));
    symlinkSync('od', join(dir, 'odl'));
    execFileSync('mkfifo', [join(dir, 'pipe')]);
    copyFileSync(join(dir, 'mlp_b.onnx'), join(dir, 'd.safetensors')); // a model copy, not an input
    copyFileSync(join(dir, 'mlp_b.onnx'), join(dir, 'backup')); // a model with no extension
    const before = snapshot(dir);
    const report = ['report', 'mlp_a.onnx', 'mlp_b.onnx', '--data', DATA, ...FAST];
    const align = ['align', 'mlp_a.onnx', 'mlp_b.onnx'];
    const cases: [string[], RegExp][] = [
      [[...report, '--json', 'd.safetensors'], /too many arguments/],
      [[...report, '--json=d.safetensors'], /--json d\.safetensors: looks like a model or data file \(its extension is \.safetensors\).*--force/],
      [[...report, '--json=backup'], /--json backup: looks like a model or data file \(it is an ONNX model\)/],
      [[...report, '--html', 'x.onnx'], /--html x\.onnx: looks like a model/],
      [[...report, '--json=mlp_a.onnx', '--force'], /is the input file/],
      [[...report, '--html', IMAGES, '--force'], /is the input file/],
      [[...report, '--json', 'od/r.json', '--html', 'odl/r.json'], /two outputs \((--json od\/r\.json|--html odl\/r\.json) and (--json od\/r\.json|--html odl\/r\.json) are one file\)/],
      [[...report, '--json=', '--html', 'r.html'], /--json: the output path is empty/],
      [[...report, '--html', 'pipe'], /--html pipe: is not a regular file/],
      [[...report, '--html', 'nofolder/r.html'], /folder .*nofolder does not exist/],
      [[...align, '-o', 'x.onnx', '--perms', 'p.pt'], /--perms p\.pt: looks like a model/],
      [[...align, '-o', 'x.onnx', '--perms', 'd.safetensors'], /--perms d\.safetensors: looks like a model/],
      [[...align, '-o', 'od/x.onnx', '--perms', 'odl/x.onnx', '--force'], /two outputs/],
      [[...align, '-o', 'pipe'], /-o pipe: is not a regular file/],
      [[...align, '-o', '/dev/null'], /-o \/dev\/null: is not a regular file/],
      [[...align, '-o', ''], /-o: the output path is empty/],
      [['merge', 'mlp_a.onnx', 'mlp_b.onnx', '-o', ''], /-o: the output path is empty/],
      [['merge', 'mlp_a.onnx', 'mlp_b.onnx', '-o', 'pipe'], /-o pipe: is not a regular file/],
      [['train', '--data', 'synthetic:50', '--epochs', '1', '-o', ''], /-o: the output path is empty/],
      [['train', '--data', 'synthetic:50', '--epochs', '1', '-o', '/dev/null'], /not a regular file/],
      [['spec', 'mlp_a.onnx', '-o', ''], /-o: the output path is empty/],
      [['spec', 'mlp_a.onnx', '-o', 'pipe'], /-o pipe: is not a regular file/],
      [['spec', 'mlp_a.onnx', '-o', 'w.safetensors'], /-o w\.safetensors: looks like a model/],
      [['spec', 'mlp_a.onnx', '-o', 'backup'], /-o backup: looks like a model/],
    ];
    for (const [args, message] of cases) {
      const r = run(args, dir);
      assert.equal(r.code, 2, `${args.join(' ')}: exit ${r.code}, ${r.stderr}`);
      assert.match(r.stderr, message, args.join(' '));
      assert.deepEqual(snapshot(dir), before, `${args.join(' ')} changed a file`);
      assert.deepEqual(readdirSync(join(dir, 'od')), [], `${args.join(' ')} wrote into od/`);
    }
    // --force allows text output over a model-looking file that is not an input, and only that.
    const forced = run(['spec', 'mlp_a.onnx', '-o', 'backup', '--force'], dir);
    assert.equal(forced.code, 0, forced.stderr);
    assert.equal(JSON.parse(readFileSync(join(dir, 'backup'), 'utf8')).kind, 'onnx graph');
    const { backup: _b, ...rest } = before;
    const { backup: _a, ...restAfter } = snapshot(dir);
    assert.deepEqual(restAfter, rest);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/**
 * A module preloaded into the CLI (node --import) that wraps fs.renameSync: before a temp file is renamed
 * onto a name ending in `suffix`, it reports on stderr and then pauses (the temp file complete on disk) or
 * kills the process outright (a crash: no cleanup can run).
 */
function renameFault(dir: string, suffix: string, action: 'pause' | 'kill'): string {
  const path = join(dir, 'rename-fault.mjs');
  writeFileSync(
    path,
    `import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
const rename = fs.renameSync;
fs.renameSync = (from, to) => {
  if (String(from).endsWith('.tmp') && String(to).endsWith(${JSON.stringify(suffix)})) {
    process.stderr.write('FAULT: temp file written\\n');
    if (${JSON.stringify(action)} === 'kill') process.kill(process.pid, 'SIGKILL');
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1500);
  }
  return rename(from, to);
};
syncBuiltinESMExports();
`,
  );
  return path;
}

function tempFiles(dir: string): string[] {
  return readdirSync(dir).filter((f) => f.endsWith('.tmp'));
}

test('SIGINT and SIGTERM while an output is being written leave no temp file and exit 130 / 143', async () => {
  const dir = workspace(['mlp_a.onnx', 'mlp_b.onnx']);
  try {
    const preload = renameFault(dir, 'aligned.onnx', 'pause');
    const before = snapshot(dir);
    for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
      const child = spawn(process.execPath, ['--import', preload, cli, 'align', 'mlp_a.onnx', 'mlp_b.onnx', '-o', 'aligned.onnx'], { cwd: dir });
      let stderr = '';
      const sawTemp = new Promise<string[]>((resolveTemp) => {
        child.stderr.on('data', (d: Buffer) => {
          stderr += d.toString();
          if (stderr.includes('FAULT: temp file written')) resolveTemp(tempFiles(dir));
        });
      });
      const exited = new Promise<number | null>((resolveExit) => child.on('exit', (c) => resolveExit(c)));
      const during = await sawTemp;
      assert.equal(during.length, 1, `a temp file exists while the signal is sent: ${during}`);
      child.kill(signal);
      assert.equal(await exited, code, stderr);
      assert.deepEqual(tempFiles(dir), [], `${signal} left ${tempFiles(dir)}`);
      rmSync(join(dir, 'aligned.onnx'), { force: true });
    }
    const { 'rename-fault.mjs': _p, ...inputs } = before;
    const { 'rename-fault.mjs': _q, ...after } = snapshot(dir);
    assert.deepEqual(after, inputs);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

async function logits(model: string): Promise<Float32Array> {
  const x = Float32Array.from({ length: 4 * 784 }, (_, i) => ((i * 7919) % 256) / 255);
  const s = await ort.InferenceSession.create(model);
  try {
    const out = await s.run({ input: new ort.Tensor('float32', x, [4, 784]) });
    return out.logits.data as Float32Array;
  } finally {
    await s.release();
  }
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  return a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
}

function dataLocations(model: string): string[] {
  const m = parseOnnx(readFileSync(model), model);
  return [...new Set(Object.values(m.initializers).flatMap((i) => (i.external ? [i.external.location] : [])))];
}

test('ONNX with external data: a crash before the .onnx rename keeps the old pair computing the old function; afterwards the new pair computes the new one', async () => {
  const dir = workspace(['mlp_a.ext.onnx', 'mlp_a.ext.onnx.data', 'mlp_b.onnx', 'mlp_a.onnx']);
  try {
    const merge = (alpha: string, out: string, env: Record<string, string> = {}) =>
      run(['merge', 'mlp_a.ext.onnx', 'mlp_b.onnx', '--alpha', alpha, '-o', out], dir, env);
    // Independent truth: the same merges written with embedded weights (one file, one rename).
    assert.equal(merge('0.5', 'half.onnx').code, 0);
    assert.equal(run(['merge', 'mlp_a.onnx', 'mlp_b.onnx', '--alpha', '0.2', '-o', 'fifth.onnx'], dir).code, 0);
    const [half, fifth] = [await logits(join(dir, 'half.onnx')), await logits(join(dir, 'fifth.onnx'))];
    assert.ok(maxDiff(half, fifth) > 1e-2, 'the two merges compute different functions');

    assert.equal(merge('0.5', 'm.onnx').code, 0);
    assert.deepEqual(dataLocations(join(dir, 'm.onnx')), ['m.onnx.data']);
    const inputsBefore = snapshot(dir);

    // Killed after the new data file is complete, before the model's rename.
    const crash = merge('0.2', 'm.onnx', { PRELOAD: renameFault(dir, 'm.onnx', 'kill') });
    assert.equal(crash.signal, 'SIGKILL', crash.stderr);
    assert.equal(snapshot(dir)['m.onnx'], inputsBefore['m.onnx']);
    assert.equal(snapshot(dir)['m.onnx.data'], inputsBefore['m.onnx.data'], 'the old data file was overwritten');
    assert.ok(maxDiff(await logits(join(dir, 'm.onnx')), half) < 1e-5, 'the old pair no longer computes the old function');
    // What a crash can leave: the unreferenced new data file and the model's temp file, never a mismatch.
    for (const f of readdirSync(dir).filter((f) => f.startsWith('m.onnx') || f.startsWith('.m.onnx'))) {
      assert.match(f, /^(m\.onnx|m\.onnx\.data|m\.onnx\.[0-9a-f]{12}\.data|\.m\.onnx\.\d+\.[0-9a-f]{12}\.tmp)$/, f);
      if (f !== 'm.onnx' && f !== 'm.onnx.data') rmSync(join(dir, f));
    }

    // Committed: the new pair computes the new function, and the old data file is gone.
    const ok = merge('0.2', 'm.onnx');
    assert.equal(ok.code, 0, ok.stderr);
    const [location] = dataLocations(join(dir, 'm.onnx'));
    assert.match(location, /^m\.onnx\.[0-9a-f]{12}\.data$/);
    assert.ok(maxDiff(await logits(join(dir, 'm.onnx')), fifth) < 1e-5, 'the new pair computes something else');
    assert.ok(!existsSync(join(dir, 'm.onnx.data')), 'the old data file was left behind');
    assert.match(ok.stdout, new RegExp(`-> m\\.onnx, m\\.onnx\\.[0-9a-f]{12}\\.data`));
    // And back to the plain name on the next write.
    assert.equal(merge('0.5', 'm.onnx').code, 0);
    assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith('m.onnx')).sort(), ['m.onnx', 'm.onnx.data']);
    assert.ok(maxDiff(await logits(join(dir, 'm.onnx')), half) < 1e-5);
    for (const f of ['mlp_a.ext.onnx', 'mlp_a.ext.onnx.data', 'mlp_b.onnx', 'mlp_a.onnx']) assert.equal(snapshot(dir)[f], inputsBefore[f], `${f} changed`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('writeOnnxFile: a failure between the data file and the model rename removes the new data and keeps the old pair', async () => {
  const dir = workspace(['mlp_a.ext.onnx', 'mlp_a.ext.onnx.data', 'mlp_b.onnx']);
  try {
    const a = readOnnxFile(join(dir, 'mlp_a.ext.onnx'));
    const b = readOnnxFile(join(dir, 'mlp_b.onnx'));
    const out = join(dir, 'out.onnx');
    writeOnnxFile(out, a.model, a.params);
    const oldLogits = await logits(out);
    const before = snapshot(dir);
    let newData = '';
    assert.throws(
      () =>
        writeOnnxFile(out, a.model, b.params, {
          beforeCommit: (dataPath) => {
            newData = dataPath;
            assert.ok(existsSync(dataPath));
            assert.deepEqual(trackedTempFiles(), [dataPath], 'the uncommitted data file is tracked for cleanup');
            throw new Error('simulated failure');
          },
        }),
      /simulated failure/,
    );
    assert.match(newData, /out\.onnx\.[0-9a-f]{12}\.data$/);
    assert.deepEqual(snapshot(dir), before, 'the old pair changed or the new data file was left');
    assert.deepEqual(trackedTempFiles(), []);
    assert.ok(maxDiff(await logits(out), oldLogits) === 0);
    // Without the failure: B's weights in A's graph compute what B computes.
    writeOnnxFile(out, a.model, b.params);
    assert.ok(maxDiff(await logits(out), await logits(join(dir, 'mlp_b.onnx'))) < 1e-6);
    assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith('out.onnx')).length, 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
