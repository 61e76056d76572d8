#!/usr/bin/env node
/**
 * Builds the page into web/dist (or the folder given): main.js and worker.js bundled by esbuild from
 * web/src (which imports the library from src/), index.html and style.css, ONNX Runtime Web's wasm files
 * under ort/ (the page loads them from there, never from a CDN), and the example models and data under
 * examples/. Usage: node web/build.mjs [outdir]
 */
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, rmSync, existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createRequire } from 'node:module';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..');

/** The ONNX Runtime Web files the wasm-only build loads at run time (single-threaded use needs only these). */
export const ORT_FILES = ['ort-wasm-simd-threaded.mjs', 'ort-wasm-simd-threaded.wasm'];

/** The committed fixtures the page offers as its example pair. */
export const EXAMPLE_FILES = ['mlp_a.onnx', 'mlp_b.onnx', 'fmnist_test256-images-idx3-ubyte.gz', 'fmnist_test256-labels-idx1-ubyte.gz'];

/**
 * The page imports the library through its browser-safe entry (src/core.ts), so nothing it bundles may
 * import Node's modules or onnxruntime-node: such an import fails the build naming the module that made it,
 * rather than being stubbed and failing at run time.
 */
const browserOnly = {
  name: 'browser-only',
  setup(b) {
    b.onResolve({ filter: /^(node:|onnxruntime-node$)/ }, (args) => ({
      errors: [{ text: `${args.path} (imported by ${args.importer}) cannot run in the browser: the page must use rebasin's browser-safe entry (src/core.ts)` }],
    }));
  },
};

export async function buildWeb(outdir = join(here, 'dist'), { minify = true } = {}) {
  rmSync(outdir, { recursive: true, force: true });
  mkdirSync(join(outdir, 'ort'), { recursive: true });
  mkdirSync(join(outdir, 'examples'), { recursive: true });
  const result = await build({
    entryPoints: { main: join(here, 'src', 'main.ts'), worker: join(here, 'src', 'worker.ts') },
    outdir,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    // onnxruntime-web's own condition for the build that loads its wasm from env.wasm.wasmPaths (not inlined).
    conditions: ['onnxruntime-web-use-extern-wasm'],
    minify,
    sourcemap: 'linked',
    legalComments: 'none',
    logLevel: 'warning',
    plugins: [browserOnly],
    absWorkingDir: root,
  });
  const require = createRequire(import.meta.url);
  // The package exports no package.json; its CommonJS entry lies in the dist folder that holds the wasm files.
  const ortDist = dirname(require.resolve('onnxruntime-web/wasm', { paths: [root] }));
  for (const f of ORT_FILES) copyFileSync(join(ortDist, f), join(outdir, 'ort', f));
  for (const f of ['index.html', 'style.css']) copyFileSync(join(here, f), join(outdir, f));
  const fixtures = join(root, 'test', 'fixtures', 'models');
  for (const f of EXAMPLE_FILES) if (existsSync(join(fixtures, f))) copyFileSync(join(fixtures, f), join(outdir, 'examples', f));
  return { outdir, warnings: result.warnings.length };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const out = process.argv[2] ? resolve(process.argv[2]) : undefined;
  buildWeb(out).then(
    (r) => console.log(`built ${r.outdir}`),
    (e) => {
      console.error(e instanceof Error ? e.message : e);
      process.exit(1);
    },
  );
}
