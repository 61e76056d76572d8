import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync, zipSync } from 'fflate';
import { InputError } from '../src/errors.js';
import {
  batches,
  classCounts,
  findFashionMnist,
  FASHION_MNIST_ROOT,
  loadDataset,
  loadIdxPair,
  loadNpyPair,
  loadNpzDataset,
  parseIdx,
  parseNpy,
  parseNpz,
  reshapeInputs,
  sliceDataset,
  threeClusterCentres,
  threeClusters,
  writeIdx,
  writeNpy,
  type IdxDtype,
} from '../src/data/index.js';

const tmp = mkdtempSync(join(tmpdir(), 'rebasin-data-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));

function python(script: string, ...args: string[]): string {
  return execFileSync('python3', ['-c', script, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
}

function hasNumpy(): boolean {
  try {
    python('import numpy');
    return true;
  } catch {
    return false;
  }
}
const NUMPY = hasNumpy();
const NO_NUMPY = NUMPY ? false : 'python3 with numpy is not available';
const FASHION = existsSync(join(FASHION_MNIST_ROOT, 't10k-images-idx3-ubyte.gz'));
const NO_FASHION = FASHION ? false : `Fashion-MNIST not installed in ${FASHION_MNIST_ROOT} (apt-get install dataset-fashion-mnist)`;
if (!FASHION) console.log(`# skipping Fashion-MNIST tests: ${NO_FASHION}`);
if (!NUMPY) console.log(`# skipping numpy tests: ${NO_NUMPY}`);

const throwsInput = (fn: () => unknown, pattern?: RegExp): void => {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof InputError, `expected InputError, got ${String(e)}`);
    if (pattern) assert.match(e.message, pattern);
    assert.ok(!e.message.includes('\n'), 'InputError messages are one line');
    return true;
  });
};

// ---------------------------------------------------------------- Fashion-MNIST (real files)

test('Fashion-MNIST test split matches an independent python gzip+struct reading', { skip: NO_FASHION }, () => {
  const { images, labels } = findFashionMnist('test');
  // Independent truth: python's gzip + struct, not our parser.
  const truth = JSON.parse(
    python(
      `
import gzip, struct, json, sys
img = gzip.open(sys.argv[1]).read(); lab = gzip.open(sys.argv[2]).read()
magic, n, h, w = struct.unpack('>IIII', img[:16]); lmagic, ln = struct.unpack('>II', lab[:8])
counts = [0]*10
for b in lab[8:]: counts[b] += 1
px = 16 + 9999*h*w
print(json.dumps({'magic': magic, 'n': n, 'h': h, 'w': w, 'lmagic': lmagic, 'ln': ln, 'first_label': lab[8],
  'last_label': lab[8 + ln - 1], 'counts': counts, 'first_img': list(img[16:16+h*w]), 'last_img': list(img[px:px+h*w])}))
`,
      images,
      labels,
    ),
  );
  assert.equal(truth.magic, 0x803);
  assert.equal(truth.lmagic, 0x801);
  const ds = loadDataset('fashion-mnist:test');
  assert.equal(ds.count, 10000);
  assert.equal(ds.count, truth.n);
  assert.deepEqual(ds.inputShape, [truth.h * truth.w]);
  assert.equal(ds.numClasses, 10);
  assert.equal(ds.labels[0], truth.first_label);
  assert.equal(ds.labels[ds.count - 1], truth.last_label);
  assert.deepEqual([...classCounts(ds)], truth.counts);
  // Pixel scale: inputs = raw / 255, exactly as float32.
  const size = 784;
  for (let i = 0; i < size; i++) {
    assert.equal(ds.inputs[i], Math.fround(truth.first_img[i] / 255));
    assert.equal(ds.inputs[9999 * size + i], Math.fround(truth.last_img[i] / 255));
  }
  let min = Infinity;
  let max = -Infinity;
  for (const v of ds.inputs) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  assert.equal(min, 0);
  assert.ok(max <= 1 && max > 0.99, `max pixel ${max}`);
  assert.match(ds.preprocessing, /\/ 255.*784/);
});

test('Fashion-MNIST: default split is test, unflattened is [1, 28, 28], limit, shape option', { skip: NO_FASHION }, () => {
  const a = loadDataset('fashion-mnist', { limit: 50 });
  assert.equal(a.count, 50);
  const b = loadDataset('fashion-mnist:test', { flatten: false, limit: 50 });
  assert.deepEqual(b.inputShape, [1, 28, 28]);
  assert.deepEqual(b.inputs, a.inputs);
  assert.deepEqual(b.labels, a.labels);
  const c = loadDataset('fashion-mnist', { limit: 50, shape: [1, 28, 28] });
  assert.deepEqual(c.inputShape, [1, 28, 28]);
  assert.deepEqual(c.inputs, a.inputs);
  const paths = findFashionMnist('train');
  assert.match(paths.images, /train-images-idx3-ubyte/);
  assert.match(paths.labels, /train-labels-idx1-ubyte/);
});

test('findFashionMnist: a missing install names the apt package; a user folder names the files', () => {
  const missing = join(tmp, 'no-such-folder');
  throwsInput(() => findFashionMnist('test', missing), /t10k-images-idx3-ubyte.*apt-get install dataset-fashion-mnist/);
  throwsInput(() => findFashionMnist('train', missing), /train-images-idx3-ubyte.*train-labels-idx1-ubyte/);
  throwsInput(() => loadDataset('fashion-mnist:train', { root: missing }), /apt-get install dataset-fashion-mnist/);
  if (!FASHION) throwsInput(() => findFashionMnist('test'), /apt-get install dataset-fashion-mnist/);
});

// ---------------------------------------------------------------- IDX built in the test

test('IDX written by python struct (big-endian f32/i16/i32/u8, plain and gzipped) parses to the same values', { skip: NO_NUMPY }, () => {
  const dir = mkdtempSync(join(tmp, 'pyidx-'));
  const truth = JSON.parse(
    python(
      `
import struct, gzip, json, sys, os, random
random.seed(7)
d = sys.argv[1]; out = {}
def write(name, code, fmt, shape, vals, gz):
    body = bytes([0, 0, code, len(shape)]) + struct.pack('>' + 'I'*len(shape), *shape) + struct.pack('>%d%s' % (len(vals), fmt), *vals)
    open(os.path.join(d, name), 'wb').write(gzip.compress(body) if gz else body)
    out[name] = {'shape': shape, 'values': vals}
write('f32.idx', 0x0d, 'f', [2, 3, 4], [struct.unpack('>f', struct.pack('>f', random.uniform(-5, 5)))[0] for _ in range(24)], False)
write('f32.idx.gz', 0x0d, 'f', [6, 2], [struct.unpack('>f', struct.pack('>f', random.gauss(0, 100)))[0] for _ in range(12)], True)
write('i16.idx', 0x0b, 'h', [5], [random.randint(-32768, 32767) for _ in range(5)], False)
write('i32.idx.gz', 0x0c, 'i', [3, 1], [random.randint(-2**31, 2**31 - 1) for _ in range(3)], True)
write('u8.idx', 0x08, 'B', [2, 2, 2], [random.randint(0, 255) for _ in range(8)], False)
write('f64.idx', 0x0e, 'd', [3], [random.uniform(-1, 1) for _ in range(3)], False)
print(json.dumps(out))
`,
      dir,
    ),
  );
  for (const [name, t] of Object.entries(truth) as [string, { shape: number[]; values: number[] }][]) {
    const arr = parseIdx(readFileSync(join(dir, name)), name);
    assert.deepEqual(arr.shape, t.shape, name);
    assert.deepEqual([...arr.data], t.values, name);
  }
});

test('IDX round trip through writeIdx for every dtype, gzipped or not', () => {
  const cases: [IdxDtype, number[]][] = [
    ['u8', [0, 1, 127, 255, 3, 9]],
    ['i8', [-128, -1, 0, 1, 127, 5]],
    ['i16', [-32768, 0, 32767, 12, -5, 7]],
    ['i32', [-(2 ** 31), 2 ** 31 - 1, 0, 42, -42, 1]],
    ['f32', [Math.fround(0.1), -0, Infinity, Math.fround(-3.5e10), 1, 2]],
    ['f64', [0.1, -1e300, 5e-324, Math.PI, -0.5, 0]],
  ];
  for (const [dtype, values] of cases) {
    for (const gz of [false, true]) {
      const bytes = writeIdx(values, [2, 3], dtype);
      const arr = parseIdx(gz ? gzipSync(bytes) : bytes);
      assert.equal(arr.dtype, dtype);
      assert.deepEqual(arr.shape, [2, 3]);
      assert.deepEqual([...arr.data], values, `${dtype} gz=${gz}`);
    }
  }
});

function writeMnistFolder(dir: string, split: 'train' | 'test', n: number, gz: boolean, seed: number): { pixels: number[]; labels: number[] } {
  const pixels = Array.from({ length: n * 4 * 3 }, (_, i) => (i * 37 + seed * 11) % 256);
  const labels = Array.from({ length: n }, (_, i) => (i * 7 + seed) % 5);
  const prefix = split === 'train' ? 'train' : 't10k';
  const ext = gz ? '.gz' : '';
  const enc = (b: Uint8Array): Uint8Array => (gz ? gzipSync(b) : b);
  writeFileSync(join(dir, `${prefix}-images-idx3-ubyte${ext}`), enc(writeIdx(pixels, [n, 4, 3], 'u8')));
  writeFileSync(join(dir, `${prefix}-labels-idx1-ubyte${ext}`), enc(writeIdx(labels, [n], 'u8')));
  return { pixels, labels };
}

test('a user folder with standard MNIST names loads by spec, with :train/:test and limit', () => {
  const dir = mkdtempSync(join(tmp, 'mnist-'));
  const test_ = writeMnistFolder(dir, 'test', 9, true, 1);
  const train = writeMnistFolder(dir, 'train', 13, false, 2);
  const ds = loadDataset(dir);
  assert.equal(ds.count, 9);
  assert.deepEqual(ds.inputShape, [12]);
  assert.deepEqual([...ds.labels], test_.labels);
  assert.deepEqual([...ds.inputs], test_.pixels.map((p) => Math.fround(p / 255)));
  assert.equal(ds.numClasses, Math.max(...test_.labels) + 1);
  const tr = loadDataset(`${dir}:train`, { flatten: false });
  assert.equal(tr.count, 13);
  assert.deepEqual(tr.inputShape, [1, 4, 3]);
  assert.deepEqual([...tr.labels], train.labels);
  const lim = loadDataset(dir, { split: 'train', limit: 4 });
  assert.equal(lim.count, 4);
  assert.deepEqual([...lim.labels], train.labels.slice(0, 4));
  // The same files through an explicit pair, recognised by content (no telling extension).
  const pair = loadDataset(`${join(dir, 'train-images-idx3-ubyte')},${join(dir, 'train-labels-idx1-ubyte')}`);
  assert.deepEqual(pair.labels, tr.labels);
  const scaled = loadIdxPair(join(dir, 't10k-images-idx3-ubyte.gz'), join(dir, 't10k-labels-idx1-ubyte.gz'), { scale: 1 });
  assert.deepEqual([...scaled.inputs], test_.pixels);
  assert.match(scaled.preprocessing, /as stored/);
  // A folder that lacks the split asked for.
  const half = mkdtempSync(join(tmp, 'half-'));
  writeMnistFolder(half, 'train', 3, false, 0);
  throwsInput(() => loadDataset(half), /no test split.*t10k-images-idx3-ubyte/);
  throwsInput(() => findFashionMnist('test', half), /put the standard MNIST-format files there/);
});

test('malformed IDX files give one-line InputErrors', () => {
  const good = writeIdx([1, 2, 3, 4, 5, 6], [2, 3], 'u8');
  throwsInput(() => parseIdx(good.subarray(0, good.length - 1), 'short.idx'), /short\.idx.*\[2, 3\].*5 data bytes/);
  throwsInput(() => parseIdx(new Uint8Array([...good, 0]), 'long.idx'), /7 data bytes/);
  throwsInput(() => parseIdx(new Uint8Array([1, 0, 8, 1, 0, 0, 0, 1, 5])), /not an IDX file/);
  throwsInput(() => parseIdx(new Uint8Array([0, 0, 0x0a, 1, 0, 0, 0, 1, 5])), /unknown IDX type code 0x0a/);
  throwsInput(() => parseIdx(new Uint8Array([0, 0, 8, 0])), /0 dimensions/);
  throwsInput(() => parseIdx(new Uint8Array([0, 0, 8, 2, 0, 0])), /truncated/);
  // A header claiming 2^32-1 × 2^32-1 elements must fail on the size check, not allocate.
  throwsInput(() => parseIdx(new Uint8Array([0, 0, 8, 2, 255, 255, 255, 255, 255, 255, 255, 255, 1])), /data bytes/);
  const gz = gzipSync(good);
  throwsInput(() => parseIdx(gz.subarray(0, gz.length - 6), 'cut.gz'), /cut\.gz/);
  throwsInput(() => parseIdx(gz, 'big.gz', 10), new RegExp(`inflate to ${good.length} bytes.*limit of 10`));
  const corrupt = gz.slice();
  corrupt.fill(0xff, 10, corrupt.length - 8);
  throwsInput(() => parseIdx(corrupt, 'corrupt.gz'), /corrupt\.gz/);
  const dir = mkdtempSync(join(tmp, 'bad-'));
  writeFileSync(join(dir, 'img'), writeIdx(new Array(12).fill(0), [3, 2, 2], 'u8'));
  writeFileSync(join(dir, 'lab'), writeIdx([0, 1], [2], 'u8'));
  writeFileSync(join(dir, 'lab2d'), writeIdx([0, 1, 1, 0, 0, 1], [3, 2], 'u8'));
  writeFileSync(join(dir, 'labneg'), writeIdx([0, -1, 1], [3], 'i8'));
  throwsInput(() => loadIdxPair(join(dir, 'img'), join(dir, 'lab')), /3 images but .* 2 labels/);
  throwsInput(() => loadIdxPair(join(dir, 'img'), join(dir, 'lab2d')), /labels must be 1-D/);
  throwsInput(() => loadIdxPair(join(dir, 'img'), join(dir, 'labneg')), /example 1 has label -1/);
  throwsInput(() => loadIdxPair(join(dir, 'img'), join(dir, 'nope')), /labels file .*nope: no such file/);
  throwsInput(() => loadDataset(join(dir, 'img')), /single IDX file has no labels/);
});

// ---------------------------------------------------------------- .npy / .npz written by numpy

interface NpTruth {
  shape: number[];
  values: (number | string | boolean)[];
  dtype: string;
}

let npFixtures: { dir: string; truth: Record<string, NpTruth> } | null = null;
function numpyFixtures(): { dir: string; truth: Record<string, NpTruth> } {
  if (npFixtures) return npFixtures;
  const dir = mkdtempSync(join(tmp, 'np-'));
  const truth = JSON.parse(
    python(
      `
import numpy as np, json, sys, os
from numpy.lib import format as fmt
d = sys.argv[1]; rng = np.random.default_rng(3); out = {}
def keep(name, a):
    vals = [float(v) if a.dtype.kind == 'f' else (bool(v) if a.dtype.kind == 'b' else int(v)) for v in np.ascontiguousarray(a).ravel()]
    vals = ['nan' if isinstance(v, float) and v != v else ('inf' if v == float('inf') else ('-inf' if v == float('-inf') else v)) for v in vals]
    out[name] = {'shape': list(a.shape), 'values': vals, 'dtype': a.dtype.str}
def save(name, a):
    np.save(os.path.join(d, name), a); keep(name, a)
save('f4.npy', rng.standard_normal((5, 3, 2)).astype('<f4'))
save('f8.npy', rng.standard_normal((4, 3)) * 1e10)
save('f2.npy', np.array([0.5, -2.0, 65504, 6e-8, 1e-5, np.inf, -np.inf, np.nan, 0.333], dtype='<f2'))
save('i8.npy', rng.integers(0, 10, 20).astype('<i8'))
save('y5.npy', np.array([2, 0, 1, 1, 0], dtype='<i8'))
save('i8neg.npy', np.array([-2**62, 2**40, -1, 0], dtype='<i8'))
save('u1.npy', rng.integers(0, 256, (6, 2, 2)).astype('u1'))
save('b1.npy', np.array([True, False, True, True]))
save('i2.npy', np.array([[-300, 7], [32767, -32768]], dtype='<i2'))
save('u4.npy', np.array([0, 4000000000, 17], dtype='<u4'))
save('be_f4.npy', rng.standard_normal((3, 2)).astype('>f4'))
save('be_i4.npy', np.array([1, -2, 300000], dtype='>i4'))
save('scalar.npy', np.array(2.5, dtype='<f4'))
save('empty.npy', np.zeros((0, 3), dtype='<f4'))
fo = np.asfortranarray(rng.standard_normal((3, 4, 2)))
np.save(os.path.join(d, 'fortran.npy'), fo); keep('fortran.npy', fo)
v2 = rng.standard_normal((2, 3)).astype('<f4')
with open(os.path.join(d, 'v2.npy'), 'wb') as f: fmt.write_array(f, v2, version=(2, 0))
keep('v2.npy', v2)
with open(os.path.join(d, 'v3.npy'), 'wb') as f: fmt.write_array(f, v2, version=(3, 0))
keep('v3.npy', v2)
x = rng.standard_normal((30, 4)).astype('<f4'); y = rng.integers(0, 3, 30).astype('<i8')
np.savez(os.path.join(d, 'plain.npz'), x=x, y=y)
np.savez_compressed(os.path.join(d, 'comp.npz'), x=x, y=y)
keep('x', x); keep('y', y)
imgs = rng.integers(0, 256, (7, 2, 3)).astype('u1'); labs = rng.integers(0, 4, 7).astype('<i4')
with open(os.path.join(d, 'named.bin'), 'wb') as f: np.savez_compressed(f, images=imgs, labels=labs)
keep('images', imgs); keep('labels', labs)
onehot = np.eye(5, dtype='<f4')[rng.integers(0, 5, 8)]
np.savez(os.path.join(d, 'onehot.npz'), X=rng.standard_normal((8, 2)).astype('<f4'), Y=onehot)
keep('onehot', onehot)
np.savez(os.path.join(d, 'nokeys.npz'), a=x)
np.save(os.path.join(d, 'c8.npy'), np.zeros(2, dtype='<c8'))
np.save(os.path.join(d, 'obj.npy'), np.array([1, 'a'], dtype=object), allow_pickle=True)
np.save(os.path.join(d, 'struct.npy'), np.zeros(2, dtype=[('a', '<f4'), ('b', '<i4')]))
print(json.dumps(out))
`,
      dir,
    ),
  );
  npFixtures = { dir, truth };
  return npFixtures;
}

function jsValues(t: NpTruth): number[] {
  return t.values.map((v) => (v === 'nan' ? NaN : v === 'inf' ? Infinity : v === '-inf' ? -Infinity : Number(v)));
}

test('.npy files written by numpy parse to numpy\'s values (f2/f4/f8, ints, bool, big-endian, fortran, v2, v3)', { skip: NO_NUMPY }, () => {
  const { dir, truth } = numpyFixtures();
  const files = ['f4.npy', 'f8.npy', 'f2.npy', 'i8.npy', 'i8neg.npy', 'u1.npy', 'b1.npy', 'i2.npy', 'u4.npy', 'be_f4.npy',
    'be_i4.npy', 'scalar.npy', 'empty.npy', 'fortran.npy', 'v2.npy', 'v3.npy'];
  for (const name of files) {
    const t = truth[name];
    const arr = parseNpy(readFileSync(join(dir, name)), name);
    assert.deepEqual(arr.shape, t.shape, name);
    const got = [...arr.data].map(Number);
    // float16 and float32 become float32; numpy's float64 printout of them is exact, so compare exactly.
    assert.deepEqual(got, jsValues(t), name);
  }
  // int64 beyond 2^53 is kept exactly as bigint.
  const big = parseNpy(readFileSync(join(dir, 'i8neg.npy')));
  assert.ok(big.data instanceof BigInt64Array);
  assert.equal(big.data[0], -(2n ** 62n));
  assert.equal(parseNpy(readFileSync(join(dir, 'f8.npy'))).dtype, '<f8');
  assert.equal(parseNpy(readFileSync(join(dir, 'be_f4.npy'))).dtype, '<f4');
});

test('.npz (stored and deflated) and .npy pairs load as datasets equal to numpy\'s arrays', { skip: NO_NUMPY }, () => {
  const { dir, truth } = numpyFixtures();
  const x = jsValues(truth.x);
  const y = jsValues(truth.y);
  for (const name of ['plain.npz', 'comp.npz']) {
    const ds = loadNpzDataset(join(dir, name));
    assert.equal(ds.count, 30);
    assert.deepEqual(ds.inputShape, [4]);
    assert.deepEqual([...ds.inputs], x, name);
    assert.deepEqual([...ds.labels], y, name);
    assert.equal(ds.numClasses, Math.max(...y) + 1);
    assert.deepEqual(loadDataset(join(dir, name)).labels, ds.labels);
  }
  const arrays = parseNpz(readFileSync(join(dir, 'comp.npz')));
  assert.deepEqual([...arrays.keys()].sort(), ['x', 'y']);
  // Keys 'images'/'labels', uint8 scaled by 1/255, recognised as a zip despite the .bin extension.
  const named = loadDataset(join(dir, 'named.bin'), { limit: 5 });
  assert.equal(named.count, 5);
  assert.deepEqual(named.inputShape, [2, 3]);
  assert.deepEqual([...named.inputs], jsValues(truth.images).slice(0, 30).map((v) => Math.fround(v / 255)));
  assert.deepEqual([...named.labels], jsValues(truth.labels).slice(0, 5));
  assert.match(named.preprocessing, /\/ 255/);
  const flat = loadNpzDataset(join(dir, 'named.bin'), { flatten: true });
  assert.deepEqual(flat.inputShape, [6]);
  // One-hot labels under 'Y' reduce to their argmax.
  const oh = loadNpzDataset(join(dir, 'onehot.npz'));
  const rows = jsValues(truth.onehot);
  assert.deepEqual([...oh.labels], Array.from({ length: 8 }, (_, i) => rows.slice(i * 5, i * 5 + 5).indexOf(1)));
  throwsInput(() => loadNpzDataset(join(dir, 'nokeys.npz')), /no inputs array .*'x'.*it has 'a'/);
  throwsInput(() => loadNpzDataset(join(dir, 'plain.npz'), { labelsKey: 'z' }), /no labels array \(looked for 'z'/);
  // A pair of .npy files, given as 'x.npy,y.npy'.
  const pair = loadDataset(`${join(dir, 'f4.npy')},${join(dir, 'y5.npy')}`);
  assert.equal(pair.count, 5);
  assert.deepEqual([...pair.labels], jsValues(truth['y5.npy']));
  assert.deepEqual(pair.inputShape, [3, 2]);
  assert.deepEqual([...pair.inputs], jsValues(truth['f4.npy']));
});

test('writeNpy output is read back by numpy with the same values', { skip: NO_NUMPY }, () => {
  const dir = mkdtempSync(join(tmp, 'w-'));
  const cases: [string, number[], number[], Parameters<typeof writeNpy>[2]][] = [
    ['a.npy', [1.5, -2.25, 1e-3, 7, 0, 3], [2, 3], '<f4'],
    ['b.npy', [Math.PI, -1e300], [2], '<f8'],
    ['c.npy', [0, -5, 2 ** 40], [3, 1], '<i8'],
    ['d.npy', [0, 255, 7, 9], [2, 2], '|u1'],
    ['e.npy', [-7, 2 ** 31 - 1], [2], '<i4'],
  ];
  for (const [name, values, shape, dtype] of cases) writeFileSync(join(dir, name), writeNpy(values, shape, dtype));
  const back = JSON.parse(
    python(
      `
import numpy as np, json, sys, os
print(json.dumps({n: {'shape': list(a.shape), 'dtype': a.dtype.str, 'values': a.ravel().tolist()}
   for n in sys.argv[2:] for a in [np.load(os.path.join(sys.argv[1], n))]}))
`,
      dir,
      ...cases.map((c) => c[0]),
    ),
  );
  for (const [name, values, shape, dtype] of cases) {
    assert.deepEqual(back[name].shape, shape, name);
    assert.equal(back[name].dtype, dtype, name);
    assert.deepEqual(back[name].values, dtype === '<f4' ? values.map(Math.fround) : values, name);
    // And our own parser agrees.
    assert.deepEqual([...parseNpy(readFileSync(join(dir, name))).data].map(Number), back[name].values);
  }
});

test('malformed .npy/.npz give one-line InputErrors', { skip: NO_NUMPY }, () => {
  const { dir } = numpyFixtures();
  throwsInput(() => parseNpy(readFileSync(join(dir, 'c8.npy')), 'c8.npy'), /c8\.npy: unsupported \.npy dtype '<c8'/);
  throwsInput(() => parseNpy(readFileSync(join(dir, 'obj.npy')), 'obj.npy'), /unsupported \.npy dtype '\|O'/);
  throwsInput(() => parseNpy(readFileSync(join(dir, 'struct.npy')), 'struct.npy'), /structured dtypes/);
  const good = new Uint8Array(readFileSync(join(dir, 'f4.npy'))); // a copy: Buffer.slice would alias
  throwsInput(() => parseNpy(good.subarray(0, good.length - 4), 'cut.npy'), /cut\.npy: .*\(5, 3, 2\).*120 bytes.*116 data bytes/);
  throwsInput(() => parseNpy(good.subarray(0, 40), 'head.npy'), /truncated/);
  throwsInput(() => parseNpy(new Uint8Array([1, 2, 3, 4, 5, 6, 7]), 'x'), /missing the \\x93NUMPY magic/);
  const v9 = good.slice();
  v9[6] = 9;
  throwsInput(() => parseNpy(v9), /version 9\.0/);
  // A v2 header announcing 1 GiB of header must be refused before it is read.
  const huge = good.slice(0, 16);
  huge[6] = 2;
  new DataView(huge.buffer).setUint32(8, 2 ** 30, true);
  throwsInput(() => parseNpy(huge), /header of 1073741824 bytes is over/);
  const badShape = new TextEncoder().encode("{'descr': '<f4', 'fortran_order': False, 'shape': (-2, 3), }\n");
  const bs = new Uint8Array(10 + badShape.length);
  bs.set(good.subarray(0, 8));
  new DataView(bs.buffer).setUint16(8, badShape.length, true);
  bs.set(badShape, 10);
  throwsInput(() => parseNpy(bs), /shape entry '-2'/);
  throwsInput(() => parseNpz(good, 'f4.npy'), /not a \.npz file/);
  const zipped = readFileSync(join(dir, 'comp.npz'));
  const broken = zipped.slice(0, Math.floor(zipped.length / 2));
  assert.throws(() => parseNpz(broken, 'broken.npz'), InputError);
  // A zip whose entry is not a valid .npy.
  const fake = zipSync({ 'x.npy': new Uint8Array([1, 2, 3]), 'y.npy': writeNpy([0], [1], '<i8') });
  throwsInput(() => parseNpz(fake, 'fake.npz'), /fake\.npz entry 'x'.*NUMPY magic/);
  // Labels that are not class indices.
  const f = mkdtempSync(join(tmp, 'lbl-'));
  writeFileSync(join(f, 'x.npy'), writeNpy([1, 2, 3], [3], '<f4'));
  writeFileSync(join(f, 'y.npy'), writeNpy([0, 1.5, 2], [3], '<f8'));
  writeFileSync(join(f, 'y2.npy'), writeNpy([0, 1], [2], '<i8'));
  throwsInput(() => loadNpyPair(join(f, 'x.npy'), join(f, 'y.npy')), /example 1 has label 1\.5/);
  throwsInput(() => loadNpyPair(join(f, 'x.npy'), join(f, 'y2.npy')), /3 examples .*shape \(2\)/);
  throwsInput(() => loadDataset(join(f, 'x.npy')), /single \.npy file has no labels/);
});

// ---------------------------------------------------------------- synthetic task

test('threeClusters: deterministic from the seed, balanced, shuffled, and learnable but not trivially', () => {
  const a = threeClusters({ count: 3000, seed: 5 });
  const b = threeClusters({ count: 3000, seed: 5 });
  const c = threeClusters({ count: 3000, seed: 6 });
  assert.deepEqual(a.inputs, b.inputs);
  assert.deepEqual(a.labels, b.labels);
  assert.notDeepEqual(a.inputs, c.inputs);
  assert.notDeepEqual(a.labels, c.labels);
  assert.deepEqual(a.inputShape, [2]);
  assert.equal(a.numClasses, 3);
  assert.deepEqual([...classCounts(a)], [1000, 1000, 1000]);
  assert.deepEqual([...classCounts(threeClusters({ count: 3001, seed: 1 }))], [1001, 1000, 1000]);
  assert.deepEqual([...classCounts(threeClusters({ count: 3002, seed: 1 }))], [1001, 1001, 1000]);
  // Shuffled: a class-sorted layout would have at most 2 label changes.
  let changes = 0;
  for (let i = 1; i < a.count; i++) if (a.labels[i] !== a.labels[i - 1]) changes++;
  assert.ok(changes > 1000, `only ${changes} label changes`);
  // Class means sit at the documented centres (std 1 over 1000 points: sd of the mean ≈ 0.03).
  const centres = threeClusterCentres();
  const sums = [[0, 0], [0, 0], [0, 0]];
  for (let i = 0; i < a.count; i++) {
    sums[a.labels[i]][0] += a.inputs[2 * i];
    sums[a.labels[i]][1] += a.inputs[2 * i + 1];
  }
  for (let k = 0; k < 3; k++) {
    assert.ok(Math.abs(sums[k][0] / 1000 - centres[k][0]) < 0.15, `class ${k} x mean`);
    assert.ok(Math.abs(sums[k][1] / 1000 - centres[k][1]) < 0.15, `class ${k} y mean`);
  }
  // Bayes-optimal (nearest centre) accuracy: high but not perfect, so a small MLP lands near 90–95%.
  let correct = 0;
  for (let i = 0; i < a.count; i++) {
    const d = centres.map(([cx, cy]) => (a.inputs[2 * i] - cx) ** 2 + (a.inputs[2 * i + 1] - cy) ** 2);
    if (d.indexOf(Math.min(...d)) === a.labels[i]) correct++;
  }
  const acc = correct / a.count;
  assert.ok(acc > 0.88 && acc < 0.97, `nearest-centre accuracy ${acc}`);
  // Through the spec.
  assert.deepEqual(loadDataset('synthetic:3000', { seed: 5 }).inputs, a.inputs);
  assert.equal(loadDataset('synthetic').count, 3000);
  throwsInput(() => loadDataset('synthetic:abc'), /positive integer/);
  throwsInput(() => threeClusters({ count: 0, seed: 1 }), /positive integer/);
});

// ---------------------------------------------------------------- views, batches, reshapes, specs

test('sliceDataset and batches are views that tile the dataset; reshapeInputs keeps the data', () => {
  const ds = threeClusters({ count: 103, seed: 2 });
  const s = sliceDataset(ds, 10, 20);
  assert.equal(s.count, 20);
  assert.equal(s.inputs.buffer, ds.inputs.buffer);
  assert.deepEqual([...s.inputs], [...ds.inputs.slice(20, 60)]);
  assert.deepEqual([...s.labels], [...ds.labels.slice(10, 30)]);
  throwsInput(() => sliceDataset(ds, 100, 4), /cannot take 4 examples from index 100; it has 103/);
  const seen: number[] = [];
  const xs: number[] = [];
  let starts = 0;
  for (const b of batches(ds, 25)) {
    assert.equal(b.inputs.buffer, ds.inputs.buffer);
    assert.equal(b.inputs.length, b.count * 2);
    assert.equal(b.labels.length, b.count);
    assert.equal(b.start, starts);
    starts += b.count;
    seen.push(...b.labels);
    xs.push(...b.inputs);
  }
  assert.deepEqual(seen, [...ds.labels]);
  assert.deepEqual(xs, [...ds.inputs]);
  assert.deepEqual([...batches(ds, 25)].map((b) => b.count), [25, 25, 25, 25, 3]);
  throwsInput(() => batches(ds, 0).next(), /batch size/);
  const r = reshapeInputs(ds, [1, 2]);
  assert.deepEqual(r.inputShape, [1, 2]);
  assert.equal(r.inputs, ds.inputs);
  assert.deepEqual(ds.inputShape, [2], 'the original is not changed');
  throwsInput(() => reshapeInputs(ds, [3]), /cannot reshape examples of shape \[2\] \(2 values\) to \[3\]/);
});

test('loadDataset rejects unknown specs and unrecognised files clearly', () => {
  throwsInput(() => loadDataset(''), /empty dataset spec/);
  throwsInput(() => loadDataset(join(tmp, 'nothing-here')), /no such file or folder.*fashion-mnist/);
  throwsInput(() => loadDataset('fashion-mnist:valid'), /split must be 'train' or 'test'/);
  const junk = join(tmp, 'junk.npz');
  writeFileSync(junk, 'hello world, not a dataset');
  throwsInput(() => loadDataset(junk), /unrecognised file/);
  throwsInput(() => loadDataset(`${junk},${junk}`), /two \.npy files or two IDX files, got unknown and unknown/);
  throwsInput(() => loadDataset('a,b,c'), /pair must be/);
});
