/**
 * PyTorch checkpoints (.pt/.pth) read without running anything from them.
 *
 * Truth: the fixtures in test/fixtures/torch/ were written by torch.save itself (PyTorch 1.13.1, see
 * make_torch_fixtures.py: protocols 2, 4 and 5, every storage dtype, transposed/sliced/strided/expanded views,
 * a shared storage, nn.Parameters, a training checkpoint), and each is read independently by Python's zipfile
 * and pickle with numpy building the strided views (read_pt_numpy.py). The refused files are a pickled
 * module, the legacy format, TorchScript, and pickles whose loading would call os.system / eval. Hostile
 * variants are assembled here byte by byte (a tiny pickle assembler and zip writer), and fuzzing mutates
 * both the whole file and the pickle inside a re-zipped archive (the CRC would otherwise catch most edits
 * before the pickle reader sees them): each outcome is a well-formed parse or an InputError, nothing else.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InputError } from '../src/errors.js';
import { createRng, type Rng } from '../src/random.js';
import { parseSafetensors, toParams, type SafetensorsFile } from '../src/io/safetensors.js';
import { parseTorchCheckpoint } from '../src/io/torch-checkpoint.js';
import { crc32, storedEntryBytes, zipEntries } from '../src/io/torch-zip.js';
import { isContiguous, STORAGE_DTYPES, TorchTensor, PyDict, unpickle } from '../src/io/torch-pickle.js';
import { pythonSkipReason, runPython } from './python.js';

const DIR = fileURLToPath(new URL('../../test/fixtures/torch/', import.meta.url));
const ORACLE = join(DIR, 'read_pt_numpy.py');
const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const fixture = (name: string): Uint8Array => new Uint8Array(readFileSync(join(DIR, name)));
const NUMPY = pythonSkipReason(['numpy']);

/** The readable fixtures, and where the state dict is in each. */
const VALID: readonly { file: string; wrapper: string | null }[] = [
  { file: 'mlp-a.pt', wrapper: null },
  { file: 'mlp-b.pt', wrapper: null },
  { file: 'mixed-protocol4.pt', wrapper: null },
  { file: 'checkpoint-protocol5.pth', wrapper: 'state_dict' },
  { file: 'parameters.pt', wrapper: null },
  // PyTorch >= 2.0's archive layout (root 'archive/', byteorder and serialization_id records), repacked
  // from mlp-a.pt by make_torch2_layout.py: Debian's torch is 1.13.
  { file: 'mlp-a-torch2-layout.pt', wrapper: null },
];

function hex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.length).toString('hex');
}

type OracleRow = [string, string, number[], string];

/** What Python + numpy read from the valid fixtures (one python run, shared by the tests). */
let oracleRows: Map<string, OracleRow[]> | null = null;
function oracle(file: string): OracleRow[] {
  if (oracleRows === null) {
    const args = VALID.map(({ file: f, wrapper }) => `${join(DIR, f)}${wrapper !== null ? `::${wrapper}` : ''}`);
    const all = JSON.parse(runPython(readFileSync(ORACLE, 'utf8'), ...args)) as OracleRow[][];
    oracleRows = new Map(VALID.map(({ file: f }, i) => [f, all[i]]));
  }
  return oracleRows.get(file) as OracleRow[];
}

function rows(file: SafetensorsFile): OracleRow[] {
  return file.order.map((n) => [n, file.tensors[n].dtype, [...file.tensors[n].shape], hex(file.tensors[n].bytes)]);
}

test('real torch.save files: every tensor (name, order, dtype, shape, bytes) as Python + numpy read them', { skip: NUMPY }, () => {
  for (const { file, wrapper } of VALID) {
    const got = parseTorchCheckpoint(fixture(file), file);
    assert.equal(got.wrapper, wrapper, file);
    assert.deepEqual(rows(got.file), oracle(file), file);
  }
});

test('the mixed fixture really holds every dtype, non-contiguous views, a shared storage and a BUILD of _metadata', () => {
  const bytes = fixture('mixed-protocol4.pt');
  const entries = zipEntries(bytes, 'mixed');
  const pkl = storedEntryBytes(bytes, entries.find((e) => e.name.endsWith('/data.pkl'))!, 'mixed');
  const byName = new Map(entries.map((e) => [e.name, e]));
  const root = unpickle(pkl, (k) => storedEntryBytes(bytes, byName.get(`mixed-protocol4/data/${k}`)!, 'mixed'), 'mixed');
  assert.ok(root instanceof PyDict && root.ordered);
  const t = (name: string): TorchTensor => root.entries.get(name) as TorchTensor;
  for (const name of ['transposed', 'sliced', 'stepped', 'expanded']) assert.equal(isContiguous(t(name)), false, name);
  assert.ok(t('sliced').offset > 0);
  assert.equal(t('shared.head').storage, t('shared.tail').storage);
  assert.deepEqual(new Set(Object.values(STORAGE_DTYPES).map((d) => d.dtype)), new Set([...root.entries.values()].map((v) => (v as TorchTensor).storage.dtype)));
  // protocol 4: the pickle uses FRAME and MEMOIZE, which protocol 2 files do not.
  assert.equal(pkl[1], 4);
  assert.ok(pkl.includes(0x95) && pkl.includes(0x94));
});

test('float tensors become the same params a safetensors file gives; integer buffers stay passthrough', () => {
  const { file } = parseTorchCheckpoint(fixture('mixed-protocol4.pt'), 'mixed');
  const { params, passthrough } = toParams(file);
  assert.deepEqual(passthrough, ['i64', 'i32', 'i16', 'i8', 'u8', 'bool']);
  // base = randn(5, 7); transposed = base.t(), sliced = base[1:4, 2:6]: element (i, j) of one is element (j, i) of the other.
  const tr = params.transposed;
  const sl = params.sliced;
  assert.deepEqual(tr.shape, [7, 5]);
  for (let i = 0; i < 3; i++) for (let j = 0; j < 4; j++) assert.equal(sl.data[i * 4 + j], tr.data[(j + 2) * 5 + (i + 1)]);
  assert.deepEqual([...params.expanded.data], [1, 2, 3, 1, 2, 3]);
  assert.deepEqual(params.scalar.shape, []);
  assert.deepEqual([...params.scalar.data], [2.5]);
  assert.deepEqual(params.empty.shape, [0, 3]);
});

function refusal(bytes: Uint8Array, label = 'x.pt'): string {
  try {
    parseTorchCheckpoint(bytes, label);
  } catch (e) {
    assert.ok(e instanceof InputError, `expected an InputError, got ${(e as Error).stack}`);
    assert.ok(!e.message.includes('\n'), 'one line');
    assert.ok(e.message.startsWith(`${label}: `), e.message);
    return e.message;
  }
  assert.fail('parsed, expected a refusal');
}

test('refused with one line naming what: code-running pickles, a pickled module, TorchScript, the legacy format', () => {
  assert.match(refusal(fixture('evil-os-system.pt')), /global "(posix|os)\.system"/);
  assert.match(refusal(fixture('evil-eval.pt')), /global "builtins\.eval"/);
  assert.match(refusal(fixture('whole-module.pt')), /global "torch\.nn\.modules\.linear\.Linear".*save model\.state_dict\(\)/);
  assert.match(refusal(fixture('torchscript.pt')), /TorchScript archive/);
  assert.match(refusal(fixture('legacy-format.pt')), /legacy format/);
  assert.match(refusal(new TextEncoder().encode('hello, not a model')), /not a PyTorch checkpoint/);
});

// ---- A pickle assembler and a zip writer, for hostile files the fixtures cannot be. ----

const enc = new TextEncoder();
type Op = number | readonly number[] | Uint8Array;

function u32(n: number): number[] {
  return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff];
}
const op = {
  proto: (v: number) => [0x80, v],
  global: (m: string, n: string) => [0x63, ...enc.encode(`${m}\n${n}\n`)],
  str: (s: string) => {
    const b = enc.encode(s);
    return [0x58, ...u32(b.length), ...b];
  },
  int: (n: number) => (n >= 0 && n < 256 ? [0x4b, n] : [0x4a, ...u32(n)]),
  long: (n: bigint) => {
    const out: number[] = [];
    let v = n;
    for (let i = 0; i < 8; i++) {
      out.push(Number(v & 0xffn));
      v >>= 8n;
    }
    return [0x8a, 8, ...out];
  },
  MARK: 0x28,
  TUPLE: 0x74,
  EMPTY_TUPLE: 0x29,
  REDUCE: 0x52,
  SETITEMS: 0x75,
  BINPERSID: 0x51,
  NEWFALSE: 0x89,
  STOP: 0x2e,
  EMPTY_LIST: 0x5d,
  EMPTY_DICT: 0x7d,
};

function pickle(...ops: Op[]): Uint8Array {
  const out: number[] = [];
  for (const o of ops) {
    if (typeof o === 'number') out.push(o);
    else out.push(...o);
  }
  return Uint8Array.from(out);
}

interface TensorSpec {
  name: string;
  storage?: string;
  key: string;
  numel: number;
  offset?: number | bigint;
  shape: number[];
  stride: (number | bigint)[];
}

const num = (n: number | bigint): number[] => (typeof n === 'bigint' || n >= 2 ** 31 ? op.long(BigInt(n)) : op.int(n));

/** The pickle torch.save writes for an OrderedDict of tensors (protocol 2, no memo). */
function stateDictPickle(tensors: readonly TensorSpec[]): Uint8Array {
  const parts: Op[] = [op.proto(2), op.global('collections', 'OrderedDict'), op.EMPTY_TUPLE, op.REDUCE, op.MARK];
  for (const t of tensors) {
    parts.push(op.str(t.name), op.global('torch._utils', '_rebuild_tensor_v2'), op.MARK);
    parts.push(op.MARK, op.str('storage'), op.global('torch', t.storage ?? 'FloatStorage'), op.str(t.key), op.str('cpu'), op.int(t.numel), op.TUPLE, op.BINPERSID);
    parts.push(num(t.offset ?? 0), op.MARK, ...t.shape.map(num), op.TUPLE, op.MARK, ...t.stride.map(num), op.TUPLE);
    parts.push(op.NEWFALSE, op.global('collections', 'OrderedDict'), op.EMPTY_TUPLE, op.REDUCE, op.TUPLE, op.REDUCE);
  }
  parts.push(op.SETITEMS, op.STOP);
  return pickle(...parts);
}

/** A zip of stored entries, as torch.save lays them out (no zip64 records: the reader takes both). */
function zip(entries: readonly [string, Uint8Array][]): Uint8Array {
  const chunks: number[] = [];
  const central: number[] = [];
  const u16 = (n: number) => [n & 0xff, (n >>> 8) & 0xff];
  for (const [name, data] of entries) {
    const n = enc.encode(name);
    const offset = chunks.length;
    const crc = crc32(data);
    const common = [...u16(20), ...u16(0), ...u16(0), ...u16(0), ...u16(0), ...u32(crc), ...u32(data.length), ...u32(data.length), ...u16(n.length), ...u16(0)];
    chunks.push(...u32(0x04034b50), ...common, ...n, ...data);
    central.push(...u32(0x02014b50), ...u16(20), ...common, ...u16(0), ...u16(0), ...u16(0), ...u32(0), ...u32(offset), ...n);
  }
  const dirOffset = chunks.length;
  chunks.push(...central, ...u32(0x06054b50), ...u16(0), ...u16(0), ...u16(entries.length), ...u16(entries.length), ...u32(central.length), ...u32(dirOffset), ...u16(0));
  return Uint8Array.from(chunks);
}

function checkpoint(pkl: Uint8Array, storages: Record<string, Uint8Array>): Uint8Array {
  return zip([['archive/data.pkl', pkl], ['archive/byteorder', enc.encode('little')], ...Object.entries(storages).map(([k, v]) => [`archive/data/${k}`, v] as [string, Uint8Array]), ['archive/version', enc.encode('3\n')]]);
}

const f32 = (...v: number[]) => new Uint8Array(Float32Array.from(v).buffer);

test('the assembler and zip writer make files the reader takes (so the refusals below are about one defect each)', () => {
  const ok = checkpoint(stateDictPickle([{ name: 'w', key: '0', numel: 6, shape: [2, 3], stride: [3, 1] }, { name: 'wt', key: '0', numel: 6, shape: [3, 2], stride: [1, 3] }]), { 0: f32(1, 2, 3, 4, 5, 6) });
  const { params } = toParams(parseTorchCheckpoint(ok, 'ok.pt').file);
  assert.deepEqual([...params.w.data], [1, 2, 3, 4, 5, 6]);
  assert.deepEqual([...params.wt.data], [1, 4, 2, 5, 3, 6]);
});

test('bounds: views past their storage, sizes that disagree with the zip, huge strides and expansions, missing storages', () => {
  const one = (t: Partial<TensorSpec>, storages: Record<string, Uint8Array> = { 0: f32(1, 2, 3, 4, 5, 6) }) =>
    refusal(checkpoint(stateDictPickle([{ name: 'w', key: '0', numel: 6, shape: [2, 3], stride: [3, 1], ...t }]), storages));
  assert.match(one({ offset: 1 }), /reaches past storage '0' of 6 elements/);
  assert.match(one({ stride: [4, 1] }), /reaches past storage/);
  // (3 - 1) * 2^52 is past 2^53: the check is exact, not in floating point.
  assert.match(one({ shape: [3, 2], stride: [2 ** 52, 1] }), /reaches past storage/);
  assert.match(one({ stride: [2n ** 62n, 1] }), /stride must hold non-negative ints below 2\^53, got 4611686018427387904/);
  assert.match(one({ offset: 2n ** 60n }), /storage offset must be a non-negative int below 2\^53/);
  assert.match(one({ offset: -1 }), /storage offset must be a non-negative int below 2\^53, got -1/);
  assert.match(one({ numel: 7 }), /should hold 7 F32 values \(28 bytes\) but data\/0 has 24 bytes/);
  assert.match(one({ key: '9' }), /storage '9' has no data\/9 entry/);
  assert.match(one({ storage: 'ComplexFloatStorage' }), /global "torch\.ComplexFloatStorage"/);
  assert.match(one({ shape: [2, 3, 1] }), /size has 3 dimensions but stride has 2/);
  // 2^40 elements over one stored value (stride 0): refused before anything of that size is allocated.
  assert.match(one({ shape: [2 ** 40], stride: [0] }), /repeats elements of its storage/);
  // Two tensors naming one storage with different dtypes.
  const pkl = stateDictPickle([{ name: 'a', key: '0', numel: 6, shape: [6], stride: [1] }, { name: 'b', key: '0', numel: 3, storage: 'DoubleStorage', shape: [3], stride: [1] }]);
  assert.match(refusal(checkpoint(pkl, { 0: f32(1, 2, 3, 4, 5, 6) })), /storage '0' is named as 6 F32 and as 3 F64/);
});

test('refused pickles: other globals, calls, opcodes, and malformed streams', () => {
  const p = (...ops: Op[]) => refusal(checkpoint(pickle(op.proto(2), ...ops), {}));
  assert.match(p(op.global('os', 'system'), op.MARK, op.str('echo hi'), op.TUPLE, op.REDUCE, op.STOP), /global "os\.system"/);
  // STACK_GLOBAL (protocol 4) names the global from strings on the stack.
  assert.match(p(0x8c, 8, ...enc.encode('builtins'), 0x8c, 4, ...enc.encode('exec'), 0x93, op.STOP), /global "builtins\.exec"/);
  assert.match(p(op.global('torch._utils', '_rebuild_device_tensor_from_numpy'), op.STOP), /_rebuild_device_tensor_from_numpy/);
  // An allowed name used as something else: calling a storage class, BUILD on a tuple, NEWOBJ.
  assert.match(p(op.global('torch', 'FloatStorage'), op.EMPTY_TUPLE, op.REDUCE, op.STOP), /REDUCE calls torch\.FloatStorage/);
  assert.match(p(op.EMPTY_TUPLE, op.EMPTY_DICT, 0x62, op.STOP), /BUILD on a tuple/);
  assert.match(p(op.global('collections', 'OrderedDict'), op.EMPTY_TUPLE, 0x81, op.STOP), /opcode NEWOBJ/);
  assert.match(p(op.global('collections', 'OrderedDict'), op.MARK, op.int(1), op.TUPLE, op.REDUCE, op.STOP), /OrderedDict is rebuilt from no arguments/);
  assert.match(p(0xff), /unknown opcode 0xff/);
  assert.match(p(op.str('abc').slice(0, 6)), /pickle ends \(truncated\?\)/);
  assert.match(p(0x68, 3, op.STOP), /memo entry 3 was never stored/);
  assert.match(p(op.EMPTY_DICT, op.STOP, op.STOP), /1 bytes after STOP/);
  assert.match(p(...new Array<number>(20000).fill(op.MARK)), /MARKs nested deeper than/);
  assert.match(p(op.STOP), /pops an empty stack/);
  assert.match(refusal(checkpoint(pickle(op.proto(6), op.STOP), {})), /pickle protocol 6/);
  // A list appended to itself (via the memo) is harmless: nothing walks it.
  assert.match(p(op.EMPTY_LIST, 0x71, 0, 0x68, 0, 0x61, op.STOP), /holds no dict/);
  // Not a state dict: say what was found and where one is looked for.
  assert.match(p(op.EMPTY_DICT, op.str('epoch'), op.int(3), 0x73, op.STOP), /holds a dict with keys "epoch".*'state_dict', 'model_state_dict'/);
});

test('the zip container: damaged data (CRC), compressed entries, archives without data.pkl', () => {
  const good = fixture('mlp-a.pt');
  const entries = zipEntries(good, 'a');
  const data0 = entries.find((e) => e.name.endsWith('/data/0'))!;
  const bad = good.slice();
  const view = new DataView(good.buffer, good.byteOffset);
  const start = data0.localOffset + 30 + view.getUint16(data0.localOffset + 26, true) + view.getUint16(data0.localOffset + 28, true);
  bad[start + 5] ^= 0x10;
  assert.match(refusal(bad), /entry 'mlp-a\/data\/0': CRC-32 mismatch/);
  assert.match(refusal(good.subarray(0, good.length - 30)), /corrupt zip archive/);
  assert.match(refusal(zip([['x/y.txt', enc.encode('hi')]])), /without <archive>\/data\.pkl/);
  const deflated = zip([['archive/data.pkl', pickle(op.proto(2), op.EMPTY_DICT, op.STOP)]]);
  // Mark the entry as deflated in both headers (the method field: +8 in the local header, +10 in the central one).
  const dirOffset = new DataView(deflated.buffer).getUint32(deflated.length - 22 + 16, true);
  deflated[8] = 8;
  deflated[dirOffset + 10] = 8;
  assert.match(refusal(deflated), /is compressed \(zip method 8\)/);
  const bigEndian = zip([['archive/data.pkl', pickle(op.proto(2), op.EMPTY_DICT, op.STOP)], ['archive/byteorder', enc.encode('big')]]);
  assert.match(refusal(bigEndian), /byte order "big"; only little-endian/);
});

// ---- Fuzzing ----

/** A parse must give tensors whose bytes are exactly what their dtype and shape need. */
function assertWellFormed(file: SafetensorsFile): void {
  const size: Record<string, number> = {};
  for (const d of Object.values(STORAGE_DTYPES)) size[d.dtype] = d.itemsize;
  for (const name of file.order) {
    const t = file.tensors[name];
    assert.equal(typeof name, 'string');
    assert.equal(t.bytes.length, t.shape.reduce((a, b) => a * b, 1) * size[t.dtype], name);
  }
}

function mutate(rng: Rng, src: Uint8Array): Uint8Array {
  const b = src.slice();
  const kind = rng.int(5);
  if (kind === 0) {
    for (let k = 1 + rng.int(4); k > 0; k--) b[rng.int(b.length)] = rng.int(256);
  } else if (kind === 1) {
    b[rng.int(b.length)] ^= 1 << rng.int(8);
  } else if (kind === 2) {
    return b.subarray(0, rng.int(b.length));
  } else if (kind === 3) {
    // An interesting value at a random place: 0, 0xff.., small counts.
    const v = [0, 0xff, 0x7f, 0x80, 1, 2, 0x28, 0x2e, 0x52, 0x74][rng.int(10)];
    b[rng.int(b.length)] = v;
  } else {
    // Delete or duplicate a short run.
    const at = rng.int(b.length);
    const n = 1 + rng.int(8);
    const out = new Uint8Array(b.length + (rng.int(2) === 0 ? -Math.min(n, b.length - at) : n));
    if (out.length < b.length) {
      out.set(b.subarray(0, at));
      out.set(b.subarray(at + (b.length - out.length)), at);
    } else {
      out.set(b.subarray(0, at + n > b.length ? b.length : at + n));
      out.set(b.subarray(at), Math.min(at + n, b.length));
    }
    return out;
  }
  return b;
}

function outcome(bytes: Uint8Array, label: string): 'parsed' | 'refused' {
  try {
    assertWellFormed(parseTorchCheckpoint(bytes, label).file);
    return 'parsed';
  } catch (e) {
    if (e instanceof InputError && !e.message.includes('\n')) return 'refused';
    throw new Error(`${label}: not an InputError: ${(e as Error).stack}`);
  }
}

test('fuzz: mutated files and mutated pickles parse well-formed or fail with an InputError (seeded, time-bounded)', () => {
  const rng = createRng(17);
  const deadline = Date.now() + 4000;
  const bases = VALID.map(({ file }) => {
    const bytes = fixture(file);
    const entries = zipEntries(bytes, file);
    return {
      file,
      bytes,
      // The same archive re-zipped by our writer, so a mutated pickle can be given a matching CRC.
      entries: entries.map((e) => [e.name.replace(/^[^/]+\//, 'archive/'), storedEntryBytes(bytes, e, file)] as [string, Uint8Array]),
    };
  });
  const counts = { file: { parsed: 0, refused: 0 }, pickle: { parsed: 0, refused: 0 } };
  let i = 0;
  for (; i < 6000 && Date.now() < deadline; i++) {
    const base = bases[i % bases.length];
    if (i % 2 === 0) {
      counts.file[outcome(mutate(rng, base.bytes), `${base.file}#${i}`)]++;
    } else {
      const entries = base.entries.map(([n, d]) => [n, n.endsWith('/data.pkl') ? mutate(rng, d) : d] as [string, Uint8Array]);
      counts.pickle[outcome(zip(entries), `${base.file}#${i}`)]++;
    }
  }
  assert.ok(i >= 1000, `only ${i} mutations ran before the deadline`);
  process.stderr.write(`# fuzz: ${i} mutations ${JSON.stringify(counts)}\n`);
  // Both paths were exercised on both sides: some mutations survive (padding, an int changed), most are refused.
  for (const c of [counts.file, counts.pickle]) assert.ok(c.parsed > 0 && c.refused > 0, JSON.stringify(counts));
});

// ---- The CLI ----

function run(args: string[]) {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('rebasin convert writes the state dict as safetensors, byte for byte what numpy reads; refusals write nothing', { skip: NUMPY }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'rebasin-pt-'));
  try {
    // Two of the fixtures (the others are compared in process above): a wrapper, and every dtype and view.
    for (const file of ['checkpoint-protocol5.pth', 'mixed-protocol4.pt']) {
      const out = join(dir, `${file}.safetensors`);
      const r = run(['convert', join(DIR, file), '-o', out]);
      assert.equal(r.code, 0, r.stderr);
      const written = parseSafetensors(new Uint8Array(readFileSync(out)), out);
      assert.deepEqual(rows(written), oracle(file), file);
    }
    const out = join(dir, 'evil.safetensors');
    const r = run(['convert', join(DIR, 'evil-os-system.pt'), '-o', out]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^rebasin: .*evil-os-system\.pt: data\.pkl at byte \d+: refers to the global "(posix|os)\.system"/);
    assert.equal(r.stderr.trim().split('\n').length, 1);
    assert.equal(existsSync(out), false);
    assert.match(run(['convert', join(DIR, 'mlp-a.pt'), '-o', join(dir, 'x.pt')]).stderr, /name the output \*\.safetensors/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('align takes .pt files as they take safetensors: the same outputs as from numpy-written safetensors of them', { skip: NUMPY }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'rebasin-pt-'));
  try {
    runPython(readFileSync(ORACLE, 'utf8'), '--safetensors', dir, join(DIR, 'mlp-a.pt'), join(DIR, 'mlp-b.pt'));
    const [a, b] = [join(dir, 'mlp-a.safetensors'), join(dir, 'mlp-b.safetensors')];
    for (const cmd of ['align']) {
      const fromPt = join(dir, `${cmd}-pt.safetensors`);
      const fromSt = join(dir, `${cmd}-st.safetensors`);
      const r1 = run([cmd, join(DIR, 'mlp-a.pt'), join(DIR, 'mlp-b.pt'), '-o', fromPt]);
      assert.equal(r1.code, 0, r1.stderr);
      const r2 = run([cmd, a, b, '-o', fromSt]);
      assert.equal(r2.code, 0, r2.stderr);
      const p1 = toParams(parseSafetensors(new Uint8Array(readFileSync(fromPt)))).params;
      const p2 = toParams(parseSafetensors(new Uint8Array(readFileSync(fromSt)))).params;
      assert.deepEqual(Object.keys(p1), Object.keys(p2));
      for (const k of Object.keys(p1)) assert.deepEqual(p1[k], p2[k], `${cmd} ${k}`);
    }
    const spec = run(['spec', join(DIR, 'checkpoint-protocol5.pth')]);
    assert.equal(spec.code, 0, spec.stderr);
    assert.match(spec.stdout, /spec from mlp/);
    assert.match(run(['align', join(DIR, 'mlp-a.pt'), join(DIR, 'mlp-b.pt'), '-o', join(dir, 'o.pt')]).stderr, /PyTorch state dict, written as safetensors; name the output \*\.safetensors/);
    assert.match(run(['align', '--low-memory', join(DIR, 'mlp-a.pt'), join(DIR, 'mlp-b.pt'), '-o', join(dir, 'o.safetensors')]).stderr, /rebasin convert/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
