/**
 * Hostile and careless input files (issue 16): the CLI, run as a subprocess with a timeout (so a hang fails
 * the test instead of hanging CI) and, where /usr/bin/time is there, its peak memory measured, must refuse
 * with exit 2 and one line naming the file:
 * - special files where a model's external data or a dataset belongs: a FIFO (reading one waits for ever),
 *   a folder, a link to /dev/zero (reads without end);
 * - sizes that would make it allocate gigabytes: a .npz zip bomb (honest or lying about its size), a sparse
 *   2 GB external-data file referenced without a length, a length past 2^31;
 * - data that gives wrong numbers with exit 0: examples of the wrong size, labels the model has no class
 *   for, 2-D labels that are not one-hot, f64 IDX labels past 2^32, NaN inputs, an empty dataset, a label of
 *   10^7 given to train — on the safetensors MLP path and the ONNX path alike.
 * The files are crafted here; the zip writer below is this test's own (not src/data/zip.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { constants as zc, crc32, deflateRawSync } from 'node:zlib';
import { onnxModelFromObject, serializeOnnx } from '../src/io/onnx.js';
import { mlpToOnnx } from '../src/io/onnx-mlp.js';
import { writeOnnxFile } from '../src/io/onnx-file.js';
import { paramsToSafetensors } from '../src/io/safetensors.js';
import { writeSafetensorsFile } from '../src/io/safetensors-fs.js';
import { mlpArch } from '../src/model/mlp.js';
import { writeNpy, type NpyWriteDtype } from '../src/data/npy.js';
import { writeIdx } from '../src/data/idx.js';
import { arraysToDataset, loadDataset } from '../src/data/load.js';
import { makeDataset } from '../src/data/dataset.js';
import { validateDataset } from '../src/data/validate.js';
import { isInputError } from '../src/errors.js';
import { randomMlp } from './helpers/mlp.js';

const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const TIME = '/usr/bin/time';
const haveTime = existsSync(TIME);
/** Per run: ample for a refusal (they take well under a second), far below "for ever". */
const TIMEOUT_MS = 20_000;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Peak resident memory in MB, when /usr/bin/time is there. */
  peakMb: number | null;
  timedOut: boolean;
}

/** Runs the CLI (killed after TIMEOUT_MS); runs are started together where a test has several, as they mostly wait. */
function run(args: string[]): Promise<Run> {
  const argv = haveTime ? [TIME, '-v', process.execPath, cli, ...args] : [process.execPath, cli, ...args];
  return new Promise((resolve) => {
    const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    let [stdout, err, timedOut] = ['', '', false];
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, TIMEOUT_MS);
    child.on('close', (code) => {
      clearTimeout(timer);
      const peak = /Maximum resident set size \(kbytes\): (\d+)/.exec(err);
      // time -v reports on the child after the child's own stderr.
      const stderr = err.split(/\n\s*Command (being timed|terminated by signal)/)[0];
      resolve({ code, stdout, stderr, peakMb: peak ? Number(peak[1]) / 1024 : null, timedOut });
    });
  });
}

/** Exit 2, no stack trace, one line of error matching `pattern`, peak memory under `maxPeakMb`. */
async function refused(running: Promise<Run>, pattern: RegExp, maxPeakMb = 400): Promise<void> {
  const r = await running;
  assert.equal(r.timedOut, false, `timed out: ${r.stderr}`);
  assert.equal(r.code, 2, `exit ${r.code}: ${r.stderr}`);
  const lines = r.stderr.split('\n').filter((l) => l.startsWith('rebasin:'));
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], pattern);
  assert.doesNotMatch(r.stderr, /internal error|\n\s+at /);
  if (process.env.REBASIN_SHOW_PEAKS) process.stderr.write(`peak ${r.peakMb?.toFixed(0)} MB: ${lines[0]}\n`);
  if (r.peakMb !== null) assert.ok(r.peakMb < maxPeakMb, `peak ${r.peakMb.toFixed(0)} MB (bound ${maxPeakMb} MB): ${lines[0]}`);
}

async function succeeds(running: Promise<Run>): Promise<void> {
  const r = await running;
  assert.equal(r.code, 0, r.stderr);
}

// ---------------------------------------------------------------------------------------------------------
// Files

const dir = mkdtempSync(join(tmpdir(), 'rebasin-hostile-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const at = (...p: string[]): string => join(dir, ...p);

// Two MLPs 4 -> 6 -> 3 (safetensors and ONNX).
const arch = mlpArch(['layer0', 'layer1']);
for (const seed of [1, 2]) {
  const params = randomMlp([4, 6, 3], 'torch', seed);
  writeSafetensorsFile(at(`m${seed}.safetensors`), paramsToSafetensors(params));
  writeOnnxFile(at(`m${seed}.onnx`), mlpToOnnx(arch, params), params, { externalData: false });
}

/** A zip holding `entries`, each deflated (as np.savez_compressed does); `claim` overrides an entry's stated size. */
function zip(entries: { name: string; deflated: Uint8Array; size: number; crc: number }[]): Uint8Array {
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = Buffer.from(e.name);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(8, 8);
    local.writeUInt32LE(e.crc, 14);
    local.writeUInt32LE(e.deflated.length, 18);
    local.writeUInt32LE(e.size, 22);
    local.writeUInt16LE(name.length, 26);
    const c = Buffer.alloc(46);
    c.writeUInt32LE(0x02014b50, 0);
    c.writeUInt16LE(20, 4);
    c.writeUInt16LE(20, 6);
    c.writeUInt16LE(8, 10);
    c.writeUInt32LE(e.crc, 16);
    c.writeUInt32LE(e.deflated.length, 20);
    c.writeUInt32LE(e.size, 24);
    c.writeUInt16LE(name.length, 28);
    c.writeUInt32LE(offset, 42);
    central.push(c, name);
    parts.push(local, name, Buffer.from(e.deflated));
    offset += 30 + name.length + e.deflated.length;
  }
  const cd = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...parts, cd, end]);
}

const entry = (name: string, bytes: Uint8Array) => ({ name, deflated: deflateRawSync(bytes), size: bytes.length, crc: crc32(bytes) });

/** An .npz of x and y (as numpy writes them). */
function npz(path: string, x: { values: ArrayLike<number>; shape: number[]; dtype: NpyWriteDtype }, y: { values: ArrayLike<number>; shape: number[]; dtype: NpyWriteDtype }): string {
  writeFileSync(path, zip([entry('x.npy', writeNpy(x.values, x.shape, x.dtype)), entry('y.npy', writeNpy(y.values, y.shape, y.dtype))]));
  return path;
}

/** A version 1.0 .npy header (magic, version, length, dict padded with spaces to 64 bytes, as numpy does). */
function npyHeader(shape: readonly number[], descr: string): Uint8Array {
  let dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(', ')}), }`;
  dict = dict.padEnd(Math.ceil((10 + dict.length + 1) / 64) * 64 - 10 - 1, ' ') + '\n';
  const out = new Uint8Array(10 + dict.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, dict.length & 0xff, dict.length >> 8]);
  for (let i = 0; i < dict.length; i++) out[10 + i] = dict.charCodeAt(i);
  return out;
}

/**
 * A deflate stream of an .npy header promising `rows` rows of 1 MiB of uint8, followed by `mib` MiB of
 * zeros, built from full-flush blocks (each independent, so one compressed MiB is repeated): ~1 KB per MiB.
 */
function zerosBomb(rows: number, mib: number): { deflated: Uint8Array; header: Uint8Array } {
  const header = npyHeader([rows, 1 << 20], '|u1');
  const flush = { finishFlush: zc.Z_FULL_FLUSH };
  const mibBlock = deflateRawSync(new Uint8Array(1 << 20), flush);
  const blocks = [deflateRawSync(header, flush)];
  for (let i = 0; i < mib; i++) blocks.push(mibBlock);
  blocks.push(deflateRawSync(new Uint8Array(0))); // the final (empty) block
  return { deflated: Buffer.concat(blocks), header };
}

const labels3 = { values: [0, 1, 2, 1, 0], shape: [5], dtype: '<i8' as const };
const x4 = (values?: number[]) => ({ values: values ?? Array.from({ length: 20 }, (_, i) => (i % 7) / 7), shape: [5, 4], dtype: '<f4' as const });

// ---------------------------------------------------------------------------------------------------------
// Special files

test('a dataset that is a FIFO, a folder or a link to /dev/zero is refused at once, naming it', async () => {
  const good = npz(at('good.npz'), x4(), labels3);
  const fifo = at('fifo.npz');
  assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
  mkdirSync(at('folder.npy'));
  symlinkSync('/dev/zero', at('zero.npy'));
  symlinkSync('/dev/zero', at('zero.npz'));
  const base = ['barrier', at('m1.safetensors'), at('m2.safetensors'), '--points', '1'];
  await Promise.all([
    succeeds(run([...base, '--data', good])), // the same command on a real file works
    refused(run([...base, '--data', fifo]), /fifo\.npz.*FIFO/),
    refused(run([...base, '--data', `${at('folder.npy')},${good}`]), /folder\.npy.*directory/),
    refused(run([...base, '--data', at('zero.npz')]), /zero\.npz.*character device/),
    refused(run([...base, '--data', `${at('zero.npy')},${at('zero.npy')}`]), /zero\.npy.*character device/),
  ]);
});

/** A one-initializer ONNX graph (y = x + w, w float32 [4]) whose w is stored in `location`. */
function externalModel(path: string, location: string, extra: { offset?: number; length?: number | null } = {}): string {
  const ext = [{ key: 'location', value: location }];
  if (extra.offset !== undefined) ext.push({ key: 'offset', value: String(extra.offset) });
  if (extra.length !== null) ext.push({ key: 'length', value: String(extra.length ?? 16) });
  const model = onnxModelFromObject({
    ir_version: 8,
    opset_import: [{ domain: '', version: 17 }],
    graph: {
      name: 'g',
      node: [{ op_type: 'Add', input: ['x', 'w'], output: ['y'] }],
      initializer: [{ name: 'w', data_type: 1, dims: [4], data_location: 1, external_data: ext }],
      input: [{ name: 'x', type: { tensor_type: { elem_type: 1, shape: { dim: [{ dim_param: 'N' }, { dim_value: 4 }] } } } }],
      output: [{ name: 'y', type: { tensor_type: { elem_type: 1, shape: { dim: [{ dim_param: 'N' }, { dim_value: 4 }] } } } }],
    },
  });
  writeFileSync(path, serializeOnnx(model));
  return path;
}

test('external data that is a FIFO, a folder, /dev/zero, a sparse 2 GB file or a range past 2^31 is refused unread', async () => {
  const d = at('ext');
  mkdirSync(d);
  writeFileSync(join(d, 'w.data'), new Uint8Array(16));
  assert.equal(spawnSync('mkfifo', [join(d, 'fifo.data')]).status, 0);
  mkdirSync(join(d, 'folder.data'));
  symlinkSync('/dev/zero', join(d, 'zero.data'));
  const size = 2 ** 31 + 16;
  assert.equal(spawnSync('truncate', ['-s', String(size), join(d, 'sparse.data')]).status, 0);
  await Promise.all([
    succeeds(run(['spec', externalModel(join(d, 'ok.onnx'), 'w.data')])), // a regular file of 16 bytes reads
    refused(run(['spec', externalModel(join(d, 'fifo.onnx'), 'fifo.data')]), /fifo\.onnx: external data file .*fifo\.data.*FIFO/),
    refused(run(['spec', externalModel(join(d, 'folder.onnx'), 'folder.data')]), /folder\.data.*directory/),
    // The link leads outside the model's folder, which is refused before the file is opened.
    refused(run(['spec', externalModel(join(d, 'zero.onnx'), 'zero.data')]), /zero\.data/),
    // 2.1 GB sparse, no length: the range runs to the end of the file, and is refused without being read.
    refused(run(['spec', externalModel(join(d, 'sparse.onnx'), 'sparse.data', { length: null })]), new RegExp(`sparse\\.data.*holds ${size} bytes; the tensor needs 16`), 300),
    // A length past 2^31 inside the file: refused by the same check (it was a RangeError, exit 3).
    refused(run(['spec', externalModel(join(d, 'long.onnx'), 'sparse.data', { length: 2 ** 31 + 8 })]), /holds 2147483656 bytes; the tensor needs 16/, 300),
    // An offset past 2^31 with the right length is fine.
    succeeds(run(['spec', externalModel(join(d, 'far.onnx'), 'sparse.data', { offset: 2 ** 31, length: 16 })])),
  ]);
});

test('a model file that is a FIFO or a device is refused at once', async () => {
  const fifo = at('model-fifo.onnx');
  assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
  symlinkSync('/dev/zero', at('model-zero.safetensors'));
  await Promise.all([
    refused(run(['spec', fifo]), /model-fifo\.onnx.*FIFO/),
    refused(run(['spec', at('model-zero.safetensors')]), /model-zero\.safetensors.*character device/),
  ]);
});

// ---------------------------------------------------------------------------------------------------------
// Zip bombs

test('an .npz zip bomb is refused within bounded memory, whether it states its size or lies about it', async () => {
  const base = ['barrier', at('m1.safetensors'), at('m2.safetensors'), '--points', '1'];
  const y = entry('y.npy', writeNpy([0], [1], '<i8'));
  // Honest: 1800 MiB of zeros promised by header and directory alike (1.8 MB on disk).
  const honest = zerosBomb(1800, 1800);
  writeFileSync(at('bomb.npz'), zip([{ name: 'x.npy', deflated: honest.deflated, size: honest.header.length + 1800 * 2 ** 20, crc: 0 }, y]));
  // Lying: header and directory promise 1 MiB (one row), the data inflates to 1800 MiB.
  const lying = zerosBomb(1, 1800);
  writeFileSync(at('liar.npz'), zip([{ name: 'x.npy', deflated: lying.deflated, size: lying.header.length + 2 ** 20, crc: 0 }, y]));
  await Promise.all([
    refused(run([...base, '--data', at('bomb.npz')]), /bomb\.npz entry 'x\.npy'.*over the limit/, 300),
    refused(run([...base, '--data', at('liar.npz')]), /liar\.npz entry 'x\.npy'.*inflates to more than/, 300),
  ]);
});

// ---------------------------------------------------------------------------------------------------------
// Wrong numbers: one validation of a dataset against a model, on both paths

test('examples of the wrong size, labels past the class count, NaN inputs: refused on the safetensors and ONNX paths', async () => {
  const wrongSize = npz(at('wide.npz'), { values: new Array(25).fill(0.5), shape: [5, 5], dtype: '<f4' }, labels3);
  const label3 = npz(at('label3.npz'), x4(), { values: [0, 1, 3, 1, 0], shape: [5], dtype: '<i8' });
  const label255 = npz(at('label255.npz'), { values: new Array(20).fill(7), shape: [5, 4], dtype: '|u1' }, { values: [0, 255, 1, 1, 0], shape: [5], dtype: '|u1' });
  const nan = npz(at('nan.npz'), x4([...new Array(9).fill(0.1), NaN, ...new Array(10).fill(0.1)]), labels3);
  const out = at('merged.safetensors');
  await Promise.all([
    ...['safetensors', 'onnx'].flatMap((ext) => {
      const base = ['barrier', at(`m1.${ext}`), at(`m2.${ext}`), '--points', '1', '--data'];
      return [
        refused(run([...base, wrongSize]), new RegExp(`wide\\.npz.*examples have 5 values.*m1\\.${ext} takes 4`)),
        refused(run([...base, label3]), new RegExp(`label3\\.npz.*example 2 has label 3.*m1\\.${ext} has 3 classes`)),
        refused(run([...base, label255]), /label255\.npz.*example 1 has label 255/),
        refused(run([...base, nan]), /nan\.npz.*example 2 holds NaN/),
      ];
    }),
    // merge --repair on NaN inputs wrote a non-finite bias; now nothing is written.
    refused(run(['merge', at('m1.safetensors'), at('m2.safetensors'), '--repair', '--data', nan, '-o', out]), /nan\.npz.*NaN/),
  ]);
  assert.equal(existsSync(out), false);
});

test('train: an empty dataset and a label of 10^7 are refused (no exit 3, no 18 GB output layer)', async () => {
  const empty = npz(at('empty.npz'), { values: [], shape: [0, 4], dtype: '<f4' }, { values: [], shape: [0], dtype: '<i8' });
  const huge = npz(at('huge.npz'), x4(), { values: [0, 1, 1e7, 1, 0], shape: [5], dtype: '<i8' });
  await Promise.all([
    refused(run(['train', '--data', empty, '--epochs', '1', '-o', at('t.safetensors')]), /empty\.npz.*no examples/),
    refused(run(['train', '--data', huge, '--epochs', '1', '-o', at('t.safetensors')]), /huge\.npz.*example 2 has label 10000000/, 400),
  ]);
});

test('labels are read exactly or refused: f64 IDX labels past 2^32, 2-D labels that are not one-hot', () => {
  const idx = at('idx');
  mkdirSync(idx);
  writeFileSync(join(idx, 'x'), writeIdx(new Array(12).fill(1), [3, 4], 'u8'));
  writeFileSync(join(idx, 'y'), writeIdx([0, 2 ** 32, 1], [3], 'f64'));
  assert.throws(() => loadDataset(`${join(idx, 'x')},${join(idx, 'y')}`), (e: unknown) => isInputError(e) && /example 1 has label 4294967296/.test(e.message));
  writeFileSync(join(idx, 'y'), writeIdx([0, 2, 1], [3], 'f64'));
  assert.deepEqual([...loadDataset(`${join(idx, 'x')},${join(idx, 'y')}`).labels], [0, 2, 1]);

  const oneHot = (rows: number[][]) => npz(at('onehot.npz'), { values: new Array(rows.length * 4).fill(0), shape: [rows.length, 4], dtype: '<f4' }, { values: rows.flat(), shape: [rows.length, 3], dtype: '<f4' });
  assert.deepEqual([...loadDataset(oneHot([[0, 0, 1], [1, 0, 0], [0, 1, 0]])).labels], [2, 0, 1]);
  for (const [rows, why] of [
    [[[0, 0, 1], [0, 0, 0]], /row 1 .*not one-hot \(no column holds 1\)/],
    [[[0, 0, 1], [0.2, 0.7, 0.1]], /row 1 .*not one-hot \(column 0 holds 0\.2/],
    [[[1, 0, 1]], /row 0 .*not one-hot \(column 2 holds 1\)/],
  ] as const) {
    assert.throws(() => loadDataset(oneHot(rows.map((r) => [...r]))), (e: unknown) => isInputError(e) && why.test(e.message), String(rows));
  }
});

test('validateDataset: the first offending example is named; a clean dataset passes', () => {
  const ds = (inputs: number[], labels: number[]) =>
    makeDataset({ inputs: Float32Array.from(inputs), inputShape: [2], labels: Int32Array.from(labels), numClasses: 5, name: 'd', preprocessing: '' });
  const model = { inputSize: 2, classes: 3, label: 'm.onnx' };
  validateDataset(ds([0, 1, 2, 3], [0, 2]), "'d'", model);
  const refuses = (f: () => void, re: RegExp) => assert.throws(f, (e: unknown) => isInputError(e) && re.test(e.message));
  refuses(() => validateDataset(ds([0, 1, 2, Infinity, 5, -Infinity], [0, 1, 2]), "'d'", model), /example 1 holds Infinity \(value 1\)/);
  refuses(() => validateDataset(ds([0, 1, 2, 3, 4, 5], [0, 1, 4]), "'d'", model), /example 2 has label 4, but m\.onnx has 3 classes/);
  refuses(() => validateDataset(ds([0, 1, 2, 3], [0, 1]), "'d'", { ...model, inputSize: 3 }), /examples have 2 values.*m\.onnx takes 3/);
  refuses(() => validateDataset(ds([], []), "'d'"), /no examples/);
  refuses(() => validateDataset(ds([0, 1], [4]), "'d'", undefined, 4), /example 0 has label 4, asking for more than 4 classes/);
  validateDataset(ds([0, 1], [4]), "'d'", { inputSize: null, classes: null, label: 'x' }, 5); // nothing known: only the sanity bound
});

test('a dataset of more input values than limits.ts allows is refused before it is converted', () => {
  // Shapes only (the refusal comes before any value is read): 2^20 examples of 512 bytes = 2^29 values.
  const x = { dtype: '|u1', shape: [2 ** 20, 512], data: new Uint8Array(0) };
  const y = { dtype: '<i8', shape: [2 ** 20], data: new BigInt64Array(0) };
  assert.throws(() => arraysToDataset(x, y, {}, 'big.npz', 'big.npz'), (e: unknown) => isInputError(e) && /big\.npz: 1048576 examples of 512 values .* over the limit of 268435456; take fewer with --limit/.test(e.message));
});
