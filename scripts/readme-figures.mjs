#!/usr/bin/env node
// The README's quoted command outputs, and what those commands print now.
//
// README.md marks each quoted output: `<!-- figures: rebasin ARGS -->` ... `<!-- /figures -->`. Inside, a
// fenced code block is the command's stdout quoted verbatim (a line `...` stands for any number of lines
// left out); prose instead has every number it states checked against the numbers the command prints.
// `figures-slow:` marks a command too slow for every test run (the figures were produced by it, and
// `--slow` here reruns it). test/readme-figures.test.ts checks the fast ones on every run.
//
//   node scripts/readme-figures.mjs            run every fast command, print its stdout, and say which
//                                              quoted lines no longer match (exit 1 if any)
//   node scripts/readme-figures.mjs --slow     the slow ones as well
//
// Run after `npm run build` (commands run as `node dist/src/cli/main.js ARGS` from the repository root), then
// copy what changed into README.md.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cli = join(root, 'dist', 'src', 'cli', 'main.js');

const OPEN = /^<!-- (figures|figures-slow): (rebasin( [^\s]+)*) -->$/;
const CLOSE = '<!-- /figures -->';
/** A quoted line that stands for lines left out of the quote. */
export const GAP = '...';

/**
 * Every marked block of the README: its command, whether it is slow, the quoted output lines (from its fenced
 * code block) or, for prose, the text whose numbers are checked. A marker without its end, or nested, throws.
 */
export function figureBlocks(readme) {
  const lines = readme.split('\n');
  const blocks = [];
  for (let i = 0; i < lines.length; i++) {
    const open = OPEN.exec(lines[i].trim());
    if (!open) {
      if (lines[i].includes('<!-- figures')) throw new Error(`README.md:${i + 1}: malformed figures marker: ${lines[i]}`);
      continue;
    }
    const end = lines.indexOf(CLOSE, i + 1);
    const nextOpen = lines.findIndex((l, k) => k > i && OPEN.test(l.trim()));
    if (end < 0 || (nextOpen >= 0 && nextOpen < end)) throw new Error(`README.md:${i + 1}: figures marker without its ${CLOSE}`);
    const body = lines.slice(i + 1, end);
    const fenceStart = body.findIndex((l) => l.startsWith('```'));
    const fenceEnd = fenceStart < 0 ? -1 : body.findIndex((l, k) => k > fenceStart && l.startsWith('```'));
    blocks.push({
      line: i + 1,
      command: open[2],
      slow: open[1] === 'figures-slow',
      quoted: fenceStart >= 0 && fenceEnd > fenceStart ? body.slice(fenceStart + 1, fenceEnd) : null,
      prose: fenceStart >= 0 ? null : body.join('\n'),
    });
    i = end;
  }
  return blocks;
}

/** Runs `rebasin ARGS` as the README shows it, from the repository root; stdout, stderr and the exit code. */
export function runFigureCommand(command) {
  const args = command.split(' ').slice(1);
  const r = spawnSync(process.execPath, [cli, ...args], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, ORT_DISABLE_TELEMETRY: '1', NO_COLOR: '1' },
    maxBuffer: 64 * 1024 * 1024,
  });
  return { stdout: r.stdout ?? '', stderr: r.stderr ?? '', code: r.status };
}

/** Elapsed times vary from run to run; every other character of a quoted line must match. */
export function normaliseLine(line) {
  return line.replace(/\b\d+(\.\d+)? ?(ms|s)\b/g, '<time>').trimEnd();
}

/**
 * The quoted lines that do not appear in `output`: the quote is split at `...` lines into runs, each run must
 * appear as consecutive output lines, the runs in order. Returns [] when the quote matches.
 */
export function quoteMismatches(quoted, output) {
  const out = output.split('\n').map(normaliseLine);
  const runs = [[]];
  for (const line of quoted) {
    if (line.trim() === GAP) runs.push([]);
    else runs[runs.length - 1].push(normaliseLine(line));
  }
  const problems = [];
  let from = 0;
  for (const run of runs.filter((r) => r.length > 0)) {
    let at = -1;
    for (let k = from; k + run.length <= out.length && at < 0; k++) {
      if (run.every((l, j) => out[k + j] === l)) at = k;
    }
    if (at >= 0) {
      from = at + run.length;
      continue;
    }
    // Name the first line of the run that is not where the run's longest matching prefix puts it.
    let best = { k: from, n: 0 };
    for (let k = from; k < out.length; k++) {
      let n = 0;
      while (n < run.length && k + n < out.length && out[k + n] === run[n]) n++;
      if (n > best.n) best = { k, n };
    }
    problems.push({ quoted: run[best.n], printed: best.n > 0 ? out[best.k + best.n] : undefined });
  }
  return problems;
}

/** The numbers a text states (1.38, 0.011, 35.5, 10 000 as two, 99.7%), as written. */
export function numbersIn(text) {
  return [...text.replace(/`[^`]*`/g, ' ').matchAll(/(?<![\w.])\d+(?:\.\d+)?(?:e-?\d+)?(?![\w])/g)].map((m) => m[0]);
}

/** Numbers of the prose that the command's output does not print. */
export function proseMismatches(prose, output) {
  const printed = new Set(numbersIn(output));
  return numbersIn(prose).filter((n) => !printed.has(n)).map((n) => ({ quoted: n, printed: undefined }));
}

/** Checks one block against a fresh run of its command. */
export function checkBlock(block) {
  const run = runFigureCommand(block.command);
  const problems = run.code !== 0
    ? [{ quoted: `exit code 0`, printed: `exit code ${run.code}: ${run.stderr.trim().split('\n').pop()}` }]
    : block.quoted !== null ? quoteMismatches(block.quoted, run.stdout) : proseMismatches(block.prose, run.stdout);
  return { ...run, problems };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const slow = process.argv.includes('--slow');
  const blocks = figureBlocks(readFileSync(join(root, 'README.md'), 'utf8'));
  let stale = 0;
  for (const block of blocks) {
    if (block.slow && !slow) {
      console.log(`>>> README.md:${block.line}: ${block.command}  (slow: skipped, --slow runs it)\n`);
      continue;
    }
    const { stdout, problems } = checkBlock(block);
    console.log(`>>> README.md:${block.line}: ${block.command}\n${stdout}`);
    for (const p of problems) console.log(`!! README quotes: ${p.quoted}\n   printed now:   ${p.printed ?? '(nothing like it)'}`);
    console.log(problems.length === 0 ? 'OK: the README matches\n' : `STALE: ${problems.length} difference(s)\n`);
    stale += problems.length;
  }
  process.exitCode = stale === 0 ? 0 : 1;
}
