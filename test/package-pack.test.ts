/**
 * The package as users get it: `npm pack` of this tree, unpacked into a clean folder outside the repository
 * as npm would install it, its runtime dependencies linked from this checkout's node_modules (no network:
 * the folder's own node_modules holds nothing else, so a devDependency or a file left out of the tarball
 * fails the import). Both entries are imported, their types checked by tsc as a consumer's NodeNext project
 * sees them, and the README's "Use as a library" example run, its output compared with the CLI's `align` and
 * its aligned model run against B by an independent forward pass.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readSafetensorsFile } from '../src/io/safetensors-fs.js';
import { toParams } from '../src/io/safetensors.js';
import { mlpForwardNamed } from './helpers/forward.js';
import { randomInputs } from './helpers/mlp.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const FIXTURES = join(ROOT, 'test', 'fixtures', 'models');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { name: string; dependencies: Record<string, string> };

function run(cmd: string, args: string[], cwd: string): string {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', env: { ...process.env, ORT_DISABLE_TELEMETRY: '1' } });
  assert.equal(r.status, 0, `${cmd} ${args.join(' ')} in ${cwd}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

const NPM = spawnSync('npm', ['--version'], { encoding: 'utf8' }).status === 0;
const skip = NPM ? false : 'npm not on PATH';

let work = '';
let app = '';
let packed: string[] = [];

before(() => {
  if (!NPM) return;
  work = mkdtempSync(join(tmpdir(), 'rebasin-pack-'));
  const out = run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', work], ROOT);
  const info = (JSON.parse(out) as { filename: string; files: { path: string }[] }[])[0];
  packed = info.files.map((f) => f.path).sort();
  // Unpacked where `npm install <tarball>` puts it; dependencies linked (their own dependencies resolve
  // from this checkout's node_modules, beside them).
  app = join(work, 'app');
  const modules = join(app, 'node_modules');
  mkdirSync(modules, { recursive: true });
  run('tar', ['-xzf', join(work, info.filename), '-C', work], work);
  renameSync(join(work, 'package'), join(modules, pkg.name));
  for (const dep of Object.keys(pkg.dependencies)) symlinkSync(join(ROOT, 'node_modules', dep), join(modules, dep), 'dir');
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
});

after(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

test('npm pack ships the built library, its types, the schemas and the README, and nothing else', { skip }, () => {
  const outside = packed.filter((p) => !/^dist\/src\/.+\.(js|d\.ts)$/.test(p) && !/^schema\/[\w-]+\.json$/.test(p));
  assert.deepEqual(outside, ['README.md', 'package.json']);
  for (const f of ['dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/core.js', 'dist/src/core.d.ts', 'dist/src/cli/main.js', 'dist/src/match/lap-wasm-module.js']) {
    assert.ok(packed.includes(f), `${f} missing from the tarball`);
  }
  // Every shipped module is built from a source in this tree: a stale output of a removed one is not shipped.
  const stale = packed.filter((p) => p.endsWith('.js') && !existsSync(join(ROOT, p.replace(/^dist\//, '').replace(/\.js$/, '.ts'))));
  assert.deepEqual(stale, [], "stale build outputs in dist/src: run 'npm run build' (it cleans dist first)");
});

test('installed from the tarball, both entries import and the CLI runs; internals are not exported', { skip }, () => {
  const out = run(process.execPath, ['--input-type=module', '-e', `
    import { createRequire } from 'node:module';
    const node = await import('rebasin');
    const core = await import('rebasin/core');
    const require = createRequire(import.meta.url);
    let internal = null;
    try { await import('rebasin/dist/src/tensor.js'); } catch (e) { internal = e.code; }
    const schema = require('rebasin/schema/align.json');
    console.log(JSON.stringify({
      node: [typeof node.readSafetensorsFile, typeof node.createOrtMatmul, typeof node.weightMatching],
      core: [typeof core.mlpSpec, typeof core.parseSafetensors, typeof core.readSafetensorsFile],
      same: core.weightMatching === node.weightMatching,
      internal,
      schema: typeof schema,
    }));
  `], app);
  assert.deepEqual(JSON.parse(out), {
    node: ['function', 'function', 'function'],
    core: ['function', 'function', 'undefined'],
    same: true,
    internal: 'ERR_PACKAGE_PATH_NOT_EXPORTED',
    schema: 'object',
  });
  const version = run(process.execPath, [join(app, 'node_modules', pkg.name, 'dist', 'src', 'cli', 'main.js'), '--version'], app);
  assert.match(version, /^\d+\.\d+\.\d+/);
});

test("a TypeScript consumer (NodeNext) gets the entries' types", { skip }, () => {
  writeFileSync(join(app, 'tsconfig.json'), JSON.stringify({
    compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', strict: true, noEmit: true, skipLibCheck: true, types: [] },
    files: ['consumer.ts'],
  }));
  writeFileSync(join(app, 'consumer.ts'), `
    import { mlpSpec, permNames, type PermutationSpec } from 'rebasin/core';
    import { readSafetensorsFile, createOrtMatmul, type MatmulEngine } from 'rebasin';
    const spec: PermutationSpec = mlpSpec(2);
    const names: string[] = permNames(spec);
    // @ts-expect-error a spec is not a number: the declarations carry real types, not any
    const wrong: number = mlpSpec(2);
    // @ts-expect-error the browser-safe entry has no file readers
    import('rebasin/core').then((m) => m.readSafetensorsFile);
    export const used: [string[], number, unknown, () => Promise<MatmulEngine>] = [names, wrong, readSafetensorsFile, createOrtMatmul];
  `);
  run(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', app], app);
});

/** The ```js block of the README's "Use as a library" section. */
function readmeExample(): string {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Use as a library'));
  const m = /```js\n([\s\S]*?)```/.exec(section);
  assert.ok(m, 'no ```js block in the README under "Use as a library"');
  return m[1];
}

test("the README's library example runs on the installed package and writes what `rebasin align` writes", { skip }, () => {
  copyFileSync(join(FIXTURES, 'mlp_a.safetensors'), join(app, 'a.safetensors'));
  copyFileSync(join(FIXTURES, 'mlp_b.safetensors'), join(app, 'b.safetensors'));
  writeFileSync(join(app, 'example.mjs'), readmeExample());
  const printed = run(process.execPath, ['example.mjs'], app);
  const m = /^mlp: ⟨A, P\(B\)⟩ (-?[\d.]+) -> (-?[\d.]+)$/m.exec(printed);
  assert.ok(m, printed);
  assert.ok(Number(m[2]) > Number(m[1]), printed);

  run(process.execPath, [join(ROOT, 'dist', 'src', 'cli', 'main.js'), 'align', 'a.safetensors', 'b.safetensors', '-o', 'cli.safetensors', '--quiet'], app);
  assert.ok(readFileSync(join(app, 'b_aligned.safetensors')).equals(readFileSync(join(app, 'cli.safetensors'))), 'the example and the CLI wrote different files');

  // The aligned B computes B's function (a hidden-unit permutation changes no output) but is not B.
  const b = toParams(readSafetensorsFile(join(app, 'b.safetensors'))).params;
  const aligned = toParams(readSafetensorsFile(join(app, 'b_aligned.safetensors'))).params;
  assert.notDeepEqual(aligned['fc1.weight'].data, b['fc1.weight'].data);
  const x = { shape: [8, 784], data: randomInputs(8 * 784, 5) };
  const yB = mlpForwardNamed(b, ['fc1', 'fc2', 'fc3'], x).data;
  const yAligned = mlpForwardNamed(aligned, ['fc1', 'fc2', 'fc3'], x).data;
  let worst = 0;
  for (let i = 0; i < yB.length; i++) worst = Math.max(worst, Math.abs(yB[i] - yAligned[i]));
  assert.ok(worst < 1e-4, `largest output difference ${worst}`);
});
