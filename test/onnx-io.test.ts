/**
 * ONNX read/write against independent truth: ONNX Runtime decodes the same TensorProtos we decode and runs
 * the models we write; python-onnx-made fixtures (test/fixtures/onnx/make_fixtures.py) check that a
 * decode → encode round trip reproduces a real encoder's bytes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync, copyFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import protobuf from 'protobufjs';
import { InputError } from '../src/errors.js';
import type { Params, Tensor } from '../src/tensor.js';
import { take } from '../src/tensor.js';
import { createRng } from '../src/random.js';
import {
  type OnnxModel,
  type TensorProto,
  initializersToInputs,
  onnxModelFromObject,
  onnxParams,
  onnxToObject,
  parseOnnx,
  serializeOnnx,
  withInitializers,
} from '../src/io/onnx.js';
import { readOnnxFile, writeOnnxFile } from '../src/io/onnx-file.js';
import { ONNX_PROTO } from '../src/io/onnx-schema.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';

/** A fresh temporary folder for `fn` (sync or async), removed afterwards. */
async function inTempDir(fn: (dir: string) => unknown): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'rebasin-onnx-'));
  try {
    await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Encodes a plain ModelProto object without any of our validation (for deliberately broken models). */
const RawModel = protobuf.parse(ONNX_PROTO, { keepCase: true }).root.lookupType('onnx.ModelProto');
function encodeRaw(fields: Record<string, unknown>): Uint8Array {
  return RawModel.encode(RawModel.fromObject(fields)).finish();
}

const FIXTURES = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', 'test', 'fixtures', 'onnx');
const fixture = (name: string): string => join(FIXTURES, name);

// ------------------------------------------------------------------------------------------- helpers

type Feeds = Record<string, ort.Tensor>;

async function runOrt(model: string | Uint8Array, feeds: Feeds): Promise<Record<string, Float32Array>> {
  const session =
    typeof model === 'string' ? await ort.InferenceSession.create(model) : await ort.InferenceSession.create(model);
  try {
    const out = await session.run(feeds);
    const res: Record<string, Float32Array> = {};
    for (const [k, v] of Object.entries(out)) res[k] = v.data as Float32Array;
    return res;
  } finally {
    await session.release();
  }
}

function f32Tensor(shape: number[], data: Float32Array): ort.Tensor {
  return new ort.Tensor('float32', data, shape);
}

function randomData(n: number, seed: number): Float32Array {
  const rng = createRng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.normal();
  return out;
}

function bytesOf(data: Float32Array): Uint8Array {
  return new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
}

function vi(name: string, elemType: number, dims: (number | string)[] | null): Record<string, unknown> {
  const shape = dims === null ? undefined : { dim: dims.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: d })) };
  return { name, type: { tensor_type: { elem_type: elemType, shape } } };
}

/**
 * A model ORT can run that outputs every float initializer of `model` cast to float32: ORT decodes the
 * very same TensorProto objects (passed through unchanged), independently of our decoder.
 */
function probeModel(model: OnnxModel): Uint8Array {
  const names = model.initializerNames.filter((n) => ['float32', 'float16', 'bfloat16', 'float64'].includes(model.initializers[n].dtype));
  const probe = onnxModelFromObject({
    ir_version: 8,
    opset_import: [{ domain: '', version: 13 }],
    graph: {
      name: 'probe',
      initializer: [...(model.proto.graph!.initializer ?? [])],
      node: names.map((n) => ({ op_type: 'Cast', input: [n], output: [`${n}:f32`], attribute: [{ name: 'to', type: 2, i: 1 }] })),
      output: names.map((n) => vi(`${n}:f32`, 1, null)),
    },
  });
  return serializeOnnx(probe);
}

async function ortValues(model: OnnxModel): Promise<Record<string, Float32Array>> {
  const out = await runOrt(probeModel(model), {});
  const res: Record<string, Float32Array> = {};
  for (const [k, v] of Object.entries(out)) res[k.slice(0, -4)] = v;
  return res;
}

/** Same bits, except that any NaN equals any NaN (runtimes may canonicalise NaN payloads). */
function assertSameFloats(actual: Float32Array, expected: Float32Array, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  const ua = new Uint32Array(actual.buffer, actual.byteOffset, actual.length);
  const ue = new Uint32Array(expected.buffer, expected.byteOffset, expected.length);
  for (let i = 0; i < actual.length; i++) {
    if (Number.isNaN(actual[i]) && Number.isNaN(expected[i])) continue;
    if (ua[i] !== ue[i]) assert.fail(`${what}[${i}]: ${actual[i]} (0x${ua[i].toString(16)}) vs ${expected[i]} (0x${ue[i].toString(16)})`);
  }
}

async function assertParamsMatchOrt(model: OnnxModel, params: Params): Promise<void> {
  const truth = await ortValues(model);
  assert.deepEqual(Object.keys(params).sort(), Object.keys(truth).sort());
  for (const [name, t] of Object.entries(params)) assertSameFloats(t.data, truth[name], name);
}

/** The ModelProto minus initializer storage (data, external references): "everything else". */
function everythingElse(model: OnnxModel): unknown {
  const o = onnxToObject(model) as { graph: { initializer?: Record<string, unknown>[] } };
  for (const t of o.graph.initializer ?? []) {
    for (const k of ['raw_data', 'float_data', 'int32_data', 'double_data', 'external_data', 'data_location']) delete t[k];
  }
  return o;
}

function initializerBytes(model: OnnxModel, name: string): Uint8Array {
  const t = model.proto.graph!.initializer![model.initializers[name].index];
  return t.raw_data as Uint8Array;
}

/** Gemm(transB)+Relu+Gemm(transB) built with our encoder; weights stored as raw_data float32. */
function mlpModel(sizes: { inp: number; hid: number; out: number }, seed: number): { model: OnnxModel; params: Record<string, Tensor> } {
  const { inp, hid, out } = sizes;
  const params: Record<string, Tensor> = {
    'fc1.weight': { shape: [hid, inp], data: randomData(hid * inp, seed) },
    'fc1.bias': { shape: [hid], data: randomData(hid, seed + 1) },
    'fc2.weight': { shape: [out, hid], data: randomData(out * hid, seed + 2) },
    'fc2.bias': { shape: [out], data: randomData(out, seed + 3) },
  };
  const model = onnxModelFromObject(
    {
      ir_version: 8,
      producer_name: 'rebasin-test',
      opset_import: [{ domain: '', version: 13 }],
      metadata_props: [{ key: 'k', value: 'v' }],
      graph: {
        name: 'mlp',
        initializer: Object.entries(params).map(([name, t]) => ({ name, dims: t.shape, data_type: 1, raw_data: bytesOf(t.data) })),
        node: [
          { op_type: 'Gemm', name: 'fc1', input: ['x', 'fc1.weight', 'fc1.bias'], output: ['h'], attribute: [{ name: 'transB', type: 2, i: 1 }] },
          { op_type: 'Relu', name: 'relu', input: ['h'], output: ['r'] },
          { op_type: 'Gemm', name: 'fc2', input: ['r', 'fc2.weight', 'fc2.bias'], output: ['y'], attribute: [{ name: 'transB', type: 2, i: 1 }] },
        ],
        input: [vi('x', 1, ['batch', inp])],
        output: [vi('y', 1, ['batch', out])],
      },
    },
    'mlp',
  );
  return { model, params };
}

/** The MLP's forward pass in float64 — the arithmetic truth for the model we encode. */
function mlpForward(p: Record<string, Tensor>, x: Float32Array, batch: number): Float64Array {
  const [hid, inp] = p['fc1.weight'].shape;
  const out = p['fc2.weight'].shape[0];
  const y = new Float64Array(batch * out);
  for (let b = 0; b < batch; b++) {
    const h = new Float64Array(hid);
    for (let j = 0; j < hid; j++) {
      let s = p['fc1.bias'].data[j];
      for (let i = 0; i < inp; i++) s += p['fc1.weight'].data[j * inp + i] * x[b * inp + i];
      h[j] = Math.max(0, s);
    }
    for (let k = 0; k < out; k++) {
      let s = p['fc2.bias'].data[k];
      for (let j = 0; j < hid; j++) s += p['fc2.weight'].data[k * hid + j] * h[j];
      y[b * out + k] = s;
    }
  }
  return y;
}

function assertClose(a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(a.length, b.length, `${what}: length`);
  for (let i = 0; i < a.length; i++) {
    if (!(Math.abs(a[i] - b[i]) <= tol * (1 + Math.abs(b[i])))) assert.fail(`${what}[${i}]: ${a[i]} vs ${b[i]}`);
  }
}

/** Reverse-order permutation of the hidden units: an output-preserving change to every weight. */
function permuteMlpHidden(p: Params, w1: string, b1: string, w2: string, perm: Int32Array): Params {
  return { ...p, [w1]: take(p[w1], perm, 0), [b1]: take(p[b1], perm, 0), [w2]: take(p[w2], perm, 1) };
}

function randomPerm(n: number, seed: number): Int32Array {
  const rng = createRng(seed);
  const p = Int32Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [p[i], p[j]] = [p[j], p[i]];
  }
  return p;
}

// --------------------------------------------------------------------------------------------- tests

test('a model built with our encoder runs in ORT and computes the MLP', async () => {
  const { model, params } = mlpModel({ inp: 5, hid: 7, out: 3 }, 1);
  const x = randomData(4 * 5, 99);
  const y = (await runOrt(serializeOnnx(model), { x: f32Tensor([4, 5], x) })).y;
  assertClose(y, mlpForward(params, x, 4), 1e-5, 'y');
  // And our reader gives back exactly the weights we stored.
  const back = onnxParams(parseOnnx(serializeOnnx(model), 'mlp'));
  for (const [k, t] of Object.entries(params)) {
    assert.deepEqual(back[k].shape, t.shape);
    assertSameFloats(back[k].data, t.data, k);
  }
});

test('python-onnx fixtures: decode → encode reproduces the file byte for byte', () => {
  for (const name of ['mlp.onnx', 'dtypes.onnx', 'conv_ext.onnx']) {
    const bytes = readFileSync(fixture(name));
    const model = parseOnnx(bytes, name);
    assert.deepEqual(Buffer.from(serializeOnnx(model)), bytes, name);
  }
});

test('graph views: nodes, attributes, inputs with symbolic dims, initializers, opsets', () => {
  const { model } = readOnnxFile(fixture('mlp.onnx'));
  assert.equal(model.irVersion, 7);
  assert.deepEqual(model.opsets, [{ domain: '', version: 13 }]);
  assert.equal(model.layout, 'embedded');
  assert.deepEqual(model.initializerNames, ['fc1.weight', 'fc1.bias', 'onnx::Gemm_7', 'fc2.bias', 'shape']);
  assert.equal(model.initializers['shape'].dtype, 'int64');
  assert.deepEqual(model.initializers['onnx::Gemm_7'].shape, [2, 8]);
  const g = model.graph;
  assert.deepEqual(g.nodes.map((n) => n.opType), ['Gemm', 'Relu', 'Gemm', 'Reshape']);
  assert.deepEqual(g.nodes[0].inputs, ['x', 'fc1.weight', 'fc1.bias']);
  assert.deepEqual({ ...g.nodes[0].attributes }, { alpha: 1, beta: 1, transB: 1 });
  assert.equal(g.nodes[0].name, 'fc1');
  assert.deepEqual(g.inputs, [{ name: 'x', dtype: 'float32', shape: ['batch', 3] }]);
  assert.deepEqual(g.outputs, [{ name: 'y', dtype: 'float32', shape: ['batch', 2] }]);
  assert.deepEqual(g.valueInfo, [{ name: 'h', dtype: 'float32', shape: ['batch', 8] }]);

  const conv = readOnnxFile(fixture('conv_ext.onnx')).model;
  assert.deepEqual({ ...conv.graph.nodes[0].attributes }, { kernel_shape: [3, 3], pads: [1, 1, 1, 1] });
  assert.equal(conv.layout, 'external');
});

test('params equal what ORT decodes: float32 raw_data, float16 in int32_data, bfloat16 raw, float64, float_data', async () => {
  for (const name of ['mlp.onnx', 'dtypes.onnx', 'conv_ext.onnx']) {
    const { model, params } = readOnnxFile(fixture(name));
    await assertParamsMatchOrt(model, params);
    assert.equal('shape' in params, false, 'int64 initializers are not params');
  }
  const { model } = readOnnxFile(fixture('dtypes.onnx'));
  assert.deepEqual(
    model.initializerNames.map((n) => model.initializers[n].dtype),
    ['float16', 'bfloat16', 'float64', 'float32'],
  );
});

test('every float16 and bfloat16 bit pattern decodes as ORT does and is written back unchanged', async () => {
  const all = new Uint8Array(65536 * 2);
  for (let h = 0; h < 65536; h++) {
    all[2 * h] = h & 0xff;
    all[2 * h + 1] = h >>> 8;
  }
  const model = onnxModelFromObject({
    ir_version: 8,
    opset_import: [{ version: 13 }],
    graph: {
      initializer: [
        { name: 'h', dims: [65536], data_type: 10, raw_data: all },
        { name: 'b', dims: [65536], data_type: 16, raw_data: all },
      ],
      node: [{ op_type: 'Identity', input: ['h'], output: ['o'] }],
      output: [vi('o', 10, null)],
    },
  });
  const params = onnxParams(model);
  await assertParamsMatchOrt(model, params);
  // Change one element so both tensors are re-encoded from float32; all others must keep their bits.
  const changed: Params = Object.fromEntries(
    Object.entries(params).map(([k, t]) => {
      const d = t.data.slice();
      d[0] = 0.5;
      return [k, { shape: t.shape, data: d }];
    }),
  );
  const written = withInitializers(model, changed);
  for (const name of ['h', 'b']) {
    const raw = initializerBytes(written, name);
    assert.equal(raw.length, all.length);
    assert.deepEqual(Buffer.from(raw.subarray(2)), Buffer.from(all.subarray(2)), `${name}: bits other than [0]`);
  }
  assert.equal(onnxParams(written).h.data[0], 0.5);
  assert.equal(onnxParams(written).b.data[0], 0.5);
  // The input model is untouched.
  assert.deepEqual(Buffer.from(initializerBytes(model, 'h')), Buffer.from(all));
});

test('round trip read → write → read: same initializer bytes and same everything else', async () => {
  await inTempDir((dir) => {
    for (const name of ['mlp.onnx', 'dtypes.onnx']) {
      const a = readOnnxFile(fixture(name));
      const out = join(dir, name);
      writeOnnxFile(out, a.model, a.params, { inputs: a.files });
      // Nothing changed, so the file is the original, byte for byte (float64 included).
      assert.deepEqual(readFileSync(out), readFileSync(fixture(name)), name);
      const b = readOnnxFile(out);
      assert.deepEqual(everythingElse(b.model), everythingElse(a.model));
    }
  });
});

test('changed weights: new values in raw_data of the original dtype, everything else identical, ORT agrees', async () => {
  await inTempDir(async (dir) => {
    // mlp.onnx: permuting hidden units leaves the function unchanged; the bytes must be the permuted floats.
    const a = readOnnxFile(fixture('mlp.onnx'));
    const perm = randomPerm(8, 3);
    const permuted = permuteMlpHidden(a.params, 'fc1.weight', 'fc1.bias', 'onnx::Gemm_7', perm);
    const out = join(dir, 'mlp-perm.onnx');
    assert.deepEqual(writeOnnxFile(out, a.model, permuted, { inputs: a.files }), [out]);
    const b = readOnnxFile(out);
    for (const name of Object.keys(permuted)) {
      assert.deepEqual(Buffer.from(initializerBytes(b.model, name)), Buffer.from(bytesOf(permuted[name].data)), name);
    }
    assert.deepEqual(everythingElse(b.model), everythingElse(a.model));
    assert.deepEqual(b.model.initializerNames, a.model.initializerNames);
    const x = randomData(6 * 3, 5);
    const y0 = (await runOrt(fixture('mlp.onnx'), { x: f32Tensor([6, 3], x) })).y;
    const y1 = (await runOrt(out, { x: f32Tensor([6, 3], x) })).y;
    assertClose(y1, y0, 1e-6, 'permuted mlp');

    // dtypes.onnx: scaled weights come back in their own dtypes, as ORT reads them.
    const d = readOnnxFile(fixture('dtypes.onnx'));
    const scaled: Params = Object.fromEntries(
      Object.entries(d.params).map(([k, t]) => [k, { shape: t.shape, data: t.data.map((v) => v * 0.5) }]),
    );
    const dOut = join(dir, 'dtypes-scaled.onnx');
    writeOnnxFile(dOut, d.model, scaled);
    const e = readOnnxFile(dOut);
    assert.deepEqual(
      e.model.initializerNames.map((n) => e.model.initializers[n].dtype),
      ['float16', 'bfloat16', 'float64', 'float32'],
    );
    for (const [k, t] of Object.entries(scaled)) assertSameFloats(e.params[k].data, t.data, k); // halving is exact
    await assertParamsMatchOrt(e.model, e.params);
    assert.deepEqual(everythingElse(e.model), everythingElse(d.model));
    const xd = randomData(2 * 3, 6);
    const yd0 = (await runOrt(fixture('dtypes.onnx'), { x: f32Tensor([2, 3], xd) })).y;
    const yd1 = (await runOrt(dOut, { x: f32Tensor([2, 3], xd) })).y;
    assertClose(yd1, yd0.map((v) => v * 0.5), 1e-5, 'scaled dtypes');
  });
});

test('external data: read, write in one aligned .data file, ORT loads it from disk with identical outputs', async () => {
  await inTempDir(async (dir) => {
    const a = readOnnxFile(fixture('conv_ext.onnx'));
    assert.deepEqual(a.files, [fixture('conv_ext.onnx'), fixture('conv_ext.onnx.data')]);
    const x = randomData(2 * 2 * 5 * 5, 8);
    const feeds = (): Feeds => ({ x: f32Tensor([2, 2, 5, 5], x) });
    const y0 = (await runOrt(fixture('conv_ext.onnx'), feeds())).y;

    // Permute conv1's output channels (and conv2's input channels): outputs must not change.
    const perm = randomPerm(4, 11);
    const p = permuteMlpHidden(a.params, 'conv1.weight', 'conv1.bias', 'conv2.weight', perm);
    const out = join(dir, 'conv.onnx');
    const files = writeOnnxFile(out, a.model, p, { inputs: a.files }); // default: keep the external layout
    assert.deepEqual(files, [out, `${out}.data`]);
    const b = readOnnxFile(out);
    assert.equal(b.model.layout, 'external');
    const onDisk = parseOnnx(readFileSync(out), out);
    for (const name of onDisk.initializerNames) {
      const ext = onDisk.initializers[name].external;
      assert.ok(ext !== null, `${name} is external`);
      assert.equal(ext.location, 'conv.onnx.data');
      assert.equal(ext.offset % 64, 0, `${name} offset ${ext.offset} aligned`);
      assert.deepEqual(Buffer.from(initializerBytes(b.model, name)), Buffer.from(bytesOf(p[name].data)), name);
    }
    assert.deepEqual(everythingElse(b.model), everythingElse(a.model));
    assertClose((await runOrt(out, feeds())).y, y0, 1e-5, 'permuted conv, external');

    // The same model embedded, and an embedded model written with external data.
    const emb = join(dir, 'conv-embedded.onnx');
    assert.deepEqual(writeOnnxFile(emb, a.model, p, { externalData: false }), [emb]);
    assert.equal(parseOnnx(readFileSync(emb), emb).layout, 'embedded');
    assertClose((await runOrt(readFileSync(emb), feeds())).y, y0, 1e-5, 'permuted conv, embedded');

    const m = readOnnxFile(fixture('mlp.onnx'));
    const mOut = join(dir, 'sub', 'mlp.onnx');
    mkdirSync(join(dir, 'sub'));
    writeOnnxFile(mOut, m.model, m.params, { externalData: true });
    const onDiskMlp = parseOnnx(readFileSync(mOut), mOut);
    assert.equal(onDiskMlp.initializers['fc1.weight'].external?.location, 'mlp.onnx.data');
    // Integer constants stay inline: ORT's shape inference cannot read a Reshape target from a file.
    assert.equal(onDiskMlp.initializers['shape'].external, null);
    const xm = randomData(3 * 3, 9);
    assertClose((await runOrt(mOut, { x: f32Tensor([3, 3], xm) })).y, (await runOrt(fixture('mlp.onnx'), { x: f32Tensor([3, 3], xm) })).y, 0, 'mlp external');
  });
});

/** A one-initializer model whose tensor points at `location` (16 bytes at `offset`). */
function externalModel(location: string, offset = 0, length = 16): Uint8Array {
  return encodeRaw({
      ir_version: 8,
      opset_import: [{ version: 13 }],
      graph: {
        initializer: [
          {
            name: 'w',
            dims: [4],
            data_type: 1,
            data_location: 1,
            external_data: [
              { key: 'location', value: location },
              { key: 'offset', value: String(offset) },
              { key: 'length', value: String(length) },
            ],
          },
        ],
        node: [{ op_type: 'Identity', input: ['w'], output: ['y'] }],
        output: [vi('y', 1, [4])],
      },
    });
}

test('external data locations must stay inside the model folder; missing files and bad ranges are named', async () => {
  await inTempDir((dir) => {
    const inner = join(dir, 'model');
    mkdirSync(inner);
    const data = bytesOf(new Float32Array([1, 2, 3, 4]));
    writeFileSync(join(dir, 'outside.data'), data);
    writeFileSync(join(inner, 'ok.data'), data);
    symlinkSync(join(dir, 'outside.data'), join(inner, 'link.data'));
    const attempt = (location: string, offset?: number, length?: number): unknown => {
      const path = join(inner, 'm.onnx');
      writeFileSync(path, externalModel(location, offset, length));
      try {
        return readOnnxFile(path);
      } catch (e) {
        return e;
      }
    };
    const ok = attempt('ok.data') as { params: Params };
    assert.deepEqual(Array.from(ok.params.w.data), [1, 2, 3, 4]);
    for (const [loc, re] of [
      ['../outside.data', /outside the model's folder/],
      ['sub/../../outside.data', /outside the model's folder/],
      [join(dir, 'outside.data'), /relative path/],
      ['/etc/hostname', /relative path/],
      ['link.data', /through a link/],
      ['..', /outside the model's folder/],
      ['', /names no data file/],
    ] as const) {
      const e = attempt(loc);
      assert.ok(e instanceof InputError, `${loc}: ${String(e)}`);
      assert.match(e.message, re, loc);
    }
    assert.throws(() => readOnnxFile(join(dir, 'no-model.onnx')), (e: unknown) => e instanceof InputError && /no-model\.onnx.*ENOENT/.test(e.message));
    const missing = attempt('nope.data');
    assert.ok(missing instanceof InputError);
    assert.match(missing.message, /nope\.data/);
    assert.match(missing.message, /ENOENT/);
    for (const [off, len, re] of [
      [8, 16, /outside/],
      [0, 12, /12 bytes/],
      [1 << 30, 16, /outside/],
    ] as const) {
      const e = attempt('ok.data', off, len);
      assert.ok(e instanceof InputError, `${off}+${len}`);
      assert.match(e.message, re);
    }
    // Without a resolver, an external tensor is a clear error rather than zeros.
    const parsed = parseOnnx(externalModel('ok.data'), 'bytes.onnx');
    assert.throws(() => onnxParams(parsed), (e: unknown) => e instanceof InputError && /ok\.data/.test(e.message));
    assert.deepEqual(Array.from(onnxParams(parsed, { resolveExternal: () => data }).w.data), [1, 2, 3, 4]);
  });
});

test('writing refuses to overwrite an input (model or its data file) and checks replacement shapes', async () => {
  await inTempDir((dir) => {
    const src = join(dir, 'conv_ext.onnx');
    copyFileSync(fixture('conv_ext.onnx'), src);
    copyFileSync(fixture('conv_ext.onnx.data'), `${src}.data`);
    const a = readOnnxFile(src);
    assert.throws(() => writeOnnxFile(src, a.model, a.params, { inputs: a.files }), InputError);
    // Also refused when only the data file beside the output ('<name>.data') is an input.
    assert.throws(() => writeOnnxFile(src, a.model, a.params, { inputs: [`${src}.data`] }), /conv_ext\.onnx\.data/);
    assert.deepEqual(readFileSync(src), readFileSync(fixture('conv_ext.onnx')), 'input untouched');

    const bad: Params = { ...a.params, 'conv1.bias': { shape: [5], data: new Float32Array(5) } };
    assert.throws(() => withInitializers(a.model, bad), /conv1\.bias.*\[4\].*\[5\]/);
    assert.throws(() => withInitializers(a.model, { nope: { shape: [1], data: new Float32Array(1) } }), /nope/);
    const m = readOnnxFile(fixture('mlp.onnx'));
    assert.throws(() => withInitializers(m.model, { shape: { shape: [2], data: new Float32Array(2) } }), /int64/);
    assert.equal(existsSync(join(dir, 'nothing.onnx')), false);
  });
});

test('initializersToInputs: one session fed the original weights gives the original outputs', async () => {
  for (const [name, shape] of [
    ['mlp.onnx', [4, 3]],
    ['conv_ext.onnx', [1, 2, 5, 5]],
  ] as const) {
    const { model, params } = readOnnxFile(fixture(name));
    const asInputs = initializersToInputs(model);
    assert.deepEqual(Object.keys(asInputs.initializers), name === 'mlp.onnx' ? ['shape'] : []);
    const inputNames = asInputs.graph.inputs.map((v) => v.name);
    assert.deepEqual(inputNames, ['x', ...Object.keys(params)]);
    assert.deepEqual(asInputs.graph.inputs[1].shape, params[Object.keys(params)[0]].shape);
    const x = randomData((shape as readonly number[]).reduce((a, b) => a * b, 1), 12);
    const feeds: Feeds = { x: f32Tensor([...shape], x) };
    for (const [k, t] of Object.entries(params)) feeds[k] = f32Tensor([...t.shape], t.data);
    const bytes = serializeOnnx(asInputs);
    const y1 = (await runOrt(bytes, feeds)).y;
    const y0 = (await runOrt(fixture(name), { x: f32Tensor([...shape], x) })).y;
    // ORT prepacks constant Conv weights and picks another kernel, so conv agrees to rounding only.
    assertClose(y1, y0, name === 'mlp.onnx' ? 0 : 1e-5, name);
    // Other weights through the same model: zeros give the bias-only output (different from y0).
    const zeroFeeds: Feeds = { ...feeds };
    for (const [k, t] of Object.entries(params)) zeroFeeds[k] = f32Tensor([...t.shape], new Float32Array(t.data.length));
    const yz = (await runOrt(bytes, zeroFeeds)).y;
    assert.ok(yz.every((v) => v === 0));
  }
});

test('fields this schema does not know survive a weight change (unknown-field preservation)', async () => {
  // An "ONNX from the future": extra fields in ModelProto, GraphProto, NodeProto and TensorProto.
  const future = ONNX_PROTO.replace('message ModelProto {', 'message ModelProto {\n  optional string future_model = 99;')
    .replace('message GraphProto {', 'message GraphProto {\n  repeated int64 future_graph = 98;')
    .replace('message NodeProto {', 'message NodeProto {\n  optional bytes future_node = 97;')
    .replace('message TensorProto {', 'message TensorProto {\n  optional string future_tensor = 96;');
  const FutureModel = protobuf.parse(future, { keepCase: true }).root.lookupType('onnx.ModelProto');
  const { model, params } = mlpModel({ inp: 3, hid: 4, out: 2 }, 21);
  const plain = onnxToObject(model) as { graph: { node: Record<string, unknown>[]; initializer: Record<string, unknown>[] } } & Record<string, unknown>;
  plain.future_model = 'hello';
  (plain.graph as Record<string, unknown>).future_graph = [1, 2, 3];
  plain.graph.node[1].future_node = Buffer.from([9, 8, 7]).toString('base64');
  for (const t of plain.graph.initializer) t.future_tensor = `t-${String(t.name)}`;
  const bytes = FutureModel.encode(FutureModel.fromObject(plain)).finish();

  const parsed = parseOnnx(bytes, 'future.onnx');
  assert.deepEqual(Buffer.from(serializeOnnx(parsed)), Buffer.from(bytes), 'unchanged: byte for byte');
  const changed = withInitializers(parsed, { 'fc1.weight': { shape: [4, 3], data: params['fc1.weight'].data.map((v) => -v) } });
  const back = FutureModel.toObject(FutureModel.decode(serializeOnnx(changed)), { longs: Number }) as typeof plain;
  assert.equal(back.future_model, 'hello');
  assert.deepEqual((back.graph as Record<string, unknown>).future_graph, [1, 2, 3]);
  assert.deepEqual(Buffer.from(back.graph.node[1].future_node as Uint8Array), Buffer.from([9, 8, 7]));
  assert.deepEqual(back.graph.initializer.map((t) => t.future_tensor), ['t-fc1.weight', 't-fc1.bias', 't-fc2.weight', 't-fc2.bias']);
  // ORT (whose protobuf skips unknown fields) runs it, with the new weights.
  const x = randomData(2 * 3, 4);
  const expected = mlpForward({ ...params, 'fc1.weight': { shape: [4, 3], data: params['fc1.weight'].data.map((v) => -v) } }, x, 2);
  assertClose((await runOrt(serializeOnnx(changed), { x: f32Tensor([2, 3], x) })).y, expected, 1e-5, 'future model');
});

test('malformed models are InputErrors that name the file', () => {
  const { model } = mlpModel({ inp: 2, hid: 2, out: 1 }, 2);
  const bytes = serializeOnnx(model);
  for (const [bad, re] of [
    [bytes.subarray(0, bytes.length - 3), /bad\.onnx: not a valid ONNX model/],
    [new Uint8Array(0), /bad\.onnx: the ONNX model has no graph/],
    [new Uint8Array([0x3a, 0xff, 0xff, 0xff, 0xff, 0x0f]), /bad\.onnx: not a valid ONNX model/],
  ] as const) {
    assert.throws(() => parseOnnx(bad, 'bad.onnx'), (e: unknown) => e instanceof InputError && re.test(e.message));
  }
  const wrongSize = onnxModelFromObject({
    graph: { initializer: [{ name: 'w', dims: [3, 2], data_type: 1, raw_data: new Uint8Array(20) }] },
  }, 'short.onnx');
  assert.throws(() => onnxParams(wrongSize), /short\.onnx: tensor 'w' \(float32\) \[3, 2\] has 20 bytes of data, expected 24/);
  const typed = onnxModelFromObject({ graph: { initializer: [{ name: 'w', dims: [3], data_type: 10, int32_data: [1, 2] }] } }, 'f16.onnx');
  assert.throws(() => onnxParams(typed), /f16\.onnx: tensor 'w' \(float16\) \[3\] has 2 values in int32_data, expected 3/);
  const dup = encodeRaw({ graph: { initializer: [{ name: 'w', data_type: 1 }, { name: 'w', data_type: 1 }] } });
  assert.throws(() => parseOnnx(dup, 'dup.onnx'), /dup\.onnx: two initializers are named 'w'/);
  const neg = encodeRaw({ graph: { initializer: [{ name: 'w', data_type: 1, dims: [-1] }] } });
  assert.throws(() => parseOnnx(neg, 'neg.onnx'), /neg\.onnx: initializer 'w' \(float32\) has an invalid dimension -1/);
});

test('typed-field storage of every float dtype decodes, and TensorProto typed views stay consistent', () => {
  // float_data / double_data / int32_data(bf16) written by us, compared with the values themselves.
  const vals = [0, -0, 1.5, -2.25, 65504, 1e-3];
  const f16bits = [0x0000, 0x8000, 0x3e00, 0xc080, 0x7bff, 0x1419];
  const model = onnxModelFromObject({
    graph: {
      initializer: [
        { name: 'f', dims: [6], data_type: 1, float_data: vals },
        { name: 'd', dims: [2, 3], data_type: 11, double_data: vals },
        { name: 'h', dims: [6], data_type: 10, int32_data: f16bits },
        { name: 'b', dims: [6], data_type: 16, int32_data: [0x0000, 0x8000, 0x3fc0, 0xc010, 0x4780, 0x3a83] },
        { name: 'i', dims: [2], data_type: 7, int64_data: [5, -7] },
      ],
    },
  });
  const p = onnxParams(model);
  assert.deepEqual(Object.keys(p), ['f', 'd', 'h', 'b']);
  assert.deepEqual(Array.from(p.f.data), vals.map(Math.fround));
  assert.deepEqual(p.d.shape, [2, 3]);
  assert.deepEqual(Array.from(p.d.data), vals.map(Math.fround));
  assert.deepEqual(Array.from(p.h.data).slice(0, 5), [0, -0, 1.5, -2.25, 65504]);
  assert.ok(Math.abs(p.h.data[5] - 1e-3) < 1e-6);
  assert.deepEqual(Array.from(p.b.data).slice(0, 5), [0, -0, 1.5, -2.25, 65536]);
  const t: TensorProto = model.proto.graph!.initializer![4];
  assert.equal(t.name, 'i');
});
