/**
 * Building small ONNX graphs by hand and checking a derived spec against ONNX Runtime: the original and the
 * permuted model must compute the same outputs, and each tap must carry its permutation. Shared by the
 * spec-derivation suites; the truth here is ONNX Runtime, never rebasin's own forward pass.
 */
import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import type { OnnxSpec } from '../../src/permutation-spec/onnx-graph.js';
import { type OnnxModel, onnxModelFromObject, serializeOnnx, withInitializers } from '../../src/io/onnx.js';
import { type PermutationSpec, permSizes, specFromAxes, validateSpec } from '../../src/permutation-spec/spec.js';
import { applyPermutation, type Perms } from '../../src/permute.js';
import { randomSpecPerms } from '../../src/permutation-spec/heads.js';
import { createRng } from '../../src/random.js';
import type { Params, Tensor } from '../../src/tensor.js';
import { isInputError } from '../../src/errors.js';


/** A spec's permutations as a canonical partition of 'tensor:axis' strings (names ignored). */
export function partition(spec: PermutationSpec, rename: (t: string) => readonly string[] = (t) => [t]): string[] {
  return Object.values(spec.permToAxes)
    .map((axes) => axes.flatMap((a) => rename(a.tensor).map((t) => `${t}:${a.axis}`)).sort().join(' '))
    .sort();
}

/** The model with extra graph outputs (float32, shape left to the runtime). */
export function withOutputs(model: OnnxModel, names: readonly string[]): OnnxModel {
  const g = model.proto.graph!;
  const extra = names.map((name) => ({ name, type: { tensor_type: { elem_type: 1 } } }));
  return onnxModelFromObject({ ...model.proto, graph: { ...g, output: [...(g.output ?? []), ...extra] } }, model.label);
}

export async function run(model: OnnxModel, feeds: Record<string, ort.Tensor>): Promise<Record<string, { dims: readonly number[]; data: Float32Array }>> {
  const session = await ort.InferenceSession.create(serializeOnnx(model));
  try {
    const out = await session.run(feeds);
    const res: Record<string, { dims: readonly number[]; data: Float32Array }> = {};
    for (const [k, v] of Object.entries(out)) res[k] = { dims: v.dims, data: v.data as Float32Array };
    return res;
  } finally {
    await session.release();
  }
}

export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** take(t, perm, axis) on a runtime output, written independently of src/tensor.ts. */
export function gather(t: { dims: readonly number[]; data: Float32Array }, perm: Int32Array, axis: number): Float32Array {
  const ax = axis < 0 ? t.dims.length + axis : axis;
  const n = t.dims[ax];
  const inner = t.dims.slice(ax + 1).reduce((a, b) => a * b, 1);
  const outer = t.data.length / (n * inner);
  const out = new Float32Array(t.data.length);
  for (let o = 0; o < outer; o++) for (let i = 0; i < n; i++) for (let k = 0; k < inner; k++) out[(o * n + i) * inner + k] = t.data[(o * n + perm[i]) * inner + k];
  return out;
}

/**
 * Applies random permutations through `derived.spec`, runs the original and permuted models on `feeds`,
 * and checks: outputs agree within `tol`; each tap of the permuted model is the original tap gathered by
 * its permutation. Returns the permutations used.
 */
export async function checkInvariance(model: OnnxModel, params: Params, derived: OnnxSpec, feeds: Record<string, ort.Tensor>, tol: number, seed: number): Promise<Perms> {
  const { spec, taps } = derived;
  validateSpec(spec, { label: model.label, params });
  // Head-structured where the spec has head groups: a flat permutation across heads is not a symmetry.
  const perms = randomSpecPerms(spec, permSizes(spec, params), seed);
  const permuted = applyPermutation(spec, perms, params);
  const tapValues = [...new Set(Object.values(taps).map((t) => t.value))];
  const outNames = (model.graph.outputs ?? []).map((o) => o.name);
  const a = await run(withOutputs(model, tapValues), feeds);
  const b = await run(withOutputs(withInitializers(model, permuted), tapValues), feeds);
  for (const o of outNames) {
    const d = maxAbsDiff(a[o].data, b[o].data);
    assert.ok(d <= tol, `${model.label}: output '${o}' changed by ${d} under the derived spec`);
  }
  for (const [p, tap] of Object.entries(taps)) {
    const d = maxAbsDiff(gather(a[tap.value], perms[p], tap.axis), b[tap.value].data);
    assert.ok(d <= tol, `${model.label}: tap '${tap.value}' axis ${tap.axis} does not carry permutation '${p}' (diff ${d})`);
  }
  return perms;
}

/** The spec with one tie removed: the last axis of the permutation that touches the most axes. */
export function dropOneTie(spec: PermutationSpec): { spec: PermutationSpec; dropped: string } {
  const [, axes] = Object.entries(spec.permToAxes).sort((x, y) => y[1].length - x[1].length)[0];
  const last = axes[axes.length - 1];
  const table: Record<string, (string | null)[]> = {};
  for (const [t, list] of Object.entries(spec.axesToPerm)) table[t] = [...list];
  table[last.tensor][last.axis] = null;
  return { spec: specFromAxes(table, spec.heads, spec.segments), dropped: `${last.tensor}:${last.axis}` };
}

export async function checkBrokenSpecChangesOutputs(model: OnnxModel, params: Params, spec: PermutationSpec, feeds: Record<string, ort.Tensor>, seed: number): Promise<void> {
  const { spec: broken, dropped } = dropOneTie(spec);
  const perms = randomSpecPerms(spec, permSizes(spec, params), seed);
  const a = await run(model, feeds);
  const b = await run(withInitializers(model, applyPermutation(broken, perms, params)), feeds);
  const o = model.graph.outputs[0].name;
  const d = maxAbsDiff(a[o].data, b[o].data);
  assert.ok(d > 1e-2, `${model.label}: dropping the tie on ${dropped} should change the outputs, max diff ${d}`);
}

export type Attr = Record<string, unknown>;
export const ints = (name: string, v: number[]): Attr => ({ name, type: 7, ints: v });
export const int = (name: string, v: number): Attr => ({ name, type: 2, i: v });
export const float = (name: string, v: number): Attr => ({ name, type: 1, f: v });

export function vi(name: string, dims: (number | string)[]): Attr {
  return { name, type: { tensor_type: { elem_type: 1, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: d })) } } } };
}

export interface Built {
  model: OnnxModel;
  params: Record<string, Tensor>;
}

/** A model from nodes and random float initializers (`positive` ones are in [0.5, 1.5], e.g. variances). */
export function build(
  label: string,
  inits: Record<string, number[]>,
  nodes: Attr[],
  input: Attr | readonly Attr[],
  output: Attr | readonly Attr[],
  opts: { positive?: string[]; int64?: Record<string, number[] | number>; seed?: number } = {},
): Built {
  const rng = createRng(opts.seed ?? 5);
  const params: Record<string, Tensor> = {};
  const initializer: Attr[] = [];
  for (const [name, shape] of Object.entries(inits)) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < data.length; i++) data[i] = opts.positive?.includes(name) ? 0.5 + rng.next() : rng.normal() * 0.5;
    params[name] = { shape, data };
    initializer.push({ name, dims: shape, data_type: 1, raw_data: new Uint8Array(data.buffer.slice(0)) });
  }
  // A bare number is a scalar (rank 0), as torch writes Gather indices.
  for (const [name, v] of Object.entries(opts.int64 ?? {})) {
    initializer.push(typeof v === 'number' ? { name, dims: [], data_type: 7, int64_data: [v] } : { name, dims: [v.length], data_type: 7, int64_data: v });
  }
  const model = onnxModelFromObject(
    { ir_version: 8, opset_import: [{ domain: '', version: 17 }], graph: { name: label, node: nodes, initializer, input: [input].flat(), output: [output].flat() } },
    label,
  );
  return { model, params };
}

export function randomInput(shape: number[], seed: number): ort.Tensor {
  const rng = createRng(seed);
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < data.length; i++) data[i] = rng.normal();
  return new ort.Tensor('float32', data, shape);
}

export function expectRefusal(fn: () => unknown, ...patterns: RegExp[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(isInputError(e), `expected an InputError, got ${String(e)}`);
    for (const p of patterns) assert.match((e as Error).message, p);
    return true;
  });
}
