/**
 * The graph walk on real models that other projects exported (test/fixtures/third-party/, see its README):
 * the derived spec must leave every output unchanged under random permutations (truth: ONNX Runtime), and
 * the layers it can follow must be found: PaddleOCR's classifier keeps its weights in Constant nodes, which
 * are read as initializers; Silero VAD's LSTM decoder sits in If bodies that read outer values.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { readOnnxFile } from '../src/io/onnx-file.js';
import { specFromOnnx } from '../src/permutation-spec/onnx-graph.js';
import { permSizes } from '../src/permutation-spec/spec.js';
import { checkInvariance, randomInput } from './helpers/onnx-graphs.js';

const DIR = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', 'test', 'fixtures', 'third-party');

test('PaddleOCR cls (paddle2onnx, weights in Constant nodes): the backbone is permuted and computes the same', async () => {
  const { model, params } = readOnnxFile(join(DIR, 'ch_ppocr_mobile_v2.0_cls_infer.onnx'));
  assert.ok(!model.graph.nodes.some((n) => n.opType === 'Constant' && n.outputs[0] === 'conv2d_0.w_0'), 'Constant weights are read as initializers');
  const derived = specFromOnnx(model, { strict: true });
  const sizes = Object.values(permSizes(derived.spec, params));
  assert.ok(sizes.length >= 20, `expected the backbone's permutations, got ${sizes.length}`);
  for (const seed of [1, 2]) await checkInvariance(model, params, derived, { x: randomInput([2, 3, 48, 96], seed) }, 1e-4, seed);
});

test('Silero VAD v5: the encoder is permuted, the LSTM read inside If bodies stays, and the outputs are unchanged', async () => {
  const { model, params } = readOnnxFile(join(DIR, 'silero_vad_16k_op15.onnx'));
  const derived = specFromOnnx(model);
  assert.ok(Object.keys(derived.spec.permToAxes).length >= 2);
  for (const t of ['model.decoder.rnn.weight_ih', 'model.decoder.rnn.weight_hh']) {
    assert.ok(derived.spec.axesToPerm[t].every((p) => p === null), `${t} must stay as it is`);
  }
  for (const seed of [3, 4]) {
    const feeds = {
      input: randomInput([1, 512], seed),
      state: randomInput([2, 1, 128], seed + 10),
      sr: new ort.Tensor('int64', BigInt64Array.from([16000n]), []),
    };
    // Activations reach ~100 here: 1e-3 is float noise relative to them.
    await checkInvariance(model, params, derived, feeds, 1e-3, seed);
  }
});
