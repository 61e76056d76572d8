/**
 * rebasin leaves nothing outside the outputs it was asked for: ONNX Runtime (1.29 on, Linux/macOS) starts a
 * telemetry client on its first session unless ORT_DISABLE_TELEMETRY is set, which writes a device id and an
 * event database under $XDG_CACHE_HOME or ~/.cache, plus mat-debug-<pid>.log and .ses in the temp folder
 * (src/engine/ort-node.ts). Each run here gets an empty HOME, TMPDIR, XDG_CACHE_HOME and working folder, with
 * every variable that silences the runtime by itself removed (the CI flags a CI runner sets, among them), and
 * lists what appeared.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const library = fileURLToPath(new URL('../src/index.js', import.meta.url));
const fixtures = fileURLToPath(new URL('../../test/fixtures/models/', import.meta.url));
const data = `${fixtures}fmnist_test256-images-idx3-ubyte.gz,${fixtures}fmnist_test256-labels-idx1-ubyte.gz`;

/** Variables that turn ONNX Runtime's telemetry off on their own (its telemetry_environment.h, 1.30). */
const SILENCERS = [
  'ORT_DISABLE_TELEMETRY', 'ORT_RUNNING_UNIT_TESTS', 'CI', 'TF_BUILD', 'GITHUB_ACTIONS', 'GITLAB_CI', 'CIRCLECI',
  'TRAVIS', 'JENKINS_URL', 'CODEBUILD_BUILD_ID', 'BUILDKITE', 'TEAMCITY_VERSION', 'APPVEYOR',
  'BITBUCKET_BUILD_NUMBER', 'SYSTEM_TEAMFOUNDATIONCOLLECTIONURI',
];

interface Sandbox { root: string; home: string; tmp: string; cache: string; work: string }

function sandbox(): Sandbox {
  const root = mkdtempSync(join(tmpdir(), 'rebasin-litter-'));
  const dirs = { home: join(root, 'home'), tmp: join(root, 'tmp'), cache: join(root, 'cache'), work: join(root, 'work') };
  for (const d of Object.values(dirs)) mkdirSync(d);
  return { root, ...dirs };
}

function isolatedEnv(box: Sandbox, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of SILENCERS) delete env[name];
  return { ...env, HOME: box.home, TMPDIR: box.tmp, XDG_CACHE_HOME: box.cache, ...extra };
}

/** Every file and folder under root, relative to it, sorted. */
function listing(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      out.push(relative(root, path));
      if (statSync(path).isDirectory()) walk(path);
    }
  };
  walk(root);
  return out.sort();
}

function runIn(box: Sandbox, args: string[], extra: Record<string, string> = {}): void {
  const r = spawnSync(process.execPath, [cli, ...args], { cwd: box.work, env: isolatedEnv(box, extra), encoding: 'utf8' });
  assert.equal(r.status, 0, `rebasin ${args.join(' ')}: ${r.stderr}`);
}

/** What a run left in the places that are not its outputs, and in its working folder. */
function leftovers(box: Sandbox): { outside: string[]; work: string[] } {
  const outside = [box.home, box.tmp, box.cache].flatMap((d) => listing(d).map((p) => `${relative(box.root, d)}/${p}`));
  return { outside, work: listing(box.work) };
}

test('control: with telemetry left on, ONNX Runtime litters the home and temp folders (so the checks below can see litter)', () => {
  const box = sandbox();
  try {
    runIn(box, ['align', `${fixtures}mlp_a.onnx`, `${fixtures}mlp_b.onnx`, '-o', 'out.onnx'], { ORT_DISABLE_TELEMETRY: '0' });
    const { outside } = leftovers(box);
    assert.ok(outside.some((p) => p.endsWith('deviceid')), `no device id written: ${outside.join(', ')}`);
    assert.ok(outside.some((p) => /mat-debug-\d+\.log$/.test(p)), `no mat-debug log written: ${outside.join(', ')}`);
  } finally {
    rmSync(box.root, { recursive: true, force: true });
  }
});

test('CLI runs that start ONNX Runtime leave nothing but their outputs', () => {
  const box = sandbox();
  try {
    runIn(box, ['demo']);
    runIn(box, ['align', `${fixtures}mlp_a.onnx`, `${fixtures}mlp_b.onnx`, '-o', 'out.onnx', '--perms', 'perms.json']);
    runIn(box, ['barrier', `${fixtures}mlp_a.onnx`, `${fixtures}mlp_b.onnx`, '--data', data]);
    runIn(box, ['report', `${fixtures}mlp_a.onnx`, `${fixtures}mlp_b.onnx`, '--data', data, '--json', 'r.json']);
    const { outside, work } = leftovers(box);
    assert.deepEqual(outside, [], 'files outside the outputs');
    assert.deepEqual(work, ['out.onnx', 'perms.json', 'r.json']);
  } finally {
    rmSync(box.root, { recursive: true, force: true });
  }
});

test('the library (ONNX runner and the ONNX Runtime matmul engine) leaves nothing behind', () => {
  const box = sandbox();
  try {
    const script = `
      import { readOnnxFile, createOnnxRunner, defaultMatmul } from ${JSON.stringify(library)};
      const runner = await createOnnxRunner(readOnnxFile(${JSON.stringify(`${fixtures}mlp_a.onnx`)}).model);
      await runner.dispose();
      const engine = await defaultMatmul();
      if (engine.name === 'js') throw new Error('ONNX Runtime matmul engine did not start');
      const c = await engine.abt(new Float32Array([1, 2]), 1, new Float32Array([3, 4]), 1, 2);
      if (c[0] !== 11) throw new Error('wrong product ' + c[0]);`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: box.work, env: isolatedEnv(box), encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(leftovers(box), { outside: [], work: [] });
  } finally {
    rmSync(box.root, { recursive: true, force: true });
  }
});
