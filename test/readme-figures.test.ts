/**
 * The README's quoted outputs are what the commands print now (issue 17: the README's figures had drifted
 * from the demo's). README.md marks each quote with `<!-- figures: rebasin ARGS -->` ... `<!-- /figures -->`;
 * scripts/readme-figures.mjs finds the marks, reruns each command as the README shows it (from the repository
 * root, as a process) and compares: a quoted code block line by line (elapsed times aside, `...` for lines
 * left out), prose by every number it states. The oracle is the command's own stdout, never a stored copy.
 * Slow commands (`figures-slow:`) run only with REBASIN_README_SLOW=1.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

interface Block {
  line: number;
  command: string;
  slow: boolean;
  quoted: string[] | null;
  prose: string | null;
}
interface Problem {
  quoted: string;
  printed: string | undefined;
}
interface Figures {
  root: string;
  figureBlocks(readme: string): Block[];
  checkBlock(block: Block): { stdout: string; stderr: string; code: number | null; problems: Problem[] };
  quoteMismatches(quoted: string[], output: string): Problem[];
  proseMismatches(prose: string, output: string): Problem[];
}

const figures = (await import(new URL('../../scripts/readme-figures.mjs', import.meta.url).href)) as Figures;
const readme = readFileSync(join(figures.root, 'README.md'), 'utf8');
const blocks = figures.figureBlocks(readme);

function describe(problems: Problem[]): string {
  return problems.map((p) => `README quotes: ${p.quoted}\nprinted now:   ${p.printed ?? '(nothing like it)'}`).join('\n');
}

/** The first digit of a text, changed: a figure edited in the README. */
function editDigit(text: string): string {
  return text.replace(/\d/, (d) => String((Number(d) + 1) % 10));
}

/** The quote with its first figure edited. */
function editFigure(lines: string[]): string[] {
  const k = lines.findIndex((l) => /\d/.test(l));
  assert.ok(k >= 0, 'a quote without a figure');
  return lines.map((l, i) => (i === k ? editDigit(l) : l));
}

test('the README marks the demo it tells a new user to run, and the worked examples on committed fixtures', () => {
  const fast = blocks.filter((b) => !b.slow).map((b) => b.command);
  assert.ok(fast.includes('rebasin demo'), `no figures block for 'rebasin demo' (what npm run demo runs): ${fast.join(' | ')}`);
  assert.ok(fast.some((c) => c.startsWith('rebasin report test/fixtures/models/mlp_a.onnx')), 'no figures block for the MLP fixture report');
  for (const b of blocks) {
    const quoted = b.quoted ?? [];
    assert.ok(quoted.some((l) => /\d/.test(l)) || (b.prose !== null && /\d/.test(b.prose)), `README.md:${b.line}: a figures block that quotes no figure`);
  }
});

for (const block of blocks) {
  const skip = block.slow && process.env.REBASIN_README_SLOW !== '1' ? 'slow: set REBASIN_README_SLOW=1 to run it' : false;
  test(`README.md:${block.line}: '${block.command}' prints what the README quotes`, { skip, timeout: block.slow ? 1_800_000 : 120_000 }, () => {
    const r = figures.checkBlock(block);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.problems, [], `${describe(r.problems)}\n(update with: node scripts/readme-figures.mjs)`);
    // The same comparison refuses the quote with one figure changed, so the check above could fail.
    if (block.quoted !== null) {
      assert.notDeepEqual(figures.quoteMismatches(editFigure(block.quoted), r.stdout), []);
    } else {
      assert.notDeepEqual(figures.proseMismatches(editDigit(block.prose ?? ''), r.stdout), []);
    }
  });
}

test('a quote matches in order across "..." gaps, and names the first line that differs', () => {
  const out = 'a\nb 1.5\nc\nd 2 s\ne';
  assert.deepEqual(figures.quoteMismatches(['a', 'b 1.5', '...', 'd 7 s', 'e'], out), []);
  assert.deepEqual(figures.quoteMismatches(['a', 'c'], out), [{ quoted: 'c', printed: 'b 1.5' }]);
  assert.deepEqual(figures.quoteMismatches(['c', '...', 'a'], out).length, 1);
  assert.deepEqual(figures.proseMismatches('from 1.5 to 2', out), []);
  assert.deepEqual(figures.proseMismatches('from 1.50 to 2', out), [{ quoted: '1.50', printed: undefined }]);
});
