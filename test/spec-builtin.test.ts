/**
 * Built-in specs (ResNet, VGG, inferred MLP), the spec JSON format and the spec table.
 *
 * The truth is the permutation-symmetry identity: applying ANY permutations through a correct spec
 * leaves the network's function unchanged. Each test draws random params and random permutations and
 * compares a naive reference forward pass (test/helpers/forward.ts, which reads the structure from the
 * names and knows nothing of specs) before and after. Deliberately broken specs must change it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Params, Tensor } from '../src/tensor.js';
import { maxAbsDiff } from '../src/tensor.js';
import { createRng, type Rng } from '../src/random.js';
import { InputError } from '../src/errors.js';
import { applyPermutation, randomPerms } from '../src/permute.js';
import { permSizes, specFromAxes, type PermutationSpec } from '../src/permutation-spec/spec.js';
import { resnetSpec } from '../src/permutation-spec/resnet.js';
import { vggSpec } from '../src/permutation-spec/vgg.js';
import { autoSpec, inferMlp, inferMlpSpec, naturalCompare } from '../src/permutation-spec/auto.js';
import { specFromJson, specToJson } from '../src/permutation-spec/json.js';
import { formatSpecTable } from '../src/permutation-spec/table.js';
import { batchNorm, conv2d, globalAvgPool, linear, maxPool2d, mlpForwardNamed, resnetForward, vggForward } from './helpers/forward.js';
import { pythonSkipReason, runPython, withTempDir } from './python.js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

// ---------- random params ----------

function randn(rng: Rng, shape: number[], scale = 1): Tensor {
  let n = 1;
  for (const d of shape) n *= d;
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = scale * rng.normal();
  return { shape, data };
}

function uniform(rng: Rng, n: number, lo: number, hi: number): Tensor {
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = lo + (hi - lo) * rng.next();
  return { shape: [n], data };
}

function addConv(p: Record<string, Tensor>, rng: Rng, name: string, out: number, inp: number, k: number, bias = false): void {
  p[`${name}.weight`] = randn(rng, [out, inp, k, k], Math.sqrt(2 / (inp * k * k)));
  if (bias) p[`${name}.bias`] = randn(rng, [out], 0.1);
}

/** BatchNorm with random (non-trivial) affine parameters and running statistics. */
function addBn(p: Record<string, Tensor>, rng: Rng, name: string, c: number): void {
  p[`${name}.weight`] = uniform(rng, c, 0.5, 1.5);
  p[`${name}.bias`] = randn(rng, [c], 0.2);
  p[`${name}.running_mean`] = randn(rng, [c], 0.3);
  p[`${name}.running_var`] = uniform(rng, c, 0.3, 2);
  p[`${name}.num_batches_tracked`] = { shape: [], data: new Float32Array([100]) };
}

interface ResnetShape {
  widths: number[];
  blocks: number;
  style: 'shortcut' | 'downsample';
  head: 'linear' | 'fc';
  bottleneck?: boolean;
  inChannels?: number;
  classes?: number;
  prefix?: string;
}

function randomResnet(cfg: ResnetShape, seed: number): Record<string, Tensor> {
  const rng = createRng(seed);
  const p: Record<string, Tensor> = {};
  const pre = cfg.prefix ?? '';
  const stem = cfg.widths[0];
  addConv(p, rng, `${pre}conv1`, stem, cfg.inChannels ?? 1, 3);
  addBn(p, rng, `${pre}bn1`, stem);
  let ch = stem;
  cfg.widths.forEach((w, s) => {
    for (let b = 0; b < cfg.blocks; b++) {
      const path = `${pre}layer${s + 1}.${b}`;
      const out = cfg.bottleneck ? 2 * w : w;
      if (cfg.bottleneck) {
        addConv(p, rng, `${path}.conv1`, w, ch, 1);
        addBn(p, rng, `${path}.bn1`, w);
        addConv(p, rng, `${path}.conv2`, w, w, 3);
        addBn(p, rng, `${path}.bn2`, w);
        addConv(p, rng, `${path}.conv3`, out, w, 1);
        addBn(p, rng, `${path}.bn3`, out);
      } else {
        addConv(p, rng, `${path}.conv1`, w, ch, 3);
        addBn(p, rng, `${path}.bn1`, w);
        addConv(p, rng, `${path}.conv2`, w, w, 3);
        addBn(p, rng, `${path}.bn2`, w);
      }
      // Projection where the shape changes: the first block of every later stage, or a width change.
      if ((s > 0 && b === 0) || out !== ch) {
        addConv(p, rng, `${path}.${cfg.style}.0`, out, ch, 1);
        addBn(p, rng, `${path}.${cfg.style}.1`, out);
      }
      ch = out;
    }
  });
  const classes = cfg.classes ?? 3;
  p[`${pre}${cfg.head}.weight`] = randn(rng, [classes, ch], 1 / Math.sqrt(ch));
  p[`${pre}${cfg.head}.bias`] = randn(rng, [classes], 0.1);
  return p;
}

function input(shape: number[], seed: number): Tensor {
  return randn(createRng(seed), shape);
}

/** max |f(P(params)) − f(params)| for random permutations drawn from `seed`. */
function drift(spec: PermutationSpec, params: Params, forward: (p: Params) => Tensor, seed: number): number {
  const perms = randomPerms(permSizes(spec, params), seed);
  return maxAbsDiff(forward(params).data, forward(applyPermutation(spec, perms, params)).data);
}

const TOL = 1e-4;

// ---------- the reference forward itself, against numpy ----------

test('reference forward ops agree with an independent numpy implementation', { skip: pythonSkipReason(['numpy']) }, () => {
  const rng = createRng(100);
  const x = randn(rng, [2, 3, 7, 6]);
  const w = randn(rng, [4, 3, 3, 2]);
  const b = randn(rng, [4]);
  const bn: Record<string, Tensor> = {};
  addBn(bn, rng, 'bn', 4);
  const lw = randn(rng, [5, 4]);
  const lb = randn(rng, [5]);
  const cases = [
    { stride: 1, padding: 1 },
    { stride: 2, padding: 1 },
    { stride: 2, padding: 0 },
  ];
  const ours = cases.map(({ stride, padding }) => {
    const y = batchNorm(conv2d(x, w, b, stride, padding), bn, 'bn');
    return { conv: Array.from(y.data), pool: Array.from(maxPool2d(y, 2).data), head: Array.from(linear(globalAvgPool(y), lw, lb).data) };
  });
  const script = `
import json, sys
import numpy as np
d = json.load(open(sys.argv[1]))
a = lambda k: np.array(d[k]['data'], dtype=np.float64).reshape(d[k]['shape'])
x, w, b, lw, lb = a('x'), a('w'), a('b'), a('lw'), a('lb')
g, be, m, v = a('g'), a('be'), a('m'), a('v')
out = []
for c in d['cases']:
    s, p = c['stride'], c['padding']
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    kh, kw = w.shape[2:]
    oh = (xp.shape[2] - kh) // s + 1
    ow = (xp.shape[3] - kw) // s + 1
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::s, ::s][:, :, :oh, :ow]
    y = np.einsum('nchwij,ocij->nohw', win, w) + b[None, :, None, None]
    y = (y - m[None, :, None, None]) / np.sqrt(v[None, :, None, None] + 1e-5) * g[None, :, None, None] + be[None, :, None, None]
    H, W = y.shape[2] // 2 * 2, y.shape[3] // 2 * 2
    pool = y[:, :, :H, :W].reshape(y.shape[0], y.shape[1], H // 2, 2, W // 2, 2).max(axis=(3, 5))
    head = y.mean(axis=(2, 3)) @ lw.T + lb
    out.append({'conv': y.ravel().tolist(), 'pool': pool.ravel().tolist(), 'head': head.ravel().tolist()})
print(json.dumps(out))
`;
  const plain = (t: Tensor) => ({ shape: t.shape, data: Array.from(t.data) });
  const inputs = {
    x: plain(x), w: plain(w), b: plain(b), lw: plain(lw), lb: plain(lb), cases,
    g: plain(bn['bn.weight']), be: plain(bn['bn.bias']), m: plain(bn['bn.running_mean']), v: plain(bn['bn.running_var']),
  };
  const ref = withTempDir((dir) => {
    const file = join(dir, 'in.json');
    writeFileSync(file, JSON.stringify(inputs));
    return JSON.parse(runPython(script, file)) as { conv: number[]; pool: number[]; head: number[] }[];
  });
  ours.forEach((o, k) => {
    for (const key of ['conv', 'pool', 'head'] as const) {
      assert.equal(o[key].length, ref[k][key].length, `${key} size, case ${k}`);
      assert.ok(maxAbsDiff(Float32Array.from(o[key]), Float32Array.from(ref[k][key])) < 1e-4, `${key}, case ${k}`);
    }
  });
});

// ---------- ResNet ----------

test('resnetSpec: CIFAR-style ResNet (shortcut.0/1, linear) is function-preserving under random permutations', () => {
  const params = randomResnet({ widths: [4, 6, 8], blocks: 2, style: 'shortcut', head: 'linear' }, 1);
  const spec = resnetSpec(params);
  const x = input([2, 1, 8, 8], 2);
  for (const seed of [3, 4]) assert.ok(drift(spec, params, (p) => resnetForward(p, x), seed) <= TOL);
});

test('resnetSpec: torchvision-style ResNet-18 layout (downsample.0/1, fc, 4 stages) is function-preserving', () => {
  const params = randomResnet({ widths: [4, 5, 6, 7], blocks: 2, style: 'downsample', head: 'fc', inChannels: 3 }, 5);
  const spec = resnetSpec(params);
  assert.ok(drift(spec, params, (p) => resnetForward(p, input([2, 3, 8, 8], 6)), 7) <= TOL);
});

test('resnetSpec: Bottleneck blocks (conv3/bn3, projection in stage 1) with a module. prefix', () => {
  const params = randomResnet({ widths: [3, 4], blocks: 2, style: 'downsample', head: 'fc', bottleneck: true, prefix: 'module.' }, 8);
  const spec = resnetSpec(params);
  assert.ok('stream0' in spec.permToAxes, 'the stem is its own stream when stage 1 starts with a projection');
  assert.ok('layer1.0.inner1' in spec.permToAxes && 'layer1.0.inner2' in spec.permToAxes);
  assert.ok(drift(spec, params, (p) => resnetForward(p, input([2, 1, 8, 8], 9), 'module.'), 10) <= TOL);
});

test('resnetSpec: the fixture layout (one BasicBlock per stage, 16/32/64, 1x28x28) ties stem, block outputs and shortcuts', () => {
  const params = randomResnet({ widths: [16, 32, 64], blocks: 1, style: 'shortcut', head: 'linear', classes: 10 }, 11);
  const spec = resnetSpec(params);
  const perm = (t: string, axis: number): string | null => spec.axesToPerm[t][axis];
  const bn = (m: string): string[] => ['weight', 'bias', 'running_mean', 'running_var'].map((l) => `${m}.${l}`);

  // Stage 1 stream: stem output, the identity block's output, and the readers of it in stage 2.
  const s1 = perm('conv1.weight', 0);
  for (const t of [...bn('bn1'), ...bn('layer1.0.bn2')]) assert.equal(perm(t, 0), s1, t);
  assert.equal(perm('layer1.0.conv2.weight', 0), s1);
  assert.equal(perm('layer1.0.conv1.weight', 1), s1);
  assert.equal(perm('layer2.0.conv1.weight', 1), s1);
  assert.equal(perm('layer2.0.shortcut.0.weight', 1), s1);
  // Stage 2 stream: block output and projection shortcut output, read by stage 3.
  const s2 = perm('layer2.0.conv2.weight', 0);
  assert.notEqual(s2, s1);
  for (const t of [...bn('layer2.0.bn2'), ...bn('layer2.0.shortcut.1')]) assert.equal(perm(t, 0), s2, t);
  assert.equal(perm('layer2.0.shortcut.0.weight', 0), s2);
  assert.equal(perm('layer3.0.conv1.weight', 1), s2);
  assert.equal(perm('layer3.0.shortcut.0.weight', 1), s2);
  const s3 = perm('layer3.0.conv2.weight', 0);
  assert.equal(perm('linear.weight', 1), s3);
  assert.deepEqual(spec.axesToPerm['linear.weight'], [null, s3]);
  assert.deepEqual(spec.axesToPerm['linear.bias'], [null]);
  // Block-internal channels are free, and distinct from every stream.
  const inner = new Set([1, 2, 3].map((k) => perm(`layer${k}.0.conv1.weight`, 0)));
  assert.equal(inner.size, 3);
  for (const s of [s1, s2, s3]) assert.ok(!inner.has(s));
  for (const k of [1, 2, 3]) assert.equal(perm(`layer${k}.0.conv2.weight`, 1), perm(`layer${k}.0.conv1.weight`, 0));
  assert.deepEqual([s1, s2, s3], ['stream1', 'stream2', 'stream3']);
  assert.equal(perm('layer1.0.conv1.weight', 0), 'layer1.0.inner');
  // Spatial axes and the input channels are never permuted; counters are not in the spec.
  assert.deepEqual(spec.axesToPerm['conv1.weight'], ['stream1', null, null, null]);
  for (const name of Object.keys(params)) {
    if (name.endsWith('num_batches_tracked')) assert.ok(!(name in spec.axesToPerm));
    else assert.ok(name in spec.axesToPerm, name);
  }
  assert.deepEqual({ ...permSizes(spec, params) }, {
    stream1: 16, 'layer1.0.inner': 16, 'layer2.0.inner': 32, stream2: 32, 'layer3.0.inner': 64, stream3: 64,
  });
  // And the real thing at the fixture's size.
  assert.ok(drift(spec, params, (p) => resnetForward(p, input([1, 1, 28, 28], 12)), 13) <= TOL);
});

test('resnetSpec: untying the residual stream (or leaving BN stats unpermuted) changes the function', () => {
  const params = randomResnet({ widths: [4, 6], blocks: 2, style: 'shortcut', head: 'linear' }, 14);
  const spec = resnetSpec(params);
  const x = input([2, 1, 8, 8], 15);
  const base = resnetForward(params, x).data;
  const perms: Record<string, Int32Array> = randomPerms(permSizes(spec, params), 16);
  assert.ok(maxAbsDiff(base, resnetForward(applyPermutation(spec, perms, params), x).data) <= TOL);

  // layer1.1 writes the stage-1 stream through an identity shortcut; give its output its own perm,
  // equal to stream1's with two entries swapped, so it surely differs.
  const axes: Record<string, (string | null)[]> = {};
  for (const [t, ps] of Object.entries(spec.axesToPerm)) {
    axes[t] = t.startsWith('layer1.1.conv2') || t.startsWith('layer1.1.bn2') ? ps.map((p) => (p === 'stream1' ? 'untied' : p)) : [...ps];
  }
  const untied = perms.stream1.slice();
  [untied[0], untied[1]] = [untied[1], untied[0]];
  const broken = applyPermutation(specFromAxes(axes), { ...perms, untied }, params);
  assert.ok(maxAbsDiff(base, resnetForward(broken, x).data) > 1e-3);

  // BN running statistics must move with the channels.
  const noStats: Record<string, (string | null)[]> = {};
  for (const [t, ps] of Object.entries(spec.axesToPerm)) if (!t.endsWith('running_var')) noStats[t] = [...ps];
  const broken2 = applyPermutation(specFromAxes(noStats), perms, params);
  assert.ok(maxAbsDiff(base, resnetForward(broken2, x).data) > 1e-3);
});

test('resnetSpec: refuses padding shortcuts, unknown tensors, missing parts and mismatched widths', () => {
  const params = randomResnet({ widths: [4, 6], blocks: 1, style: 'shortcut', head: 'linear' }, 17);
  const { ['layer2.0.shortcut.0.weight']: _w, ...noShortcut } = params;
  for (const k of Object.keys(noShortcut)) if (k.startsWith('layer2.0.shortcut.1')) delete noShortcut[k];
  assert.throws(() => resnetSpec(noShortcut), (e: unknown) => e instanceof InputError && /layer2\.0.*4 channels to 6.*no shortcut/.test(e.message));

  const extra = { ...params, 'extra.weight': randn(createRng(1), [6, 4]) };
  assert.throws(() => resnetSpec(extra), (e: unknown) => e instanceof InputError && /'extra\.weight' \[6, 4\]/.test(e.message));

  const { ['layer1.0.bn1.weight']: _a, ['layer1.0.bn1.bias']: _b, ['layer1.0.bn1.running_mean']: _c, ['layer1.0.bn1.running_var']: _d, ...noBn } = params;
  assert.throws(() => resnetSpec(noBn), (e: unknown) => e instanceof InputError && /layer1\.0\.bn1/.test(e.message));

  const { ['linear.weight']: _e, ['linear.bias']: _f, ...noHead } = params;
  assert.throws(() => resnetSpec(noHead), (e: unknown) => e instanceof InputError && /linear\.weight.*fc\.weight/.test(e.message));

  const bad = { ...params, 'layer1.0.bn2.running_var': uniform(createRng(2), 5, 0.5, 1) };
  assert.throws(() => resnetSpec(bad), (e: unknown) => e instanceof InputError && /layer1\.0\.bn2\.running_var/.test(e.message));

  assert.throws(() => resnetSpec({ 'fc1.weight': randn(createRng(3), [3, 2]) }), InputError);
});

// ---------- VGG ----------

function randomVgg(seed: number, flatSpatial = 1, bn = true): Record<string, Tensor> {
  const rng = createRng(seed);
  const p: Record<string, Tensor> = {};
  // torchvision indices: conv, bn, relu, pool per stage (without BN: conv, relu, pool).
  const widths = [4, 5, 6];
  let ch = 2;
  let i = 0;
  for (const w of widths) {
    addConv(p, rng, `features.${i}`, w, ch, 3, true);
    if (bn) addBn(p, rng, `features.${i + 1}`, w);
    i += bn ? 4 : 3;
    ch = w;
  }
  p['classifier.0.weight'] = randn(rng, [7, ch * flatSpatial], 1 / Math.sqrt(ch));
  p['classifier.0.bias'] = randn(rng, [7], 0.1);
  p['classifier.3.weight'] = randn(rng, [5, 7], 1 / Math.sqrt(7));
  p['classifier.3.bias'] = randn(rng, [5], 0.1);
  p['classifier.6.weight'] = randn(rng, [3, 5], 1 / Math.sqrt(5));
  p['classifier.6.bias'] = randn(rng, [3], 0.1);
  return p;
}

test('vggSpec: conv+BN features and classifier (1x1 before flatten) are function-preserving', () => {
  const x = input([2, 2, 8, 8], 20);
  for (const bn of [true, false]) {
    const params = randomVgg(21, 1, bn);
    const spec = vggSpec(params);
    assert.deepEqual(spec.axesToPerm['classifier.0.weight'], ['classifier.0', 'features.' + (bn ? 8 : 6)]);
    assert.deepEqual(spec.axesToPerm['classifier.6.weight'], [null, 'classifier.3']);
    assert.deepEqual(spec.axesToPerm['features.0.weight'], ['features.0', null, null, null]);
    if (bn) assert.deepEqual(spec.axesToPerm['features.5.running_var'], ['features.4']);
    assert.ok(drift(spec, params, (p) => vggForward(p, x), 22) <= TOL);
  }
});

test('vggSpec: a single `classifier` Linear (CIFAR VGG) reads the last conv channels', () => {
  const params: Record<string, Tensor> = {};
  for (const [k, v] of Object.entries(randomVgg(28))) if (!k.startsWith('classifier.')) params[k] = v;
  params['classifier.weight'] = randn(createRng(1), [3, 6]);
  params['classifier.bias'] = randn(createRng(2), [3]);
  const spec = vggSpec(params);
  assert.deepEqual(spec.axesToPerm['classifier.weight'], [null, 'features.8']);
  assert.deepEqual(spec.axesToPerm['classifier.bias'], [null]);
  assert.deepEqual(Object.keys(spec.permToAxes), ['features.0', 'features.4', 'features.8']);
});

test('vggSpec: a broken spec (conv bias not permuted) changes the function', () => {
  const params = randomVgg(23);
  const spec = vggSpec(params);
  const x = input([2, 2, 8, 8], 24);
  const perms = randomPerms(permSizes(spec, params), 25);
  const axes: Record<string, (string | null)[]> = {};
  for (const [t, ps] of Object.entries(spec.axesToPerm)) if (t !== 'features.4.bias') axes[t] = [...ps];
  const broken = applyPermutation(specFromAxes(axes), perms, params);
  assert.ok(maxAbsDiff(vggForward(params, x).data, vggForward(broken, x).data) > 1e-3);
});

test('vggSpec: refuses a flatten over spatial positions, naming the tensor and sizes', () => {
  assert.throws(
    () => vggSpec(randomVgg(26, 4)),
    (e: unknown) => e instanceof InputError && /'classifier\.0\.weight' \[7, 24\] takes 24 input features = 6 channels of 'features\.8\.weight' x 4 spatial/.test(e.message),
  );
  const odd = { ...randomVgg(27), 'classifier.0.weight': randn(createRng(1), [7, 10]) };
  assert.throws(() => vggSpec(odd), (e: unknown) => e instanceof InputError && /not a multiple of the 6 output channels/.test(e.message));
});

// ---------- MLP inference ----------

function randomNamedMlp(names: string[], widths: number[], seed: number, opts: { layout?: 'torch' | 'flax'; sep?: string; bias?: boolean } = {}): Record<string, Tensor> {
  const rng = createRng(seed);
  const layout = opts.layout ?? 'torch';
  const sep = opts.sep ?? '.';
  const p: Record<string, Tensor> = {};
  names.forEach((name, i) => {
    const [fin, fout] = [widths[i], widths[i + 1]];
    const leaf = layout === 'torch' ? 'weight' : 'kernel';
    p[`${name}${sep}${leaf}`] = randn(rng, layout === 'torch' ? [fout, fin] : [fin, fout], 1 / Math.sqrt(fin));
    if (opts.bias ?? true) p[`${name}${sep}bias`] = randn(rng, [fout], 0.2);
  });
  return p;
}

test('inferMlpSpec: each naming style chains in natural order and is function-preserving', () => {
  const cases: { names: string[]; layout?: 'torch' | 'flax'; sep?: string; bias?: boolean }[] = [
    { names: ['fc1', 'fc2', 'fc3'] },
    { names: ['layers.0', 'layers.2', 'layers.4'] },
    { names: ['layer0', 'layer1', 'layer2', 'layer3'] },
    { names: ['net.0', 'net.2', 'net.4'], bias: false },
    { names: ['model.net.0', 'model.net.2'] },
    { names: ['Dense_0', 'Dense_1', 'Dense_2'], layout: 'flax' },
    { names: ['params/Dense_0', 'params/Dense_1'], layout: 'flax', sep: '/' },
    // 11 layers: plain string order would put fc10/fc11 right after fc1 and break the chain.
    { names: Array.from({ length: 11 }, (_, i) => `fc${i + 1}`) },
  ];
  cases.forEach((c, k) => {
    const widths = c.names.map((_, i) => 3 + ((i * 5 + k) % 4)).concat([2]);
    widths[0] = 4;
    const params = randomNamedMlp(c.names, widths, 30 + k, c);
    const shuffled: Record<string, Tensor> = {};
    for (const name of Object.keys(params).reverse()) shuffled[name] = params[name];
    const inferred = inferMlp(shuffled);
    assert.deepEqual(inferred.layers.map((l) => l.name), c.names, c.names.join());
    assert.equal(inferred.layout, c.layout ?? 'torch');
    const spec = inferMlpSpec(shuffled);
    assert.deepEqual(Object.keys(spec.permToAxes), c.names.slice(0, -1), 'one permutation per hidden layer, named after it');
    const x = input([3, 4], 40 + k);
    const f = (p: Params): Tensor => mlpForwardNamed(p, c.names, x, c.layout ?? 'torch', c.sep ?? '.');
    assert.ok(drift(spec, params, f, 50 + k) <= TOL, c.names.join());
  });
});

test('inferMlpSpec: a spec that skips a bias changes the function; errors say what did not chain', () => {
  const names = ['fc1', 'fc2', 'fc3'];
  const params = randomNamedMlp(names, [4, 5, 6, 2], 60);
  const spec = inferMlpSpec(params);
  const { ['fc2.bias']: _b, ...axes } = spec.axesToPerm;
  const perms = randomPerms(permSizes(spec, params), 61);
  const x = input([3, 4], 62);
  const broken = applyPermutation(specFromAxes(axes), perms, params);
  assert.ok(maxAbsDiff(mlpForwardNamed(params, names, x).data, mlpForwardNamed(broken, names, x).data) > 1e-3);

  const unchained = { ...params, 'fc2.weight': randn(createRng(1), [6, 3]) };
  assert.throws(
    () => inferMlpSpec(unchained),
    (e: unknown) => e instanceof InputError && /'fc1\.weight' \[5, 4\] has 5 outputs but the next layer, 'fc2\.weight' \[6, 3\], takes 3 inputs/.test(e.message),
  );
  assert.throws(() => inferMlpSpec({ ...params, 'conv.weight': randn(createRng(2), [2, 2, 3, 3]) }), (e: unknown) => e instanceof InputError && /'conv\.weight' \[2, 2, 3, 3\]/.test(e.message));
  assert.throws(() => inferMlpSpec({ 'fc1.weight': params['fc1.weight'] }), (e: unknown) => e instanceof InputError && /only one Linear/.test(e.message));
  assert.throws(() => inferMlpSpec({ ...params, 'fc4.kernel': randn(createRng(3), [2, 2]) }), (e: unknown) => e instanceof InputError && /mixes/.test(e.message));
  assert.throws(() => inferMlpSpec({ ...params, 'fc2.bias': randn(createRng(4), [4]) }), (e: unknown) => e instanceof InputError && /'fc2\.bias' has shape \[4\]/.test(e.message));
});

test('naturalCompare orders digit runs numerically', () => {
  const names = ['fc10', 'fc2', 'layers.10', 'fc1', 'layers.2', 'a'];
  assert.deepEqual([...names].sort(naturalCompare), ['a', 'fc1', 'fc2', 'fc10', 'layers.2', 'layers.10']);
});

// ---------- autoSpec ----------

test('autoSpec picks the right builder and lists what it tried when nothing fits', () => {
  const resnet = randomResnet({ widths: [4, 6], blocks: 1, style: 'shortcut', head: 'linear' }, 70);
  assert.equal(autoSpec(resnet).kind, 'resnet');
  assert.deepEqual(autoSpec(resnet).spec.axesToPerm, resnetSpec(resnet).axesToPerm);
  assert.equal(autoSpec(randomVgg(71)).kind, 'vgg');
  assert.equal(autoSpec(randomNamedMlp(['fc1', 'fc2'], [3, 4, 2], 72)).kind, 'mlp');
  assert.throws(
    () => autoSpec({ 'embed.weight': randn(createRng(1), [2, 3, 4]) }),
    (e: unknown) => e instanceof InputError && /resnet: .*; vgg: .*; mlp: /.test(e.message),
  );
});

// ---------- JSON ----------

test('spec JSON: round trip of built-in specs, and the accepted alternative forms', () => {
  const params = randomResnet({ widths: [4, 6], blocks: 2, style: 'downsample', head: 'fc' }, 80);
  const spec = resnetSpec(params);
  const text = specToJson(spec, { kind: 'resnet', description: 'test' });
  const parsed = JSON.parse(text);
  assert.equal(parsed.format, 'rebasin-spec');
  assert.equal(parsed.version, 1);
  assert.equal(parsed.kind, 'resnet');
  const back = specFromJson(text, 'x.json');
  assert.deepEqual(back.axesToPerm, spec.axesToPerm);
  assert.deepEqual(back.permToAxes, spec.permToAxes);
  // The round-tripped spec permutes exactly as the original.
  const perms = randomPerms(permSizes(spec, params), 81);
  const a = applyPermutation(spec, perms, params);
  const b = applyPermutation(back, perms, params);
  for (const name of Object.keys(params)) assert.deepEqual(b[name].data, a[name].data, name);

  assert.deepEqual(specFromJson(JSON.stringify(spec.axesToPerm)).axesToPerm, spec.axesToPerm);
  const refStyle = {
    axes_to_perm: { 'a.weight': ['P0', null], 'a.bias': ['P0'], 'b.weight': [null, 'P0'] },
    perm_to_axes: { P0: [['a.weight', 0], ['a.bias', 0], ['b.weight', 1]] },
  };
  assert.deepEqual(specFromJson(JSON.stringify(refStyle)).permToAxes.P0, [
    { tensor: 'a.weight', axis: 0 },
    { tensor: 'a.bias', axis: 0 },
    { tensor: 'b.weight', axis: 1 },
  ]);
});

test('spec JSON: clear errors for bad input', () => {
  const bad: [string, RegExp][] = [
    ['{"format": "rebasin-spec", ', /^f\.json: not valid JSON/],
    ['[1, 2]', /must be a JSON object, got an array/],
    ['{"format": "other", "version": 1, "axes": {}}', /"format" is string "other"/],
    ['{"format": "rebasin-spec", "version": 3, "axes": {"a": [null]}}', /unsupported rebasin-spec version number 3/],
    ['{"format": "rebasin-spec", "version": 1, "axis": {}}', /unknown key\(s\) "axis"/],
    ['{"format": "rebasin-spec", "version": 1, "axes": []}', /"axes" must be an object.*got an array/],
    ['{"format": "rebasin-spec", "version": 1, "axes": {}}', /lists no tensors/],
    ['{"a.weight": "P0"}', /tensor 'a\.weight' must map to an array.*string "P0"/],
    ['{"a.weight": ["P0", 3]}', /tensor 'a\.weight' axis 1: expected a permutation name or null, got number 3/],
    ['{"a.weight": ["P0", ""]}', /axis 1: expected a permutation name or null/],
    ['{"a.weight": ["P0", "P0"]}', /^f\.json: permutation 'P0' appears on two axes of tensor 'a\.weight'/],
    ['{"axes_to_perm": {"a.weight": ["P0"]}, "perm_to_axes": {"P0": [["a.weight", 1]]}}', /perm_to_axes\['P0'\] lists \["a\.weight",1\]/],
    ['{"axes_to_perm": {"a.weight": ["P0"]}, "perm_to_axes": {}}', /'P0' is in axes_to_perm but not in perm_to_axes/],
  ];
  for (const [text, re] of bad) {
    assert.throws(() => specFromJson(text, 'f.json'), (e: unknown) => e instanceof InputError && re.test(e.message) && e.message.startsWith('f.json: '), text);
  }
});

// ---------- table ----------

test('formatSpecTable lists every permutation with its size and every axis it acts on', () => {
  const params = randomResnet({ widths: [4, 6], blocks: 1, style: 'shortcut', head: 'linear' }, 90);
  const spec = resnetSpec(params);
  const table = formatSpecTable(spec, params, { axesWidth: 60 });
  const lines = table.trimEnd().split('\n');
  assert.match(lines[0], /^permutation\s+size\s+tensor:axis$/);
  const sizes = permSizes(spec, params);
  for (const [perm, n] of Object.entries(sizes)) {
    assert.ok(lines.some((l) => new RegExp(`^${perm.replace(/\./g, '\\.')}\\s+${n}\\s`).test(l)), perm);
  }
  assert.ok(table.includes('bn1.{weight,bias,running_mean,running_var}:0'));
  assert.ok(table.includes('layer2.0.shortcut.0.weight:1'));
  // Every permuted tensor appears in the table (individually or in a group).
  for (const [t, ps] of Object.entries(spec.axesToPerm)) {
    if (!ps.some((p) => p !== null)) continue;
    const leaf = t.slice(t.lastIndexOf('.') + 1);
    const parent = t.slice(0, t.lastIndexOf('.'));
    assert.ok(table.includes(t) || (table.includes(`${parent}.{`) && table.includes(leaf)), t);
  }
  assert.match(table, /not permuted: .*linear\.bias/);
  assert.ok(lines.every((l) => l.length <= 60 + 30), 'wrapped');
  assert.match(formatSpecTable(spec), /^stream1\s+\?\s/m);
});
