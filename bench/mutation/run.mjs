#!/usr/bin/env node
/**
 * Mutation testing of rebasin's core modules with StrykerJS (bench only, not CI; see TESTING.md).
 *
 *   npm run build                       # once: the compiled JavaScript under dist/ is what gets mutated
 *   node bench/mutation/run.mjs         # every module below, one after the other
 *   node bench/mutation/run.mjs permute measure/barrier    # some of them
 *
 * Stryker is not a dependency of the project (its install is a large tree): the script runs it through
 * `npx --yes -p @stryker-mutator/core@9.6.1 stryker` from the npm registry, or the `stryker` binary named by
 * $STRYKER. Each module is mutated in a private copy of dist/ under the system temp folder (never the work
 * tree), with the command runner and concurrency 1, running only the test files listed for it: the ones
 * that test the module directly and fast. A mutant survives when those files pass; the whole suite may
 * still kill it, so a survivor is a lead to read, not yet a missing test.
 *
 * Mutated is the JavaScript tsc writes (types erased, otherwise line for line the TypeScript), which keeps
 * each mutant's run to the listed tests without a TypeScript build. Reports go to bench/out/mutation/:
 * Stryker's JSON report per module, and summary.json / survivors.txt over the modules run.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const out = join(root, 'bench/out/mutation');

/** Module (under src/, without .ts) -> the test files (under test/, without .test.ts) that guard it. */
export const MODULES = {
  permute: ['core', 'segments', 'permute'],
  'permutation-spec/spec': ['core', 'segments'],
  'permutation-spec/heads': ['heads', 'heads-structure'],
  'permutation-spec/segments': ['segments', 'segments-bounds'],
  'match/activation-matching': ['activation-matching'],
  'match/head-assignment': ['heads', 'heads-structure'],
  'measure/barrier': ['measure'],
  'measure/checks': ['measure', 'report-advice'],
  tensor: ['core', 'segments'],
};

function strykerCommand() {
  if (process.env.STRYKER) return { cmd: process.env.STRYKER, args: [] };
  return { cmd: 'npx', args: ['--yes', '-p', '@stryker-mutator/core@9.6.1', 'stryker'] };
}

function runModule(module, tests) {
  const src = join(root, 'dist/src', `${module}.js`);
  if (!existsSync(src)) throw new Error(`${src} is missing: run npm run build first`);
  for (const t of tests) {
    if (!existsSync(join(root, 'dist/test', `${t}.test.js`))) throw new Error(`dist/test/${t}.test.js is missing: run npm run build first`);
  }
  const work = mkdtempSync(join(tmpdir(), 'rebasin-mutation-'));
  try {
    // The copy keeps the repository's layout, so the tests' relative paths (../../test/fixtures) still resolve.
    mkdirSync(join(work, 'dist'));
    cpSync(join(root, 'dist/src'), join(work, 'dist/src'), { recursive: true });
    cpSync(join(root, 'dist/test'), join(work, 'dist/test'), { recursive: true });
    if (existsSync(join(root, 'dist/bench'))) cpSync(join(root, 'dist/bench'), join(work, 'dist/bench'), { recursive: true });
    cpSync(join(root, 'package.json'), join(work, 'package.json'));
    mkdirSync(join(work, 'test'));
    symlinkSync(join(root, 'test/fixtures'), join(work, 'test/fixtures'));
    symlinkSync(join(root, 'node_modules'), join(work, 'node_modules'));
    const report = join(work, 'report.json');
    const config = {
      testRunner: 'command',
      commandRunner: { command: `node --test ${tests.map((t) => `dist/test/${t}.test.js`).join(' ')}` },
      mutate: [`dist/src/${module}.js`],
      // The copy is ours: mutate it in place rather than copying it again into a sandbox.
      inPlace: true,
      coverageAnalysis: 'off',
      concurrency: 1,
      timeoutMS: 60000,
      timeoutFactor: 3,
      reporters: ['json', 'clear-text'],
      jsonReporter: { fileName: report },
      clearTextReporter: { allowColor: false, logTests: false, reportMutants: false },
      plugins: [],
      cleanTempDir: true,
    };
    writeFileSync(join(work, 'stryker.config.json'), JSON.stringify(config, null, 2));
    const { cmd, args } = strykerCommand();
    const started = Date.now();
    const r = spawnSync(cmd, [...args, 'run', 'stryker.config.json'], {
      cwd: work,
      stdio: 'inherit',
      env: { ...process.env, ORT_DISABLE_TELEMETRY: '1' },
    });
    if (r.status !== 0) throw new Error(`stryker failed on ${module} (exit ${r.status})`);
    const json = JSON.parse(readFileSync(report, 'utf8'));
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, `${module.replaceAll('/', '_')}.json`), JSON.stringify(json));
    return summarise(module, tests, json, (Date.now() - started) / 1000);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function summarise(module, tests, json, seconds) {
  const counts = {};
  const survivors = [];
  for (const file of Object.values(json.files)) {
    const lines = file.source.split('\n');
    for (const m of file.mutants) {
      counts[m.status] = (counts[m.status] ?? 0) + 1;
      if (m.status === 'Survived' || m.status === 'NoCoverage') {
        const line = m.location.start.line;
        survivors.push({ line, mutator: m.mutatorName, replacement: m.replacement ?? '', code: lines[line - 1].trim() });
      }
    }
  }
  const detected = (counts.Killed ?? 0) + (counts.Timeout ?? 0);
  const valid = detected + (counts.Survived ?? 0) + (counts.NoCoverage ?? 0);
  return { module, tests, counts, score: valid > 0 ? detected / valid : null, seconds, survivors };
}

const wanted = process.argv.slice(2);
const modules = wanted.length > 0 ? wanted : Object.keys(MODULES);
for (const m of modules) if (!(m in MODULES)) throw new Error(`unknown module '${m}': one of ${Object.keys(MODULES).join(', ')}`);
const summaryPath = join(out, 'summary.json');
const previous = existsSync(summaryPath) ? JSON.parse(readFileSync(summaryPath, 'utf8')) : {};
for (const m of modules) {
  const s = runModule(m, MODULES[m]);
  previous[m] = s;
  mkdirSync(out, { recursive: true });
  writeFileSync(summaryPath, JSON.stringify(previous, null, 2));
  const text = Object.values(previous)
    .map((x) => [
      `${x.module}: score ${x.score === null ? 'n/a' : (100 * x.score).toFixed(1) + '%'} ${JSON.stringify(x.counts)} (${x.tests.join(', ')}; ${Math.round(x.seconds)} s)`,
      ...x.survivors.map((v) => `  line ${v.line} ${v.mutator} -> ${JSON.stringify(v.replacement).slice(0, 120)}   | ${v.code.slice(0, 140)}`),
    ].join('\n'))
    .join('\n\n');
  writeFileSync(join(out, 'survivors.txt'), text + '\n');
  console.log(`${m}: score ${s.score === null ? 'n/a' : (100 * s.score).toFixed(1) + '%'} ${JSON.stringify(s.counts)}`);
}
