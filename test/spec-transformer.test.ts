/**
 * Built-in transformer specs from state-dict names (permutation-spec/transformer.ts), against independent truth:
 * - the two ViT fixtures trained by PyTorch (test/fixtures/vit: hand-written attention with separate q/k/v,
 *   and nn.TransformerEncoderLayer with a fused in_proj), run by a plain ONNX Runtime session on their own
 *   ONNX exports with every initializer replaced by its permuted state-dict tensor (found by value, so the
 *   mapping does not trust the spec), compared with PyTorch's stored logits and accuracy;
 * - for each family, a random state dict with the family's real names and a forward pass written here in
 *   float64 from those names (q/k/v read out of the fused or Conv1D layouts by hand);
 * in both, a head-structured random permutation keeps the function and one that crosses a head boundary
 * does not (so the check can fail). Then the refusals.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import * as ort from 'onnxruntime-node';
import { InputError } from '../src/errors.js';
import type { Params, Tensor } from '../src/tensor.js';
import { applyPermutation } from '../src/permute.js';
import { permSizes, type PermutationSpec } from '../src/permutation-spec/spec.js';
import { randomSpecPerms } from '../src/permutation-spec/heads.js';
import { splitSegments } from '../src/permutation-spec/segments.js';
import { transformerSpecOf, type TransformerFamily } from '../src/permutation-spec/transformer.js';
import { autoSpec } from '../src/permutation-spec/auto.js';
import { readSafetensorsFile } from '../src/io/safetensors-fs.js';
import { toParams } from '../src/io/safetensors.js';
import { readOnnxFile, writeOnnxFile } from '../src/io/onnx-file.js';
import type { OnnxModel } from '../src/io/onnx.js';
import { loadIdxPair } from '../src/data/load.js';
import { createRng, type Rng } from '../src/random.js';

const ROOT = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..');
const VIT = join(ROOT, 'test', 'fixtures', 'vit');
const MODELS = join(ROOT, 'test', 'fixtures', 'models');
const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, 'lengths');
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Units u and w of permutation p swapped (p itself untouched). */
function swapped(p: Int32Array, u: number, w: number): Int32Array {
  const q = Int32Array.from(p);
  [q[u], q[w]] = [q[w], q[u]];
  return q;
}

/** Random perms from the spec, with `perm` replaced by one that swaps unit 0 of head 0 and unit 0 of head 1. */
function crossHead(spec: PermutationSpec, sizes: Record<string, number>, perm: string, heads: number): Record<string, Int32Array> {
  const perms = randomSpecPerms(spec, sizes, 5);
  const identity = Int32Array.from({ length: sizes[perm] }, (_, i) => i);
  return { ...perms, [perm]: swapped(identity, 0, sizes[perm] / heads) };
}

// ---------------------------------------------------------------- the PyTorch fixtures through ONNX Runtime

interface Expected {
  config: { heads: number };
  models: Record<string, { test256: { accuracy: number }; logits_first8: number[][] }>;
}
const readExpected = (): Expected => JSON.parse(readFileSync(join(VIT, 'vit.expected.json'), 'utf8')) as Expected;
const test256 = loadIdxPair(join(MODELS, 'fmnist_test256-images-idx3-ubyte.gz'), join(MODELS, 'fmnist_test256-labels-idx1-ubyte.gz'));

function stateDict(name: string): Params {
  return toParams(readSafetensorsFile(join(VIT, `${name}.safetensors`))).params;
}

function sameValues(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function transpose2d(t: Tensor): Tensor {
  const [r, c] = t.shape;
  const data = new Float32Array(r * c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) data[j * r + i] = t.data[i * c + j];
  return { shape: [c, r], data };
}

/** The state dict's tensors and, for fused ones, their parts too: what an exported initializer may hold. */
function withParts(spec: PermutationSpec, sd: Params): Params {
  return { ...sd, ...splitSegments(spec.segments, sd) };
}

/**
 * Which state-dict tensor (or fused part) each ONNX initializer holds, found by comparing values: the
 * exporter renames Linear weights (onnx::MatMul_N, transposed) and may keep a fused in_proj whole or cut
 * it into q, k, v. Initializers that hold no weight (constants of the graph: shapes, √d) are left out.
 */
function initializerSources(onnx: Params, spec: PermutationSpec, sd: Params): Map<string, { source: string; transposed: boolean }> {
  const parts = withParts(spec, sd);
  const out = new Map<string, { source: string; transposed: boolean }>();
  for (const [init, t] of Object.entries(onnx)) {
    const hits: { source: string; transposed: boolean }[] = [];
    for (const [source, s] of Object.entries(parts)) {
      if (sameValues(t.data, s.data) && t.data.length > 1) hits.push({ source, transposed: false });
      else if (s.shape.length === 2 && t.shape.length === 2 && t.shape[0] === s.shape[1] && sameValues(t.data, transpose2d(s).data)) {
        hits.push({ source, transposed: true });
      }
    }
    assert.ok(hits.length <= 1, `initializer '${init}' equals ${hits.map((h) => h.source).join(' and ')}`);
    if (hits.length === 1) out.set(init, hits[0]);
  }
  const used = new Set([...out.values()].map((h) => h.source));
  const segments = spec.segments ?? {};
  const missing = Object.keys(sd).filter((p) => !used.has(p) && !(Object.hasOwn(segments, p) && segments[p].parts.every((q) => used.has(q))));
  assert.deepEqual(missing, [], 'every state-dict tensor is found in the ONNX export');
  return out;
}

/** The ONNX initializers with each weight taken from `parts` (a permuted state dict, split into its parts). */
function onnxParamsFrom(onnx: Params, sources: Map<string, { source: string; transposed: boolean }>, parts: Params): Params {
  const out: Record<string, Tensor> = Object.create(null);
  for (const [init, t] of Object.entries(onnx)) {
    const src = sources.get(init);
    if (src === undefined) out[init] = t;
    else {
      const s = src.transposed ? transpose2d(parts[src.source]) : parts[src.source];
      out[init] = { shape: t.shape, data: s.data };
    }
  }
  return out;
}

/** Logits from a plain ONNX Runtime session on the model written with `params` as its initializers. */
async function logitsOf(model: OnnxModel, params: Params, count: number): Promise<Float32Array> {
  const dir = mkdtempSync(join(tmpdir(), 'rebasin-vit-'));
  try {
    const file = join(dir, 'model.onnx');
    writeOnnxFile(file, model, params, { externalData: false });
    const session = await ort.InferenceSession.create(file);
    try {
      const input = new ort.Tensor('float32', test256.inputs.subarray(0, count * 784), [count, 1, 28, 28]);
      const out = await session.run({ input });
      return out.logits.data as Float32Array;
    } finally {
      await session.release();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function accuracy(logits: Float32Array, labels: Int32Array): number {
  let correct = 0;
  for (let r = 0; r < labels.length; r++) {
    const row = Array.from(logits.subarray(r * 10, r * 10 + 10));
    if (row.indexOf(Math.max(...row)) === labels[r]) correct++;
  }
  return correct / labels.length;
}

for (const [style, family] of [['sep', 'vit-sep'], ['fused', 'torch-encoder']] as const) {
  test(`ViT fixture '${style}' (PyTorch-trained): head-structured permutations keep ONNX Runtime's logits, cross-head ones change them`, async () => {
    const name = `vit_${style}_a`;
    const expected = readExpected();
    const heads = expected.config.heads;
    const sd = stateDict(name);
    const { family: found, spec } = transformerSpecOf(sd, { heads });
    assert.equal(found, family as TransformerFamily);
    const sizes = permSizes(spec, sd);
    const { model, params: onnx } = readOnnxFile(join(VIT, `${name}.onnx`));
    const sources = initializerSources(onnx, spec, sd);
    const run = (perms: Record<string, Int32Array>, count: number): Promise<Float32Array> =>
      logitsOf(model, onnxParamsFrom(onnx, sources, withParts(spec, applyPermutation(spec, perms, sd))), count);

    // The export with its own weights reproduces PyTorch (the baseline is the trained model itself).
    const base = await logitsOf(model, onnx, 256);
    const torch = expected.models[name];
    assert.ok(maxDiff(base.subarray(0, 80), torch.logits_first8.flat()) < 1e-4, 'ONNX export = PyTorch logits');
    assert.equal(accuracy(base, test256.labels), torch.test256.accuracy);

    for (const seed of [1, 2]) {
      const perms = randomSpecPerms(spec, sizes, seed);
      const moved = Object.values(perms).filter((p) => p.some((v, i) => v !== i)).length;
      assert.equal(moved, Object.keys(perms).length, 'every permutation moves something');
      const permuted = await run(perms, 256);
      const d = maxDiff(permuted, base);
      assert.ok(d < 2e-5, `${name} seed ${seed}: max |logit change| = ${d}`);
      assert.equal(accuracy(permuted, test256.labels), torch.test256.accuracy);
    }

    for (const perm of ['blocks.0.attn.qk', 'blocks.1.attn.v'].map((p) => (style === 'sep' ? p : p.replace('blocks', 'layers')))) {
      const d = maxDiff(await run(crossHead(spec, sizes, perm, heads), 8), base.subarray(0, 80));
      assert.ok(d > 1e-3, `${name}: '${perm}' across a head boundary changed the logits by only ${d}`);
    }
  });
}

// ---------------------------------------------------------------- every family: a float64 forward from its names

const E = 8; // residual width
const H = 2; // heads
const M = 12; // MLP hidden
const V = 11; // vocabulary
const T = 5; // tokens (BERT, GPT-2), or 4 patches + class token (ViTs)
const DEPTH = 2;

function randn(rng: Rng, shape: number[], scale = 0.5): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = rng.normal() * scale;
  return { shape, data };
}

/** A dense map out = W·x + b, read from whatever layout the family stores. */
interface Dense {
  readonly out: number;
  readonly w: (o: number, i: number) => number;
  readonly b: (o: number) => number;
}
interface Norm {
  readonly w: Tensor;
  readonly b: Tensor;
}
interface Block {
  readonly ln1: Norm;
  readonly q: Dense;
  readonly k: Dense;
  readonly v: Dense;
  readonly o: Dense;
  readonly ln2: Norm;
  readonly fc1: Dense;
  readonly fc2: Dense;
}
interface Arch {
  readonly post: boolean; // BERT: LayerNorm after each residual add
  readonly causal: boolean; // GPT-2
  readonly embed: (p: Params) => Float64Array[];
  readonly block: (p: Params, n: number) => Block;
  readonly readout: (p: Params, x: Float64Array[]) => number[];
}

/** torch Linear [out, in] (optionally rows [offset, offset+out) of a fused [3E, in]). */
function torchDense(w: Tensor, b: Tensor | undefined, offset = 0, out = w.shape[0]): Dense {
  const inputs = w.shape[1];
  return { out, w: (o, i) => w.data[(offset + o) * inputs + i], b: (o) => (b === undefined ? 0 : b.data[offset + o]) };
}
/** GPT-2 Conv1D [in, out] (optionally columns [offset, offset+out) of a fused [in, 3E]). */
function conv1dDense(w: Tensor, b: Tensor | undefined, offset = 0, out = w.shape[1]): Dense {
  const cols = w.shape[1];
  return { out, w: (o, i) => w.data[i * cols + offset + o], b: (o) => (b === undefined ? 0 : b.data[offset + o]) };
}
const lin = (p: Params, m: string): Dense => torchDense(p[`${m}.weight`], p[`${m}.bias`]);
const nrm = (p: Params, m: string): Norm => ({ w: p[`${m}.weight`], b: p[`${m}.bias`] });

function apply(d: Dense, x: Float64Array): Float64Array {
  const y = new Float64Array(d.out);
  for (let o = 0; o < d.out; o++) {
    let s = d.b(o);
    for (let i = 0; i < x.length; i++) s += d.w(o, i) * x[i];
    y[o] = s;
  }
  return y;
}
function layerNorm(n: Norm, x: Float64Array): Float64Array {
  const mean = x.reduce((a, b) => a + b, 0) / x.length;
  const variance = x.reduce((a, b) => a + (b - mean) ** 2, 0) / x.length;
  return x.map((v, i) => ((v - mean) / Math.sqrt(variance + 1e-5)) * n.w.data[i] + n.b.data[i]);
}
const gelu = (v: number): number => 0.5 * v * (1 + Math.tanh(0.7978845608 * (v + 0.044715 * v ** 3)));
const add = (a: Float64Array, b: Float64Array): Float64Array => a.map((v, i) => v + b[i]);

function attention(blk: Block, xs: Float64Array[], causal: boolean): Float64Array[] {
  const q = xs.map((x) => apply(blk.q, x));
  const k = xs.map((x) => apply(blk.k, x));
  const v = xs.map((x) => apply(blk.v, x));
  const dq = blk.q.out / H;
  const dv = blk.v.out / H;
  return xs.map((_, t) => {
    const mixed = new Float64Array(blk.v.out);
    for (let h = 0; h < H; h++) {
      const scores = xs.map((__, s) => {
        if (causal && s > t) return -Infinity;
        let dot = 0;
        for (let i = 0; i < dq; i++) dot += q[t][h * dq + i] * k[s][h * dq + i];
        return dot / Math.sqrt(dq);
      });
      const top = Math.max(...scores);
      const e = scores.map((s) => Math.exp(s - top));
      const z = e.reduce((a, b) => a + b, 0);
      e.forEach((w, s) => {
        for (let i = 0; i < dv; i++) mixed[h * dv + i] += (w / z) * v[s][h * dv + i];
      });
    }
    return apply(blk.o, mixed);
  });
}

function forward(arch: Arch, p: Params): number[] {
  let xs = arch.embed(p);
  for (let n = 0; n < DEPTH; n++) {
    const blk = arch.block(p, n);
    const mlp = (x: Float64Array): Float64Array => apply(blk.fc2, apply(blk.fc1, x).map(gelu));
    if (arch.post) {
      const a = attention(blk, xs, arch.causal);
      xs = xs.map((x, t) => layerNorm(blk.ln1, add(x, a[t])));
      xs = xs.map((x) => layerNorm(blk.ln2, add(x, mlp(x))));
    } else {
      const a = attention(blk, xs.map((x) => layerNorm(blk.ln1, x)), arch.causal);
      xs = xs.map((x, t) => add(x, a[t]));
      xs = xs.map((x) => add(x, mlp(layerNorm(blk.ln2, x))));
    }
  }
  return arch.readout(p, xs);
}

// ViT input: 4 patches of 1×2×2 pixels, fixed.
const PATCHES = Array.from({ length: T - 1 }, (_, i) => Float64Array.from({ length: 4 }, (__, j) => Math.sin(3 * i + j + 1)));
const TOKENS = [3, 0, 7, 10, 3];

function vitEmbed(conv: string, cls: string, pos: string) {
  return (p: Params): Float64Array[] => {
    const proj = torchDense({ shape: [E, 4], data: p[`${conv}.weight`].data }, p[`${conv}.bias`]);
    const xs = [Float64Array.from(p[cls].data), ...PATCHES.map((x) => apply(proj, x))];
    return xs.map((x, t) => x.map((v, i) => v + p[pos].data[t * E + i]));
  };
}
function tokenEmbed(tables: string[]) {
  return (p: Params): Float64Array[] =>
    TOKENS.map((id, t) => Float64Array.from({ length: E }, (_, i) => tables.reduce((s, name, j) => s + p[name].data[(j === 0 ? id : j === 1 ? t : 0) * E + i], 0)));
}

function vitParams(rng: Rng, blockTensors: (n: number) => Record<string, number[]>): Record<string, Tensor> {
  const shapes: Record<string, number[]> = {
    cls_token: [1, 1, E],
    pos_embed: [1, T, E],
    'patch_embed.proj.weight': [E, 1, 2, 2],
    'patch_embed.proj.bias': [E],
    'norm.weight': [E],
    'norm.bias': [E],
    'head.weight': [3, E],
    'head.bias': [3],
  };
  for (let n = 0; n < DEPTH; n++) Object.assign(shapes, blockTensors(n));
  return Object.fromEntries(Object.entries(shapes).map(([k, s]) => [k, randn(rng, s)]));
}
const vitHead = (p: Params, xs: Float64Array[]): number[] => Array.from(apply(lin(p, 'head'), layerNorm(nrm(p, 'norm'), xs[0])));
const preNormMlp = (b: string): Record<string, number[]> => ({
  [`${b}.norm1.weight`]: [E], [`${b}.norm1.bias`]: [E], [`${b}.norm2.weight`]: [E], [`${b}.norm2.bias`]: [E],
  [`${b}.mlp.fc1.weight`]: [M, E], [`${b}.mlp.fc1.bias`]: [M], [`${b}.mlp.fc2.weight`]: [E, M], [`${b}.mlp.fc2.bias`]: [E],
});

interface Case {
  readonly family: TransformerFamily;
  readonly params: (rng: Rng) => Record<string, Tensor>;
  readonly arch: Arch;
  /** A qk and a v permutation name, to break across heads. */
  readonly qk: string;
  readonly v: string;
}

const CASES: readonly Case[] = [
  {
    family: 'timm-vit',
    params: (rng) => vitParams(rng, (n) => ({
      [`blocks.${n}.attn.qkv.weight`]: [3 * E, E], [`blocks.${n}.attn.qkv.bias`]: [3 * E],
      [`blocks.${n}.attn.proj.weight`]: [E, E], [`blocks.${n}.attn.proj.bias`]: [E], ...preNormMlp(`blocks.${n}`),
    })),
    arch: {
      post: false,
      causal: false,
      embed: vitEmbed('patch_embed.proj', 'cls_token', 'pos_embed'),
      block: (p, n) => {
        const b = `blocks.${n}`;
        const [w, bias] = [p[`${b}.attn.qkv.weight`], p[`${b}.attn.qkv.bias`]];
        return {
          ln1: nrm(p, `${b}.norm1`), ln2: nrm(p, `${b}.norm2`),
          q: torchDense(w, bias, 0, E), k: torchDense(w, bias, E, E), v: torchDense(w, bias, 2 * E, E),
          o: lin(p, `${b}.attn.proj`), fc1: lin(p, `${b}.mlp.fc1`), fc2: lin(p, `${b}.mlp.fc2`),
        };
      },
      readout: vitHead,
    },
    qk: 'blocks.0.attn.qk',
    v: 'blocks.1.attn.v',
  },
  {
    family: 'vit-sep',
    params: (rng) => vitParams(rng, (n) => {
      const b = `blocks.${n}.attn`;
      const out: Record<string, number[]> = preNormMlp(`blocks.${n}`);
      for (const m of ['q', 'k', 'v', 'proj']) Object.assign(out, { [`${b}.${m}.weight`]: [E, E], [`${b}.${m}.bias`]: [E] });
      return out;
    }),
    arch: {
      post: false,
      causal: false,
      embed: vitEmbed('patch_embed.proj', 'cls_token', 'pos_embed'),
      block: (p, n) => {
        const b = `blocks.${n}`;
        return {
          ln1: nrm(p, `${b}.norm1`), ln2: nrm(p, `${b}.norm2`),
          q: lin(p, `${b}.attn.q`), k: lin(p, `${b}.attn.k`), v: lin(p, `${b}.attn.v`),
          o: lin(p, `${b}.attn.proj`), fc1: lin(p, `${b}.mlp.fc1`), fc2: lin(p, `${b}.mlp.fc2`),
        };
      },
      readout: vitHead,
    },
    qk: 'blocks.1.attn.qk',
    v: 'blocks.0.attn.v',
  },
  {
    family: 'torch-encoder',
    // nn.TransformerEncoder's names: encoder.layers.N, encoder.norm; the ViT parts around it at the root.
    params: (rng) => {
      const p = vitParams(rng, (n) => {
        const b = `encoder.layers.${n}`;
        return {
          [`${b}.self_attn.in_proj_weight`]: [3 * E, E], [`${b}.self_attn.in_proj_bias`]: [3 * E],
          [`${b}.self_attn.out_proj.weight`]: [E, E], [`${b}.self_attn.out_proj.bias`]: [E],
          [`${b}.linear1.weight`]: [M, E], [`${b}.linear1.bias`]: [M], [`${b}.linear2.weight`]: [E, M], [`${b}.linear2.bias`]: [E],
          [`${b}.norm1.weight`]: [E], [`${b}.norm1.bias`]: [E], [`${b}.norm2.weight`]: [E], [`${b}.norm2.bias`]: [E],
        };
      });
      for (const leaf of ['weight', 'bias']) {
        p[`encoder.norm.${leaf}`] = p[`norm.${leaf}`];
        delete p[`norm.${leaf}`];
      }
      return p;
    },
    arch: {
      post: false,
      causal: false,
      embed: vitEmbed('patch_embed.proj', 'cls_token', 'pos_embed'),
      block: (p, n) => {
        const b = `encoder.layers.${n}`;
        const [w, bias] = [p[`${b}.self_attn.in_proj_weight`], p[`${b}.self_attn.in_proj_bias`]];
        return {
          ln1: nrm(p, `${b}.norm1`), ln2: nrm(p, `${b}.norm2`),
          q: torchDense(w, bias, 0, E), k: torchDense(w, bias, E, E), v: torchDense(w, bias, 2 * E, E),
          o: lin(p, `${b}.self_attn.out_proj`), fc1: lin(p, `${b}.linear1`), fc2: lin(p, `${b}.linear2`),
        };
      },
      readout: (p, xs) => Array.from(apply(lin(p, 'head'), layerNorm(nrm(p, 'encoder.norm'), xs[0]))),
    },
    qk: 'layers.0.attn.qk',
    v: 'layers.1.attn.v',
  },
  {
    family: 'bert',
    params: (rng) => {
      const shapes: Record<string, number[]> = {
        'bert.embeddings.word_embeddings.weight': [V, E],
        'bert.embeddings.position_embeddings.weight': [T, E],
        'bert.embeddings.token_type_embeddings.weight': [2, E],
        'bert.embeddings.LayerNorm.weight': [E],
        'bert.embeddings.LayerNorm.bias': [E],
        'bert.pooler.dense.weight': [E, E],
        'bert.pooler.dense.bias': [E],
        'classifier.weight': [3, E],
        'classifier.bias': [3],
      };
      for (let n = 0; n < DEPTH; n++) {
        const b = `bert.encoder.layer.${n}`;
        for (const m of ['attention.self.query', 'attention.self.key', 'attention.self.value', 'attention.output.dense']) {
          Object.assign(shapes, { [`${b}.${m}.weight`]: [E, E], [`${b}.${m}.bias`]: [E] });
        }
        Object.assign(shapes, {
          [`${b}.attention.output.LayerNorm.weight`]: [E], [`${b}.attention.output.LayerNorm.bias`]: [E],
          [`${b}.intermediate.dense.weight`]: [M, E], [`${b}.intermediate.dense.bias`]: [M],
          [`${b}.output.dense.weight`]: [E, M], [`${b}.output.dense.bias`]: [E],
          [`${b}.output.LayerNorm.weight`]: [E], [`${b}.output.LayerNorm.bias`]: [E],
        });
      }
      return Object.fromEntries(Object.entries(shapes).map(([k, s]) => [k, randn(rng, s)]));
    },
    arch: {
      post: true,
      causal: false,
      embed: (p) => {
        const raw = tokenEmbed(['word_embeddings', 'position_embeddings', 'token_type_embeddings'].map((t) => `bert.embeddings.${t}.weight`))(p);
        return raw.map((x) => layerNorm(nrm(p, 'bert.embeddings.LayerNorm'), x));
      },
      block: (p, n) => {
        const b = `bert.encoder.layer.${n}`;
        return {
          ln1: nrm(p, `${b}.attention.output.LayerNorm`), ln2: nrm(p, `${b}.output.LayerNorm`),
          q: lin(p, `${b}.attention.self.query`), k: lin(p, `${b}.attention.self.key`), v: lin(p, `${b}.attention.self.value`),
          o: lin(p, `${b}.attention.output.dense`), fc1: lin(p, `${b}.intermediate.dense`), fc2: lin(p, `${b}.output.dense`),
        };
      },
      readout: (p, xs) => Array.from(apply(lin(p, 'classifier'), apply(lin(p, 'bert.pooler.dense'), xs[0]).map(Math.tanh))),
    },
    qk: 'encoder.layer.0.attn.qk',
    v: 'encoder.layer.1.attn.v',
  },
  {
    family: 'hf-vit',
    params: (rng) => {
      const shapes: Record<string, number[]> = {
        'vit.embeddings.cls_token': [1, 1, E],
        'vit.embeddings.position_embeddings': [1, T, E],
        'vit.embeddings.patch_embeddings.projection.weight': [E, 1, 2, 2],
        'vit.embeddings.patch_embeddings.projection.bias': [E],
        'vit.layernorm.weight': [E],
        'vit.layernorm.bias': [E],
        'classifier.weight': [3, E],
        'classifier.bias': [3],
      };
      for (let n = 0; n < DEPTH; n++) {
        const b = `vit.encoder.layer.${n}`;
        for (const m of ['attention.attention.query', 'attention.attention.key', 'attention.attention.value', 'attention.output.dense']) {
          Object.assign(shapes, { [`${b}.${m}.weight`]: [E, E], [`${b}.${m}.bias`]: [E] });
        }
        Object.assign(shapes, {
          [`${b}.layernorm_before.weight`]: [E], [`${b}.layernorm_before.bias`]: [E],
          [`${b}.layernorm_after.weight`]: [E], [`${b}.layernorm_after.bias`]: [E],
          [`${b}.intermediate.dense.weight`]: [M, E], [`${b}.intermediate.dense.bias`]: [M],
          [`${b}.output.dense.weight`]: [E, M], [`${b}.output.dense.bias`]: [E],
        });
      }
      return Object.fromEntries(Object.entries(shapes).map(([k, s]) => [k, randn(rng, s)]));
    },
    arch: {
      post: false,
      causal: false,
      embed: vitEmbed('vit.embeddings.patch_embeddings.projection', 'vit.embeddings.cls_token', 'vit.embeddings.position_embeddings'),
      block: (p, n) => {
        const b = `vit.encoder.layer.${n}`;
        return {
          ln1: nrm(p, `${b}.layernorm_before`), ln2: nrm(p, `${b}.layernorm_after`),
          q: lin(p, `${b}.attention.attention.query`), k: lin(p, `${b}.attention.attention.key`), v: lin(p, `${b}.attention.attention.value`),
          o: lin(p, `${b}.attention.output.dense`), fc1: lin(p, `${b}.intermediate.dense`), fc2: lin(p, `${b}.output.dense`),
        };
      },
      readout: (p, xs) => Array.from(apply(lin(p, 'classifier'), layerNorm(nrm(p, 'vit.layernorm'), xs[0]))),
    },
    qk: 'encoder.layer.1.attn.qk',
    v: 'encoder.layer.0.attn.v',
  },
  {
    family: 'gpt2',
    params: (rng) => {
      const shapes: Record<string, number[]> = {
        'transformer.wte.weight': [V, E],
        'transformer.wpe.weight': [T, E],
        'transformer.ln_f.weight': [E],
        'transformer.ln_f.bias': [E],
      };
      for (let n = 0; n < DEPTH; n++) {
        const b = `transformer.h.${n}`;
        Object.assign(shapes, {
          [`${b}.ln_1.weight`]: [E], [`${b}.ln_1.bias`]: [E], [`${b}.ln_2.weight`]: [E], [`${b}.ln_2.bias`]: [E],
          [`${b}.attn.c_attn.weight`]: [E, 3 * E], [`${b}.attn.c_attn.bias`]: [3 * E],
          [`${b}.attn.c_proj.weight`]: [E, E], [`${b}.attn.c_proj.bias`]: [E],
          [`${b}.mlp.c_fc.weight`]: [E, M], [`${b}.mlp.c_fc.bias`]: [M],
          [`${b}.mlp.c_proj.weight`]: [M, E], [`${b}.mlp.c_proj.bias`]: [E],
        });
      }
      return Object.fromEntries(Object.entries(shapes).map(([k, s]) => [k, randn(rng, s)]));
    },
    arch: {
      post: false,
      causal: true,
      embed: tokenEmbed(['transformer.wte.weight', 'transformer.wpe.weight']),
      block: (p, n) => {
        const b = `transformer.h.${n}`;
        const [w, bias] = [p[`${b}.attn.c_attn.weight`], p[`${b}.attn.c_attn.bias`]];
        const c1 = (m: string): Dense => conv1dDense(p[`${b}.${m}.weight`], p[`${b}.${m}.bias`]);
        return {
          ln1: nrm(p, `${b}.ln_1`), ln2: nrm(p, `${b}.ln_2`),
          q: conv1dDense(w, bias, 0, E), k: conv1dDense(w, bias, E, E), v: conv1dDense(w, bias, 2 * E, E),
          o: c1('attn.c_proj'), fc1: c1('mlp.c_fc'), fc2: c1('mlp.c_proj'),
        };
      },
      // The LM head tied to wte: logits of every position = ln_f(x) · wteᵀ.
      readout: (p, xs) => xs.flatMap((x) => Array.from(apply(torchDense(p['transformer.wte.weight'], undefined), layerNorm(nrm(p, 'transformer.ln_f'), x)))),
    },
    qk: 'h.1.attn.qk',
    v: 'h.0.attn.v',
  },
];

for (const c of CASES) {
  test(`${c.family}: the spec from real names keeps a float64 forward under head-structured permutations, not under cross-head ones`, () => {
    const params = c.params(createRng(7));
    const { family, spec } = transformerSpecOf(params, { heads: H });
    assert.equal(family, c.family);
    assert.equal(autoSpec(params, { heads: H }).kind, 'transformer');
    const sizes = permSizes(spec, params);
    assert.deepEqual(Object.keys(spec.heads ?? {}).length, DEPTH, 'one head group per block');
    assert.equal(sizes.residual, E);
    const base = forward(c.arch, params);
    for (const seed of [1, 2, 3]) {
      const perms = randomSpecPerms(spec, sizes, seed);
      const permuted = applyPermutation(spec, perms, params);
      const d = maxDiff(forward(c.arch, permuted), base);
      assert.ok(d < 1e-9, `${c.family} seed ${seed}: output changed by ${d}`);
      // The permutation did move the weights (the check above is not vacuous).
      assert.ok(Object.keys(params).some((k) => maxDiff(permuted[k].data, params[k].data) > 0));
    }
    for (const perm of [c.qk, c.v]) {
      const d = maxDiff(forward(c.arch, applyPermutation(spec, crossHead(spec, sizes, perm, H), params)), base);
      assert.ok(d > 1e-6, `${c.family}: '${perm}' across a head boundary changed the output by only ${d}`);
    }
  });
}

// ---------------------------------------------------------------- refusals

const refuses = (fn: () => unknown, re: RegExp): void => {
  assert.throws(fn, (e: unknown) => e instanceof InputError && re.test(e.message), `expected an InputError matching ${re}`);
};

test('refusals: heads missing or not dividing the width, no embedding, no head, an unknown or missing tensor, no transformer block', () => {
  const timm = CASES[0].params(createRng(3));
  refuses(() => transformerSpecOf(timm), /timm ViT.*number of attention heads is not stored.*--spec transformer:H.*width 8: 1, 2, 4, 8/);
  // autoSpec names the transformer's reason alone, not a list of layouts that could never fit.
  refuses(() => autoSpec(timm), /^transformer \(timm ViT\): the number of attention heads/);
  refuses(() => transformerSpecOf(timm, { heads: 3 }), /attention width 8, which 3 heads do not divide/);
  refuses(() => transformerSpecOf(timm, { heads: 0 }), /heads must be a positive integer/);

  const { 'patch_embed.proj.weight': _w, 'patch_embed.proj.bias': _b, ...noEmbed } = timm;
  refuses(() => transformerSpecOf(noEmbed, { heads: H }), /no embedding \('patch_embed\.proj'\)/);
  const { 'head.weight': _hw, 'head.bias': _hb, ...noHead } = timm;
  refuses(() => transformerSpecOf(noHead, { heads: H }), /no head \('head'\) reads the residual stream out/);

  refuses(() => transformerSpecOf({ ...timm, 'blocks.0.attn.rel_pos_h': randn(createRng(1), [9, 4]) }, { heads: H }), /not part of the recognised layout: 'blocks\.0\.attn\.rel_pos_h' \[9, 4\]/);
  refuses(() => transformerSpecOf({ ...timm, 'blocks.0.attn.qkv.weight': randn(createRng(1), [3 * E + 1, E]) }, { heads: H }), /not three equal parts/);
  const { 'blocks.1.mlp.fc2.weight': _f, ...noFc2 } = timm;
  refuses(() => transformerSpecOf(noFc2, { heads: H }), /expected tensor 'blocks\.1\.mlp\.fc2\.weight'/);
  refuses(() => transformerSpecOf({ 'fc1.weight': randn(createRng(1), [3, 4]) }, { heads: H }), /no tensor named like a transformer block/);
});

test('CLI: rebasin spec on a transformer safetensors needs the heads; --spec transformer:4 prints head groups and segments', () => {
  const file = join(VIT, 'vit_fused_a.safetensors');
  const auto = spawnSync(process.execPath, [CLI, 'spec', file], { encoding: 'utf8' });
  assert.equal(auto.status, 2, auto.stderr);
  assert.match(auto.stderr, /number of attention heads is not stored in a state dict.*--spec transformer:H/);
  const ok = spawnSync(process.execPath, [CLI, 'spec', file, '--spec', 'transformer:4', '--json'], { encoding: 'utf8' });
  assert.equal(ok.status, 0, ok.stderr);
  const json = JSON.parse(ok.stdout) as { heads: Record<string, { count: number; perms: string[] }>; segments: Record<string, { axis: number; parts: string[] }> };
  assert.deepEqual(json.heads['layers.0.attn'], { count: 4, perms: ['layers.0.attn.qk', 'layers.0.attn.v'] });
  assert.deepEqual(json.segments['layers.1.self_attn.in_proj_weight'].parts, ['q', 'k', 'v'].map((s) => `layers.1.self_attn.in_proj_weight#${s}`));
});
