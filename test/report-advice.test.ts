/**
 * What the report says happened and what to try: the verdict at each threshold's boundary (relative bands,
 * the absolute zero), the hint chosen for each situation, the merge warning's "far worse", and the small
 * text details (empty bars for rounding-level barriers, "1 pass").
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { verdictOf, barrierValue, plural, THRESHOLDS } from '../src/measure/checks.js';
import { mergeWarning, normalisationOf, reportHint, NARROW_WIDTH, type MergeFacts, type ReportFacts } from '../src/measure/advice.js';
import { formatReport, BAR_WIDTH } from '../src/report/text.js';
import { renderHtmlReport } from '../src/report/html.js';
import { runDemo } from '../src/demo.js';
import { jsMatmul } from '../src/engine/matmul.js';
import type { AlignmentReport } from '../src/pipeline/alignment-report.js';
import { readOnnxFile } from '../src/io/onnx-file.js';
import { fileURLToPath } from 'node:url';

const models = fileURLToPath(new URL('../../test/fixtures/models/', import.meta.url));

test('verdict: no barrier, collapsed, reduced, unchanged, increased at their boundaries', () => {
  const z = THRESHOLDS.zero;
  // Rounding-level barriers are zero, before and after.
  assert.equal(verdictOf(0, 0), 'no barrier to remove');
  assert.equal(verdictOf(2.78e-17, 0), 'no barrier to remove');
  assert.equal(verdictOf(z, z), 'no barrier to remove');
  assert.equal(verdictOf(-z, 0), 'no barrier to remove');
  // From no barrier to one: alignment made it.
  assert.equal(verdictOf(0, 1.5 * z), 'increased');
  assert.equal(verdictOf(0, 0.3), 'increased');
  // Relative bands around before = 1.
  assert.equal(verdictOf(1, 0), 'collapsed');
  assert.equal(verdictOf(1, 0.25), 'collapsed');
  assert.equal(verdictOf(1, 0.2500001), 'reduced');
  assert.equal(verdictOf(1, 0.9), 'reduced');
  assert.equal(verdictOf(1, 0.9000001), 'unchanged');
  assert.equal(verdictOf(1, 1), 'unchanged');
  assert.equal(verdictOf(1, 1.1), 'unchanged');
  assert.equal(verdictOf(1, 1.1000001), 'increased');
  // The ResNet pair: 2.3608 → 2.7922 is an 18% rise, not "unchanged".
  assert.equal(verdictOf(2.3608, 2.7922), 'increased');
  // A rounding-level "after" is collapsed whatever the ratio; a rise by less than zero is not a rise.
  assert.equal(verdictOf(2e-6, 0.9 * z), 'collapsed');
  assert.equal(verdictOf(2e-6, 2e-6 + 0.9 * z), 'unchanged');
  assert.equal(verdictOf(2e-6, 2e-6 + 1.1 * z), 'increased');
  // NaN never reads as success.
  assert.equal(verdictOf(NaN, 0), 'increased');
  assert.equal(verdictOf(1, NaN), 'increased');
  assert.equal(barrierValue(z), 0);
  assert.equal(barrierValue(1.5 * z), 1.5 * z);
});

const poor: ReportFacts = { method: 'weight', verdict: 'unchanged', normalisation: 'none', narrowestWidth: 512, repaired: null };

test('hint: one line for the situation the evidence shows, none when alignment worked', () => {
  // Good results: no hint, whatever else is true.
  for (const verdict of ['collapsed', 'no barrier to remove'] as const) {
    assert.equal(reportHint({ ...poor, verdict, normalisation: 'folded-batchnorm', narrowestWidth: 16 }), null);
  }
  // 1. BatchNorm (kept or folded) matched by weights → activation matching with REPAIR.
  const folded = reportHint({ ...poor, verdict: 'increased', normalisation: 'folded-batchnorm', narrowestWidth: 16 });
  assert.match(folded ?? '', /BatchNorm folded into its convolutions.*try --method activation --repair/);
  assert.match(reportHint({ ...poor, method: 'cosine', normalisation: 'batchnorm' }) ?? '', /has BatchNorm,.*--method activation --repair/);
  // 2. BatchNorm, activation matching, REPAIR not measured → measure it.
  assert.match(reportHint({ ...poor, method: 'activation', normalisation: 'batchnorm' }) ?? '', /measure the path with --repair/);
  // 3. Weight matching raised the barrier of a net without BatchNorm → activation matching.
  assert.match(reportHint({ ...poor, verdict: 'increased' }) ?? '', /weight matching raised the barrier: try --method activation/);
  assert.equal(reportHint({ ...poor, verdict: 'increased', method: 'activation' }), null);
  // 4. REPAIR measured and it helps → merge with it; when it does not, no REPAIR hint.
  assert.match(reportHint({ ...poor, method: 'activation', normalisation: 'batchnorm', repaired: { before: 1, after: 0.2 } }) ?? '', /REPAIR lowers the aligned barrier from 1\.0000 to 0\.2000/);
  assert.equal(reportHint({ ...poor, repaired: { before: 1, after: 0.95 } }), null);
  // 5. Narrow nets: width, at the boundary.
  assert.match(reportHint({ ...poor, narrowestWidth: NARROW_WIDTH }) ?? '', new RegExp(`narrowest permuted layer has ${NARROW_WIDTH} units`));
  assert.equal(reportHint({ ...poor, narrowestWidth: NARROW_WIDTH + 1 }), null);
  assert.equal(reportHint({ ...poor, narrowestWidth: null }), null);
  // Partial reductions are still poor enough to hint.
  assert.match(reportHint({ ...poor, verdict: 'reduced', narrowestWidth: 16 }) ?? '', /narrowest/);
});

test('normalisation is read from the model: BatchNorm nodes, folded-BN conv names, or none', () => {
  assert.equal(normalisationOf(Object.keys(readOnnxFile(`${models}resnet_a.bn.onnx`).params), readOnnxFile(`${models}resnet_a.bn.onnx`).model), 'batchnorm');
  const folded = readOnnxFile(`${models}resnet_a.onnx`);
  assert.equal(normalisationOf(Object.keys(folded.params), folded.model), 'folded-batchnorm');
  const mlp = readOnnxFile(`${models}mlp_a.onnx`);
  assert.equal(normalisationOf(Object.keys(mlp.params), mlp.model), 'none');
  assert.equal(normalisationOf(['conv1.weight', 'bn1.running_mean', 'bn1.running_var']), 'batchnorm');
  assert.equal(normalisationOf(['fc1.weight', 'fc1.bias']), 'none');
});

const merge: MergeFacts = {
  parents: [
    { loss: 0.25, accuracy: 0.9 },
    { loss: 0.2, accuracy: 0.92 },
  ],
  merged: { loss: 0.35, accuracy: 0.88 },
  classes: 10,
  aligned: true,
  method: 'weight',
  repaired: false,
  normalisation: 'none',
};

test('merge warning: far worse means below half the gap to chance, or 1.5x the worse loss', () => {
  assert.equal(mergeWarning(merge), null);
  // Worse parent 0.9, chance 0.1: the line is at 0.9 - 0.4 = 0.5.
  assert.equal(mergeWarning({ ...merge, merged: { loss: 0.3, accuracy: 0.5 } }), null);
  const far = mergeWarning({ ...merge, merged: { loss: 0.3, accuracy: 0.499 } });
  assert.match(far ?? '', /far worse than its parents.*accuracy 49\.9% against 90\.0% for the worse parent \(chance 10\.0%\); try --repair$/);
  // Loss: worse parent 0.25, the line at 0.375.
  assert.equal(mergeWarning({ ...merge, merged: { loss: 0.375, accuracy: 0.85 } }), null);
  assert.match(mergeWarning({ ...merge, merged: { loss: 0.3751, accuracy: 0.85 } }) ?? '', /loss 0\.3751 against 0\.2500/);
  // Parents at chance: accuracy says nothing, only the loss can.
  const atChance = { ...merge, parents: [{ loss: 2.3, accuracy: 0.1 }], merged: { loss: 2.31, accuracy: 0.0 } };
  assert.equal(mergeWarning(atChance), null);
  // The suggestion follows the evidence.
  const chanceLevel = { ...merge, merged: { loss: 2.3, accuracy: 0.1 } };
  assert.match(mergeWarning({ ...chanceLevel, aligned: false }) ?? '', /without --no-align\)$/);
  assert.match(mergeWarning({ ...chanceLevel, normalisation: 'folded-batchnorm', repaired: true }) ?? '', /BatchNorm: try --method activation --repair$/);
  assert.match(mergeWarning({ ...chanceLevel, repaired: true }) ?? '', /try --method activation$/);
  assert.match(mergeWarning({ ...chanceLevel, repaired: true, method: 'activation' }) ?? '', /rebasin report/);
});

let demo: AlignmentReport;

test('text and HTML: rounding-level barriers draw empty bars; counts agree in number; the hint is printed', async () => {
  demo = (await runDemo({ seed: 0, engine: jsMatmul, points: 2, epochs: 2 })).reports[0];
  const barLines = (before: number, after: number) => {
    const text = formatReport({ ...demo, naive: { ...demo.naive, barrier: { ...demo.naive.barrier, loss: before } }, aligned: { ...demo.aligned, barrier: { ...demo.aligned.barrier, loss: after } } });
    return text.split('\n').filter((l) => /^ {2}(before|after) /.test(l)).map((l) => l.split(/\s+/)[2]);
  };
  // The demo's align-to-self case: 2.78e-17 before and after is no bar at all, not a full one.
  assert.deepEqual(barLines(2.78e-17, 2.78e-17), ['.'.repeat(BAR_WIDTH), '.'.repeat(BAR_WIDTH)]);
  assert.deepEqual(barLines(0.5, THRESHOLDS.zero), ['#'.repeat(BAR_WIDTH), '.'.repeat(BAR_WIDTH)]);
  assert.deepEqual(barLines(0.5, 0.25), ['#'.repeat(BAR_WIDTH), '#'.repeat(BAR_WIDTH / 2) + '.'.repeat(BAR_WIDTH / 2)]);
  assert.match(formatReport({ ...demo, matching: { ...demo.matching, iterations: 1 } }), /matching: 1 pass,/);
  assert.match(formatReport({ ...demo, matching: { ...demo.matching, iterations: 2 } }), /matching: 2 passes,/);
  // The hint line follows the verdict when there is one.
  assert.match(formatReport({ ...demo, hint: 'hint: try X' }), /\nverdict: .*\nhint: try X$/);
  assert.equal(formatReport(demo).includes('hint:'), false);
  assert.equal(plural(1, 'pass', 'passes'), '1 pass');
  assert.equal(plural(3, 'pass', 'passes'), '3 passes');
  assert.equal(plural(1, 'example'), '1 example');
  // HTML: the barrier bars' widths, and the hint.
  const widths = (before: number, after: number) => {
    const html = renderHtmlReport([{ ...demo, hint: 'hint: <b>', naive: { ...demo.naive, barrier: { ...demo.naive.barrier, loss: before } }, aligned: { ...demo.aligned, barrier: { ...demo.aligned.barrier, loss: after } } }], { title: 't' });
    assert.ok(html.includes('data-field="hint">hint: &lt;b&gt;</div>'));
    return [...html.matchAll(/<span class="(?:naive|aligned)-fill" style="width:([\d.]+)%"/g)].map((m) => Number(m[1]));
  };
  assert.deepEqual(widths(2.78e-17, 2.78e-17), [0, 0]);
  assert.deepEqual(widths(0.5, 0.25), [100, 50]);
});

test('hint: an attention model matched by weights is pointed to activation matching; not when matched by activations or collapsed', () => {
  const base: ReportFacts = { method: 'weight', verdict: 'unchanged', normalisation: 'none', narrowestWidth: 32, repaired: null, attention: true };
  assert.match(reportHint(base) ?? '', /transformers align better by their activations.*--method activation/);
  assert.match(reportHint({ ...base, method: 'cosine', verdict: 'reduced' }) ?? '', /--method activation/);
  // Matched by activations already, or without attention: the width hint, as before.
  assert.match(reportHint({ ...base, method: 'activation' }) ?? '', /narrowest permuted layer has 32 units/);
  assert.match(reportHint({ ...base, attention: false }) ?? '', /narrowest permuted layer has 32 units/);
  assert.equal(reportHint({ ...base, verdict: 'collapsed' }), null);
});

test('hint: REPAIR that did not lower an attention model\'s barrier is said to be no way out; one that did is recommended', () => {
  const base: ReportFacts = { method: 'activation', verdict: 'reduced', normalisation: 'none', narrowestWidth: 32, repaired: { before: 1.2, after: 1.15 }, attention: true };
  assert.match(reportHint(base) ?? '', /REPAIR did not lower the aligned barrier of this attention model \(1\.2\d* -> 1\.15\d*\)/);
  assert.match(reportHint({ ...base, repaired: { before: 1.2, after: 0.6 } }) ?? '', /REPAIR lowers the aligned barrier/);
  // Not measured, or not an attention model: the width hint, as before.
  assert.match(reportHint({ ...base, repaired: null }) ?? '', /narrowest permuted layer has 32 units/);
  assert.match(reportHint({ ...base, attention: false }) ?? '', /narrowest permuted layer has 32 units/);
});
