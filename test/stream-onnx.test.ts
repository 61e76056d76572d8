/**
 * Streaming ONNX (issue 6): matching from ONNX models read tensor by tensor (external data by offset), and
 * writing a permuted ONNX model tensor by tensor.
 *
 * The truth is the in-memory path: readOnnxFile (onnxParams of the model with its external data read in),
 * weightMatching on those params, applyPermutation, writeOnnxFile. The streamed versions must give the same
 * tensors to the bit, the same permutations, and the same files byte for byte; the written model must
 * also compute what B computes in ONNX Runtime.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import type { Params, Tensor } from '../src/tensor.js';
import { InputError } from '../src/errors.js';
import { permSizes, specFromAxes, type PermutationSpec } from '../src/permutation-spec/spec.js';
import { specFromOnnx } from '../src/permutation-spec/onnx-graph.js';
import { applyPermutation, isIdentity, randomPerms, type Perms } from '../src/permute.js';
import { weightMatching, weightMatchingFrom } from '../src/match/weight-matching.js';
import { openOnnxSource } from '../src/match/param-source-onnx.js';
import { jsMatmul } from '../src/engine/matmul.js';
import { readOnnxFile, writeOnnxFile } from '../src/io/onnx-file.js';
import { onnxModelFromObject, parseOnnx, serializeOnnx } from '../src/io/onnx.js';
import { writePermutedOnnx } from '../src/io/onnx-stream.js';

const MODELS = fileURLToPath(new URL('../../test/fixtures/models/', import.meta.url));
const SMALL = fileURLToPath(new URL('../../test/fixtures/onnx/', import.meta.url));
const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

async function inTempDir(fn: (dir: string) => unknown): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'rebasin-stream-onnx-'));
  try {
    await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const bits = (t: Tensor): Uint8Array => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);

function assertSameParams(got: Params, want: Params, what: string): void {
  assert.deepEqual(Object.keys(got), Object.keys(want), `${what}: names in order`);
  for (const name of Object.keys(want)) {
    assert.deepEqual([...got[name].shape], [...want[name].shape], `${what}: ${name} shape`);
    assert.deepEqual(Buffer.from(bits(got[name])), Buffer.from(bits(want[name])), `${what}: ${name} bits`);
  }
}

/** `model`'s weights, rewritten (halved: exact in every float dtype) into an external data file at `out`. */
function externalCopy(model: string, out: string, scale = 1): string {
  const f = readOnnxFile(model);
  const params: Params = Object.fromEntries(Object.entries(f.params).map(([k, t]) => [k, { shape: t.shape, data: t.data.map((v) => v * scale) }]));
  writeOnnxFile(out, f.model, params, { externalData: true });
  return out;
}

function f64Bytes(values: number[]): Uint8Array {
  return new Uint8Array(Float64Array.from(values).buffer);
}

/**
 * A model built by hand, every tensor kind the streamed reader and writer meet: float64, float16 and float32
 * weights in a data file (one float64 tensor holding values float32 cannot represent, one float32 tensor
 * over 1 MiB), an int64 shape constant and an empty float tensor in the data file too (both read in, as
 * readOnnxFile does), and an embedded float32 tensor. Returns its path; `location` overrides where the data file is said to be.
 */
function handModel(dir: string, location = 'hand.onnx.bin'): string {
  const chunks: Uint8Array[] = [];
  let offset = 0;
  const ext = (bytes: Uint8Array): Record<string, unknown> => {
    const entry = { data_location: 1, external_data: [{ key: 'location', value: location }, { key: 'offset', value: String(offset) }, { key: 'length', value: String(bytes.length) }] };
    chunks.push(bytes);
    offset += bytes.length;
    return entry;
  };
  const a = f64Bytes(Array.from({ length: 12 }, (_, i) => Math.sin(i + 1) / 3)); // not float32 values
  const u = f64Bytes([Math.PI, Math.E, Math.SQRT2, 1 / 3, 0.1]);
  const b16 = new Uint8Array(new Uint16Array([0x3c00, 0xc000, 0x3800, 0x4200]).buffer); // 1, -2, 0.5, 3
  const c = new Uint8Array(Float32Array.from({ length: 12 }, (_, i) => i - 5.5).buffer);
  const shape = new Uint8Array(new BigInt64Array([-1n, 3n]).buffer);
  const initializer = [
    { name: 'a', dims: [4, 3], data_type: 11, ...ext(a) },
    { name: 'shape', dims: [2], data_type: 7, ...ext(shape) },
    { name: 'b', dims: [4], data_type: 10, ...ext(b16) },
    { name: 'empty', dims: [0, 3], data_type: 1, ...ext(new Uint8Array(0)) },
    { name: 'c', dims: [3, 4], data_type: 1, ...ext(c) },
    { name: 'u', dims: [5], data_type: 11, ...ext(u) },
    // Over 1 MiB: the writers start it on a 4096-byte boundary.
    { name: 'big', dims: [270000], data_type: 1, ...ext(new Uint8Array(Float32Array.from({ length: 270000 }, (_, i) => i % 7).buffer)) },
    { name: 'd', dims: [2], data_type: 1, raw_data: new Uint8Array(Float32Array.from([7, 8]).buffer) },
  ];
  const model = onnxModelFromObject({
    ir_version: 8,
    opset_import: [{ version: 13 }],
    graph: {
      name: 'hand',
      initializer,
      node: initializer.map((t) => ({ op_type: 'Identity', input: [t.name], output: [`${t.name}_out`] })),
      output: initializer.map((t) => ({ name: `${t.name}_out` })),
    },
  });
  const path = join(dir, 'hand.onnx');
  writeFileSync(path, serializeOnnx(model));
  writeFileSync(join(dir, 'hand.onnx.bin'), Buffer.concat(chunks));
  return path;
}
const HAND_SPEC = specFromAxes({ a: ['p', null], b: ['p'], c: [null, 'p'] });

/** Every ONNX fixture, embedded and external, and external copies with float16/bfloat16/float64 data. */
function sourceFixtures(dir: string): string[] {
  const committed = [
    ...readdirSync(MODELS).filter((f) => f.endsWith('.onnx')).map((f) => join(MODELS, f)),
    ...['mlp.onnx', 'dtypes.onnx', 'conv_ext.onnx'].map((f) => join(SMALL, f)),
  ];
  // Halved, every dtypes.onnx tensor is raw_data and so moves to the data file (typed fields would stay).
  return [...committed, externalCopy(join(SMALL, 'dtypes.onnx'), join(dir, 'dtypes_ext.onnx'), 0.5), externalCopy(join(SMALL, 'mlp.onnx'), join(dir, 'mlp_ext.onnx')), handModel(dir)];
}

test("the ONNX source gives exactly onnxParams' tensors (names, order, shapes, bits) through get and use", async () => {
  await inTempDir((dir) => {
    const files = sourceFixtures(dir);
    assert.ok(files.some((f) => f.endsWith('.ext.onnx')) && files.some((f) => f.endsWith('resnet_a.onnx')));
    for (const file of files) {
      const truth = readOnnxFile(file);
      const s = openOnnxSource(file);
      try {
        assert.deepEqual(s.files, truth.files, `${file}: files read`);
        assert.deepEqual([...s.names], Object.keys(truth.params), `${file}: names`);
        const viaGet: Record<string, Tensor> = {};
        const viaUse: Record<string, Tensor> = {};
        for (const name of s.names) {
          assert.deepEqual([...s.shape(name)], [...truth.params[name].shape]);
          viaGet[name] = s.get(name);
          // use() hands out a buffer it reuses: copy the values out during the call.
          viaUse[name] = s.use(name, (t) => ({ shape: [...t.shape], data: t.data.slice() }));
        }
        assertSameParams(viaGet, truth.params, `${basename(file)} get`);
        assertSameParams(viaUse, truth.params, `${basename(file)} use`);
      } finally {
        s.close();
      }
    }
    // The dtypes really were read from the data file, decoded from float16, bfloat16 and float64.
    const d = parseOnnx(readFileSync(join(dir, 'dtypes_ext.onnx')), 'dtypes_ext.onnx');
    assert.deepEqual(d.initializerNames.map((n) => [d.initializers[n].dtype, d.initializers[n].external !== null]), [
      ['float16', true], ['bfloat16', true], ['float64', true], ['float32', true],
    ]);
  });
});

test('use() reuses one buffer (nothing left behind per call), nests safely, and reads only what is asked', () => {
  const s = openOnnxSource(join(MODELS, 'mlp_a.ext.onnx'));
  try {
    assert.equal(s.loads, 0, 'opening reads no tensor');
    const first = s.use('fc2.weight', (t) => t.data.buffer);
    const second = s.use('fc1.bias', (t) => t.data.buffer);
    assert.equal(second, first, 'the same buffer serves both calls');
    assert.notEqual(s.get('fc1.bias').data.buffer, s.get('fc1.bias').data.buffer, 'get() gives buffers of their own');
    const truth = readOnnxFile(join(MODELS, 'mlp_a.ext.onnx')).params;
    // Inside use(), another use() must not overwrite the outer tensor.
    s.use('fc2.weight', (outer) => {
      s.use('fc3.weight', (inner) => assert.deepEqual(Buffer.from(bits(inner)), Buffer.from(bits(truth['fc3.weight']))));
      assert.deepEqual(Buffer.from(bits(outer)), Buffer.from(bits(truth['fc2.weight'])));
    });
    assert.equal(s.loads, 6);
    assert.throws(() => s.get('nope'), (e: unknown) => e instanceof InputError && /nope/.test(e.message));
  } finally {
    s.close();
  }
  assert.throws(() => s.get('fc1.bias'), /closed/);
});

test('non-finite weights are refused like the safetensors source, naming the tensor and index', async () => {
  await inTempDir((dir) => {
    const path = handModel(dir);
    const data = readFileSync(join(dir, 'hand.onnx.bin'));
    const m = parseOnnx(readFileSync(path), path);
    const c = m.initializers.c.external!;
    data.writeFloatLE(Number.NaN, c.offset + 4 * 5);
    writeFileSync(join(dir, 'hand.onnx.bin'), data);
    const s = openOnnxSource(path);
    try {
      assert.throws(() => s.get('c'), (e: unknown) => e instanceof InputError && /'c' holds NaN at flat index 5/.test(e.message));
      assert.throws(() => s.use('c', () => 0), /flat index 5/);
    } finally {
      s.close();
    }
    const lax = openOnnxSource(path, { requireFinite: false });
    assert.ok(Number.isNaN(lax.get('c').data[5]));
    lax.close();
  });
});

/** A pair of models of one architecture; the spec is derived from A's graph, as the CLI does. */
async function matchPair(a: string, b: string): Promise<void> {
  const ma = readOnnxFile(a);
  const mb = readOnnxFile(b);
  const { spec } = specFromOnnx(ma.model);
  for (const opts of [{ seed: 1 }, { seed: 2, score: 'cosine' as const }]) {
    const want = await weightMatching({ spec, paramsA: ma.params, paramsB: mb.params, engine: jsMatmul, ...opts });
    const sa = openOnnxSource(a);
    const sb = openOnnxSource(b);
    try {
      const got = await weightMatchingFrom({ spec, sourceA: sa, sourceB: sb, engine: jsMatmul, ...opts });
      assert.deepEqual(Object.keys(got.perms), Object.keys(want.perms));
      for (const p of Object.keys(want.perms)) assert.deepEqual(got.perms[p], want.perms[p], `${basename(b)}: perm ${p}`);
      assert.ok(Object.values(got.perms).some((p) => !isIdentity(p)), 'two different models need non-identity permutations');
      assert.equal(got.iterations, want.iterations);
      assert.equal(got.objectiveBefore, want.objectiveBefore);
      assert.equal(got.objectiveAfter, want.objectiveAfter);
    } finally {
      sa.close();
      sb.close();
    }
  }
}

test('weightMatchingFrom over ONNX sources gives the same result as weightMatching over onnxParams', async () => {
  await inTempDir(async (dir) => {
    await matchPair(join(MODELS, 'mlp_a.onnx'), join(MODELS, 'mlp_b.onnx'));
    await matchPair(join(MODELS, 'mlp_a.ext.onnx'), externalCopy(join(MODELS, 'mlp_b.onnx'), join(dir, 'mlp_b.ext.onnx')));
    await matchPair(join(MODELS, 'resnet_a.ext.onnx'), externalCopy(join(MODELS, 'resnet_b.onnx'), join(dir, 'resnet_b.ext.onnx')));
  });
});

/** Outputs of a model file in ONNX Runtime for a fixed input of the given shape. */
async function outputsOf(model: string, shape: number[]): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(model);
  try {
    const n = shape.reduce((x, y) => x * y, 1);
    const x = Float32Array.from({ length: n }, (_, i) => ((i * 7919) % 256) / 255 - 0.3);
    const out = await s.run({ [s.inputNames[0]]: new ort.Tensor('float32', x, shape) });
    return out[s.outputNames[0]].data as Float32Array;
  } finally {
    await s.release();
  }
}

/**
 * Writes P(B) both ways, into two folders under one file name (the data file's name is recorded in the
 * model): the streamed files must equal the in-memory ones byte for byte, and load back to
 * applyPermutation(spec, perms, B). Returns the streamed model's path.
 */
function writeBothWays(dir: string, b: string, spec: PermutationSpec, perms: Perms, tag: string): string {
  const truth = readOnnxFile(b);
  const mem = join(dir, `${tag}-mem`);
  const low = join(dir, `${tag}-low`);
  mkdirSync(mem);
  mkdirSync(low);
  const expected = applyPermutation(spec, perms, truth.params);
  const memFiles = writeOnnxFile(join(mem, 'out.onnx'), truth.model, expected, { inputs: truth.files });
  const lowFiles = writePermutedOnnx(b, join(low, 'out.onnx'), spec, perms);
  assert.deepEqual(lowFiles.map((f) => basename(f)), memFiles.map((f) => basename(f)), `${tag}: files written`);
  for (const f of memFiles) assert.deepEqual(readFileSync(join(low, basename(f))), readFileSync(f), `${tag}: ${basename(f)} bytes`);
  assertSameParams(readOnnxFile(join(low, 'out.onnx')).params, expected, `${tag} reloaded`);
  const changed = Object.keys(expected).filter((k) => !Buffer.from(bits(expected[k])).equals(Buffer.from(bits(truth.params[k]))));
  assert.ok(changed.length > 0, `${tag}: the permutation must move some weights, or the comparison shows nothing`);
  return join(low, 'out.onnx');
}

test('the streamed writer writes what the in-memory writer writes, and the result computes what B computes', async () => {
  await inTempDir(async (dir) => {
    const cases: [string, string, number[]][] = [
      ['mlp_b.ext.onnx', externalCopy(join(MODELS, 'mlp_b.onnx'), join(dir, 'mlp_b.ext.onnx')), [3, 784]],
      ['resnet_b.ext.onnx', externalCopy(join(MODELS, 'resnet_b.onnx'), join(dir, 'resnet_b.ext.onnx')), [2, 1, 28, 28]],
      ['resnet_a.ext.onnx', join(MODELS, 'resnet_a.ext.onnx'), [2, 1, 28, 28]],
      ['conv_ext.onnx', join(SMALL, 'conv_ext.onnx'), [2, 2, 5, 5]],
      ['mlp_b.onnx (embedded)', join(MODELS, 'mlp_b.onnx'), [3, 784]],
      ['resnet_b.bn.onnx (embedded)', join(MODELS, 'resnet_b.bn.onnx'), [2, 1, 28, 28]],
    ];
    for (const [tag, b, shape] of cases) {
      const { model, params } = readOnnxFile(b);
      const { spec } = specFromOnnx(model);
      const perms = randomPerms(permSizes(spec, params), 17);
      const out = writeBothWays(dir, b, spec, perms, tag.split(' ')[0]);
      const want = await outputsOf(b, shape);
      const got = await outputsOf(out, shape);
      let diff = 0;
      for (let i = 0; i < want.length; i++) diff = Math.max(diff, Math.abs(got[i] - want[i]));
      assert.ok(diff <= 1e-4, `${tag}: permuted B differs from B by ${diff} in ONNX Runtime`);
      if (!tag.includes('embedded')) assert.equal(parseOnnx(readFileSync(out), out).layout, 'external');
    }
  });
});

test('streamed writing of float16/bfloat16/float64 data, constants and empty tensors: as in memory; unchanged float64 keeps its bits', async () => {
  await inTempDir((dir) => {
    const dtypes = externalCopy(join(SMALL, 'dtypes.onnx'), join(dir, 'dtypes_ext.onnx'), 0.5);
    const dspec = specFromAxes({ w16: ['p', null], wbf: ['p', null], w64: [null, 'p'] });
    writeBothWays(dir, dtypes, dspec, randomPerms({ p: 3 }, 2), 'dtypes');
    const path = handModel(dir);
    const out = writeBothWays(dir, path, HAND_SPEC, { p: Int32Array.from([2, 0, 3, 1]) }, 'hand');
    // 'u' is in no permutation: its float64 bytes are copied, full precision kept (float32 could not hold them).
    const o = parseOnnx(readFileSync(out), out);
    const u = o.initializers.u.external!;
    const written = readFileSync(join(dir, 'hand-low', u.location)).subarray(u.offset, u.offset + (u.length ?? 0));
    assert.deepEqual(new Float64Array(written.buffer.slice(written.byteOffset, written.byteOffset + written.length)), Float64Array.from([Math.PI, Math.E, Math.SQRT2, 1 / 3, 0.1]));
    // The int64 constant and the empty tensor are embedded in the output, as the in-memory writer puts them.
    assert.equal(o.initializers.shape.external, null);
    assert.equal(o.initializers.empty.external, null);
    assert.equal(o.initializers.d.external?.location, 'out.onnx.data');
  });
});

test('external data escaping the model folder, truncated or missing is an InputError, and nothing is written', async () => {
  await inTempDir((dir) => {
    const inner = join(dir, 'inner');
    mkdirSync(inner);
    handModel(dir); // writes dir/hand.onnx.bin, outside inner/
    for (const [location, re] of [['../hand.onnx.bin', /outside the model's folder/], [join(dir, 'hand.onnx.bin'), /relative path/]] as const) {
      const model = handModel(inner, location);
      assert.throws(() => openOnnxSource(model), (e: unknown) => e instanceof InputError && re.test(e.message), location);
      assert.throws(() => writePermutedOnnx(model, join(dir, 'x.onnx'), HAND_SPEC, { p: Int32Array.from([1, 0, 2, 3]) }), re);
    }
    // Truncated: the last tensor's bytes run past the end of the file.
    const work = join(dir, 'work');
    mkdirSync(work);
    const model = join(work, 'mlp_a.ext.onnx');
    copyFileSync(join(MODELS, 'mlp_a.ext.onnx'), model);
    copyFileSync(join(MODELS, 'mlp_a.ext.onnx.data'), `${model}.data`);
    truncateSync(`${model}.data`, readFileSync(`${model}.data`).length - 20);
    const truncated = (e: unknown): boolean => e instanceof InputError && /fc3\.bias/.test(e.message) && /truncated/.test(e.message) && e.message.includes('mlp_a.ext.onnx.data');
    assert.throws(() => openOnnxSource(model), truncated);
    const { spec } = specFromOnnx(readOnnxFile(join(MODELS, 'mlp_a.ext.onnx')).model);
    const perms = randomPerms({ fc1: 128, fc2: 128 }, 1);
    assert.throws(() => writePermutedOnnx(model, join(work, 'out.onnx'), spec, perms), truncated);
    rmSync(`${model}.data`);
    assert.throws(() => openOnnxSource(model), (e: unknown) => e instanceof InputError && /ENOENT/.test(e.message));
    assert.deepEqual(readdirSync(work), ['mlp_a.ext.onnx']);
  });
});

test('the writer refuses outputs onto its inputs (the model or its data file) before writing', async () => {
  await inTempDir((dir) => {
    const b = externalCopy(join(MODELS, 'mlp_b.onnx'), join(dir, 'b.onnx'));
    const before = readFileSync(`${b}.data`);
    const { spec } = specFromOnnx(readOnnxFile(b).model);
    const perms = randomPerms({ fc1: 128, fc2: 128 }, 1);
    assert.throws(() => writePermutedOnnx(b, b, spec, perms), (e: unknown) => e instanceof InputError && /is the input file/.test(e.message));
    // An output whose data file would be another input of the command.
    const other = join(dir, 'c.onnx');
    writeFileSync(`${other}.data`, 'spec');
    assert.throws(() => writePermutedOnnx(b, other, spec, perms, { inputs: [`${other}.data`] }), /c\.onnx\.data/);
    assert.deepEqual(readFileSync(`${b}.data`), before);
    assert.equal(existsSync(other), false);
    // Permutations that do not fit are refused before anything is written too.
    assert.throws(() => writePermutedOnnx(b, join(dir, 'd.onnx'), spec, { fc1: perms.fc1 }), /no permutation 'fc2'/);
    assert.equal(existsSync(join(dir, 'd.onnx')), false);
  });
});

function cli(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('CLI: align --low-memory on ONNX with external data writes the files the in-memory align writes', async () => {
  await inTempDir((dir) => {
    for (const kind of ['mlp', 'resnet']) {
      const a = join(dir, `${kind}_a.ext.onnx`);
      copyFileSync(join(MODELS, `${kind}_a.ext.onnx`), a);
      copyFileSync(join(MODELS, `${kind}_a.ext.onnx.data`), `${a}.data`);
      const b = externalCopy(join(MODELS, `${kind}_b.onnx`), join(dir, `${kind}_b.ext.onnx`));
      for (const mode of ['mem', 'low']) {
        mkdirSync(join(dir, `${kind}-${mode}`));
        const out = join(dir, `${kind}-${mode}`, 'aligned.onnx');
        const r = cli(['align', a, b, '-o', out, '--perms', join(dir, `${kind}-${mode}`, 'perms.json'), '--json', ...(mode === 'low' ? ['--low-memory'] : [])]);
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual(JSON.parse(r.stdout).output, [out, `${out}.data`]);
      }
      for (const f of ['aligned.onnx', 'aligned.onnx.data', 'perms.json']) {
        assert.deepEqual(readFileSync(join(dir, `${kind}-low`, f)), readFileSync(join(dir, `${kind}-mem`, f)), `${kind}: ${f}`);
      }
      const perms = JSON.parse(readFileSync(join(dir, `${kind}-low`, 'perms.json'), 'utf8')) as Record<string, number[]>;
      assert.ok(Object.values(perms).some((p) => p.some((v, i) => v !== i)), `${kind}: matching moved some units`);
    }
    // Refused with exit code 2, nothing written: mixed formats, and an output onto B's data file.
    copyFileSync(join(MODELS, 'mlp_b.safetensors'), join(dir, 'mlp_b.safetensors'));
    const mixed = cli(['align', join(dir, 'mlp_a.ext.onnx'), join(dir, 'mlp_b.safetensors'), '-o', join(dir, 'm.onnx'), '--low-memory']);
    assert.equal(mixed.code, 2);
    assert.match(mixed.stderr, /mix formats/);
    const data = join(dir, 'mlp_b.ext.onnx.data');
    const before = readFileSync(data);
    const onto = cli(['align', join(dir, 'mlp_a.ext.onnx'), join(dir, 'mlp_b.ext.onnx'), '-o', join(dir, 'n.onnx'), '--perms', data, '--low-memory']);
    assert.equal(onto.code, 2);
    assert.match(onto.stderr, /is the input file/);
    assert.deepEqual(readFileSync(data), before);
    assert.equal(existsSync(join(dir, 'm.onnx')) || existsSync(join(dir, 'n.onnx')), false);
  });
});
