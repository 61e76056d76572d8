/**
 * The HTML report: real reports from the demo (seed 0, JS engine), rendered and opened in headless
 * Chromium. The page must load offline with no errors, and what it draws must be the JSON's numbers:
 * every plotted point's data-* values, and its position on a linear axis. Escaping is tested on a
 * hostile tensor name both as text and in the browser (no script may run).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { runDemo } from '../src/demo.js';
import { jsMatmul } from '../src/engine/matmul.js';
import { reportToJson, type AlignmentReport } from '../src/pipeline/alignment-report.js';
import { renderHtmlReport, escapeHtml, embedJson, niceTicks, REPORT_DATA_ID } from '../src/report/html.js';
import { createRng, shuffledRange } from '../src/random.js';
import { chromiumSkipReason, collectPageErrors, launchChromium } from './helpers/browser.js';

const EVIL = '<script>alert(1)</script>';
const META = { title: 'rebasin demo <seed 0> & friends', subtitle: 'two MLPs, synthetic data', generatedBy: 'test/report-html.test.ts' };

let reports: AlignmentReport[];
let dir: string;

before(async () => {
  reports = (await runDemo({ seed: 0, engine: jsMatmul })).reports;
  dir = mkdtempSync(join(tmpdir(), 'rebasin-report-html-'));
});

after(() => {
  if (process.env.REBASIN_KEEP_SCREENSHOTS !== '1') rmSync(dir, { recursive: true, force: true });
});

/** The JSON the page must hold: reportToJson as it survives JSON (NaN → null etc.). */
function expectedData(rs: AlignmentReport[], meta = META): unknown {
  return JSON.parse(JSON.stringify({ format: 'rebasin-html-report', version: 1, ...meta, reports: rs.map(reportToJson) }));
}

function embeddedData(html: string): unknown {
  const m = new RegExp(`<script type="application/json" id="${REPORT_DATA_ID}">([^<]*)</script>`).exec(html);
  assert.ok(m, 'data block present');
  return JSON.parse(m[1]);
}

/** A demo report with every user-supplied string replaced by a hostile one, and one big permutation. */
function hostileReport(base: AlignmentReport, n: number): AlignmentReport {
  const rng = createRng(7);
  const big = shuffledRange(n, rng);
  // Put a tenth of the units back in place, so both kinds of mark are drawn.
  for (let i = 0; i < n; i += 10) {
    const j = big.indexOf(i);
    [big[i], big[j]] = [big[j], big[i]];
  }
  const moved = big.filter((v, i) => v !== i).length;
  return {
    ...base,
    title: `title ${EVIL}`,
    perms: { [EVIL]: big, 'fc"1\'&': base.perms.fc1 },
    churn: [
      { name: EVIL, size: n, churn: moved / n },
      { name: 'fc"1\'&', size: base.perms.fc1.length, churn: base.churn[0].churn },
    ],
    checks: base.checks.map((c) => ({ ...c, detail: `${c.detail} ${EVIL}`, requirement: `${c.requirement} </table>` })),
  };
}

test('embedded JSON is exactly reportToJson of each report, and cannot end its <script> early', () => {
  const html = renderHtmlReport(reports, META);
  assert.deepEqual(embeddedData(html), expectedData(reports));
  assert.equal(embedJson({ s: '</script><!--&\u2028' }).includes('<'), false);
  assert.deepEqual(JSON.parse(embedJson({ s: '</script><!--&\u2028' })), { s: '</script><!--&\u2028' });
});

test('hostile tensor, permutation and title text is escaped everywhere', () => {
  const evil = hostileReport(reports[0], 40);
  const html = renderHtmlReport([evil], { title: EVIL, subtitle: EVIL, generatedBy: EVIL });
  assert.equal(html.includes('alert(1)</script>'), false, 'raw script text leaked');
  assert.equal((html.match(/<script/g) ?? []).length, 1, 'only the JSON data block is a <script>');
  assert.equal(html.includes('</table> '), false);
  assert.ok(html.includes(escapeHtml(EVIL)));
  assert.equal(escapeHtml(`a<b>"c"&'d'`), 'a&lt;b&gt;&quot;c&quot;&amp;&#39;d&#39;');
  // The numbers and names still come back intact from the data block.
  assert.deepEqual(embeddedData(html), expectedData([evil], { title: EVIL, subtitle: EVIL, generatedBy: EVIL }));
});

test('a diverged point (infinite loss) is left out of the plot, not drawn off the chart', () => {
  const base = reports[0];
  const curve = base.naive.curve.map((p, i) => (i === 5 ? { ...p, loss: Infinity } : p));
  const r: AlignmentReport = { ...base, naive: { ...base.naive, curve } };
  const html = renderHtmlReport([r], META);
  const lossPlot = html.slice(html.indexOf('<svg viewBox="0 0 560 340"'), html.indexOf('data-plot="accuracy"'));
  const naiveDots = lossPlot.match(/<circle class="naive-fill" data-series="naive"[^>]*>/g) ?? [];
  assert.equal(naiveDots.length, curve.length - 1);
  assert.equal(lossPlot.includes('Infinity"'), false, 'no Infinity coordinate or data value');
  const naivePath = /<path class="curve naive-stroke" d="([^"]*)"/.exec(lossPlot);
  assert.ok(naivePath);
  assert.equal(naivePath[1].split('M').length - 1, 2, 'the line breaks at the missing point');
  // The accuracy of that point is finite and still drawn.
  const accPlot = html.slice(html.indexOf('data-plot="accuracy"'));
  assert.equal((accPlot.match(/<circle class="naive-fill" data-series="naive"/g) ?? []).length, curve.length);
});

test('niceTicks covers the range with evenly spaced round ticks', () => {
  const rng = createRng(3);
  for (let k = 0; k < 500; k++) {
    const scale = 10 ** Math.floor(rng.next() * 12 - 6);
    const lo = (rng.next() - 0.5) * 10 * scale;
    const hi = lo + rng.next() * 10 * scale;
    const t = niceTicks(lo, hi, 5);
    assert.ok(t.lo <= lo && t.hi >= hi, `[${t.lo}, ${t.hi}] covers [${lo}, ${hi}]`);
    assert.ok(t.ticks.length >= 2 && t.ticks.length <= 9, `${t.ticks.length} ticks for [${lo}, ${hi}]`);
    const step = t.ticks[1] - t.ticks[0];
    for (let i = 1; i < t.ticks.length; i++) assert.ok(Math.abs(t.ticks[i] - t.ticks[i - 1] - step) <= 1e-9 * Math.abs(step) + 1e-12 * Math.abs(t.hi));
    // Labels at the stated decimals are distinct (no "0.1, 0.1, 0.2").
    const labels = t.ticks.map((v) => v.toFixed(t.decimals));
    assert.equal(new Set(labels).size, labels.length, labels.join(' '));
  }
});

interface PlotPoint {
  series: string;
  alpha: number;
  value: number;
  cx: number;
  cy: number;
}

test('in Chromium: loads offline without errors and draws exactly the JSON numbers', { skip: chromiumSkipReason() }, async (t) => {
  const big = hostileReport(reports[0], 512);
  const all = [...reports, big];
  const file = join(dir, 'report.html');
  writeFileSync(file, renderHtmlReport(all, META));
  const url = pathToFileURL(file).href;

  const chromium = await launchChromium({ viewport: { width: 1280, height: 900 } });
  try {
    const page = await chromium.newPage();
    const errors = collectPageErrors(page);
    const requests: string[] = [];
    const dialogs: string[] = [];
    page.on('request', (r) => requests.push(r.url()));
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    await page.goto(url, { waitUntil: 'load' });

    assert.deepEqual(errors, []);
    assert.deepEqual(requests, [url], 'the page fetches nothing but itself');
    assert.deepEqual(dialogs, [], 'no script ran');
    assert.equal(await page.title(), META.title);
    assert.equal(await page.locator('h1').textContent(), META.title);
    assert.deepEqual(await page.locator('section.report h2').allTextContents(), all.map((r) => r.title));
    const h3 = await page.locator('section.report').first().locator('h3').allTextContents();
    for (const h of ['Loss barrier', 'Checks', 'Permutations']) assert.ok(h3.includes(h), `heading ${h} in ${h3.join(' | ')}`);
    assert.ok(h3.some((h) => h.startsWith('Interpolation')));

    const data = JSON.parse((await page.locator(`script#${REPORT_DATA_ID}`).textContent()) ?? 'null');
    const expected = expectedData(all) as { reports: ReturnType<typeof reportToJson>[] };
    assert.deepEqual(data, expected);

    for (const [i, r] of all.entries()) {
      const section = page.locator(`section.report#report-${i}`);
      for (const field of ['loss', 'accuracy'] as const) {
        const pts: PlotPoint[] = await section.locator(`svg[data-plot="${field}"] circle[data-alpha]`).evaluateAll(
          (els, f) =>
            els.map((e) => ({
              series: e.getAttribute('data-series') ?? '',
              alpha: Number(e.getAttribute('data-alpha')),
              value: Number(e.getAttribute(`data-${f}`)),
              cx: Number(e.getAttribute('cx')),
              cy: Number(e.getAttribute('cy')),
            })),
          field,
        );
        for (const series of ['naive', 'aligned'] as const) {
          const drawn = pts.filter((p) => p.series === series).map((p) => ({ alpha: p.alpha, value: p.value }));
          const json = r[series].curve.map((p) => ({ alpha: p.alpha, value: p[field] }));
          assert.deepEqual(drawn, json, `${r.title}: ${series} ${field} points`);
        }
        // Positions are one linear map of α and of the value (to the 0.01 the coordinates are rounded to).
        assertLinear(pts.map((p) => [p.alpha, p.cx]), `${r.title} ${field} x`);
        assertLinear(pts.map((p) => [p.value, p.cy]), `${r.title} ${field} y`);
        // And as laid out on screen: every dot inside the plot frame, α = 0 and α = 1 on its left and right edges.
        const svg = section.locator(`svg[data-plot="${field}"]`);
        const frame = await svg.locator('rect.frame').boundingBox();
        const dots = await svg.locator('circle[data-alpha]').evaluateAll((els) =>
          els.map((e) => {
            const b = e.getBoundingClientRect();
            return { alpha: Number(e.getAttribute('data-alpha')), x: b.left + b.width / 2, y: b.top + b.height / 2 };
          }),
        );
        assert.ok(frame && frame.width > 300, `${field} plot drawn at a readable size`);
        for (const d of dots) {
          assert.ok(d.y >= frame.y - 1 && d.y <= frame.y + frame.height + 1, `${r.title} ${field}: α=${d.alpha} at y=${d.y} outside the frame`);
          const edge = frame.x + d.alpha * frame.width;
          assert.ok(Math.abs(d.x - edge) <= 1, `${r.title} ${field}: α=${d.alpha} at x=${d.x}, expected ${edge}`);
        }
      }
      // Barrier α marks on both plots.
      const marks = await section.locator('line[data-barrier-alpha]').evaluateAll((els) => els.map((e) => [e.getAttribute('data-series'), Number(e.getAttribute('data-barrier-alpha'))]));
      const alphas = [['naive', r.naive.barrier.argmaxAlpha], ['aligned', r.aligned.barrier.argmaxAlpha]];
      assert.deepEqual(marks, [...alphas, ...alphas]);

      const checks = await section.locator('table.checks tbody tr').evaluateAll((rows) =>
        rows.map((row) => [row.getAttribute('data-check'), row.querySelector('.badge')?.textContent, row.querySelector('.badge')?.getAttribute('data-status')]),
      );
      assert.deepEqual(checks, r.checks.map((c) => [c.name, c.status, c.status]));
      const verdict = await section.locator('.summary .verdict').innerText();
      assert.ok(verdict.includes(r.verdict) && verdict.includes(r.verdictRule), verdict);
      const before = Number(await section.locator('[data-barrier-before]').getAttribute('data-barrier-before'));
      const afterValue = Number(await section.locator('[data-barrier-after]').getAttribute('data-barrier-after'));
      assert.deepEqual([before, afterValue], [r.naive.barrier.loss, r.aligned.barrier.loss]);
      if (r.reduction !== null) assert.ok((await section.innerText()).includes(`reduction ${(100 * r.reduction).toFixed(1)}%`));

      const churn = await section.locator('table.churn tbody tr').evaluateAll((rows) => rows.map((row) => [row.getAttribute('data-perm'), Number(row.getAttribute('data-churn'))]));
      assert.deepEqual(churn, r.churn.map((c) => [c.name, c.churn]));
      const pictures = await section.locator('figure.perm').evaluateAll((figs) => figs.map((f) => [Number(f.getAttribute('data-size')), Number(f.getAttribute('data-moved')), (f.querySelector('.perm-moved')?.getAttribute('d') ?? '').split('M').length - 1]));
      assert.deepEqual(
        pictures,
        Object.values(r.perms).map((p) => {
          const moved = p.filter((v, k) => v !== k).length;
          return [p.length, moved, moved];
        }),
      );
    }

    // Nothing drawn falls outside (and so is clipped from) its SVG.
    const clipped = await page.locator('svg').evaluateAll((svgs) =>
      svgs.flatMap((svg) => {
        const box = svg.getBoundingClientRect();
        return Array.from(svg.querySelectorAll('text, circle, rect, line, path') as ArrayLike<typeof svg>)
          .filter((e) => {
            const b = e.getBoundingClientRect();
            return b.left < box.left - 1 || b.right > box.right + 1 || b.top < box.top - 1 || b.bottom > box.bottom + 1;
          })
          .map((e) => `${svg.getAttribute('aria-labelledby')}: <${e.tagName} class="${e.getAttribute('class')}">${e.textContent}`);
      }),
    );
    assert.deepEqual(clipped, []);

    // The hostile names are shown as text.
    const last = page.locator(`section.report#report-${all.length - 1}`);
    assert.ok((await last.locator('h2').innerText()).includes(EVIL));
    assert.ok((await last.locator('table.churn').innerText()).includes(EVIL));

    const shot = join(dir, 'report.png');
    await page.screenshot({ path: shot, fullPage: true });
    t.diagnostic(`screenshot: ${shot}`);
    await page.close();
  } finally {
    await chromium.close();
  }
});

function assertLinear(pairs: number[][], what: string): void {
  const lo = pairs.reduce((a, b) => (b[0] < a[0] ? b : a));
  const hi = pairs.reduce((a, b) => (b[0] > a[0] ? b : a));
  // A constant curve (align-to-self) is one horizontal line.
  const slope = hi[0] > lo[0] ? (hi[1] - lo[1]) / (hi[0] - lo[0]) : 0;
  for (const [v, px] of pairs) {
    const want = lo[1] + slope * (v - lo[0]);
    assert.ok(Math.abs(px - want) <= 0.02, `${what}: ${v} drawn at ${px}, expected ${want}`);
  }
}
