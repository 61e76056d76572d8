/**
 * Test helper: run a python3 script (numpy/scipy as an independent reference) and read what it prints.
 * Tests that need python skip with a printed reason when it is missing, e.g.
 *   test('vs scipy', { skip: pythonSkipReason(['scipy']) }, () => { ... runPython(script, file) ... })
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const PYTHON = process.env.PYTHON ?? 'python3';

/**
 * Run `script` with python3; the given files are its sys.argv[1:]. Returns stdout. Throws with python's
 * stderr when the script fails.
 */
export function runPython(script: string, ...inputFiles: string[]): string {
  try {
    return execFileSync(PYTHON, ['-c', script, ...inputFiles], {
      encoding: 'utf8',
      maxBuffer: 256 * 1024 * 1024,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`python3 script failed: ${err.stderr?.trim() || err.message}`);
  }
}

const moduleCache = new Map<string, boolean>();

/** Whether python3 runs and can import every named module (checked once per module set). */
export function hasPython(modules: readonly string[] = []): boolean {
  const key = modules.join(',');
  let ok = moduleCache.get(key);
  if (ok === undefined) {
    const imports = modules.map((m) => `import ${m}`).join('; ') || 'pass';
    const r = spawnSync(PYTHON, ['-c', imports], { stdio: 'ignore' });
    ok = r.status === 0;
    moduleCache.set(key, ok);
  }
  return ok;
}

export function hasScipy(): boolean {
  return hasPython(['numpy', 'scipy.optimize']);
}

/** A reason to skip (for node:test's `skip` option) when python3 or a module is missing; else false. */
export function pythonSkipReason(modules: readonly string[] = []): string | false {
  if (!hasPython()) return `${PYTHON} not found`;
  if (!hasPython(modules)) return `${PYTHON} cannot import ${modules.join(', ')}`;
  return false;
}

/** Make a fresh temporary directory, run fn in it, and remove it afterwards. */
export function withTempDir<T>(fn: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'rebasin-test-'));
  try {
    return fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
