/**
 * Module layering, read from the import statements of src/: engine (the runtimes and the runner contract)
 * sits below model (the built-in MLP) and measure (barriers, checks), so engine imports neither, and no
 * two of the three import each other.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const src = fileURLToPath(new URL('../../src/', import.meta.url));

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [join(dir, e.name)] : [],
  );
}

/** Folder under src/ (or the file's own name at the top) -> folders its relative imports reach. */
function folderImports(): Map<string, Set<string>> {
  const folderOf = (file: string): string => relative(src, file).split(/[\\/]/)[0];
  const edges = new Map<string, Set<string>>();
  for (const file of sourceFiles(src)) {
    const text = readFileSync(file, 'utf8');
    // Static imports and re-exports (type-only ones too), and dynamic import() of a literal path.
    for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^;]*?\bfrom\s+['"](\.[^'"]+)['"]|\bimport\(\s*['"](\.[^'"]+)['"]\s*\)/g)) {
      const target = normalize(join(dirname(file), m[1] ?? m[2]));
      const from = folderOf(file);
      const to = folderOf(target);
      if (from === to) continue;
      if (!edges.has(from)) edges.set(from, new Set());
      edges.get(from)!.add(to);
    }
  }
  return edges;
}

test('engine imports neither model nor measure, and engine, model and measure form no import cycle', () => {
  const edges = folderImports();
  const reaches = (a: string, b: string): boolean => edges.get(a)?.has(b) ?? false;
  // The check reads real imports: model and measure do use engine.
  assert.ok(reaches('model', 'engine') && reaches('measure', 'engine'));
  assert.ok(!reaches('engine', 'model'), 'engine imports model');
  assert.ok(!reaches('engine', 'measure'), 'engine imports measure');
  assert.ok(!(reaches('model', 'measure') && reaches('measure', 'model')), 'model and measure import each other');
});
