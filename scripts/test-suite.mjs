#!/usr/bin/env node
// Runs one suite of the compiled tests: node scripts/test-suite.mjs unit|integration|browser|all.
// Only dist/test/*.test.js files are tests (helpers under dist/test/ are not). The classes:
//   browser      drives Chromium (the page, the HTML report);
//   integration  runs the CLI or npm as processes, reads the installed Fashion-MNIST, or checks the package;
//   unit         everything else: library functions in this process on in-memory data and small committed
//                fixtures (numpy/scipy via python3 and ONNX Runtime serve as references).
// A new test file is a unit test until listed below; a listed name with no file fails the run, so the
// lists cannot silently go stale.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const BROWSER = ['web', 'report-html'];
const INTEGRATION = [
  'cli-commands', 'cli-demo', 'cli-outputs', 'cli-safety', 'report-cli', 'report-json-schema', 'runtime-litter',
  'hostile-input', 'hostile-names', 'merge', 'merge-bn', 'stream-onnx', 'torch-pt',
  'data', 'measure-real', 'onnx-runner',
  'package-entries', 'package-pack', 'readme-figures', 'transformer-report',
];

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const testDir = join(root, 'dist', 'test');
const suite = process.argv[2] ?? 'all';
if (!['unit', 'integration', 'browser', 'all'].includes(suite)) {
  console.error(`usage: node scripts/test-suite.mjs unit|integration|browser|all (got '${suite}')`);
  process.exit(2);
}
if (!existsSync(testDir)) {
  console.error(`${testDir} does not exist: run 'npm run build' first`);
  process.exit(2);
}
const all = readdirSync(testDir).filter((f) => f.endsWith('.test.js')).sort();
const present = new Set(all.map((f) => f.slice(0, -'.test.js'.length)));
const missing = [...BROWSER, ...INTEGRATION].filter((n) => !present.has(n));
if (missing.length > 0) {
  console.error(`scripts/test-suite.mjs lists tests that do not exist: ${missing.join(', ')}`);
  process.exit(2);
}
const listed = new Set([...BROWSER, ...INTEGRATION]);
const names =
  suite === 'browser' ? BROWSER : suite === 'integration' ? INTEGRATION : suite === 'unit' ? [...present].filter((n) => !listed.has(n)) : [...present];
const files = names.map((n) => join(testDir, `${n}.test.js`));
const child = spawn(process.execPath, ['--test', '--test-concurrency=2', ...process.argv.slice(3), ...files], {
  stdio: 'inherit',
  // Tests that open onnxruntime-node directly leave nothing in HOME (README: ONNX Runtime's telemetry).
  env: { ...process.env, ORT_DISABLE_TELEMETRY: '1' },
});
// A signal sent to this process alone reaches the test runner too, which ends its test processes.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => child.kill(signal));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 128 : 1)));
