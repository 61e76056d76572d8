/**
 * Hostile names and shapes from files: tensor and permutation names that are also properties of every
 * JavaScript object ('__proto__', 'constructor', 'toString', 'hasOwnProperty'), a zero-size tensor claiming
 * 2^31 rows, weights whose float32 products overflow, and names of a megabyte or with control characters.
 * The truth is the same run with ordinary names: renaming tensors and permutations must change nothing but
 * the names. Files are written byte by byte here (safetensors: 8-byte header length, JSON header, data).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readSafetensorsFile } from '../src/io/safetensors-fs.js';
import { toParams } from '../src/io/safetensors.js';
import { specFromAxes, validateSpec } from '../src/permutation-spec/spec.js';
import { weightMatching } from '../src/match/weight-matching.js';
import { applyPermutation } from '../src/permute.js';
import { InputError } from '../src/errors.js';
import { messageForUser } from '../src/names.js';
import type { Params } from '../src/tensor.js';

const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const fixtures = fileURLToPath(new URL('../../test/fixtures/models/', import.meta.url));
const data = `${fixtures}fmnist_test256-images-idx3-ubyte.gz,${fixtures}fmnist_test256-labels-idx1-ubyte.gz`;

/** Layer prefixes of the fixture MLP and hostile ones that sort the same way (the MLP spec orders layers by name). */
const HOSTILE_PREFIX: Record<string, string> = { fc1: '__proto__', fc2: 'constructor', fc3: 'toString' };

function run(args: string[], cwd: string) {
  const r = spawnSync(process.execPath, [cli, ...args], { cwd, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The header and data of a safetensors file, the header's keys in file order. */
function splitSafetensors(bytes: Buffer): { header: [string, unknown][]; data: Buffer } {
  const n = Number(bytes.readBigUInt64LE(0));
  // JSON.parse keeps a "__proto__" key as an own property; entries keep the file's order.
  const header = Object.entries(JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as object);
  return { header, data: bytes.subarray(8 + n) };
}

function joinSafetensors(header: [string, unknown][], data: Buffer): Buffer {
  // Written by hand: a JS object literal would turn a "__proto__" key into its prototype.
  let json = `{${header.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',')}}`;
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  return Buffer.concat([len, Buffer.from(json, 'utf8'), data]);
}

/** A copy of a fixture with every tensor renamed by `rename` (data untouched). */
function renamed(fixture: string, rename: (name: string) => string): Buffer {
  const { header, data } = splitSafetensors(readFileSync(join(fixtures, fixture)));
  return joinSafetensors(header.map(([k, v]) => [k === '__metadata__' ? k : rename(k), v]), data);
}

const toHostile = (name: string): string => name.replace(/^fc\d/, (l) => HOSTILE_PREFIX[l]);

/** A small float32 safetensors file from [name, shape, values]. */
function safetensors(tensors: [string, number[], number[]][]): Buffer {
  let offset = 0;
  const header: [string, unknown][] = [];
  const blobs: Buffer[] = [];
  for (const [name, shape, values] of tensors) {
    const b = Buffer.from(Float32Array.from(values).buffer);
    header.push([name, { dtype: 'F32', shape, data_offsets: [offset, offset + b.length] }]);
    blobs.push(b);
    offset += b.length;
  }
  return joinSafetensors(header, Buffer.concat(blobs));
}

/** Deterministic values in [-1, 1) (no RNG dependency: the same bytes on every machine). */
function values(n: number, seed: number, scale = 1): number[] {
  return Array.from({ length: n }, (_, i) => (((i * 7919 + seed * 104729) % 1000) / 500 - 1) * scale);
}

/** A 4 -> 16 -> 3 MLP under the given four tensor names, and a spec JSON naming its one permutation `perm`. */
function tinyMlp(names: [string, string, string, string], seed: number, scale = 1): Buffer {
  return safetensors([
    [names[0], [16, 4], values(64, seed, scale)],
    [names[1], [16], values(16, seed + 1)],
    [names[2], [3, 16], values(48, seed + 2)],
    [names[3], [3], values(3, seed + 3)],
  ]);
}

function tinySpec(names: [string, string, string, string], perm: string): string {
  return `{"format":"rebasin-spec","version":1,"axes":{${JSON.stringify(names[0])}:[${JSON.stringify(perm)},null],` +
    `${JSON.stringify(names[1])}:[${JSON.stringify(perm)}],${JSON.stringify(names[2])}:[null,${JSON.stringify(perm)}],` +
    `${JSON.stringify(names[3])}:[null]}}`;
}

function workspace(): string {
  return mkdtempSync(join(tmpdir(), 'rebasin-hostile-'));
}

/** The tensors' data of a safetensors file by name, in a Map (no object to confuse with '__proto__'). */
function tensorBytes(path: string): Map<string, string> {
  const { header, data } = splitSafetensors(readFileSync(path));
  const out = new Map<string, string>();
  for (const [name, info] of header) {
    if (name === '__metadata__') continue;
    const [from, to] = (info as { data_offsets: [number, number] }).data_offsets;
    out.set(name, data.subarray(from, to).toString('hex'));
  }
  return out;
}

test('CLI: tensors named __proto__/constructor/toString give the same alignment, merge and barrier as ordinary names', () => {
  const dir = workspace();
  try {
    for (const m of ['a', 'b']) {
      writeFileSync(join(dir, `plain_${m}.safetensors`), readFileSync(join(fixtures, `mlp_${m}.safetensors`)));
      writeFileSync(join(dir, `hostile_${m}.safetensors`), renamed(`mlp_${m}.safetensors`, toHostile));
    }
    const outputs = new Map<string, { perms: Record<string, number[]>; aligned: Map<string, string>; merged: Map<string, string>; barrier: string }>();
    for (const kind of ['plain', 'hostile']) {
      const a = `${kind}_a.safetensors`;
      const b = `${kind}_b.safetensors`;
      const align = run(['align', a, b, '-o', `${kind}_aligned.safetensors`, '--perms', `${kind}_perms.json`], dir);
      assert.equal(align.code, 0, `${kind} align: ${align.stderr}`);
      const merge = run(['merge', a, b, '-o', `${kind}_merged.safetensors`], dir);
      assert.equal(merge.code, 0, `${kind} merge: ${merge.stderr}`);
      const barrier = run(['barrier', a, b, '--data', data, '--align'], dir);
      assert.equal(barrier.code, 0, `${kind} barrier: ${barrier.stderr}`);
      outputs.set(kind, {
        perms: JSON.parse(readFileSync(join(dir, `${kind}_perms.json`), 'utf8')),
        aligned: tensorBytes(join(dir, `${kind}_aligned.safetensors`)),
        merged: tensorBytes(join(dir, `${kind}_merged.safetensors`)),
        barrier: barrier.stdout,
      });
    }
    const plain = outputs.get('plain')!;
    const hostile = outputs.get('hostile')!;
    assert.deepEqual(Object.keys(hostile.perms).sort(), ['__proto__', 'constructor']);
    assert.deepEqual(hostile.perms.__proto__, plain.perms.fc1);
    assert.deepEqual(hostile.perms.constructor, plain.perms.fc2);
    for (const [what, p, h] of [['aligned', plain.aligned, hostile.aligned], ['merged', plain.merged, hostile.merged]] as const) {
      assert.deepEqual([...h.keys()].sort(), [...p.keys()].map(toHostile).sort(), `${what}: tensor names`);
      for (const [name, bytes] of p) assert.equal(h.get(toHostile(name)), bytes, `${what} ${toHostile(name)}: data differs from ${name}`);
    }
    assert.ok(plain.barrier.includes('loss barrier'), plain.barrier);
    assert.equal(hostile.barrier, plain.barrier);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('CLI: JSON specs whose permutations and tensors are named like Object.prototype properties work as any names', () => {
  const dir = workspace();
  try {
    const plainNames: [string, string, string, string] = ['l1.w', 'l1.b', 'l2.w', 'l2.b'];
    const hostileSets: [string, string, string, string][] = [
      ['constructor', 'toString', 'hasOwnProperty', 'valueOf'],
      ['__proto__', 'h.bias', 'out.weight', '__defineGetter__'],
    ];
    const align = (names: [string, string, string, string], perm: string, tag: string) => {
      writeFileSync(join(dir, `${tag}_a.safetensors`), tinyMlp(names, 1));
      writeFileSync(join(dir, `${tag}_b.safetensors`), tinyMlp(names, 2));
      writeFileSync(join(dir, `${tag}_spec.json`), tinySpec(names, perm));
      const r = run(['align', `${tag}_a.safetensors`, `${tag}_b.safetensors`, '--spec', `${tag}_spec.json`,
        '-o', `${tag}_out.safetensors`, '--perms', `${tag}_perms.json`], dir);
      assert.equal(r.code, 0, `${tag}: ${r.stderr}`);
      const perms = JSON.parse(readFileSync(join(dir, `${tag}_perms.json`), 'utf8')) as Record<string, number[]>;
      return { perms, out: tensorBytes(join(dir, `${tag}_out.safetensors`)) };
    };
    const truth = align(plainNames, 'h', 'plain');
    assert.notDeepEqual(truth.perms.h, [...Array(16).keys()], 'the test pair must need a non-identity permutation');
    let k = 0;
    for (const names of hostileSets) {
      for (const perm of ['__proto__', 'constructor', 'toString']) {
        const got = align(names, perm, `h${k++}`);
        assert.deepEqual(Object.keys(got.perms), [perm]);
        assert.deepEqual(got.perms[perm], truth.perms.h, `spec permutation '${perm}' on tensors ${names.join(', ')}`);
        names.forEach((name, i) => assert.equal(got.out.get(name), truth.out.get(plainNames[i]), `tensor '${name}'`));
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('library: hostile names through readSafetensorsFile, specFromAxes, weightMatching and applyPermutation', async () => {
  const dir = workspace();
  try {
    const plain: [string, string, string, string] = ['l1.w', 'l1.b', 'l2.w', 'l2.b'];
    const hostile: [string, string, string, string] = ['__proto__', 'constructor', 'toString', 'hasOwnProperty'];
    const load = (names: typeof plain, seed: number): Params => {
      const path = join(dir, `${names[0]}_${seed}.safetensors`);
      writeFileSync(path, tinyMlp(names, seed));
      return toParams(readSafetensorsFile(path)).params;
    };
    const axes = (names: typeof plain, perm: string) => {
      const table: Record<string, (string | null)[]> = Object.create(null);
      table[names[0]] = [perm, null];
      table[names[1]] = [perm];
      table[names[2]] = [null, perm];
      table[names[3]] = [null];
      return table;
    };
    const solve = async (names: typeof plain, perm: string) => {
      const spec = specFromAxes(axes(names, perm));
      const paramsA = load(names, 1);
      const paramsB = load(names, 2);
      const { perms } = await weightMatching({ spec, paramsA, paramsB, seed: 0 });
      return { perms, aligned: applyPermutation(spec, perms, paramsB), paramsB };
    };
    const truth = await solve(plain, 'h');
    const got = await solve(hostile, '__proto__');
    assert.deepEqual(Object.keys(got.perms), ['__proto__']);
    assert.deepEqual(Array.from(got.perms.__proto__), Array.from(truth.perms.h));
    assert.deepEqual(Object.keys(got.aligned).sort(), [...hostile].sort());
    hostile.forEach((name, i) => assert.deepEqual(got.aligned[name].data, truth.aligned[plain[i]].data, name));

    // A spec naming a tensor the params lack is refused even when the params are a plain object, whose
    // prototype answers to 'constructor' and 'toString'.
    const plainObject: Params = { ...truth.paramsB };
    assert.throws(() => validateSpec(specFromAxes(axes(['constructor', 'l1.b', 'toString', 'l2.b'], 'h')), { label: 'B', params: plainObject }),
      (e: unknown) => e instanceof InputError && /tensor 'constructor', which B does not have/.test(e.message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a zero-size tensor claiming 2^31 rows is refused at once, naming the permutation and the tensor', () => {
  const dir = workspace();
  try {
    const names: [string, string, string, string] = ['l1.w', 'l1.b', 'l2.w', 'l2.b'];
    for (const [m, seed] of [['a', 1], ['b', 2]] as const) {
      const { header, data } = splitSafetensors(tinyMlp(names, seed));
      header.push(['empty', { dtype: 'F32', shape: [2 ** 31, 0], data_offsets: [data.length, data.length] }]);
      writeFileSync(join(dir, `${m}.safetensors`), joinSafetensors(header, data));
    }
    writeFileSync(join(dir, 'spec.json'), '{"axes":{"empty":["rows",null],"l1.w":[null,null],"l1.b":[null],"l2.w":[null,null],"l2.b":[null]}}');
    const started = Date.now();
    const r = run(['align', 'a.safetensors', 'b.safetensors', '--spec', 'spec.json', '-o', 'out.safetensors'], dir);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /permutation 'rows' \(2147483648 units\) acts only on tensors with no entries in a\.safetensors \('empty' \[2147483648, 0\]\)/);
    assert.ok(Date.now() - started < 20_000, 'took too long: it allocated before refusing');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('weights whose float32 products overflow: the error names the permutation and its tensors', () => {
  const dir = workspace();
  try {
    const names: [string, string, string, string] = ['fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias'];
    writeFileSync(join(dir, 'a.safetensors'), tinyMlp(names, 1, 1e20));
    writeFileSync(join(dir, 'b.safetensors'), tinyMlp(names, 2, 1e20));
    const r = run(['align', 'a.safetensors', 'b.safetensors', '-o', 'out.safetensors'], dir);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /permutation 'fc1' \(16 units, on 'fc1\.weight' axis 0, 'fc1\.bias' axis 0, 'fc2\.weight' axis 1\)/);
    assert.match(r.stderr, /is (-?Infinity|NaN)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a megabyte name, or one with a newline and a terminal escape, is cut and escaped in messages', () => {
  const dir = workspace();
  try {
    const huge = 'x'.repeat(1 << 20);
    const escaping = 'evil\n\u001b[31mred';
    writeFileSync(join(dir, 'a.safetensors'), renamed('mlp_a.safetensors', (n) => (n === 'fc1.weight' ? huge : n)));
    writeFileSync(join(dir, 'b.safetensors'), renamed('mlp_a.safetensors', (n) => (n === 'fc1.weight' ? escaping : n)));
    for (const [file, shown] of [['a.safetensors', `'${'x'.repeat(80)}…(1048576 chars)'`], ['b.safetensors', `'evil\\n\\u001b[31mred'`]]) {
      const r = run(['spec', file], dir);
      assert.equal(r.code, 2, r.stderr);
      assert.ok(r.stderr.length < 1000, `message of ${r.stderr.length} characters`);
      assert.equal(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
      assert.ok(r.stderr.includes(shown), r.stderr);
    }
    // A spec naming the huge tensor: the message quotes it cut, once.
    writeFileSync(join(dir, 'spec.json'), JSON.stringify({ axes: { [huge]: ['h', null] } }));
    const r = run(['align', join(fixtures, 'mlp_a.safetensors'), join(fixtures, 'mlp_b.safetensors'), '--spec', 'spec.json', '-o', 'o.safetensors'], dir);
    assert.equal(r.code, 2, r.stderr);
    assert.ok(r.stderr.length < 1000 && r.stderr.includes('…(1048576 chars)'), r.stderr.slice(0, 300));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('messageForUser: names up to 256 characters and long paths stay whole, longer quoted spans are cut', () => {
  const path = `/data/${'d'.repeat(200)}/model.onnx`;
  assert.equal(messageForUser(`cannot read '${path}'`), `cannot read '${path}'`);
  assert.equal(messageForUser(`tensor '${'n'.repeat(300)}' is missing`), `tensor '${'n'.repeat(80)}…(300 chars)' is missing`);
  assert.equal(messageForUser('tab\there'), 'tab\\there');
  const long = messageForUser(`${'w '.repeat(5000)}`);
  assert.ok(long.length < 2100 && long.endsWith('…(10000 chars)'), long.slice(-40));
});
