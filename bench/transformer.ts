/**
 * Benchmark (issue 15, scale): weight matching of a BERT-base-shaped pair (Hugging Face names, ~110 M
 * parameters, random weights) in memory through the library, and through the CLI as whole processes,
 * with and without --low-memory.
 *
 * The pair: A has every tensor of `BertModel` (bert-base-uncased: 12 layers, width 768, 12 heads, MLP 3072,
 * vocabulary 30 522, 512 positions, 2 token types, embeddings LayerNorm, pooler) under its `bert.` names,
 * filled with seeded normal numbers (LayerNorm weights around 1); B is either
 *  - planted: a random head-structured permutation of A (permutation-spec/heads.ts's randomSpecPerms) plus noise of
 *    `noise`× each tensor's RMS, so the inverse of the planted permutation is the answer, or
 *  - unrelated: drawn from another seed (the most passes: the worst case).
 * Both are written as F32 safetensors into a temp folder by a child process. Then, each run in a fresh
 * process:
 *  - library: readSafetensorsFile, transformerSpec (12 heads), weightMatchingCheckedInMemory on ONNX Runtime
 *    (what `align` does in memory); time of matching, peak RSS (VmHWM, whole process);
 *  - CLI: `rebasin align A B -o OUT --spec transformer:12 --perms P [--low-memory]` under /usr/bin/time -v:
 *    wall time of the whole command (start-up, reading, matching, writing) and its maximum RSS.
 * Peaks are set against the size of one model in float32 (the issue's "under 3× one model").
 *
 *   node dist/bench/transformer.js [--noise X] [--only planted|unrelated] [--skip-library] [--skip-cli] [--layers N] [--timeout S]
 *   node dist/bench/transformer.js --write CASE_JSON DIR | --child CASE_JSON DIR     (children)
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';
import type { Params, Tensor } from '../src/tensor.js';
import { createRng } from '../src/random.js';
import { applyPermutation, inversePermutation } from '../src/permute.js';
import { permSizes, type PermutationSpec } from '../src/permutation-spec/spec.js';
import { randomSpecPerms } from '../src/permutation-spec/heads.js';
import { transformerSpec } from '../src/permutation-spec/transformer.js';
import { weightMatchingCheckedInMemory } from '../src/match/sorted-start.js';
import { paramsToSafetensors, toParams } from '../src/io/safetensors.js';
import { readSafetensorsFile, writeSafetensorsFile } from '../src/io/safetensors-fs.js';
import { createOrtMatmul } from '../src/engine/ort-matmul.js';
import { procStatus, recovered, spawnJson, type Outcome } from './child.js';

export interface BertShape {
  readonly layers: number;
  readonly width: number;
  readonly heads: number;
  readonly mlp: number;
  readonly vocab: number;
  readonly positions: number;
  readonly tokenTypes: number;
}

export const BERT_BASE: BertShape = { layers: 12, width: 768, heads: 12, mlp: 3072, vocab: 30522, positions: 512, tokenTypes: 2 };

export interface TransformerCase {
  readonly shape: BertShape;
  readonly input: 'planted' | 'unrelated';
  readonly seed: number;
  /** Planted pairs: noise added to B, as a multiple of each tensor's RMS. */
  readonly noise: number;
  readonly threads: number;
  readonly timeoutS: number;
}

/** Every tensor of a Hugging Face BertModel state dict (float ones: the position_ids buffer is left out). */
export function bertShapes(s: BertShape): Record<string, number[]> {
  const E = s.width;
  const out: Record<string, number[]> = Object.create(null);
  const linear = (path: string, o: number, i: number) => {
    out[`${path}.weight`] = [o, i];
    out[`${path}.bias`] = [o];
  };
  const norm = (path: string) => {
    out[`${path}.weight`] = [E];
    out[`${path}.bias`] = [E];
  };
  out['bert.embeddings.word_embeddings.weight'] = [s.vocab, E];
  out['bert.embeddings.position_embeddings.weight'] = [s.positions, E];
  out['bert.embeddings.token_type_embeddings.weight'] = [s.tokenTypes, E];
  norm('bert.embeddings.LayerNorm');
  for (let l = 0; l < s.layers; l++) {
    const b = `bert.encoder.layer.${l}`;
    linear(`${b}.attention.self.query`, E, E);
    linear(`${b}.attention.self.key`, E, E);
    linear(`${b}.attention.self.value`, E, E);
    linear(`${b}.attention.output.dense`, E, E);
    norm(`${b}.attention.output.LayerNorm`);
    linear(`${b}.intermediate.dense`, s.mlp, E);
    linear(`${b}.output.dense`, E, s.mlp);
    norm(`${b}.output.LayerNorm`);
  }
  linear('bert.pooler.dense', E, E);
  return out;
}

export function parameterCount(shapes: Readonly<Record<string, readonly number[]>>): number {
  return Object.values(shapes).reduce((n, s) => n + s.reduce((x, y) => x * y, 1), 0);
}

/** Random weights in BERT's init scale (std 0.02, LayerNorm weights near 1, small biases). */
export function randomBert(s: BertShape, seed: number): Params {
  const rng = createRng(seed);
  const out: Record<string, Tensor> = Object.create(null);
  for (const [name, shape] of Object.entries(bertShapes(s))) {
    const n = shape.reduce((x, y) => x * y, 1);
    const data = new Float32Array(n);
    const isNorm = name.includes('LayerNorm');
    const [centre, spread] = isNorm && name.endsWith('.weight') ? [1, 0.1] : isNorm || name.endsWith('.bias') ? [0, 0.02] : [0, 0.02];
    for (let i = 0; i < n; i++) data[i] = centre + spread * rng.normal();
    out[name] = { shape, data };
  }
  return out;
}

/** B = P(A) + noise with P a random head-structured permutation; also the permutations matching should find. */
export function plantedBert(spec: PermutationSpec, a: Params, noise: number, seed: number): { b: Params; truth: Record<string, Int32Array> } {
  const planted = randomSpecPerms(spec, permSizes(spec, a), seed);
  const permuted = applyPermutation(spec, planted, a);
  const rng = createRng(seed + 7919);
  const b: Record<string, Tensor> = Object.create(null);
  for (const [name, t] of Object.entries(permuted)) {
    let ss = 0;
    for (let i = 0; i < t.data.length; i++) ss += t.data[i] * t.data[i];
    const sigma = noise * Math.sqrt(ss / Math.max(1, t.data.length));
    const data = Float32Array.from(t.data);
    if (sigma > 0) for (let i = 0; i < data.length; i++) data[i] += sigma * rng.normal();
    b[name] = { shape: t.shape, data };
  }
  // P(B) = A needs P = planted⁻¹ (take(take(A, σ), σ⁻¹) = A).
  const truth = Object.fromEntries(Object.entries(planted).map(([p, s]) => [p, inversePermutation(s)]));
  return { b, truth };
}

const SELF = fileURLToPath(import.meta.url);
const CLI = resolve(SELF, '../../src/cli/main.js');

const specOf = (params: Params, heads: number) => transformerSpec(params, { heads });

/** Child: writes a.safetensors, b.safetensors and truth.json (planted pairs) into dir. */
function writeCase(c: TransformerCase, dir: string): void {
  const a = randomBert(c.shape, 1000 + c.seed);
  writeSafetensorsFile(join(dir, 'a.safetensors'), paramsToSafetensors(a));
  if (c.input === 'unrelated') {
    writeSafetensorsFile(join(dir, 'b.safetensors'), paramsToSafetensors(randomBert(c.shape, 2000 + c.seed)));
    writeFileSync(join(dir, 'truth.json'), 'null');
  } else {
    const { b, truth } = plantedBert(specOf(a, c.shape.heads), a, c.noise, 3000 + c.seed);
    writeSafetensorsFile(join(dir, 'b.safetensors'), paramsToSafetensors(b));
    writeFileSync(join(dir, 'truth.json'), JSON.stringify(Object.fromEntries(Object.entries(truth).map(([p, v]) => [p, Array.from(v)]))));
  }
  process.stdout.write('{"ok":true}\n');
}

function readTruth(dir: string): Record<string, Int32Array> | null {
  const t = JSON.parse(readFileSync(join(dir, 'truth.json'), 'utf8')) as Record<string, number[]> | null;
  return t === null ? null : Object.fromEntries(Object.entries(t).map(([p, v]) => [p, Int32Array.from(v)]));
}

export interface LibraryRun {
  readonly readSeconds: number;
  /** Matching only (weightMatchingCheckedInMemory), wall seconds. */
  readonly seconds: number;
  readonly cpuSeconds: number;
  readonly passes: number;
  readonly start: string;
  readonly recovered: number | null;
  readonly rssBaseMiB: number;
  readonly maxRssMiB: number;
}

/** Child: the library in memory, as `align` runs it. */
async function libraryChild(c: TransformerCase, dir: string): Promise<void> {
  const engine = await createOrtMatmul({ threads: c.threads });
  await engine.abt(new Float32Array(4), 2, new Float32Array(4), 2, 2);
  const rssBaseMiB = procStatus('VmRSS');
  const t = performance.now();
  const a = toParams(readSafetensorsFile(join(dir, 'a.safetensors'))).params;
  const b = toParams(readSafetensorsFile(join(dir, 'b.safetensors'))).params;
  const readSeconds = (performance.now() - t) / 1000;
  const spec = specOf(a, c.shape.heads);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const r = await weightMatchingCheckedInMemory({ spec, paramsA: a, paramsB: b, seed: 0, engine });
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const run: LibraryRun = {
    readSeconds,
    seconds,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    passes: r.iterations,
    start: r.start,
    recovered: recovered(r.perms, readTruth(dir)).fraction,
    rssBaseMiB,
    maxRssMiB: procStatus('VmHWM'),
  };
  await engine.dispose?.();
  process.stdout.write(JSON.stringify(run) + '\n');
}

export interface CliRun {
  readonly seconds: number;
  readonly maxRssMiB: number;
  readonly passes: number | null;
  readonly start: string | null;
  readonly recovered: number | null;
}

/** `rebasin align` as a whole process under /usr/bin/time -v. */
function cliRun(c: TransformerCase, dir: string, lowMemory: boolean): Outcome<CliRun> {
  const out = join(dir, lowMemory ? 'b.low.safetensors' : 'b.mem.safetensors');
  const permsFile = join(dir, lowMemory ? 'perms.low.json' : 'perms.mem.json');
  const args = ['-v', process.execPath, CLI, 'align', join(dir, 'a.safetensors'), join(dir, 'b.safetensors'), '-o', out, '--spec', `transformer:${c.shape.heads}`, '--perms', permsFile, '--json', ...(lowMemory ? ['--low-memory'] : [])];
  const r = spawnSync('/usr/bin/time', args, { encoding: 'utf8', timeout: c.timeoutS * 1000, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, ORT_DISABLE_TELEMETRY: '1' } });
  try {
    if (r.error) return { ok: false, reason: r.error.message };
    if (r.status !== 0) return { ok: false, reason: r.stderr.trim().split('\n').slice(-3).join(' ').slice(0, 300) };
    const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr);
    const wall = /Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)/.exec(r.stderr);
    if (!rss || !wall) return { ok: false, reason: 'no /usr/bin/time -v figures' };
    const summary = JSON.parse(r.stdout) as { passes: number | null; start?: string };
    const perms = JSON.parse(readFileSync(permsFile, 'utf8')) as Record<string, number[]>;
    return {
      ok: true,
      value: {
        seconds: Number(wall[1] ?? 0) * 3600 + Number(wall[2]) * 60 + Number(wall[3]),
        maxRssMiB: Number(rss[1]) / 1024,
        passes: summary.passes,
        start: summary.start ?? null,
        recovered: recovered(Object.fromEntries(Object.entries(perms).map(([p, v]) => [p, Int32Array.from(v)])), readTruth(dir)).fraction,
      },
    };
  } finally {
    rmSync(out, { force: true });
  }
}

export interface TransformerRow {
  readonly c: TransformerCase;
  readonly parameters: number;
  readonly modelMiB: number;
  readonly library: Outcome<LibraryRun> | null;
  readonly cli: Outcome<CliRun> | null;
  readonly cliLow: Outcome<CliRun> | null;
}

export function runTransformerBench(cases: readonly TransformerCase[], o: { library: boolean; cli: boolean }, log: (line: string) => void = () => {}): TransformerRow[] {
  const rows: TransformerRow[] = [];
  for (const c of cases) {
    const parameters = parameterCount(bertShapes(c.shape));
    const modelMiB = (parameters * 4) / 2 ** 20;
    const dir = mkdtempSync(join(tmpdir(), 'rebasin-transformer-bench-'));
    try {
      log(`transformer: ${c.input}: writing the pair (${(parameters / 1e6).toFixed(1)} M parameters each)`);
      const wrote = spawnJson<{ ok: true }>(process.execPath, [SELF, '--write', JSON.stringify(c), dir], c.timeoutS);
      if (!wrote.ok) {
        rows.push({ c, parameters, modelMiB, library: wrote, cli: wrote, cliLow: wrote });
        continue;
      }
      let library: Outcome<LibraryRun> | null = null;
      let cli: Outcome<CliRun> | null = null;
      let cliLow: Outcome<CliRun> | null = null;
      if (o.library) {
        log(`transformer: ${c.input}: library, in memory`);
        library = spawnJson<LibraryRun>(process.execPath, [SELF, '--child', JSON.stringify(c), dir], c.timeoutS);
      }
      if (o.cli) {
        log(`transformer: ${c.input}: rebasin align`);
        cli = cliRun(c, dir, false);
        log(`transformer: ${c.input}: rebasin align --low-memory`);
        cliLow = cliRun(c, dir, true);
      }
      rows.push({ c, parameters, modelMiB, library, cli, cliLow });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return rows;
}

const f = (x: number, d = 2): string => x.toFixed(d);
const pct = (x: number | null): string => (x === null ? '—' : `${(100 * x).toFixed(2)}%`);

export function formatTransformerBench(rows: readonly TransformerRow[]): string {
  const out = [
    '| pair | run | wall (s) | peak RSS (MiB) | peak ÷ one model | passes | start | planted units recovered |',
    '|---|---|---:|---:|---:|---:|---|---:|',
  ];
  for (const { c, modelMiB, parameters, library, cli, cliLow } of rows) {
    const pair = `${c.input === 'planted' ? `planted, noise ${c.noise}×RMS` : 'unrelated'} (${(parameters / 1e6).toFixed(1)} M, ${f(modelMiB, 0)} MiB)`;
    const fail = (o: Outcome<unknown>) => (o.ok ? '' : o.reason);
    if (library) {
      if (library.ok) {
        const l = library.value;
        out.push(`| ${pair} | library in memory (matching only; read ${f(l.readSeconds)} s, CPU ${f(l.cpuSeconds, 1)} s) | ${f(l.seconds)} | ${f(l.maxRssMiB, 0)} | ${f(l.maxRssMiB / modelMiB)}× | ${l.passes} | ${l.start} | ${pct(l.recovered)} |`);
      } else out.push(`| ${pair} | library in memory | — (${fail(library)}) | | | | | |`);
    }
    for (const [label, run] of [['`align` (whole process)', cli], ['`align --low-memory` (whole process)', cliLow]] as const) {
      if (run === null) continue;
      if (run.ok) {
        const r = run.value;
        out.push(`| ${pair} | ${label} | ${f(r.seconds)} | ${f(r.maxRssMiB, 0)} | ${f(r.maxRssMiB / modelMiB)}× | ${r.passes ?? '—'} | ${r.start ?? '—'} | ${pct(r.recovered)} |`);
      } else out.push(`| ${pair} | ${label} | — (${fail(run)}) | | | | | |`);
    }
  }
  return out.join('\n');
}

function flagValue(argv: readonly string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
}

async function main(argv: string[]): Promise<void> {
  if (argv[0] === '--write') return writeCase(JSON.parse(argv[1]) as TransformerCase, argv[2]);
  if (argv[0] === '--child') return libraryChild(JSON.parse(argv[1]) as TransformerCase, argv[2]);
  const noise = Number(flagValue(argv, '--noise') ?? 0.5);
  const layers = Number(flagValue(argv, '--layers') ?? BERT_BASE.layers);
  const only = flagValue(argv, '--only');
  const timeoutS = Number(flagValue(argv, '--timeout') ?? 600);
  const shape = { ...BERT_BASE, layers };
  const cases: TransformerCase[] = (['planted', 'unrelated'] as const)
    .filter((input) => only === undefined || only === input)
    .map((input, i) => ({ shape, input, seed: 1 + i, noise, threads: 2, timeoutS }));
  const rows = runTransformerBench(cases, { library: !argv.includes('--skip-library'), cli: !argv.includes('--skip-cli') }, (l) => console.error(l));
  console.log(formatTransformerBench(rows));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
