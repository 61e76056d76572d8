/**
 * Benchmark: conv-net evaluation, rebasin against PyTorch on CPU, as whole processes (issue 17).
 *
 * The pair: a CIFAR-style ResNet-20 for 28×28 inputs (16/32/64 channels, three blocks per stage, BatchNorm
 * folded into the convolutions by the exporter) from two seeds, made by bench/eval_torch.py with PyTorch and
 * cached in bench/out/eval/ (git-ignored). PyTorch evaluates the modules from their state dicts, rebasin the
 * ONNX exports of the same weights.
 *
 * One run of each side is a fresh process that loads both models and the first N Fashion-MNIST test images
 * (IDX files, pixels / 255) and evaluates each model on them in batches of 500 (mean cross-entropy,
 * accuracy), with the same number of threads (torch.set_num_threads; ONNX Runtime intra-op threads). Timed:
 * the process's wall time from spawn to exit (start-up, imports and reading files included), its own CPU
 * time, and the evaluation alone. Sides:
 *   torch     bench/eval_torch.py eval
 *   ours      createOnnxRunner + evaluate, as `report`/`barrier` evaluate (constant-weight sessions)
 *   ours-fed  the same with constantWeights: false (every pass on the one weight-fed session, as before)
 *   cli       `rebasin barrier A B --data fashion-mnist --limit N --points 1` (ONNX Runtime's own thread count;
 *             the graph walk for the spec included): what a user's command pays for the same two passes
 * Runs are interleaved (torch, ours, ours-fed, cli, torch, ...) and the fastest of each side is kept. Losses
 * of the two sides are printed: they must agree (same weights, same images).
 *
 * With --report, also the cost of `rebasin report` per 1000 images: the command run with --limit 1000 and
 * --limit 2000 (25-point sweeps, weight matching), the difference of the two wall times per 1000 images.
 *
 *   node dist/bench/eval.js [--images 2000] [--threads 2] [--reps 3] [--python /usr/bin/python3] [--report]
 *   node dist/bench/eval.js --child DIR IMAGES THREADS constant|fed     one run of ours (prints JSON)
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';

const SELF = fileURLToPath(import.meta.url);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DIR = join(ROOT, 'bench', 'out', 'eval');
const TORCH_SCRIPT = join(ROOT, 'bench', 'eval_torch.py');
const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');
const FASHION = '/usr/share/datasets/fashion-mnist';

interface Evaluated {
  loss: number;
  accuracy: number;
}

interface ChildResult {
  results: Evaluated[];
  evalSeconds: number;
  cpuSeconds?: number;
}

interface Run {
  side: string;
  wall: number;
  cpu: number | null;
  evalSeconds: number | null;
  results: Evaluated[] | null;
}

async function child(dir: string, images: number, threads: number, mode: string): Promise<void> {
  const { readOnnxFile } = await import('../src/io/onnx-file.js');
  const { onnxParams } = await import('../src/io/onnx.js');
  const { loadDataset } = await import('../src/data/load.js');
  const { createOnnxRunner } = await import('../src/engine/onnx-runner.js');
  const data = loadDataset('fashion-mnist', { limit: images });
  const evalData = { inputs: data.inputs, labels: data.labels, count: data.count };
  const models = ['a', 'b'].map((t) => readOnnxFile(join(dir, `resnet20_${t}.onnx`)).model);
  const runner = await createOnnxRunner(models[0], { threads, batchSize: 500, constantWeights: mode !== 'fed' });
  const results: Evaluated[] = [];
  let evalSeconds = 0;
  for (const m of models) {
    const params = onnxParams(m);
    const t = performance.now();
    results.push(await runner.evaluate(params, evalData));
    evalSeconds += (performance.now() - t) / 1000;
  }
  await runner.dispose();
  const cpu = process.cpuUsage();
  process.stdout.write(`${JSON.stringify({ results, evalSeconds, cpuSeconds: (cpu.user + cpu.system) / 1e6 })}\n`);
}

function timed(side: string, cmd: string, args: string[], env: NodeJS.ProcessEnv, parse: (stdout: string) => ChildResult | null): Run {
  const t = performance.now();
  const r = spawnSync(cmd, args, { encoding: 'utf8', env, maxBuffer: 64 * 1024 * 1024, timeout: 600_000 });
  const wall = (performance.now() - t) / 1000;
  if (r.status !== 0) throw new Error(`${side}: exit ${r.status}: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
  const p = parse(r.stdout);
  return { side, wall, cpu: p?.cpuSeconds ?? null, evalSeconds: p?.evalSeconds ?? null, results: p?.results ?? null };
}

const lastJson = (stdout: string): ChildResult => JSON.parse(stdout.trim().split('\n').pop() ?? '') as ChildResult;

function pythonEnv(threads: number): NodeJS.ProcessEnv {
  // Both sides get the same thread count; the OpenBLAS tuning variables set on this machine for old builds
  // are removed, as bench/wm.ts does for numpy.
  const env: NodeJS.ProcessEnv = { ...process.env, OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads) };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  return env;
}

function option(args: string[], name: string, fallback: string): string {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback;
}

async function main(args: string[]): Promise<void> {
  if (args[0] === '--child') return child(args[1], Number(args[2]), Number(args[3]), args[4]);
  const images = Number(option(args, '--images', '2000'));
  const threads = Number(option(args, '--threads', '2'));
  const reps = Number(option(args, '--reps', '3'));
  const python = option(args, '--python', '/usr/bin/python3');
  if (!existsSync(join(FASHION, 't10k-images-idx3-ubyte.gz'))) throw new Error(`needs Fashion-MNIST in ${FASHION} (Debian's dataset-fashion-mnist)`);
  if (!existsSync(join(DIR, 'resnet20_b.onnx')) || !existsSync(join(DIR, 'resnet20_b.pt'))) {
    const made = spawnSync(python, [TORCH_SCRIPT, 'make', DIR], { encoding: 'utf8', env: pythonEnv(threads) });
    if (made.status !== 0) throw new Error(`making the ResNet-20 pair needs PyTorch (${python}): ${made.stderr.trim().split('\n').pop()}`);
  }
  const a = join(DIR, 'resnet20_a.onnx');
  const b = join(DIR, 'resnet20_b.onnx');
  const sides: Record<string, () => Run> = {
    torch: () => timed('torch', python, [TORCH_SCRIPT, 'eval', DIR, String(images), String(threads), FASHION], pythonEnv(threads), lastJson),
    ours: () => timed('ours', process.execPath, [SELF, '--child', DIR, String(images), String(threads), 'constant'], process.env, lastJson),
    'ours-fed': () => timed('ours-fed', process.execPath, [SELF, '--child', DIR, String(images), String(threads), 'fed'], process.env, lastJson),
    cli: () =>
      timed('cli', process.execPath, [CLI, '--quiet', 'barrier', a, b, '--data', 'fashion-mnist', '--limit', String(images), '--points', '1', '--json'], process.env, (out) => {
        const j = JSON.parse(out) as { naive: { curve: { loss: number; accuracy: number }[] } };
        return { results: j.naive.curve.map((p) => ({ loss: p.loss, accuracy: p.accuracy })), evalSeconds: NaN };
      }),
  };
  const best: Record<string, Run> = {};
  for (let r = 0; r < reps; r++) {
    for (const [side, run] of Object.entries(sides)) {
      const got = run();
      process.stderr.write(`rep ${r + 1}/${reps} ${side}: ${got.wall.toFixed(2)} s wall, ${got.cpu?.toFixed(2) ?? '-'} s CPU, eval ${got.evalSeconds?.toFixed(2) ?? '-'} s\n`);
      if (best[side] === undefined || got.wall < best[side].wall) best[side] = got;
    }
  }
  const torch = best.torch;
  const lines = [
    `ResNet-20 pair (bench/out/eval), 2 models x ${images} Fashion-MNIST test images, ${threads} threads, best of ${reps} whole processes`,
    '| side | wall s | CPU s | evaluation s | wall / PyTorch | loss A | loss B |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const side of Object.keys(sides)) {
    const r = best[side];
    const res = r.results ?? [];
    lines.push(
      `| ${side} | ${r.wall.toFixed(2)} | ${r.cpu?.toFixed(2) ?? '-'} | ${r.evalSeconds !== null && Number.isFinite(r.evalSeconds) ? r.evalSeconds.toFixed(2) : '-'} | ${(r.wall / torch.wall).toFixed(2)}x | ${res[0]?.loss.toFixed(6) ?? '-'} | ${res[1]?.loss.toFixed(6) ?? '-'} |`,
    );
  }
  const worst = Math.max(...Object.values(best).flatMap((r) => (r.results ?? []).map((e, i) => Math.abs(e.loss - (torch.results ?? [])[i].loss))));
  lines.push(`largest loss difference from PyTorch: ${worst.toExponential(2)}; ratio rebasin/PyTorch (ours): ${(best.ours.wall / torch.wall).toFixed(2)}x wall, evaluation alone ${((best.ours.evalSeconds ?? NaN) / (torch.evalSeconds ?? NaN)).toFixed(2)}x`);
  if (args.includes('--report')) {
    const walls = [1000, 2000].map((n) => {
      let fastest = Infinity;
      for (let r = 0; r < Math.max(1, reps - 1); r++) {
        fastest = Math.min(fastest, timed('report', process.execPath, [CLI, '--quiet', 'report', a, b, '--data', 'fashion-mnist', '--limit', String(n), '--json'], process.env, () => null).wall);
      }
      return fastest;
    });
    lines.push(`rebasin report (25-point sweeps, weight matching): ${walls[0].toFixed(1)} s at --limit 1000, ${walls[1].toFixed(1)} s at --limit 2000: ${(walls[1] - walls[0]).toFixed(1)} s per 1000 images`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

await main(process.argv.slice(2));
