/**
 * Benchmark (issue 6): matching a ResNet-50-shaped pair from safetensors files, streamed versus in memory.
 *
 * The pair is bench/resnet.ts's (same shapes, init, seeds and planted pair), written as F32 safetensors to a
 * temp folder by a child process. Then, each in its own fresh process (so VmHWM is that run's alone):
 *  - streamed:  open both files as ParamSources, weightMatchingFrom, then writePermutedSafetensors of
 *               B with the permutations found (what `rebasin align --low-memory` would do);
 *  - in memory: what `rebasin align` does today: read both files (readSafetensorsFile, toParams, the file
 *               kept to write B back like it), weightMatching, applyPermutation, write B.
 * Both use ONNX Runtime with `threads` intra-op threads and seed 0, and must find the same permutations.
 *
 * Peak RSS is the whole process's high-water mark (VmHWM, never reset: runtime, models, matching, writing
 * all count), read after matching and again after writing, set against the size of one model in float32.
 *
 *   node dist/bench/stream.js [--quick] [--threads N] [--only PREFIX]
 *   node dist/bench/stream.js --write CASE_JSON DIR | --child streamed|memory CASE_JSON DIR   (children)
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';
import type { Tensor } from '../src/tensor.js';
import { resnetSpec } from '../src/permutation-spec/resnet.js';
import { applyPermutation } from '../src/permute.js';
import { weightMatching, type WeightMatchingResult } from '../src/match/weight-matching.js';
import { weightMatchingFrom } from '../src/match/weight-matching.js';
import { openSafetensorsSource } from '../src/match/param-source-fs.js';
import { paramsToSafetensors, toParams } from '../src/io/safetensors.js';
import { readSafetensorsFile, writeSafetensorsFile } from '../src/io/safetensors-fs.js';
import { writePermutedSafetensors } from '../src/io/safetensors-stream.js';
import { createOrtMatmul } from '../src/engine/ort-matmul.js';
import { plantedPair } from './wm.js';
import { parameterCount, randomResnet, shapesOf, type ResnetArch } from './resnet.js';
import { procStatus, spawnJson, type Outcome } from './child.js';

export interface StreamCase {
  readonly arch: ResnetArch;
  readonly input: 'random' | 'trained-like';
  readonly seed: number;
  readonly noise?: number;
  readonly threads: number;
  readonly timeoutS: number;
}

export interface StreamRun {
  /** Matching only, wall seconds. */
  readonly seconds: number;
  /** Writing the permuted B, wall seconds. */
  readonly writeSeconds: number;
  /** Reading both models (in memory only; the streamed run reads headers only, inside matching). */
  readonly readSeconds: number;
  readonly iterations: number;
  readonly objectiveAfter: number;
  /** sha256 of the permutations, to check both runs found the same ones. */
  readonly permsHash: string;
  /** VmRSS before reading anything (runtime and engine loaded), MiB. */
  readonly rssBaseMiB: number;
  /** VmHWM after matching and after writing, MiB: whole process. */
  readonly peakMatchMiB: number;
  readonly maxRssMiB: number;
}

export interface StreamRow {
  readonly c: StreamCase;
  readonly modelMiB: number;
  readonly streamed: Outcome<StreamRun>;
  readonly memory: Outcome<StreamRun>;
}

const SELF = fileURLToPath(import.meta.url);

export function streamCases(quick: boolean, threads = 2): StreamCase[] {
  // The quick set has no ResNet-50: the run stays short; the full run measures what issue 6 asks about.
  if (quick) return [{ arch: 'resnet20x4', input: 'trained-like', seed: 11, noise: 0.5, threads, timeoutS: 300 }];
  return [
    { arch: 'resnet50-shaped', input: 'trained-like', seed: 13, noise: 0.5, threads, timeoutS: 600 },
    { arch: 'resnet50-shaped', input: 'random', seed: 14, threads, timeoutS: 600 },
  ];
}

export function describeStream(c: StreamCase): string {
  return `${c.arch} ${c.input === 'trained-like' ? `trained-like σ=${c.noise}` : 'random'}`;
}

/** The pair of bench/resnet.ts for this case (same seeds), as two F32 safetensors files. */
function writePair(c: StreamCase, dir: string): void {
  const shapes = shapesOf(c.arch);
  const a = randomResnet(shapes, 1000 + c.seed);
  let b: Record<string, Tensor>;
  if (c.input === 'random') b = randomResnet(shapes, 2000 + c.seed);
  else b = plantedPair(resnetSpec(a), a, c.noise ?? 0.5, 3000 + c.seed).b;
  writeSafetensorsFile(join(dir, 'a.safetensors'), paramsToSafetensors(a));
  writeSafetensorsFile(join(dir, 'b.safetensors'), paramsToSafetensors(b));
}

function hashPerms(perms: Readonly<Record<string, Int32Array>>): string {
  const h = createHash('sha256');
  for (const p of Object.keys(perms).sort()) {
    h.update(p);
    h.update(new Uint8Array(perms[p].buffer, perms[p].byteOffset, perms[p].byteLength));
  }
  return h.digest('hex').slice(0, 16);
}

async function runChild(mode: 'streamed' | 'memory', c: StreamCase, dir: string): Promise<void> {
  const engine = await createOrtMatmul({ threads: c.threads });
  await engine.abt(new Float32Array(4), 2, new Float32Array(4), 2, 2);
  const rssBaseMiB = procStatus('VmRSS');
  const pathA = join(dir, 'a.safetensors');
  const pathB = join(dir, 'b.safetensors');
  const out = join(dir, `b.${mode}.safetensors`);
  let res: WeightMatchingResult;
  let readSeconds = 0;
  let seconds: number;
  let writeSeconds: number;
  let peakMatchMiB: number;
  if (mode === 'streamed') {
    const sourceA = openSafetensorsSource(pathA);
    const sourceB = openSafetensorsSource(pathB);
    // The spec is read from names and shapes only; the empty stand-ins carry exactly that.
    const spec = resnetSpec(Object.fromEntries(sourceA.names.map((n) => [n, { shape: sourceA.shape(n), data: new Float32Array(0) }])));
    const t0 = performance.now();
    res = await weightMatchingFrom({ spec, sourceA, sourceB, seed: 0, engine });
    seconds = (performance.now() - t0) / 1000;
    peakMatchMiB = procStatus('VmHWM');
    sourceA.close();
    sourceB.close();
    const t1 = performance.now();
    writePermutedSafetensors(pathB, out, spec, res.perms, { inputs: [pathA] });
    writeSeconds = (performance.now() - t1) / 1000;
  } else {
    const t = performance.now();
    const fileA = readSafetensorsFile(pathA);
    const fileB = readSafetensorsFile(pathB);
    const a = toParams(fileA).params;
    const b = toParams(fileB).params;
    readSeconds = (performance.now() - t) / 1000;
    const spec = resnetSpec(a);
    const t0 = performance.now();
    res = await weightMatching({ spec, paramsA: a, paramsB: b, seed: 0, engine });
    seconds = (performance.now() - t0) / 1000;
    peakMatchMiB = procStatus('VmHWM');
    const t1 = performance.now();
    writeSafetensorsFile(out, paramsToSafetensors(applyPermutation(spec, res.perms, b), { like: fileB }), { inputs: [pathA, pathB] });
    writeSeconds = (performance.now() - t1) / 1000;
  }
  const maxRssMiB = procStatus('VmHWM');
  await engine.dispose?.();
  const run: StreamRun = {
    seconds,
    writeSeconds,
    readSeconds,
    iterations: res.iterations,
    objectiveAfter: res.objectiveAfter,
    permsHash: hashPerms(res.perms),
    rssBaseMiB,
    peakMatchMiB,
    maxRssMiB,
  };
  process.stdout.write(JSON.stringify(run) + '\n');
}

export function runStreamBench(cases: readonly StreamCase[], log: (line: string) => void = () => {}): StreamRow[] {
  const rows: StreamRow[] = [];
  for (const c of cases) {
    const dir = mkdtempSync(join(tmpdir(), 'rebasin-stream-bench-'));
    try {
      const modelMiB = (parameterCount(shapesOf(c.arch)) * 4) / 2 ** 20;
      log(`stream: ${describeStream(c)}: writing the pair`);
      const wrote = spawnJson<{ ok: true }>(process.execPath, [SELF, '--write', JSON.stringify(c), dir], c.timeoutS);
      if (!wrote.ok) {
        rows.push({ c, modelMiB, streamed: wrote, memory: wrote });
        continue;
      }
      log(`stream: ${describeStream(c)}: streamed`);
      const streamed = spawnJson<StreamRun>(process.execPath, [SELF, '--child', 'streamed', JSON.stringify(c), dir], c.timeoutS);
      log(`stream: ${describeStream(c)}: in memory`);
      const memory = spawnJson<StreamRun>(process.execPath, [SELF, '--child', 'memory', JSON.stringify(c), dir], c.timeoutS);
      rows.push({ c, modelMiB, streamed, memory });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return rows;
}

const f = (x: number, d = 2): string => x.toFixed(d);

export function formatStreamBench(rows: readonly StreamRow[]): string {
  const out = [
    '| case | one model (MiB) | passes | match (s) streamed / in memory | write B (s) streamed / in memory | runtime baseline (MiB) | peak after matching streamed / in memory (MiB) | peak incl. writing streamed / in memory (MiB) | peak ÷ one model streamed / in memory | same perms |',
    '|---|---:|---|---|---|---:|---|---|---|---|',
  ];
  for (const { c, modelMiB, streamed, memory } of rows) {
    const s = streamed.ok ? streamed.value : null;
    const m = memory.ok ? memory.value : null;
    const v = (x: StreamRun | null, o: Outcome<StreamRun>, g: (r: StreamRun) => string): string => (x ? g(x) : `— (${o.ok ? '' : o.reason})`);
    const same = s && m ? (s.permsHash === m.permsHash && s.objectiveAfter === m.objectiveAfter ? 'yes' : 'NO') : '—';
    out.push(
      `| ${describeStream(c)} | ${f(modelMiB, 1)} | ${s?.iterations ?? '—'} / ${m?.iterations ?? '—'} | ${v(s, streamed, (r) => f(r.seconds))} / ${v(m, memory, (r) => f(r.seconds) + (r.readSeconds > 0 ? ` (+${f(r.readSeconds)} read)` : ''))} | ${v(s, streamed, (r) => f(r.writeSeconds))} / ${v(m, memory, (r) => f(r.writeSeconds))} | ${s ? f(s.rssBaseMiB, 0) : '—'} | ${v(s, streamed, (r) => f(r.peakMatchMiB, 0))} / ${v(m, memory, (r) => f(r.peakMatchMiB, 0))} | ${v(s, streamed, (r) => f(r.maxRssMiB, 0))} / ${v(m, memory, (r) => f(r.maxRssMiB, 0))} | ${v(s, streamed, (r) => f(r.maxRssMiB / modelMiB) + '×')} / ${v(m, memory, (r) => f(r.maxRssMiB / modelMiB) + '×')} | ${same} |`,
    );
  }
  return out.join('\n');
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2);
  if (args[0] === '--write') {
    writePair(JSON.parse(args[1]) as StreamCase, args[2]);
    process.stdout.write('{"ok":true}\n');
  } else if (args[0] === '--child') {
    await runChild(args[1] as 'streamed' | 'memory', JSON.parse(args[2]) as StreamCase, args[3]);
  } else {
    const t = args.indexOf('--threads');
    const only = args.indexOf('--only');
    let cases = streamCases(args.includes('--quick'), t >= 0 ? Number(args[t + 1]) : 2);
    if (only >= 0) cases = cases.filter((c) => describeStream(c).startsWith(args[only + 1]));
    const rows = runStreamBench(cases, (l) => console.error(`${new Date().toISOString().slice(11, 19)} ${l}`));
    console.log(formatStreamBench(rows));
  }
}
