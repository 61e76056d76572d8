/**
 * Streaming (issue 6): matching from lazily loaded params, and writing a permuted model tensor by tensor.
 *
 * The truth is the in-memory path: weightMatching on params in memory, and readSafetensorsFile +
 * applyPermutation + paramsToSafetensors({like}) + serialize. The streamed versions must give the same
 * permutations, passes and objectives to the last bit, and the same file byte for byte.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Params, Tensor } from '../src/tensor.js';
import { createRng } from '../src/random.js';
import { InputError } from '../src/errors.js';
import { mlpSpec } from '../src/permutation-spec/mlp.js';
import { resnetSpec } from '../src/permutation-spec/resnet.js';
import { permSizes, type PermutationSpec } from '../src/permutation-spec/spec.js';
import { applyPermutation, randomPerms } from '../src/permute.js';
import { weightMatching, type WeightMatchingOptions, type WeightMatchingResult } from '../src/match/weight-matching.js';
import { weightMatchingFrom, sourceObjective as streamedObjective } from '../src/match/weight-matching.js';
import { paramsSource, type ParamSource } from '../src/match/param-source.js';
import { openSafetensorsSource } from '../src/match/param-source-fs.js';
import { jsMatmul } from '../src/engine/matmul.js';
import { createOrtMatmul } from '../src/engine/ort-matmul.js';
import { paramsToSafetensors, serializeSafetensors, toParams, type StoredTensor } from '../src/io/safetensors.js';
import { readSafetensorsFile } from '../src/io/safetensors-fs.js';
import { writePermutedSafetensors } from '../src/io/safetensors-stream.js';
import type { FloatDtype } from '../src/io/dtype.js';
import { randomMlp } from './helpers/mlp.js';
import { randomResnet, resnet20Shapes } from '../bench/resnet.js';

const FIXTURE = fileURLToPath(new URL('../../test/fixtures/models/resnet_a.safetensors', import.meta.url));

async function withTempDirAsync<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'rebasin-stream-'));
  try {
    return await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function writeModel(path: string, params: Params, dtypes?: Record<string, FloatDtype>, extra?: Record<string, StoredTensor>): void {
  writeFileSync(path, serializeSafetensors(paramsToSafetensors(params, { dtypes, extra, metadata: { format: 'pt' } })));
}

function assertSameResult(got: WeightMatchingResult, want: WeightMatchingResult): void {
  assert.deepEqual(Object.keys(got.perms), Object.keys(want.perms));
  for (const p of Object.keys(want.perms)) assert.deepEqual(got.perms[p], want.perms[p], `perm ${p}`);
  assert.equal(got.iterations, want.iterations);
  assert.equal(got.converged, want.converged);
  assert.equal(got.objectiveBefore, want.objectiveBefore);
  assert.equal(got.objectiveAfter, want.objectiveAfter);
  assert.deepEqual(got.history, want.history);
}

/** Wraps a source and records which tensors were fetched, so a test can see what each step loaded. */
function recording(source: ParamSource, log: string[]): ParamSource {
  return {
    ...source,
    get: (name) => (log.push(name), source.get(name)),
    use: (name, fn) => (log.push(name), source.use(name, fn)),
  };
}

type Shared = Omit<WeightMatchingOptions, 'paramsA' | 'paramsB' | 'spec'>;

/** Runs both versions, with the streamed one loading through recording sources, and checks what each step loaded. */
async function compare(spec: PermutationSpec, a: Params, b: Params, sourceA: ParamSource, sourceB: ParamSource, shared: Shared): Promise<WeightMatchingResult> {
  // The streamed path (low memory by default: no kept cost matrices, products term group by term group)
  // against the same algorithm on params in memory; kept matrices have tests of their own (cost-cache.test.ts).
  const opts: Shared = { ...shared, lowMemory: true };
  const want = await weightMatching({ spec, paramsA: a, paramsB: b, ...opts });
  const loaded: string[] = [];
  let steps = 0;
  const got = await weightMatchingFrom({
    spec,
    sourceA: recording(sourceA, loaded),
    sourceB: recording(sourceB, loaded),
    ...opts,
    onProgress: (e) => {
      const expected = e.reused ? 0 : 2 * spec.permToAxes[e.perm].length;
      // Before the first step, the starting objective (and cosine norms) read every tensor once.
      if (steps++ === 0) loaded.splice(0, loaded.length - expected);
      // With the cosine score, each pass ends by computing the objective afresh: every tensor once more.
      else if (opts.score === 'cosine' && e.step === 0) {
        assert.deepEqual(loaded.splice(0, 2 * sourceA.names.length), sourceA.names.flatMap((n) => [n, n]));
      }
      const terms = new Set(spec.permToAxes[e.perm].map((t) => t.tensor));
      if (e.reused) assert.equal(loaded.length, 0, `skipped step ${e.perm} loaded tensors`);
      for (const name of loaded) assert.ok(terms.has(name), `step ${e.perm} loaded ${name}, not one of its terms`);
      // Each term's tensor of A and of B, once per axis the permutation has on it: nothing twice over.
      assert.equal(loaded.length, expected);
      loaded.length = 0;
    },
  });
  assertSameResult(got, want);
  return got;
}

test('streamed matching of an MLP equals weightMatching, in memory and from safetensors files (F32, F16, BF16)', async () => {
  const a = randomMlp([12, 32, 32, 32, 6], 'torch', 1);
  const b = randomMlp([12, 32, 32, 32, 6], 'torch', 2);
  const spec = mlpSpec(3);
  const modes: Shared[] = [
    { engine: jsMatmul, seed: 3 },
    { engine: jsMatmul, seed: 4, plain: true },
    { engine: jsMatmul, seed: 5, score: 'cosine' },
    { engine: jsMatmul, seed: 6, maxIter: 1 },
  ];
  let passes = 0;
  for (const opts of modes) {
    const r = await compare(spec, a, b, paramsSource(a), paramsSource(b), opts);
    passes = Math.max(passes, r.iterations);
  }
  assert.ok(passes >= 2, 'a random pair should take several passes, or the comparison shows little');

  await withTempDirAsync(async (dir) => {
    for (const dtype of ['F32', 'F16', 'BF16', 'F64'] as const) {
      const pa = join(dir, `a-${dtype}.safetensors`);
      const pb = join(dir, `b-${dtype}.safetensors`);
      const dtypes = Object.fromEntries(Object.keys(a).map((k) => [k, dtype]));
      writeModel(pa, a, dtypes);
      writeModel(pb, b, dtypes);
      // The in-memory truth reads the same files the usual way.
      const memA = toParams(readSafetensorsFile(pa)).params;
      const memB = toParams(readSafetensorsFile(pb)).params;
      const sa = openSafetensorsSource(pa);
      const sb = openSafetensorsSource(pb);
      try {
        assert.deepEqual(sa.names, Object.keys(memA));
        for (const name of sa.names) assert.deepEqual(sa.get(name), memA[name], `${dtype} ${name} decoded as toParams does`);
        await compare(spec, memA, memB, sa, sb, { engine: jsMatmul, seed: 7 });
      } finally {
        sa.close();
        sb.close();
      }
    }
  });
});

test('streamed matching of a ResNet-20-shaped pair from safetensors files equals weightMatching', async () => {
  const shapes = resnet20Shapes(1);
  const a = randomResnet(shapes, 21);
  const b = randomResnet(shapes, 22);
  const spec = resnetSpec(a);
  await withTempDirAsync(async (dir) => {
    const pa = join(dir, 'a.safetensors');
    const pb = join(dir, 'b.safetensors');
    writeModel(pa, a);
    writeModel(pb, b);
    const sa = openSafetensorsSource(pa);
    const sb = openSafetensorsSource(pb);
    try {
      const r = await compare(spec, a, b, sa, sb, { engine: jsMatmul, seed: 8 });
      assert.ok(r.iterations >= 2 && r.objectiveAfter > r.objectiveBefore, 'the pair should need real work');
      assert.equal(streamedObjective(spec, r.perms, sa, sb), r.objectiveAfter);
      // A cache large enough for everything: same result, and each tensor read from disk once only.
      const ca = openSafetensorsSource(pa, { cacheBytes: 1 << 30 });
      const cb = openSafetensorsSource(pb, { cacheBytes: 1 << 30 });
      const cached = await weightMatchingFrom({ spec, sourceA: ca, sourceB: cb, engine: jsMatmul, seed: 8 });
      assertSameResult(cached, r);
      assert.equal(ca.loads, ca.names.length);
      assert.equal(cb.loads, cb.names.length);
      ca.close();
      cb.close();
    } finally {
      sa.close();
      sb.close();
    }
  });
});

test('low-memory products (term groups, row blocks) give the same matching as one product per step', async () => {
  const shapes = resnet20Shapes(2);
  const a = randomResnet(shapes, 31);
  const b = randomResnet(shapes, 32);
  const spec = resnetSpec(a);
  for (const engine of [jsMatmul, await createOrtMatmul()]) {
    const whole = await weightMatching({ spec, paramsA: a, paramsB: b, engine, seed: 1, incremental: false, lowMemory: false });
    let calls = 0;
    const counting = { ...engine, abt: (...args: Parameters<typeof engine.abt>) => (calls++, engine.abt(...args)) };
    const low = await weightMatching({ spec, paramsA: a, paramsB: b, engine: counting, seed: 1, lowMemory: true });
    assert.deepEqual(low.perms, whole.perms, engine.name);
    assert.equal(low.iterations, whole.iterations);
    assert.equal(low.objectiveAfter, whole.objectiveAfter);
    low.history.forEach((h, i) => assert.ok(Math.abs(h.objective - whole.history[i].objective) <= 1e-6 * Math.abs(h.objective)));
    // Split for real: more products than steps (several term groups or row blocks per step).
    const steps = low.history.length * Object.keys(low.perms).length;
    assert.ok(calls > steps, `${calls} products for at most ${steps} steps`);
    assert.ok(whole.iterations >= 3, `${whole.iterations} passes`);
  }
});

test('the source cache stays within its byte bound and evicts the least recently used tensor', () => {
  const t = (n: number, v: number): Tensor => ({ shape: [n], data: new Float32Array(n).fill(v) });
  // 400, 400 and 800 bytes of float32.
  const params = { x: t(100, 1), y: t(100, 2), z: t(200, 3) };
  withTempDirSync((dir) => {
    const path = join(dir, 'm.safetensors');
    writeModel(path, params);
    const s = openSafetensorsSource(path, { cacheBytes: 1000 });
    s.get('x');
    s.get('y');
    s.get('x'); // hit; y is now the least recently used
    assert.equal(s.loads, 2);
    s.get('z'); // 800 bytes: evicts y (400 + 800 > 1000), then x too (400 + 800 > 1000)
    assert.equal(s.loads, 3);
    s.get('z');
    assert.equal(s.loads, 3, 'z stays cached');
    s.get('x');
    assert.equal(s.loads, 4, 'x was evicted to make room for z');
    s.get('z');
    assert.equal(s.loads, 5, 'x (400) pushed z (800) out: 1200 > 1000');
    const big = openSafetensorsSource(path, { cacheBytes: 300 });
    big.get('x');
    big.get('x');
    assert.equal(big.loads, 2, 'a tensor larger than the whole cache is never cached');
    assert.deepEqual(Array.from(big.get('z').data.slice(0, 3)), [3, 3, 3]);
    s.close();
    big.close();
    assert.throws(() => s.get('x'), /closed/);
  });
});

test('a file source refuses missing tensors, non-finite values, and spec mismatches with InputErrors', async () => {
  await withTempDirAsync(async (dir) => {
    const a = randomMlp([4, 6, 3], 'torch', 1);
    const bad = { ...a, 'layer0.bias': { shape: [6], data: new Float32Array([0, 1, NaN, 0, 0, 0]) } };
    const path = join(dir, 'bad.safetensors');
    writeModel(path, bad);
    const s = openSafetensorsSource(path);
    assert.throws(() => s.get('layer0.bias'), (e: unknown) => e instanceof InputError && /layer0\.bias.*NaN.*flat index 2/.test(e.message));
    assert.throws(() => s.get('nope'), (e: unknown) => e instanceof InputError && /no tensor named "nope"/.test(e.message));
    s.close();
    assert.throws(() => openSafetensorsSource(join(dir, 'missing.safetensors')), (e: unknown) => e instanceof InputError && /no such file/.test(e.message));
    const other = randomMlp([4, 7, 3], 'torch', 2);
    await assert.rejects(
      weightMatchingFrom({ spec: mlpSpec(1), sourceA: paramsSource(a), sourceB: paramsSource(other) }),
      (e: unknown) => e instanceof InputError && /layer0\.weight.*\[6, 4\].*\[7, 4\]/.test(e.message),
    );
  });
});

function withTempDirSync<T>(fn: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'rebasin-stream-'));
  try {
    return fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The in-memory path the streamed writer must reproduce byte for byte. */
function inMemoryPermuted(path: string, spec: PermutationSpec, perms: Record<string, Int32Array>): Uint8Array {
  const file = readSafetensorsFile(path);
  const permuted = applyPermutation(spec, perms, toParams(file).params);
  return serializeSafetensors(paramsToSafetensors(permuted, { like: file }));
}

test('writePermutedSafetensors writes exactly what the in-memory path writes (real ResNet fixture)', () => {
  const params = toParams(readSafetensorsFile(FIXTURE)).params;
  const spec = resnetSpec(params);
  const sizes = permSizes(spec, params);
  withTempDirSync((dir) => {
    for (const seed of [1, 2]) {
      const perms = randomPerms(sizes, seed);
      const out = join(dir, `p${seed}.safetensors`);
      writePermutedSafetensors(FIXTURE, out, spec, perms);
      const got = readFileSync(out);
      const want = inMemoryPermuted(FIXTURE, spec, perms);
      assert.equal(got.length, want.length);
      assert.ok(Buffer.compare(got, Buffer.from(want.buffer, want.byteOffset, want.length)) === 0, `seed ${seed}: bytes differ`);
      // And it is a real permutation, not a copy.
      assert.ok(Buffer.compare(got, readFileSync(FIXTURE)) !== 0);
    }
  });
});

test('writePermutedSafetensors keeps dtypes, passthrough tensors, metadata, unchanged F64 bytes; refuses bad input', () => {
  const rng = createRng(5);
  const a = randomMlp([5, 8, 8, 3], 'torch', 9);
  const spec = mlpSpec(2);
  const dtypes: Record<string, FloatDtype> = { 'layer0.weight': 'F16', 'layer0.bias': 'BF16', 'layer1.weight': 'F64', 'layer1.bias': 'F64', 'layer2.weight': 'F32', 'layer2.bias': 'F64' };
  // F64 values float32 cannot hold: kept exactly where the tensor is not permuted (layer2.bias).
  const wide = new Float64Array(3).map(() => rng.normal() / 3);
  const steps: StoredTensor = { dtype: 'I64', shape: [2], bytes: new Uint8Array(16).map((_, i) => i + 1) };
  withTempDirSync((dir) => {
    const path = join(dir, 'm.safetensors');
    const file = paramsToSafetensors(a, { dtypes, extra: { steps }, metadata: { format: 'pt', note: 'x' } });
    const withWide = { ...file, tensors: { ...file.tensors, 'layer2.bias': { dtype: 'F64', shape: [3], bytes: new Uint8Array(wide.buffer) } } };
    writeFileSync(path, serializeSafetensors(withWide));
    const perms = randomPerms(permSizes(spec, a), 3);
    const out = join(dir, 'out.safetensors');
    writePermutedSafetensors(path, out, spec, perms);
    const got = readFileSync(out);
    assert.ok(Buffer.compare(got, Buffer.from(inMemoryPermuted(path, spec, perms))) === 0);
    const back = readSafetensorsFile(out);
    assert.deepEqual(Array.from(back.tensors['layer2.bias'].bytes), Array.from(new Uint8Array(wide.buffer)));
    assert.deepEqual(Array.from(back.tensors.steps.bytes), Array.from(steps.bytes));
    assert.deepEqual({ ...back.metadata }, { format: 'pt', note: 'x' });

    // Refusals happen before anything is written.
    const bad = join(dir, 'bad.safetensors');
    const short = { ...perms, P_0: perms.P_0.subarray(1) };
    assert.throws(() => writePermutedSafetensors(path, bad, spec, short), (e: unknown) => e instanceof InputError && /P_0.*length 7.*size 8/.test(e.message));
    assert.throws(() => writePermutedSafetensors(path, path, spec, perms), (e: unknown) => e instanceof InputError && /is the input file/.test(e.message));
    assert.throws(() => writePermutedSafetensors(path, bad, mlpSpec(3), perms), InputError);
    assert.ok(!existsSync(bad));
    assert.deepEqual(readdirSync(dir).sort(), ['m.safetensors', 'out.safetensors']);
  });
});
