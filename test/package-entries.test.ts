/**
 * The two public entries (README "Use as a library"): `rebasin/core` (src/core.ts) must bundle for a browser
 * with nothing from Node, and `rebasin` (src/index.ts) must not load onnxruntime-node's native library until a
 * function that runs ONNX Runtime is called. The oracles are outside the library: esbuild's resolver (every
 * module the entry reaches), the process's own memory map (/proc/self/maps lists every shared library
 * loaded), and a module resolver hook that makes onnxruntime-node unresolvable.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build, type Plugin } from 'esbuild';
import * as core from '../src/core.js';
import * as node from '../src/index.js';

const coreJs = fileURLToPath(new URL('../src/core.js', import.meta.url));
const indexJs = fileURLToPath(new URL('../src/index.js', import.meta.url));

/** Records every import of a Node module or of onnxruntime-node, with the module that made it. */
function nodeImports(found: string[]): Plugin {
  return {
    name: 'node-imports',
    setup(b) {
      b.onResolve({ filter: /^(node:|onnxruntime-node$)/ }, (args) => {
        found.push(`${args.path} <- ${args.importer}`);
        return { path: args.path, external: true };
      });
    },
  };
}

async function bundleForBrowser(entry: string): Promise<string[]> {
  const found: string[] = [];
  await build({ entryPoints: [entry], bundle: true, write: false, platform: 'browser', format: 'esm', logLevel: 'silent', plugins: [nodeImports(found)] });
  return found;
}

test('rebasin/core bundles for a browser reaching no Node module and not onnxruntime-node', async () => {
  assert.deepEqual(await bundleForBrowser(coreJs), []);
  // The same check on the Node entry finds its file readers and the runtime: it can fail.
  const nodeEntry = await bundleForBrowser(indexJs);
  assert.ok(nodeEntry.some((s) => s.startsWith('node:fs')), nodeEntry.join('\n'));
  assert.ok(nodeEntry.some((s) => s.startsWith('onnxruntime-node')), nodeEntry.join('\n'));
});

test('the Node entry holds every name of the core, plus files and the runtime only', () => {
  for (const name of Object.keys(core)) assert.equal((node as Record<string, unknown>)[name], (core as Record<string, unknown>)[name], name);
  const nodeOnly = Object.keys(node).filter((n) => !(n in core)).sort();
  assert.deepEqual(nodeOnly, [
    'createOnnxRunner', 'createOrtMatmul', 'defaultMatmul',
    'loadDataset', 'loadFashionMnist', 'loadIdxPair', 'loadNpyPair', 'loadNpzDataset',
    'openOnnxSource', 'openSafetensorsSource',
    'readOnnxFile', 'readSafetensorsFile', 'readTorchCheckpointFile',
    'writeOnnxFile', 'writePermutedOnnx', 'writePermutedSafetensors', 'writeSafetensorsFile',
  ]);
});

// Runs `body` (an ES module) in a fresh Node process; `hooks` (module resolve hooks) are registered first.
function runModule(body: string, hooks?: string): { status: number | null; stdout: string; stderr: string } {
  const dir = mkdtempSync(join(tmpdir(), 'rebasin-entries-'));
  try {
    writeFileSync(join(dir, 'main.mjs'), body);
    const args: string[] = [];
    if (hooks !== undefined) {
      writeFileSync(join(dir, 'hooks.mjs'), hooks);
      writeFileSync(join(dir, 'register.mjs'), "import { register } from 'node:module';\nregister('./hooks.mjs', import.meta.url);\n");
      args.push('--import', pathToFileURL(join(dir, 'register.mjs')).href);
    }
    const r = spawnSync(process.execPath, [...args, join(dir, 'main.mjs')], { encoding: 'utf8', env: { ...process.env, ORT_DISABLE_TELEMETRY: '1' } });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const MAPS = '/proc/self/maps';

test('importing rebasin loads no ONNX Runtime library; the first createOrtMatmul does', { skip: existsSync(MAPS) ? false : `${MAPS} not available (Linux only)` }, () => {
  const r = runModule(`
    import { readFileSync } from 'node:fs';
    const loaded = () => readFileSync(${JSON.stringify(MAPS)}, 'utf8').split('\\n').filter((l) => /onnxruntime/i.test(l)).length;
    const rebasin = await import(${JSON.stringify(pathToFileURL(indexJs).href)});
    const spec = rebasin.mlpSpec(2, { layout: 'torch', names: ['fc1', 'fc2', 'fc3'] });
    const afterImport = loaded();
    const engine = await rebasin.createOrtMatmul();
    const product = await engine.abt(new Float32Array([1, 2]), 1, new Float32Array([3, 4]), 1, 2);
    console.log(JSON.stringify({ perms: rebasin.permNames(spec), afterImport, afterCall: loaded(), product: Array.from(product) }));
  `);
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { perms: string[]; afterImport: number; afterCall: number; product: number[] };
  assert.deepEqual(out.perms, ['P_0', 'P_1']);
  assert.equal(out.afterImport, 0, 'onnxruntime mapped into the process by the import alone');
  assert.ok(out.afterCall > 0, 'the ONNX Runtime engine ran without its library in the memory map?');
  assert.deepEqual(out.product, [11]);
});

test('with onnxruntime-node unresolvable, rebasin imports and matches on the JavaScript engine; the runtime calls reject', () => {
  const hooks = `
    export async function resolve(specifier, context, next) {
      if (specifier === 'onnxruntime-node') {
        throw Object.assign(new Error('onnxruntime-node is unresolvable in this test'), { code: 'ERR_MODULE_NOT_FOUND' });
      }
      return next(specifier, context);
    }
  `;
  const r = runModule(`
    const rebasin = await import(${JSON.stringify(pathToFileURL(indexJs).href)});
    // A 2-4-3 MLP; B is A with its 4 hidden units reversed, so matching must find [3, 2, 1, 0].
    const a = {
      'fc1.weight': { shape: [4, 2], data: new Float32Array([1, 0, 0, 2, 3, 1, -1, 4]) },
      'fc1.bias': { shape: [4], data: new Float32Array([0.1, 0.2, 0.3, 0.4]) },
      'fc2.weight': { shape: [3, 4], data: new Float32Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]) },
      'fc2.bias': { shape: [3], data: new Float32Array([0, 0, 1]) },
    };
    const reversed = [3, 2, 1, 0];
    const rows = (t, width) => new Float32Array(reversed.flatMap((r) => Array.from(t.data.subarray(r * width, (r + 1) * width))));
    const b = {
      'fc1.weight': { shape: [4, 2], data: rows(a['fc1.weight'], 2) },
      'fc1.bias': { shape: [4], data: rows(a['fc1.bias'], 1) },
      'fc2.weight': { shape: [3, 4], data: new Float32Array(a['fc2.weight'].data.length) },
      'fc2.bias': a['fc2.bias'],
    };
    for (let o = 0; o < 3; o++) for (let i = 0; i < 4; i++) b['fc2.weight'].data[o * 4 + i] = a['fc2.weight'].data[o * 4 + reversed[i]];
    const spec = rebasin.mlpSpec(1, { layout: 'torch', names: ['fc1', 'fc2'] });
    const { perms } = await rebasin.weightMatching({ spec, paramsA: a, paramsB: b, seed: 0 });
    let rejected = null;
    try { await rebasin.createOrtMatmul(); } catch (e) { rejected = e.message; }
    console.log(JSON.stringify({ perms: Object.fromEntries(Object.entries(perms).map(([k, v]) => [k, Array.from(v)])), rejected }));
  `, hooks);
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { perms: Record<string, number[]>; rejected: string | null };
  assert.deepEqual(Object.values(out.perms), [[3, 2, 1, 0]]);
  assert.match(out.rejected ?? '', /onnxruntime-node is unresolvable/);
});
