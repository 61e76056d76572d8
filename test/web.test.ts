/**
 * The browser page (web/) end to end in headless Chromium: built with its own build script, served by its own
 * server, driven like a person would (files chosen, Run clicked), and checked against the CLI run on the same
 * files and seed: `rebasin report A B --data D --json` for every number, `rebasin merge A B` for the merged model.
 * onnxruntime-web (WebAssembly) and onnxruntime-node (native) round floats differently, so losses are compared
 * to a relative 1e-5 (measured: ~5e-8); permutations, churn, accuracies, α grid and matching passes exactly.
 * A screenshot is written to dist/screenshots/web.png for people to look at.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { createRequire } from 'node:module';
import type { Page } from 'playwright-core';
import { chromiumSkipReason, collectPageErrors, launchChromium } from './helpers/browser.js';
import { onnxParams, parseOnnx } from '../src/io/onnx.js';
import { readOnnxFile } from '../src/io/onnx-file.js';
import { specFromOnnx } from '../src/permutation-spec/onnx-graph.js';
import { applyPermutation } from '../src/permute.js';
import type { Params } from '../src/tensor.js';

const ROOT = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..');
const MODELS = join(ROOT, 'test', 'fixtures', 'models');
const A = join(MODELS, 'mlp_a.onnx');
const B = join(MODELS, 'mlp_b.onnx');
const IMAGES = join(MODELS, 'fmnist_test256-images-idx3-ubyte.gz');
const LABELS = join(MODELS, 'fmnist_test256-labels-idx1-ubyte.gz');
const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');
const SCREENSHOT = join(ROOT, 'dist', 'screenshots', 'web.png');
const LOSS_RTOL = 1e-5;

const run = promisify(execFile);

/** Why the page cannot be built or driven here, or undefined: the browser, and the page's build tools. */
function skipReason(): string | undefined {
  const browser = chromiumSkipReason();
  if (browser) return browser;
  for (const pkg of ['esbuild', 'onnxruntime-web']) {
    try {
      createRequire(import.meta.url).resolve(pkg);
    } catch {
      return `${pkg} is not installed (npm install --save-dev ${pkg})`;
    }
  }
  return undefined;
}

interface Point {
  alpha: number;
  loss: number;
  accuracy: number;
}
interface Barrier {
  loss: number;
  lossOverEndpoints: number;
  accuracy: number;
  argmaxAlpha: number;
}
interface ReportJson {
  method: string;
  seed: number;
  points: number;
  dataCount: number;
  perms: Record<string, number[]>;
  churn: { name: string; size: number; churn: number }[];
  matching: { iterations?: number; objectiveBefore?: number; objectiveAfter?: number };
  endpoints: { a: Point; b: Point };
  naive: { curve: Point[]; barrier: Barrier };
  aligned: { curve: Point[]; barrier: Barrier };
  reduction: number | null;
  checks: { name: string; status: string; value: number | null }[];
  verdict: string;
}
interface RunJson {
  data: { name: string; count: number; preprocessing: string };
  report: ReportJson;
}

function close(actual: number, expected: number, scale: number, what: string): void {
  const tol = LOSS_RTOL * Math.max(Math.abs(expected), scale);
  assert.ok(Math.abs(actual - expected) <= tol, `${what}: page ${actual}, CLI ${expected} (tolerance ${tol.toExponential(1)})`);
}

function sameCurve(page: readonly Point[], cli: readonly Point[], what: string): void {
  assert.equal(page.length, cli.length, `${what}: number of points`);
  for (let i = 0; i < cli.length; i++) {
    assert.equal(page[i].alpha, cli[i].alpha, `${what}[${i}].alpha`);
    close(page[i].loss, cli[i].loss, 0, `${what}[${i}].loss`);
    assert.equal(page[i].accuracy, cli[i].accuracy, `${what}[${i}].accuracy`);
  }
}

function sameParams(actual: Params, expected: Params, what: string): void {
  assert.deepEqual(Object.keys(actual).sort(), Object.keys(expected).sort(), `${what}: tensor names`);
  for (const [name, t] of Object.entries(expected)) {
    assert.deepEqual(actual[name].shape, t.shape, `${what}: shape of ${name}`);
    assert.ok(Buffer.from(actual[name].data.buffer, actual[name].data.byteOffset, actual[name].data.byteLength).equals(
      Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)), `${what}: ${name} differs`);
  }
}

/** Every number of the page's JSON against the CLI's (see the tolerances above). */
function assertSameRun(web: RunJson, cli: RunJson): void {
  const [w, c] = [web.report, cli.report];
  assert.deepEqual(web.data, cli.data);
  assert.deepEqual([w.method, w.seed, w.points, w.dataCount], [c.method, c.seed, c.points, c.dataCount]);
  assert.deepEqual(w.perms, c.perms, 'permutations');
  assert.deepEqual(w.churn, c.churn, 'churn');
  assert.equal(w.matching.iterations, c.matching.iterations);
  for (const k of ['objectiveBefore', 'objectiveAfter'] as const) {
    const [x, y] = [w.matching[k], c.matching[k]];
    if (y === undefined) assert.equal(x, undefined, k); // activation matching has no weight objective
    else close(x!, y, 0, k);
  }
  sameCurve(w.naive.curve, c.naive.curve, 'naive curve');
  sameCurve(w.aligned.curve, c.aligned.curve, 'aligned curve');
  // A barrier is a difference of losses: its tolerance is relative to the losses it is taken from.
  const scale = Math.max(...c.naive.curve.map((p) => p.loss));
  for (const k of ['naive', 'aligned'] as const) {
    close(w[k].barrier.loss, c[k].barrier.loss, scale, `${k} barrier`);
    close(w[k].barrier.lossOverEndpoints, c[k].barrier.lossOverEndpoints, scale, `${k} endpoint-max barrier`);
    assert.equal(w[k].barrier.accuracy, c[k].barrier.accuracy, `${k} accuracy barrier`);
    assert.equal(w[k].barrier.argmaxAlpha, c[k].barrier.argmaxAlpha, `${k} argmax α`);
  }
  if (c.reduction === null) assert.equal(w.reduction, null);
  else close(w.reduction!, c.reduction, 0, 'reduction');
  assert.deepEqual(w.checks.map((x) => [x.name, x.status]), c.checks.map((x) => [x.name, x.status]), 'checks');
  assert.equal(w.verdict, c.verdict);
}

async function downloadBytes(page: Page, kind: string): Promise<Uint8Array> {
  const href = await page.locator(`a[data-download="${kind}"]`).getAttribute('href');
  assert.ok(href !== null && href.startsWith('blob:'), `download '${kind}' is a blob URL made in the page, got ${href}`);
  const bytes: number[] = await page.evaluate(async (url) => Array.from(new Uint8Array(await (await fetch(url)).arrayBuffer())), href);
  return Uint8Array.from(bytes);
}

/** Builds the page into a fresh folder and serves it; the caller closes both. */
async function servePage(): Promise<{ url: string; stop: () => Promise<void> }> {
  const out = mkdtempSync(join(tmpdir(), 'rebasin-web-'));
  const { buildWeb } = (await import(pathToFileURL(join(ROOT, 'web', 'build.mjs')).href)) as { buildWeb: (dir: string) => Promise<unknown> };
  const { serveStatic } = (await import(pathToFileURL(join(ROOT, 'web', 'serve.mjs')).href)) as {
    serveStatic: (root: string, port: number) => Promise<{ url: string; close: () => Promise<void> }>;
  };
  await buildWeb(out);
  const server = await serveStatic(out, 0);
  return {
    url: server.url,
    stop: async () => {
      await server.close();
      rmSync(out, { recursive: true, force: true });
    },
  };
}

test('the page aligns the fixture pair in Chromium and shows the numbers the CLI computes', { skip: skipReason(), timeout: 90_000 }, async (t) => {
  const tmp = mkdtempSync(join(tmpdir(), 'rebasin-web-cli-'));
  const mergedPath = join(tmp, 'merged.onnx');
  // The CLI runs in the background while the page is built and driven.
  const cliReport = run(process.execPath, [CLI, 'report', A, B, '--data', `${IMAGES},${LABELS}`, '--json', '--quiet'], { cwd: ROOT, maxBuffer: 64 << 20 });
  const cliMerge = run(process.execPath, [CLI, 'merge', A, B, '-o', mergedPath, '--quiet'], { cwd: ROOT });
  const served = await servePage();
  const browser = await launchChromium({ viewport: { width: 1280, height: 900 } });
  try {
    const page = await browser.newPage();
    const errors = collectPageErrors(page);
    const outside: string[] = [];
    page.on('request', (r) => {
      if (!r.url().startsWith(served.url) && !/^(blob|data):/.test(r.url())) outside.push(r.url());
    });
    await page.goto(served.url);
    await page.setInputFiles('#file-a', A);
    await page.setInputFiles('#file-b', B);
    await page.setInputFiles('#file-data', [LABELS, IMAGES]); // either order: the labels are the 1-D file
    await page.locator('#drop-data.filled').waitFor({ timeout: 10_000 });
    assert.match(await page.locator('#status-a').innerText(), /mlp_a\.onnx — 6 tensors, 118,282 weights/);
    assert.match(await page.locator('#status-data').innerText(), /256 examples of \[784\], 10 classes/);
    const started = Date.now();
    await page.click('#run');
    await page.waitForSelector('body[data-state="done"], body[data-state="error"]', { timeout: 60_000 });
    assert.equal(await page.locator('#error').isVisible(), false, `the run failed: ${await page.locator('#error').innerText().catch(() => '')}`);
    t.diagnostic(`page run: ${((Date.now() - started) / 1000).toFixed(1)} s`);

    const web = JSON.parse((await page.locator('#result-json').textContent()) ?? 'null') as RunJson;
    const cli = JSON.parse((await cliReport).stdout) as RunJson;
    assertSameRun(web, cli);
    const c = cli.report;

    // What is drawn in the report on the page carries the same numbers.
    const frame = page.frameLocator('#report-frame');
    const drawn = await frame.locator('svg[data-plot="loss"] circle[data-alpha]').evaluateAll((els) =>
      els.map((e) => ({ series: e.getAttribute('data-series'), alpha: Number(e.getAttribute('data-alpha')), loss: Number(e.getAttribute('data-loss')) })),
    );
    for (const [series, curve] of [['naive', c.naive.curve], ['aligned', c.aligned.curve]] as const) {
      const pts = drawn.filter((p) => p.series === series);
      assert.equal(pts.length, curve.length, `${series} points drawn`);
      pts.forEach((p, i) => {
        assert.equal(p.alpha, curve[i].alpha);
        close(p.loss, curve[i].loss, 0, `drawn ${series} loss at α=${p.alpha}`);
      });
    }
    const churnRows = await frame.locator('table.churn tbody tr').evaluateAll((rows) => rows.map((r) => [r.getAttribute('data-perm'), Number(r.getAttribute('data-churn'))]));
    assert.deepEqual(churnRows, c.churn.map((x) => [x.name, x.churn]));
    assert.equal(await frame.locator('.summary .verdict').getAttribute('data-verdict'), c.verdict);
    assert.equal(await page.locator('[data-fact="verdict"] .value').innerText(), c.verdict);

    // The downloads: B permuted by the CLI's permutations, exactly; the merge exactly what `rebasin merge` writes.
    const b = readOnnxFile(B);
    const spec = specFromOnnx(b.model).spec;
    const perms = Object.fromEntries(Object.entries(c.perms).map(([k, v]) => [k, Int32Array.from(v)]));
    sameParams(onnxParams(parseOnnx(await downloadBytes(page, 'aligned'), 'aligned download')), applyPermutation(spec, perms, b.params), 'aligned model');
    await cliMerge;
    sameParams(onnxParams(parseOnnx(await downloadBytes(page, 'merged'), 'merged download')), readOnnxFile(mergedPath).params, 'merged model');
    assert.deepEqual(JSON.parse(new TextDecoder().decode(await downloadBytes(page, 'json'))), web);

    mkdirSync(join(ROOT, 'dist', 'screenshots'), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    t.diagnostic(`screenshot: ${SCREENSHOT}`);
    assert.deepEqual(errors, [], 'page errors');
    assert.deepEqual(outside, [], 'requests leaving the page');
  } finally {
    await browser.close();
    await served.stop();
    await cliReport.catch(() => undefined);
    await cliMerge.catch(() => undefined);
    rmSync(tmp, { recursive: true, force: true });
  }
});

test('the page aligns a PyTorch ViT pair (fused q|k|v, head groups) by activations, as the CLI does', { skip: skipReason(), timeout: 120_000 }, async (t) => {
  const vit = (f: string) => join(ROOT, 'test', 'fixtures', 'vit', f);
  const [va, vb] = [vit('vit_fused64_a.onnx'), vit('vit_fused64_b.onnx')];
  const cliReport = run(process.execPath, [CLI, 'report', va, vb, '--method', 'activation', '--data', `${IMAGES},${LABELS}`, '--json', '--quiet'], { cwd: ROOT, maxBuffer: 64 << 20 });
  const served = await servePage();
  const browser = await launchChromium({ viewport: { width: 1280, height: 900 } });
  try {
    const page = await browser.newPage();
    const errors = collectPageErrors(page);
    await page.goto(served.url);
    await page.setInputFiles('#file-a', va);
    await page.setInputFiles('#file-b', vb);
    await page.setInputFiles('#file-data', [LABELS, IMAGES]);
    await page.locator('#drop-data.filled').waitFor({ timeout: 10_000 });
    await page.selectOption('#method', 'activation');
    const started = Date.now();
    await page.click('#run');
    await page.waitForSelector('body[data-state="done"], body[data-state="error"]', { timeout: 100_000 });
    assert.equal(await page.locator('#error').isVisible(), false, `the run failed: ${await page.locator('#error').innerText().catch(() => '')}`);
    t.diagnostic(`page run (ViT): ${((Date.now() - started) / 1000).toFixed(1)} s`);
    const web = JSON.parse((await page.locator('#result-json').textContent()) ?? 'null') as RunJson;
    const cli = JSON.parse((await cliReport).stdout) as RunJson;
    assertSameRun(web, cli);
    // The aligned download is B under the CLI's permutations, fused tensors cut and rejoined alike.
    const b = readOnnxFile(vb);
    const spec = specFromOnnx(b.model).spec;
    const perms = Object.fromEntries(Object.entries(cli.report.perms).map(([k, v]) => [k, Int32Array.from(v)]));
    sameParams(onnxParams(parseOnnx(await downloadBytes(page, 'aligned'), 'aligned download')), applyPermutation(spec, perms, b.params), 'aligned ViT');
    assert.deepEqual(errors, [], 'page errors');
  } finally {
    await browser.close();
    await served.stop();
    await cliReport.catch(() => undefined);
  }
});

test('bad files get a readable message, not a blank page', { skip: skipReason(), timeout: 60_000 }, async (t) => {
  const served = await servePage();
  const browser = await launchChromium();
  try {
    const page = await browser.newPage();
    const errors = collectPageErrors(page);
    await page.goto(served.url);
    const errorText = async (): Promise<string> => {
      await page.locator('#error').waitFor({ state: 'visible', timeout: 10_000 });
      return page.locator('#error').innerText();
    };

    // Garbage dropped (a real drop event, as a person's drag would make) on model A.
    // (A script string: this file is compiled without the DOM's types.)
    await page.evaluate(`(() => {
      const dt = new DataTransfer();
      dt.items.add(new File([new Uint8Array([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01])], 'garbage.onnx'));
      document.getElementById('drop-a').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
    })()`);
    assert.match(await errorText(), /garbage\.onnx: not a valid ONNX model/);
    assert.match(await page.locator('#status-a').innerText(), /garbage\.onnx/);
    assert.equal(await page.locator('#run').isDisabled(), true);

    // A safetensors file where an ONNX model belongs.
    await page.setInputFiles('#file-b', join(MODELS, 'mlp_b.safetensors'));
    assert.match(await errorText(), /mlp_b\.safetensors: this is a safetensors file/);

    // A model whose weights live in a separate file.
    await page.setInputFiles('#file-b', join(MODELS, 'mlp_a.ext.onnx'));
    assert.match(await errorText(), /mlp_a\.ext\.onnx: the weights are kept in a separate file/);

    // One IDX file without its labels; then a text file as data.
    await page.setInputFiles('#file-data', IMAGES);
    assert.match(await errorText(), /single IDX file has no labels/);
    await page.setInputFiles('#file-data', { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('hello') });
    assert.match(await errorText(), /notes\.txt: not a dataset file/);

    // Two valid models of different architectures: the run itself fails, in the worker, with a readable line.
    await page.setInputFiles('#file-a', A);
    await page.setInputFiles('#file-b', join(MODELS, 'resnet_a.onnx'));
    await page.setInputFiles('#file-data', [IMAGES, LABELS]);
    await page.locator('#drop-b.filled').waitFor({ timeout: 10_000 });
    await page.locator('#drop-data.filled').waitFor({ timeout: 10_000 });
    assert.equal(await page.locator('#error').isVisible(), false);
    await page.click('#run');
    await page.waitForSelector('body[data-state="error"]', { timeout: 30_000 });
    const text = await errorText();
    t.diagnostic(`message for mismatched models: ${text}`);
    assert.match(text, /resnet_a\.onnx/);
    assert.doesNotMatch(text, /unexpected error/, 'a mismatch of models is the user\'s input, named as such');

    // The page is still whole and usable.
    assert.equal(await page.locator('h1').innerText(), '⇄ rebasin');
    assert.equal(await page.locator('#run').isEnabled(), true);
    assert.deepEqual(errors.filter((e) => !e.startsWith('console:')), [], 'uncaught errors');
  } finally {
    await browser.close();
    await served.stop();
  }
});

test('the built-in 3-cluster task with activation matching gives the CLI\'s numbers', { skip: skipReason(), timeout: 60_000 }, async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'rebasin-web-syn-'));
  const [a, b] = [join(tmp, 'three_a.onnx'), join(tmp, 'three_b.onnx')];
  const served = servePage();
  const browser = launchChromium();
  try {
    // Two small MLPs trained from different seeds on the three-cluster task (about a second).
    await Promise.all(
      [[a, '1'], [b, '2']].map(([out, seed]) =>
        run(process.execPath, [CLI, 'train', '--data', 'synthetic:600', '--hidden', '16,16', '--epochs', '5', '--seed', seed, '-o', out, '--quiet'], { cwd: ROOT }),
      ),
    );
    const cliRun = run(process.execPath, [CLI, 'report', a, b, '--data', 'synthetic:500', '--method', 'activation', '--seed', '3', '--points', '10', '--probe', '300', '--json', '--quiet'], { cwd: ROOT });
    const page = await (await browser).newPage();
    const errors = collectPageErrors(page);
    await page.goto((await served).url);
    await page.setInputFiles('#file-a', a);
    await page.setInputFiles('#file-b', b);
    await page.selectOption('#method', 'activation');
    await page.fill('#seed', '3');
    await page.fill('#points', '10');
    await page.fill('#probe', '300');
    await page.fill('#synthetic', '500');
    await page.click('#run');
    await page.waitForSelector('body[data-state="done"], body[data-state="error"]', { timeout: 30_000 });
    assert.equal(await page.locator('#error').isVisible(), false, `the run failed: ${await page.locator('#error').innerText().catch(() => '')}`);
    const web = JSON.parse((await page.locator('#result-json').textContent()) ?? 'null') as RunJson;
    const cli = JSON.parse((await cliRun).stdout) as RunJson;
    assert.equal(web.report.method, 'activation');
    assert.equal(web.data.count, 500);
    assertSameRun(web, cli);
    assert.deepEqual(errors, [], 'page errors');
  } finally {
    await (await browser).close();
    await (await served).stop();
    rmSync(tmp, { recursive: true, force: true });
  }
});
