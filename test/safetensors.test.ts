import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  chmodSync,
  existsSync,
  linkSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { open } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InputError } from '../src/errors.js';
import { createRng } from '../src/random.js';
import {
  bfloat16BitsToFloat,
  decodeBF16,
  decodeF16,
  decodeF16Bits,
  decodeF32,
  decodeF64,
  encodeBF16,
  encodeF16,
  encodeF32,
  encodeF64,
  float32Bits,
  floatToBfloat16Bits,
  floatToHalfBits,
  halfBitsToFloat,
} from '../src/io/dtype.js';
import {
  MAX_HEADER_BYTES,
  paramsToSafetensors,
  parseHeader,
  parseSafetensors,
  readHeaderLength,
  serializeSafetensors,
  toParams,
  type SafetensorsFile,
  type StoredTensor,
} from '../src/io/safetensors.js';
import {
  readSafetensorsFile,
  readSafetensorsHeader,
  readTensor,
  readTensorSync,
  writeSafetensorsFile,
} from '../src/io/safetensors-fs.js';
import { assertNotInput, writeFileAtomic } from '../src/io/atomic.js';
import { pythonSkipReason, runPython, withTempDir } from './python.js';

const FIXTURES = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', 'test', 'fixtures', 'models');
const NUMPY = pythonSkipReason(['numpy']);

// ------------------------------------------------------------------------------------------ helpers

function u8(...xs: number[]): Uint8Array {
  return Uint8Array.from(xs);
}

/** A file from a header given as text (not re-serialised, so it can be malformed) and a data buffer. */
function rawFile(headerText: string, data: Uint8Array = new Uint8Array(0), declared?: bigint): Uint8Array {
  const header = new TextEncoder().encode(headerText);
  const out = new Uint8Array(8 + header.length + data.length);
  new DataView(out.buffer).setBigUint64(0, declared ?? BigInt(header.length), true);
  out.set(header, 8);
  out.set(data, 8 + header.length);
  return out;
}

function f32Bytes(values: number[]): Uint8Array {
  return new Uint8Array(Float32Array.from(values).buffer);
}

function expectInputError(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof InputError, `expected InputError, got ${String(e)}`);
    assert.match(e.message, pattern);
    assert.ok(!e.message.includes('\n'), 'message is one line');
    return true;
  });
}

function bitsOf(a: Float32Array): Uint32Array {
  return new Uint32Array(a.buffer, a.byteOffset, a.length);
}

/** Bits equal, except that any NaN matches any NaN of the same sign (hardware may quiet payloads). */
function assertSameFloatBits(actual: Uint32Array, expected: Uint32Array, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  const isNaN32 = (b: number) => (b & 0x7f800000) === 0x7f800000 && (b & 0x7fffff) !== 0;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (a === e) continue;
    if (isNaN32(a) && isNaN32(e) && a >>> 31 === e >>> 31) continue;
    assert.fail(`${what}: element ${i}: got 0x${a.toString(16)}, expected 0x${e.toString(16)}`);
  }
}

/** A small file with every kind of tensor: float dtypes, passthrough integers, awkward names. */
function sampleFile(): SafetensorsFile {
  const rng = createRng(7);
  const floats = (n: number) => Float32Array.from({ length: n }, () => rng.normal() * 3);
  const tensors: Record<string, StoredTensor> = Object.create(null);
  tensors['layer.weight'] = { dtype: 'F32', shape: [3, 4], bytes: encodeF32(floats(12)) };
  tensors['10'] = { dtype: 'F16', shape: [5], bytes: encodeF16(floats(5)) };
  tensors['2'] = { dtype: 'BF16', shape: [2, 3], bytes: encodeBF16(floats(6)) };
  tensors['double'] = { dtype: 'F64', shape: [], bytes: new Uint8Array(new Float64Array([Math.PI]).buffer) };
  tensors['steps'] = { dtype: 'I64', shape: [2], bytes: new Uint8Array(new BigInt64Array([42n, -7n]).buffer) };
  tensors['mask'] = { dtype: 'U8', shape: [3], bytes: u8(0, 1, 255) };
  tensors['empty'] = { dtype: 'F32', shape: [0, 4], bytes: new Uint8Array(0) };
  tensors['ünï €'] = { dtype: 'BOOL', shape: [1], bytes: u8(1) };
  const order = ['steps', 'layer.weight', '10', 'empty', '2', 'double', 'mask', 'ünï €'];
  return { tensors, metadata: { format: 'pt', note: 'ünïcode "quoted"' }, order };
}

// ---------------------------------------------------------------------------------------- dtypes

test('f16 decoding of all 65536 bit patterns matches numpy', { skip: NUMPY }, () => {
  withTempDir((dir) => {
    const out = join(dir, 'f32.bin');
    runPython(
      `import numpy as np, sys
np.arange(65536, dtype=np.uint16).view(np.float16).astype(np.float32).tofile(sys.argv[1])`,
      out,
    );
    const truth = new Uint32Array(new Uint8Array(readFileSync(out)).buffer);
    const all = new Uint16Array(65536).map((_, i) => i);
    assertSameFloatBits(bitsOf(decodeF16(new Uint8Array(all.buffer))), truth, 'decodeF16');
    assertSameFloatBits(bitsOf(decodeF16Bits(all)), truth, 'decodeF16Bits');
  });
});

test('f32 -> f16 rounding matches numpy on random, boundary and tie values', { skip: NUMPY }, () => {
  withTempDir((dir) => {
    const inp = join(dir, 'in.bin');
    const out = join(dir, 'out.bin');
    // Python picks the inputs: random bit patterns, values spread over the half range (normal and
    // subnormal), exact midpoints between adjacent halves (the ties), and the overflow boundary.
    runPython(
      `import numpy as np, sys
rng = np.random.default_rng(3)
raw = rng.integers(0, 2**32, 20000, dtype=np.uint64).astype(np.uint32).view(np.float32)
spread = (rng.standard_normal(20000) * 2.0 ** rng.integers(-30, 18, 20000)).astype(np.float32)
h = rng.integers(0, 0x7c00, 20000).astype(np.uint16)
lo = h.view(np.float16).astype(np.float64); hi = (h + 1).view(np.float16).astype(np.float64)
mid = ((lo + hi) / 2).astype(np.float32)
assert np.all(mid.astype(np.float64) == (lo + hi) / 2)
edges = np.array([65504, 65519.99, 65520, 65536, 1e30, 2.0**-24, 2.0**-25, 2.0**-25 * 1.0000001, 2.0**-26,
                  2.0**-14, 2.0**-14 * (1 - 2.0**-11), 0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45], dtype=np.float32)
x = np.concatenate([raw, spread, mid, -mid, edges])
x.tofile(sys.argv[1])
x.astype(np.float16).tofile(sys.argv[2])`,
      inp,
      out,
    );
    const x = new Float32Array(new Uint8Array(readFileSync(inp)).buffer);
    const truth = new Uint16Array(new Uint8Array(readFileSync(out)).buffer);
    const got = new Uint16Array(encodeF16(x).buffer);
    const isNaN16 = (b: number) => (b & 0x7c00) === 0x7c00 && (b & 0x3ff) !== 0;
    for (let i = 0; i < x.length; i++) {
      if (got[i] === truth[i] || (isNaN16(got[i]) && isNaN16(truth[i]))) continue;
      assert.fail(`f16 of ${x[i]} (0x${float32Bits(x[i]).toString(16)}): got 0x${got[i].toString(16)}, numpy 0x${truth[i].toString(16)}`);
    }
    assert.equal(floatToHalfBits(x[100]), got[100]);
  });
});

test('f32 -> bf16 rounds to the nearest bfloat16, ties to even (Python exact arithmetic as truth)', { skip: NUMPY }, () => {
  withTempDir((dir) => {
    const inp = join(dir, 'in.bin');
    const out = join(dir, 'out.bin');
    // Truth without bit tricks: the two bfloat16 neighbours of x (truncation and one ulp above it),
    // compared by exact distance in float64; a tie goes to the even significand; a result of 2^128
    // or more is an overflow to infinity.
    runPython(
      `import numpy as np, sys
rng = np.random.default_rng(5)
raw = rng.integers(0, 2**32, 20000, dtype=np.uint64).astype(np.uint32)
spread = (rng.standard_normal(20000) * 2.0 ** rng.integers(-140, 128, 20000)).astype(np.float32).view(np.uint32)
ties = (rng.integers(0, 0x7f7f, 5000, dtype=np.uint32) << 16) | 0x8000
edges = np.array([0x7f7f7fff, 0x7f7f8000, 0x7f7fffff, 0x00008000, 0x00018000, 0x00000001, 0x7f800000, 0x7fc00000,
                  0x3f808000, 0x3f818000, 0x80000000, 0], dtype=np.uint32)
bits = np.concatenate([raw, spread, ties, ties | 0x80000000, edges]).astype(np.uint32)
x = bits.view(np.float32)
res = np.zeros(len(bits), dtype=np.uint16)
for i in range(len(bits)):
    b = int(bits[i]); v = float(x[i])
    if np.isnan(v):
        res[i] = 0x7fc0; continue
    if np.isinf(v):
        res[i] = (b >> 16); continue
    sign = b & 0x80000000; a = abs(v)
    lo_bits = (b & 0x7fff0000)
    lo = float(np.uint32(lo_bits).view(np.float32))
    e = (lo_bits >> 23) & 0xff
    ulp = 2.0 ** ((e if e > 0 else 1) - 127 - 7)
    hi = lo + ulp
    dl, dh = a - lo, hi - a
    up = dh < dl or (dh == dl and ((lo_bits >> 16) & 1) == 1)
    if not up:
        r = lo_bits >> 16
    elif hi >= 2.0 ** 128:
        r = 0x7f80
    else:
        r = (lo_bits >> 16) + 1
    res[i] = r | (sign >> 16)
bits.tofile(sys.argv[1]); res.tofile(sys.argv[2])`,
      inp,
      out,
    );
    const x = new Float32Array(new Uint8Array(readFileSync(inp)).buffer);
    const truth = new Uint16Array(new Uint8Array(readFileSync(out)).buffer);
    const got = new Uint16Array(encodeBF16(x).buffer);
    const isNaNbf = (b: number) => (b & 0x7f80) === 0x7f80 && (b & 0x7f) !== 0;
    for (let i = 0; i < x.length; i++) {
      if (got[i] === truth[i] || (isNaNbf(got[i]) && isNaNbf(truth[i]))) continue;
      assert.fail(`bf16 of 0x${float32Bits(x[i]).toString(16)}: got 0x${got[i].toString(16)}, expected 0x${truth[i].toString(16)}`);
    }
  });
});

test('bf16 decoding is the top half of float32: known values', () => {
  // Facts of the format: 1.0 = 0x3f80, -2 = 0xc000, 0.5 = 0x3f00, +inf = 0x7f80, 1/128 + 1 is 0x3f81.
  assert.equal(bfloat16BitsToFloat(0x3f80), 1);
  assert.equal(bfloat16BitsToFloat(0xc000), -2);
  assert.equal(bfloat16BitsToFloat(0x3f00), 0.5);
  assert.equal(bfloat16BitsToFloat(0x7f80), Infinity);
  assert.equal(bfloat16BitsToFloat(0x3f81), 1 + 1 / 128);
  assert.ok(Number.isNaN(bfloat16BitsToFloat(0x7fc0)));
  assert.deepEqual(Array.from(decodeBF16(u8(0x80, 0x3f, 0x00, 0xc0))), [1, -2]);
  // And halves: 1.0 = 0x3c00, 65504 = 0x7bff, smallest subnormal 2^-24 = 0x0001, -0 = 0x8000.
  assert.equal(halfBitsToFloat(0x3c00), 1);
  assert.equal(halfBitsToFloat(0x7bff), 65504);
  assert.equal(halfBitsToFloat(0x0001), 2 ** -24);
  assert.ok(Object.is(halfBitsToFloat(0x8000), -0));
  assert.equal(floatToBfloat16Bits(1 + 1 / 256), 0x3f80); // a tie, to even
  assert.equal(floatToBfloat16Bits(1 + 3 / 256), 0x3f82); // a tie, to even (upwards)
});

test('every f16 and bf16 bit pattern survives decode -> encode unchanged (NaN payloads included)', () => {
  const all = new Uint16Array(65536).map((_, i) => i);
  const bytes = new Uint8Array(all.buffer);
  assert.deepEqual(encodeF16(decodeF16(bytes)), bytes);
  assert.deepEqual(encodeBF16(decodeBF16(bytes)), bytes);
});

test('a float32 NaN whose payload sits only in the bits a narrower format drops stays NaN', () => {
  // Built from bits in a typed array: a JS number NaN would not carry the payload.
  const nans = new Float32Array(new Uint32Array([0x7f800001, 0xff801000, 0x7f80ffff]).buffer);
  for (const h of new Uint16Array(encodeF16(nans).buffer)) assert.ok(Number.isNaN(halfBitsToFloat(h)), `f16 0x${h.toString(16)}`);
  for (const b of new Uint16Array(encodeBF16(nans).buffer)) assert.ok(Number.isNaN(bfloat16BitsToFloat(b)), `bf16 0x${b.toString(16)}`);
  assert.equal(new Uint16Array(encodeF16(nans).buffer)[1] >>> 15, 1, 'sign kept');
});

test('f64 -> f32 rounding matches numpy; f32 and f64 bytes round-trip; unaligned input works', { skip: NUMPY }, () => {
  withTempDir((dir) => {
    const inp = join(dir, 'in.bin');
    const out = join(dir, 'out.bin');
    runPython(
      `import numpy as np, sys
rng = np.random.default_rng(9)
x = np.concatenate([rng.standard_normal(5000) * 10.0 ** rng.integers(-50, 50, 5000),
                    [1e300, -1e300, 1e-300, 3.4028235677973366e38, 1.401298464324817e-45 / 2, np.inf, np.nan]])
x.astype(np.float64).tofile(sys.argv[1])
with np.errstate(over='ignore'):
    x.astype(np.float32).tofile(sys.argv[2])`,
      inp,
      out,
    );
    const raw = new Uint8Array(readFileSync(inp));
    const truth = new Uint32Array(new Uint8Array(readFileSync(out)).buffer);
    assertSameFloatBits(bitsOf(decodeF64(raw)), truth, 'decodeF64');
    const shifted = new Uint8Array(raw.length + 3).subarray(3); // misaligned view
    shifted.set(raw);
    assertSameFloatBits(bitsOf(decodeF64(shifted)), truth, 'decodeF64 unaligned');
  });
  const v = Float32Array.from([1.5, -0, 3e38, 1e-45]);
  assert.deepEqual(decodeF32(encodeF32(v)), v);
  assert.deepEqual(decodeF64(encodeF64(v)), v);
});

test('torch .half() of a real model equals our f16 encoding of its float32 weights', () => {
  const full = readSafetensorsFile(join(FIXTURES, 'mlp_a.safetensors'));
  const half = readSafetensorsFile(join(FIXTURES, 'mlp_a_f16.safetensors'));
  assert.deepEqual([...half.order].sort(), [...full.order].sort());
  for (const name of full.order) {
    const t = full.tensors[name];
    if (t.dtype !== 'F32') continue;
    assert.equal(half.tensors[name].dtype, 'F16');
    assert.deepEqual(encodeF16(decodeF32(t.bytes)), half.tensors[name].bytes, name);
  }
  const { params, dtypes } = toParams(half);
  assert.equal(dtypes['fc1.weight'], 'F16');
  assert.deepEqual(params['fc1.weight'].shape, [128, 784]);
});

// ------------------------------------------------------------------------------------ round trips

test('serialize -> parse -> toParams -> paramsToSafetensors(like) -> serialize is byte-identical', () => {
  const file = sampleFile();
  const bytes = serializeSafetensors(file);
  const parsed = parseSafetensors(bytes, 'sample');
  assert.deepEqual(parsed.order, file.order);
  assert.deepEqual({ ...parsed.metadata }, { ...file.metadata });
  for (const name of file.order) {
    assert.equal(parsed.tensors[name].dtype, file.tensors[name].dtype);
    assert.deepEqual(parsed.tensors[name].shape, file.tensors[name].shape);
    assert.deepEqual(parsed.tensors[name].bytes, file.tensors[name].bytes, name);
    // A view into the input, not a copy.
    assert.equal(parsed.tensors[name].bytes.buffer, bytes.buffer);
  }
  const { params, dtypes, passthrough } = toParams(parsed);
  assert.deepEqual(Object.keys(params).sort(), ['10', '2', 'double', 'empty', 'layer.weight']);
  assert.deepEqual([...passthrough], ['steps', 'mask', 'ünï €']);
  assert.equal(dtypes['2'], 'BF16');
  assert.equal(params['double'].data[0], Math.fround(Math.PI));
  const again = serializeSafetensors(paramsToSafetensors(params, { like: parsed }));
  assert.deepEqual(again, bytes);
  // A changed F64 tensor is written from its float32 values (the precision read into float32).
  const bumped = { ...params, double: { shape: [], data: Float32Array.from([2.5]) } };
  const written = parseSafetensors(serializeSafetensors(paramsToSafetensors(bumped, { like: parsed })));
  assert.deepEqual(written.tensors.double.bytes, new Uint8Array(new Float64Array([2.5]).buffer));
  const unchangedPi = parseSafetensors(serializeSafetensors(paramsToSafetensors(params, { like: parsed, metadata: null })));
  assert.deepEqual(unchangedPi.tensors.double.bytes, new Uint8Array(new Float64Array([Math.PI]).buffer));
  assert.equal(unchangedPi.metadata, null);
  // The header is space-padded so the data starts 8-byte aligned.
  assert.equal(Number(new DataView(bytes.buffer).getBigUint64(0, true)) % 8, 0);
});

test('paramsToSafetensors: default F32, explicit dtypes, order and extra tensors', () => {
  const params = {
    b: { shape: [2], data: Float32Array.from([1, 2]) },
    a: { shape: [1, 2], data: Float32Array.from([0.1, -3]) },
  };
  const extra = { ids: { dtype: 'I32', shape: [1], bytes: u8(1, 0, 0, 0) } };
  const file = paramsToSafetensors(params, { dtypes: { a: 'F16' }, order: ['ids', 'a'], extra, metadata: { k: 'v' } });
  assert.deepEqual(file.order, ['ids', 'a', 'b']);
  const back = parseSafetensors(serializeSafetensors(file));
  assert.equal(back.tensors.a.dtype, 'F16');
  assert.equal(back.tensors.b.dtype, 'F32');
  assert.deepEqual(back.tensors.ids.bytes, u8(1, 0, 0, 0));
  assert.deepEqual(Array.from(toParams(back).params.a.data), [Math.fround(halfBitsToFloat(floatToHalfBits(0.1))), -3]);
  assert.throws(() => paramsToSafetensors({ x: { shape: [3], data: new Float32Array(2) } }), /shape \[3\] but 2 values/);
});

test('a file written by Python (struct + json + numpy) is read correctly, and Python reads ours', { skip: NUMPY }, () => {
  withTempDir((dir) => {
    const path = join(dir, 'py.safetensors');
    // The real layout, written the way the reference writer does (tensors sorted by alignment then
    // name, header space-padded to 8), with values whose float32 truth Python prints.
    const script = `import json, struct, sys, numpy as np
rng = np.random.default_rng(11)
w = rng.standard_normal((4, 3)).astype(np.float32)
h = (rng.standard_normal(7) * 100).astype(np.float16)
f = rng.standard_normal((2, 2))
b32 = rng.standard_normal(6).astype(np.float32).view(np.uint32)
bf = ((b32 + 0x7fff + ((b32 >> 16) & 1)) >> 16).astype(np.uint16)
ints = np.array([-5, 2**40, 7], dtype=np.int64)
flags = np.array([True, False, True])
items = [("model.w", "F32", w), ("h", "F16", h), ("zz.double", "F64", f), ("bf", "BF16", bf), ("count", "I64", ints), ("flags", "BOOL", flags)]
size = {"F64": 8, "I64": 8, "F32": 4, "F16": 2, "BF16": 2, "BOOL": 1}
items.sort(key=lambda it: (-size[it[1]], it[0]))
header = {"__metadata__": {"format": "np", "who": "python"}}
off = 0
for name, dt, arr in items:
    n = arr.nbytes
    header[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [off, off + n]}
    off += n
text = json.dumps(header).encode()
text += b" " * (-len(text) % 8)
with open(sys.argv[1], "wb") as fh:
    fh.write(struct.pack("<Q", len(text))); fh.write(text)
    for _, _, arr in items: fh.write(np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes())
truth = {"model.w": w, "h": h.astype(np.float32), "zz.double": f.astype(np.float32), "bf": (bf.astype(np.uint32) << 16).view(np.float32)}
print(json.dumps({"order": [it[0] for it in items],
  "f32bits": {k: v.astype(np.float32).view(np.uint32).ravel().tolist() for k, v in truth.items()},
  "shapes": {k: list(v.shape) for k, v in truth.items()}, "ints": ints.tolist()}))`;
    const truth = JSON.parse(runPython(script, path)) as {
      order: string[];
      f32bits: Record<string, number[]>;
      shapes: Record<string, number[]>;
      ints: number[];
    };
    const file = readSafetensorsFile(path);
    assert.deepEqual([...file.order], truth.order);
    assert.deepEqual({ ...file.metadata }, { format: 'np', who: 'python' });
    const { params, passthrough } = toParams(file);
    assert.deepEqual([...passthrough].sort(), ['count', 'flags']);
    for (const [name, bits] of Object.entries(truth.f32bits)) {
      assert.deepEqual(Array.from(bitsOf(params[name].data)), bits, name);
      assert.deepEqual(params[name].shape, truth.shapes[name]);
    }
    const count = file.tensors.count.bytes;
    assert.deepEqual(Array.from(new BigInt64Array(count.slice().buffer), Number), truth.ints);
    assert.deepEqual(Array.from(file.tensors.flags.bytes), [1, 0, 1]);

    // The other direction: Python parses what we write (after a change to one tensor).
    const out = join(dir, 'ours.safetensors');
    const changed = { ...params, 'model.w': { shape: [4, 3], data: params['model.w'].data.map((v) => v * 2) } };
    writeSafetensorsFile(out, paramsToSafetensors(changed, { like: file }));
    const check = runPython(
      `import json, struct, sys, numpy as np
raw = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
hd = json.loads(raw[8:8 + n]); data = raw[8 + n:]
meta = hd.pop("__metadata__")
np_dt = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "I64": "<i8", "BOOL": "?"}
out = {"meta": meta}
for k, v in hd.items():
    b, e = v["data_offsets"]
    if v["dtype"] == "BF16":
        a = (np.frombuffer(data[b:e], "<u2").astype(np.uint32) << 16).view(np.float32)
    else:
        a = np.frombuffer(data[b:e], np_dt[v["dtype"]])
    out[k] = [v["dtype"], v["shape"], a.astype(np.float64).tolist()]
print(json.dumps(out))`,
      out,
    );
    const seen = JSON.parse(check) as Record<string, [string, number[], number[]]> & { meta: unknown };
    assert.deepEqual(seen.meta, { format: 'np', who: 'python' });
    assert.equal(seen['h'][0], 'F16');
    assert.equal(seen['bf'][0], 'BF16');
    assert.deepEqual(seen['model.w'][2], Array.from(changed['model.w'].data));
    assert.deepEqual(seen['h'][2], Array.from(params.h.data));
    assert.deepEqual(seen['bf'][2], Array.from(params.bf.data));
    assert.deepEqual(seen['count'][2], truth.ints);
  });
});

// ------------------------------------------------------------------------------------- validation

test('accepted edge cases: empty file, padding, zero-size tensors, scalars, odd names', () => {
  const empty = parseSafetensors(rawFile('{}'));
  assert.deepEqual(empty.order, []);
  assert.equal(empty.metadata, null);
  assert.equal(parseSafetensors(rawFile('{"__metadata__":null}       ')).metadata, null);
  const data = f32Bytes([5, 6]);
  const f = parseSafetensors(
    rawFile(
      '{"z":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},"__proto__":{"dtype":"F32","shape":[],"data_offsets":[4,8]},' +
        '"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"extra":{"dtype":"I8","shape":[0,9],"data_offsets":[8,8],"ignored":1}}   ',
      data,
    ),
  );
  assert.deepEqual(f.order, ['a', 'z', '__proto__', 'extra']);
  assert.deepEqual(Array.from(toParams(f).params['__proto__'].data), [6]);
  assert.equal(Object.getPrototypeOf(f.tensors), null);
  // F4 packs two values per byte.
  assert.equal(parseSafetensors(rawFile('{"q":{"dtype":"F4","shape":[2,3],"data_offsets":[0,3]}}', u8(1, 2, 3))).tensors.q.bytes.length, 3);
});

test('each malformed file fails with its own InputError naming the file', () => {
  const L = 'm.safetensors';
  const bad = (headerText: string, data: Uint8Array, pattern: RegExp) =>
    expectInputError(() => parseSafetensors(rawFile(headerText, data), L), pattern);
  const entry = (e: string) => `{"w":${e}}`;
  const d8 = new Uint8Array(8);

  expectInputError(() => parseSafetensors(u8(1, 2, 3), L), /^m\.safetensors: is only 3 bytes/);
  expectInputError(() => parseSafetensors(new Uint8Array(0), L), /is only 0 bytes/);
  expectInputError(() => parseSafetensors(rawFile('{}', d8, 2n ** 63n), L), /header length field says 9223372036854775808 bytes but only 10 bytes/);
  expectInputError(() => parseSafetensors(rawFile('{}', d8, 2n ** 64n - 1n), L), /says 18446744073709551615 bytes/);
  expectInputError(() => parseSafetensors(rawFile('{}', d8, 11n), L), /says 11 bytes but only 10/);
  const prefix = new Uint8Array(8);
  new DataView(prefix.buffer).setUint32(0, MAX_HEADER_BYTES + 1, true);
  expectInputError(() => readHeaderLength(prefix, 2 * MAX_HEADER_BYTES, L), /exceeds the 100000000-byte limit/);

  const notUtf8 = rawFile('{"w":1}');
  notUtf8[10] = 0xff;
  expectInputError(() => parseSafetensors(notUtf8, L), /not valid UTF-8/);
  expectInputError(() => parseSafetensors(rawFile('\ufeff{}'), L), /not valid JSON/);
  bad('{"w": ', d8, /header is not valid JSON/);
  bad('', d8, /header is not valid JSON/);
  bad('[1,2]', d8, /header must be a JSON object, got an array/);
  bad('"x"', d8, /header must be a JSON object, got a string/);
  bad(entry('5'), d8, /tensor "w": header entry must be an object, got a number/);
  bad(entry('{"shape":[2],"data_offsets":[0,8]}'), d8, /tensor "w": header entry has no "dtype"/);
  bad(entry('{"dtype":"F32","data_offsets":[0,8]}'), d8, /has no "shape"/);
  bad(entry('{"dtype":"F32","shape":[2]}'), d8, /has no "data_offsets"/);
  bad(entry('{"dtype":7,"shape":[2],"data_offsets":[0,8]}'), d8, /dtype must be a string, got a number/);
  bad(entry('{"dtype":"F31","shape":[2],"data_offsets":[0,8]}'), d8, /unknown dtype "F31" \(known: BOOL/);
  bad(entry('{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}'), d8, /shape must hold non-negative integers, got -2/);
  bad(entry('{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}'), d8, /shape must hold non-negative integers, got 2\.5/);
  bad(entry('{"dtype":"F32","shape":["2"],"data_offsets":[0,8]}'), d8, /got "2"/);
  bad(entry('{"dtype":"F32","shape":2,"data_offsets":[0,8]}'), d8, /shape must be an array/);
  bad(entry('{"dtype":"F32","shape":[1e400],"data_offsets":[0,8]}'), d8, /got null/); // Infinity → JSON null in message
  bad(entry('{"dtype":"F32","shape":[2],"data_offsets":[0,4,8]}'), d8, /data_offsets must be \[begin, end\], got 3 numbers/);
  bad(entry('{"dtype":"F32","shape":[2],"data_offsets":[8,0]}'), d8, /data_offsets \[8, 0\] end before they begin/);
  bad(entry('{"dtype":"F32","shape":[4],"data_offsets":[0,16]}'), d8, /\[0, 16\] run past the 8-byte data buffer/);
  bad(entry('{"dtype":"F32","shape":[3],"data_offsets":[0,8]}'), d8, /F32 of shape \[3\] needs 12 bytes but data_offsets \[0, 8\] hold 8/);
  bad(entry('{"dtype":"F4","shape":[3],"data_offsets":[0,2]}'), u8(1, 2), /F4 of shape \[3\] is not a whole number of bytes/);
  bad(entry('{"dtype":"U8","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,8]}'), d8, /needs more than 2\^53 bytes/);
  bad(
    '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}',
    d8,
    /tensor "b" at bytes \[4, 8\] overlaps tensor "a", which ends at 8/,
  );
  bad(
    '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[0],"data_offsets":[2,2]}}',
    u8(0, 0, 0, 0),
    /overlaps/,
  );
  bad('{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', d8, /bytes \[0, 4\) of the data buffer belong to no tensor \(a hole before tensor "a"\)/);
  bad('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', d8, /4 bytes after the last tensor belong to no tensor/);
  bad('{}', d8, /8 bytes after the last tensor/);
  bad(
    '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}',
    d8,
    /header lists "a" twice/,
  );
  bad('{"a":{"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]}}', d8, /header entry "a" has the key "dtype" twice/);
  bad('{"__metadata__":{"k":1},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', d8, /__metadata__ value "k" must be a string, got a number/);
  bad('{"__metadata__":["x"]}', d8, /__metadata__ must be an object of strings, got an array/);
  // Duplicate detection is not fooled by keys inside strings or arrays.
  assert.equal(parseSafetensors(rawFile('{"__metadata__":{"a":"{\\"a\\":1,\\"a\\":2}","b":"[\\"b\\",\\"b\\"]"}}')).metadata?.a, '{"a":1,"a":2}');
  // Every message starts with the label.
  expectInputError(() => parseHeader(new TextEncoder().encode('[]'), 0, 'x.st'), /^x\.st: /);
});

// ------------------------------------------------------------------------------------------- files

test('files: read whole, read header + tensors by descriptor and handle, atomic write, errors', async () => {
  const dir = (await import('node:fs')).mkdtempSync(join((await import('node:os')).tmpdir(), 'rebasin-st-'));
  try {
    const path = join(dir, 'model.safetensors');
    const file = sampleFile();
    writeSafetensorsFile(path, file);
    assert.deepEqual(new Uint8Array(readFileSync(path)), serializeSafetensors(file));
    const whole = readSafetensorsFile(path);
    assert.ok(!Buffer.isBuffer(whole.tensors['layer.weight'].bytes));
    const header = readSafetensorsHeader(path);
    assert.deepEqual(header.order, file.order);
    assert.equal(header.label, path);
    const handle = await open(path, 'r');
    try {
      for (const name of file.order) {
        assert.deepEqual((await readTensor(handle, header, name)).bytes, file.tensors[name].bytes, name);
        assert.deepEqual(readTensorSync(handle.fd, header, name).bytes, file.tensors[name].bytes, name);
      }
      await assert.rejects(readTensor(handle, header, 'nope'), /model\.safetensors: no tensor named "nope"/);
      assert.deepEqual(readSafetensorsHeader(handle.fd, 'h').order, file.order);
    } finally {
      await handle.close();
    }
    expectInputError(() => readSafetensorsFile(join(dir, 'missing.safetensors')), /missing\.safetensors: no such file/);
    expectInputError(() => readSafetensorsFile(dir), /is a directory/);
    const truncated = join(dir, 'cut.safetensors');
    writeFileSync(truncated, readFileSync(path).subarray(0, 200));
    expectInputError(() => readSafetensorsHeader(truncated), /cut\.safetensors: /);
    expectInputError(() => readSafetensorsFile(truncated), /cut\.safetensors: /);
    // Writing over an input is refused before anything is touched.
    expectInputError(() => writeSafetensorsFile(path, file, { inputs: [path] }), /is the input file/);
    assert.deepEqual(readdirSync(dir).sort(), ['cut.safetensors', 'model.safetensors']);
  } finally {
    (await import('node:fs')).rmSync(dir, { recursive: true, force: true });
  }
});

test('writeFileAtomic: chunks, replacement keeps permissions, no temp files left, errors are InputErrors', () => {
  withTempDir((dir) => {
    const p = join(dir, 'out.bin');
    writeFileAtomic(p, [u8(1, 2), u8(), u8(3)]);
    assert.deepEqual(new Uint8Array(readFileSync(p)), u8(1, 2, 3));
    chmodSync(p, 0o640);
    writeFileAtomic(p, u8(9));
    assert.deepEqual(new Uint8Array(readFileSync(p)), u8(9));
    assert.equal(statSync(p).mode & 0o777, 0o640);
    // Through a symlink: the target is replaced, the link stays a link.
    const link = join(dir, 'link.bin');
    symlinkSync(p, link);
    writeFileAtomic(link, u8(7, 7));
    assert.deepEqual(new Uint8Array(readFileSync(p)), u8(7, 7));
    assert.deepEqual(readdirSync(dir).sort(), ['link.bin', 'out.bin']);
    expectInputError(() => writeFileAtomic(join(dir, 'no', 'such', 'dir.bin'), u8(1)), /cannot write .*ENOENT/);
    mkdirSync(join(dir, 'sub'));
    expectInputError(() => writeFileAtomic(join(dir, 'sub'), u8(1)), /is a directory/);
    assert.deepEqual(readdirSync(dir).sort(), ['link.bin', 'out.bin', 'sub']);
  });
});

test('assertNotInput catches the same file by path, relative path, symlink and hard link', () => {
  withTempDir((dir) => {
    const a = join(dir, 'a.safetensors');
    const b = join(dir, 'b.safetensors');
    writeFileSync(a, 'a');
    writeFileSync(b, 'b');
    symlinkSync(a, join(dir, 'sym'));
    linkSync(a, join(dir, 'hard'));
    assertNotInput(join(dir, 'new.safetensors'), [a, b]);
    assertNotInput(b, [a]);
    for (const out of [a, join(dir, '.', 'a.safetensors'), relative(process.cwd(), a), join(dir, 'sym'), join(dir, 'hard')]) {
      expectInputError(() => assertNotInput(out, [b, a]), /is the input file .*a\.safetensors; choose a different output path/);
    }
    expectInputError(() => writeFileAtomic(join(dir, 'hard'), u8(0), { inputs: [a] }), /is the input file/);
    assert.equal(readFileSync(a, 'utf8'), 'a');
    assert.ok(existsSync(join(dir, 'sym')));
  });
});
