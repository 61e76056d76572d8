/**
 * Fuzzing the ONNX reader: thousands of mutated models (bit flips, overwritten bytes, truncation, huge
 * length varints, cut and duplicated slices) must each parse or fail with an InputError — never another
 * exception, never a hang, never a huge allocation. Models that parse must also survive reading their
 * params, their graph view and re-encoding.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InputError } from '../src/errors.js';
import { createRng, type Rng } from '../src/random.js';
import protobuf from 'protobufjs';
import { ONNX_PROTO } from '../src/io/onnx-schema.js';
import { initializersToInputs, onnxModelFromObject, onnxParams, parseOnnx, serializeOnnx, withInitializers } from '../src/io/onnx.js';

/** protobufjs's own one-pass encoder, the reference for our chunked encoder. */
const Model = protobuf.parse(ONNX_PROTO, { keepCase: true }).root.lookupType('onnx.ModelProto');

const FIXTURES = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', 'test', 'fixtures', 'onnx');

/** A model with a Constant tensor attribute and an If with two subgraphs, to reach the nested decoders. */
function nestedModel(): Uint8Array {
  const branch = (v: number): Record<string, unknown> => ({
    name: `b${v}`,
    node: [
      {
        op_type: 'Constant',
        output: ['c'],
        attribute: [{ name: 'value', type: 4, t: { dims: [2], data_type: 1, float_data: [v, v + 1] } }],
      },
    ],
    output: [{ name: 'c', type: { tensor_type: { elem_type: 1, shape: { dim: [{ dim_value: 2 }] } } } }],
  });
  return serializeOnnx(
    onnxModelFromObject({
      ir_version: 8,
      opset_import: [{ version: 13 }],
      graph: {
        name: 'nested',
        initializer: [
          { name: 'w', dims: [2], data_type: 10, int32_data: [0x3c00, 0xc000] },
          { name: 'k', dims: [3], data_type: 7, int64_data: [1, -1, 9] },
        ],
        node: [
          { op_type: 'If', input: ['cond'], output: ['y'], attribute: [
            { name: 'then_branch', type: 5, g: branch(1) },
            { name: 'else_branch', type: 5, g: branch(3) },
          ] },
          { op_type: 'Shape', input: ['y'], output: ['s'], attribute: [{ name: 'start', type: 2, i: 0 }, { name: 'names', type: 8, strings: [new Uint8Array([104, 105])] }] },
        ],
        input: [{ name: 'cond', type: { tensor_type: { elem_type: 9, shape: { dim: [] } } } }],
        output: [{ name: 's', type: { tensor_type: { elem_type: 7 } } }],
      },
    }),
  );
}

function mutate(src: Uint8Array, rng: Rng): Uint8Array {
  const b = Uint8Array.from(src);
  const at = (): number => rng.int(Math.max(1, b.length));
  switch (rng.int(7)) {
    case 0: {
      // A few bit flips.
      const k = 1 + rng.int(4);
      for (let i = 0; i < k; i++) b[at()] ^= 1 << rng.int(8);
      return b;
    }
    case 1: {
      // Bytes overwritten with extreme or random values (often a length or a tag).
      const k = 1 + rng.int(3);
      for (let i = 0; i < k; i++) b[at()] = [0x00, 0xff, 0x7f, 0x80, rng.int(256)][rng.int(5)];
      return b;
    }
    case 2:
      return b.subarray(0, at());
    case 3: {
      // A length-varint bomb: a huge length (up to 2^63) or an over-long varint, inserted.
      const bombs = [
        [0xff, 0xff, 0xff, 0xff, 0x0f],
        [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
        [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
        [0x80, 0x80, 0x80, 0x80, 0x08],
      ];
      const bomb = bombs[rng.int(bombs.length)];
      const i = at();
      const replace = rng.int(2); // overwrite the byte at i (a length) or insert before it
      const out = new Uint8Array(b.length + bomb.length - replace);
      out.set(b.subarray(0, i));
      out.set(bomb, i);
      out.set(b.subarray(i + replace), i + bomb.length);
      return out;
    }
    case 4: {
      // Cut out a slice.
      const i = at();
      const j = Math.min(b.length, i + 1 + rng.int(16));
      const out = new Uint8Array(b.length - (j - i));
      out.set(b.subarray(0, i));
      out.set(b.subarray(j), i);
      return out;
    }
    case 5: {
      // Duplicate a slice in place.
      const i = at();
      const j = Math.min(b.length, i + 1 + rng.int(32));
      const out = new Uint8Array(b.length + (j - i));
      out.set(b.subarray(0, j));
      out.set(b.subarray(i, j), j);
      out.set(b.subarray(j), j + (j - i));
      return out;
    }
    default: {
      // A new field with a random tag and wire type spliced in.
      const i = at();
      const extra = [rng.int(256), rng.int(256), rng.int(256)];
      const out = new Uint8Array(b.length + 3);
      out.set(b.subarray(0, i));
      out.set(extra, i);
      out.set(b.subarray(i), i + 3);
      return out;
    }
  }
}

/** External data for fuzzed models: zeros of the asked length, refusing anything large. */
function zeros(_location: string, _offset: number, length: number | null): Uint8Array {
  if (length === null || length > 1 << 20) throw new InputError('fuzz: external length refused');
  return new Uint8Array(length);
}

test('mutated ONNX bytes parse or throw InputError, quickly and without huge allocations', () => {
  const seeds = [
    ...['mlp.onnx', 'dtypes.onnx', 'conv_ext.onnx'].map((f) => new Uint8Array(readFileSync(join(FIXTURES, f)))),
    nestedModel(),
  ];
  // The seeds themselves are valid.
  for (const s of seeds) parseOnnx(s, 'seed');

  const rng = createRng(20240607);
  const rssBefore = process.memoryUsage().rss;
  let parsed = 0;
  let rejected = 0;
  let slowest = 0;
  const reasons = new Map<string, number>();
  const N = 6000;
  for (let k = 0; k < N; k++) {
    let bytes = seeds[k % seeds.length];
    const rounds = rng.next() < 0.8 ? 1 : 2;
    for (let r = 0; r < rounds; r++) bytes = mutate(bytes, rng);
    const t0 = performance.now();
    try {
      const model = parseOnnx(bytes, `fuzz-${k}.onnx`);
      parsed++;
      const params = onnxParams(model, { resolveExternal: zeros });
      // Whatever parsed can be encoded again (exactly as protobufjs encodes it in one pass), re-parsed,
      // and have its weights replaced.
      const encoded = serializeOnnx(model);
      assert.deepEqual(Buffer.from(encoded), Buffer.from(Model.encode(model.proto as unknown as protobuf.Message).finish()), `case ${k}`);
      const again = parseOnnx(encoded, 'again.onnx');
      assert.deepEqual(again.initializerNames, model.initializerNames);
      if (Object.values(model.initializers).every((i) => i.external === null)) {
        serializeOnnx(withInitializers(model, params));
      }
      serializeOnnx(initializersToInputs(model));
    } catch (e) {
      if (!(e instanceof InputError)) {
        assert.fail(`case ${k}: ${(e as Error)?.stack ?? String(e)}\nbytes: ${Buffer.from(bytes).toString('hex')}`);
      }
      assert.match(e.message, /fuzz|\.onnx/, `case ${k}: the error names the file: ${e.message}`);
      rejected++;
      reasons.set(e.message.replace(/^fuzz-\d+\.onnx: /, "").slice(0, 60), (reasons.get(e.message.replace(/^fuzz-\d+\.onnx: /, "").slice(0, 60)) ?? 0) + 1);
    }
    slowest = Math.max(slowest, performance.now() - t0);
  }
  if (process.env.FUZZ_VERBOSE) console.log(parsed, rejected, [...reasons].sort((a, b) => b[1] - a[1]).slice(0, 25));
  const grown = process.memoryUsage().rss - rssBefore;
  assert.ok(slowest < 1000, `slowest case took ${slowest.toFixed(0)} ms`);
  assert.ok(grown < 512 * 2 ** 20, `memory grew by ${(grown / 2 ** 20).toFixed(0)} MiB`);
  // Both outcomes happen (a fuzzer that only ever rejects tests little).
  assert.ok(parsed > N / 20 && rejected > N / 20, `parsed ${parsed}, rejected ${rejected}`);
});
