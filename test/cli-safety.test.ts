/**
 * The CLI never changes what a model computes without saying so:
 * - B's graph must be A's (io/onnx-compare.ts): a flipped attribute, an extra or missing node, a graph ONNX
 *   Runtime cannot load are refused naming both files and the difference; float values held in Constant
 *   nodes may differ for align (B keeps its graph) but not where models are averaged (merge, barrier, report);
 * - P(B) must compute B's function before anything is written (the function check): a wrong spec is
 *   refused with exit 2 naming the output and the deviation, and no output file exists;
 * - --strict refuses a graph the spec derivation does not fully understand, and without it the partial spec
 *   is announced (align/merge), listed (`rebasin spec`), and a spec that permutes nothing is said to.
 * Truth for "same function" is ONNX Runtime running the files.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { type OnnxModel, onnxModelFromObject, onnxParams, serializeOnnx } from '../src/io/onnx.js';
import { readOnnxFile } from '../src/io/onnx-file.js';
import { assertSameOnnxGraph, compareOnnxGraphs } from '../src/io/onnx-compare.js';
import { createFunctionChecker, ProbeUnavailable } from '../src/measure/function-check.js';
import { assertSameFunctionStreamed, LOW_MEMORY_CHECK_LIMIT } from '../src/cli/function-check.js';
import { formatSpecNotes } from '../src/cli/spec.js';
import { specFromOnnx } from '../src/permutation-spec/onnx-graph.js';
import { specFromJson } from '../src/permutation-spec/json.js';
import { permSizes } from '../src/permutation-spec/spec.js';
import { applyPermutation, randomPerms } from '../src/permute.js';
import { createRng } from '../src/random.js';
import { isInputError } from '../src/errors.js';
import type { Context } from '../src/cli/common.js';

const cli = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const fixtures = fileURLToPath(new URL('../../test/fixtures/models/', import.meta.url));

function run(args: string[]) {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function scratch(): string {
  return mkdtempSync(join(tmpdir(), 'rebasin-safety-'));
}

// ---------------------------------------------------------------------------------------------------------
// Small graphs written by hand (onnx.proto field names; opset 17)

type Obj = Record<string, unknown>;

const dim = (d: number | string): Obj => (typeof d === 'number' ? { dim_value: d } : { dim_param: d });
const vi = (name: string, elem: number, shape: readonly (number | string)[] | null): Obj => ({
  name,
  type: { tensor_type: shape === null ? { elem_type: elem } : { elem_type: elem, shape: { dim: shape.map(dim) } } },
});
const f32 = (name: string, dims: readonly number[], values: ArrayLike<number>): Obj => ({ name, data_type: 1, dims: [...dims], float_data: Array.from(values) });
const i64 = (name: string, dims: readonly number[], values: readonly number[]): Obj => ({ name, data_type: 7, dims: [...dims], int64_data: [...values] });
const aInt = (name: string, i: number): Obj => ({ name, type: 2, i });
const aInts = (name: string, ints: readonly number[]): Obj => ({ name, type: 7, ints: [...ints] });
const aTensor = (name: string, t: Obj): Obj => ({ name, type: 4, t });
const aGraph = (name: string, g: Obj): Obj => ({ name, type: 5, g });
const node = (op: string, inputs: string[], outputs: string[], name: string, attribute: Obj[] = [], domain = ''): Obj => ({ op_type: op, input: inputs, output: outputs, name, attribute, domain });

function modelOf(graph: Obj, label: string, extraOpsets: Obj[] = []): OnnxModel {
  return onnxModelFromObject({ ir_version: 8, opset_import: [{ domain: '', version: 17 }, ...extraOpsets], graph }, label);
}

function randn(rng: ReturnType<typeof createRng>, n: number, scale = 0.7): number[] {
  return Array.from({ length: n }, () => scale * rng.normal());
}

interface TinyOptions {
  /** Multiply the first hidden layer by a Constant node holding this float (a weight kept in the graph). */
  constant?: number;
  /** An op after the first hidden layer: one the spec derivation does not understand (ORT runs it), or one ORT does not know. */
  extra?: 'lpnorm' | 'unknown';
  /** Leave the data input's shape unrecorded. */
  noInputShape?: boolean;
}

/** x [N, 2] -> Gemm 6 -> Relu [-> Mul const | LpNormalization | com.example.Foo] -> Gemm 6 -> Relu -> Gemm 3 -> y. */
function tinyMlp(seed: number, label: string, o: TinyOptions = {}): OnnxModel {
  const rng = createRng(seed);
  const nodes: Obj[] = [
    node('Gemm', ['x', 'fc1.weight', 'fc1.bias'], ['h1'], 'fc1', [aInt('transB', 1)]),
    node('Relu', ['h1'], ['r1'], 'relu1'),
  ];
  let r1 = 'r1';
  if (o.constant !== undefined) {
    nodes.push(node('Constant', [], ['c'], 'scale', [aTensor('value', f32('', [1], [o.constant]))]));
    nodes.push(node('Mul', ['r1', 'c'], ['s1'], 'mul'));
    r1 = 's1';
  }
  if (o.extra === 'lpnorm') {
    nodes.push(node('LpNormalization', [r1], ['n1'], 'lpnorm', [aInt('axis', 1), aInt('p', 2)]));
    r1 = 'n1';
  } else if (o.extra === 'unknown') {
    nodes.push(node('Foo', [r1], ['n1'], 'foo', [], 'com.example'));
    r1 = 'n1';
  }
  nodes.push(
    node('Gemm', [r1, 'fc2.weight', 'fc2.bias'], ['h2'], 'fc2', [aInt('transB', 1)]),
    node('Relu', ['h2'], ['r2'], 'relu2'),
    node('Gemm', ['r2', 'fc3.weight', 'fc3.bias'], ['y'], 'fc3', [aInt('transB', 1)]),
  );
  const graph = {
    name: 'tiny',
    node: nodes,
    initializer: [
      f32('fc1.weight', [6, 2], randn(rng, 12)),
      f32('fc1.bias', [6], randn(rng, 6, 0.2)),
      f32('fc2.weight', [6, 6], randn(rng, 36)),
      f32('fc2.bias', [6], randn(rng, 6, 0.2)),
      f32('fc3.weight', [3, 6], randn(rng, 18)),
      f32('fc3.bias', [3], randn(rng, 3, 0.2)),
    ],
    input: [vi('x', 1, o.noInputShape ? null : ['N', 2])],
    output: [vi('y', 1, ['N', 3])],
  };
  return modelOf(graph, label, o.extra === 'unknown' ? [{ domain: 'com.example', version: 1 }] : []);
}

/** A copy of `model` with its graph's nodes replaced (everything else as it is). */
function withNodes(model: OnnxModel, nodes: (list: readonly Obj[]) => Obj[], label = model.label): OnnxModel {
  const g = model.proto.graph as unknown as Obj;
  return onnxModelFromObject({ ...(model.proto as unknown as Obj), graph: { ...g, node: nodes([...((g.node as Obj[]) ?? [])]) } }, label);
}

const readParams = (m: OnnxModel) => onnxParams(m);

function save(dir: string, name: string, model: OnnxModel): string {
  const path = join(dir, name);
  writeFileSync(path, serializeOnnx(model));
  return path;
}

async function outputsOf(path: string, feeds: Record<string, ort.Tensor>): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(path);
  try {
    const out = await s.run(feeds);
    return out[s.outputNames[0]].data as Float32Array;
  } finally {
    await s.release();
  }
}

const tinyFeeds = (): Record<string, ort.Tensor> => ({ x: new ort.Tensor('float32', Float32Array.from({ length: 16 }, (_, i) => Math.sin(i + 1) * 2), [8, 2]) });

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

// ---------------------------------------------------------------------------------------------------------
// 1. Comparing graphs

test('compareOnnxGraphs: equal graphs (and names that differ) pass; each kind of difference is found and named', () => {
  const a = tinyMlp(1, 'a.onnx', { constant: 0.5 });
  const b = tinyMlp(2, 'b.onnx', { constant: 0.5 });
  assert.deepEqual(compareOnnxGraphs(a, b), { structure: null, constant: null }, 'other weights, same graph');
  // Node names do not change what a graph computes.
  const renamed = withNodes(b, (ns) => ns.map((n, i) => ({ ...n, name: `renamed_${i}` })));
  assert.equal(compareOnnxGraphs(a, renamed).structure, null);

  const structure = (m: OnnxModel) => compareOnnxGraphs(a, m).structure;
  // transB flipped on the square fc2 (the weights still fit, so shapes alone cannot tell).
  const flipped = withNodes(b, (ns) => ns.map((n) => (n.name === 'fc2' ? { ...n, attribute: [aInt('transB', 0)] } : n)));
  const d1 = structure(flipped);
  assert.ok(d1 !== null);
  assert.match(d1.where, /node #4 'fc2' \(Gemm\)/);
  assert.match(d1.detail, /attribute 'transB' is 1 in A, 0 in B/);
  // An attribute removed (Gemm's default transB is 0).
  const removed = withNodes(b, (ns) => ns.map((n) => (n.name === 'fc2' ? { ...n, attribute: [] } : n)));
  assert.match(structure(removed)!.detail, /attribute 'transB' is 1 in A, not set in B/);
  // An extra node, and a missing one.
  const extra = withNodes(b, (ns) => [...ns.slice(0, -1), node('Relu', ['y0'], ['y'], 'extra_relu'), { ...ns[ns.length - 1], output: ['y0'] }]);
  assert.match(JSON.stringify(structure(extra)), /fc3|extra_relu/);
  const missing = withNodes(b, (ns) => ns.filter((n) => n.name !== 'relu2').map((n) => (n.name === 'fc3' ? { ...n, input: ['h2', 'fc3.weight', 'fc3.bias'] } : n)));
  const d2 = structure(missing)!;
  assert.match(`${d2.where}: ${d2.detail}`, /^node #5: 'relu2' \(Relu\) in A, 'fc3' \(Gemm\) in B$/);
  const shorter = withNodes(b, (ns) => ns.slice(0, -1));
  assert.match(structure(shorter)!.detail, /B ends after 6 nodes, A goes on with node #6 'fc3' \(Gemm\)/);
  // Another op, another domain.
  const otherOp = withNodes(b, (ns) => ns.map((n) => (n.name === 'relu1' ? { ...n, op_type: 'Sigmoid' } : n)));
  assert.match(structure(otherOp)!.detail, /'relu1' \(Relu\) in A, 'relu1' \(Sigmoid\) in B/);
  // Rewired inputs.
  const rewired = withNodes(b, (ns) => ns.map((n) => (n.name === 'fc2' ? { ...n, input: ['s1', 'fc2.weight', 'fc1.bias'] } : n)));
  assert.match(structure(rewired)!.detail, /reads \['s1', 'fc2.weight', 'fc2.bias'\] in A, \['s1', 'fc2.weight', 'fc1.bias'\] in B/);

  // Graph inputs: a fixed size differs (a symbolic name does not).
  const g = b.proto.graph as unknown as Obj;
  const otherInput = onnxModelFromObject({ ...(b.proto as unknown as Obj), graph: { ...g, input: [vi('x', 1, ['N', 3])] } }, 'b.onnx');
  assert.match(JSON.stringify(structure(otherInput)), /graph input 'x'.*float32 \[N, 2\] in A, float32 \[N, 3\] in B/);
  const otherSymbol = onnxModelFromObject({ ...(b.proto as unknown as Obj), graph: { ...g, input: [vi('x', 1, ['batch', 2])] } }, 'b.onnx');
  assert.equal(structure(otherSymbol), null);
  // Initializers: a missing one, another shape.
  const inits = g.initializer as Obj[];
  const lessInit = onnxModelFromObject({ ...(b.proto as unknown as Obj), graph: { ...g, initializer: inits.filter((t) => t.name !== 'fc3.bias') } }, 'b.onnx');
  assert.match(JSON.stringify(structure(lessInit)), /initializer 'fc3.bias'.*is in A but not in B/);
  // Opsets.
  const otherOpset = onnxModelFromObject({ ...(b.proto as unknown as Obj), opset_import: [{ domain: '', version: 13 }] }, 'b.onnx');
  assert.match(JSON.stringify(structure(otherOpset)), /opset imports.*ai.onnx 17 in A, ai.onnx 13 in B/);

  // A Constant's float value: not structure, a constant difference.
  const otherConst = tinyMlp(2, 'b.onnx', { constant: 0.7 });
  const c = compareOnnxGraphs(a, otherConst);
  assert.equal(c.structure, null);
  assert.ok(c.constant !== null);
  assert.match(c.constant.where, /Constant node 'scale'/);
  assert.match(c.constant.detail, /0\.5 in A, 0\.7\d* in B/);
  assert.doesNotThrow(() => assertSameOnnxGraph(a, otherConst, { averages: false }));
  assert.throws(() => assertSameOnnxGraph(a, otherConst, { averages: true }), (e: Error) => isInputError(e) && /a\.onnx \(A\), b\.onnx \(B\): weights held in Constant node 'scale' differ between A and B.*rebasin averages only initializers/.test(e.message));
  assert.throws(() => assertSameOnnxGraph(a, flipped, { averages: false }), (e: Error) => isInputError(e) && /^b\.onnx \(B\) does not have the graph of a\.onnx \(A\): node #4 'fc2' \(Gemm\): attribute 'transB' is 1 in A, 0 in B/.test(e.message) && !e.message.includes('\n'));
});

test('compareOnnxGraphs: integer constants are structure; subgraphs of If are compared recursively, their float initializers as constants', () => {
  // Reshape targets (int64 initializers) decide what the graph computes.
  const reshape = (target: number[], label: string) =>
    modelOf(
      {
        name: 'r',
        node: [node('Reshape', ['x', 'shape'], ['y'], 'reshape')],
        initializer: [i64('shape', [2], target)],
        input: [vi('x', 1, [2, 6])],
        output: [vi('y', 1, null)],
      },
      label,
    );
  const d = compareOnnxGraphs(reshape([3, 4], 'a'), reshape([4, 3], 'b')).structure;
  assert.ok(d !== null);
  assert.match(`${d.where}: ${d.detail}`, /initializer 'shape': holds different values \(first at flat index 0: 3 in A, 4 in B\)/);

  // If with a branch holding an initializer and an Add.
  const branch = (bias: number, op = 'Add'): Obj => ({
    name: 'then',
    node: [node(op, ['x', 'b_in'], ['t_out'], 'inner')],
    initializer: [f32('b_in', [1], [bias])],
    input: [],
    output: [vi('t_out', 1, [1])],
  });
  const ifModel = (bias: number, label: string, op = 'Add') =>
    modelOf(
      {
        name: 'i',
        node: [node('If', ['cond'], ['y'], 'if', [aGraph('then_branch', branch(bias, op)), aGraph('else_branch', branch(0))])],
        input: [vi('cond', 9, []), vi('x', 1, [1])],
        output: [vi('y', 1, [1])],
      },
      label,
    );
  const same = compareOnnxGraphs(ifModel(1, 'a'), ifModel(1, 'b'));
  assert.deepEqual(same, { structure: null, constant: null });
  const op = compareOnnxGraphs(ifModel(1, 'a'), ifModel(1, 'b', 'Sub')).structure;
  assert.ok(op !== null);
  assert.match(`${op.where}: ${op.detail}`, /node #0 'if' \(If\), attribute 'then_branch': node #0.*'inner' \(Add\) in A, 'inner' \(Sub\) in B/);
  const value = compareOnnxGraphs(ifModel(1, 'a'), ifModel(2, 'b'));
  assert.equal(value.structure, null);
  assert.ok(value.constant !== null);
  assert.match(value.constant.where, /attribute 'then_branch': initializer 'b_in'/);
});

// ---------------------------------------------------------------------------------------------------------
// 2. The CLI refuses a B whose graph is not A's

test('align, merge, report refuse a B whose graph differs from A\'s (transB flipped, node added or missing, not loadable), naming both files; nothing is written', () => {
  const dir = scratch();
  try {
    const a = join(dir, 'mlp_a.onnx');
    copyFileSync(join(fixtures, 'mlp_a.onnx'), a);
    const b = readOnnxFile(join(fixtures, 'mlp_b.onnx')).model;
    // fc2.weight is 128x128: with transB flipped B still has A's shapes, and a different function.
    const cases: [string, OnnxModel, RegExp][] = [
      ['flipped.onnx', withNodes(b, (ns) => ns.map((n) => (n.name === '/fc2/Gemm' ? { ...n, attribute: (n.attribute as Obj[]).map((x) => (x.name === 'transB' ? aInt('transB', 0) : x)) } : n))), /node #2 '\/fc2\/Gemm' \(Gemm\): attribute 'transB' is 1 in A, 0 in B/],
      ['extra.onnx', withNodes(b, (ns) => [...ns.slice(0, 4), node('Relu', ['/Relu_1_output_0'], ['/extra'], '/extra'), { ...ns[4], input: ['/extra', 'fc3.weight', 'fc3.bias'] }]), /node #4: '\/fc3\/Gemm' \(Gemm\) in A, '\/extra' \(Relu\) in B/],
      ['missing.onnx', withNodes(b, (ns) => [ns[0], ns[1], ns[2], { ...ns[4], input: ['/fc2/Gemm_output_0', 'fc3.weight', 'fc3.bias'] }]), /node #3: '\/Relu_1' \(Relu\) in A, '\/fc3\/Gemm' \(Gemm\) in B/],
      // A node ONNX Runtime does not know: B cannot even be loaded.
      ['unloadable.onnx', withNodes(b, (ns) => ns.map((n) => (n.name === '/Relu' ? { ...n, op_type: 'NoSuchOp' } : n))), /'\/Relu' \(Relu\) in A, '\/Relu' \(NoSuchOp\) in B/],
    ];
    for (const [name, model, detail] of cases) {
      const path = save(dir, name, model);
      for (const [cmd, out] of [['align', 'out.onnx'], ['merge', 'merged.onnx']]) {
        const r = run([cmd, a, path, '-o', join(dir, out)]);
        assert.equal(r.code, 2, `${cmd} ${name}: ${r.stderr}`);
        const line = r.stderr.trim();
        assert.equal(line.split('\n').length, 1, line);
        assert.ok(line.includes(path) && line.includes(a), `names both files: ${line}`);
        assert.match(line, detail);
        assert.ok(!existsSync(join(dir, out)), `${cmd} ${name} wrote ${out}`);
      }
      const rep = run(['barrier', a, path, '--data', `${fixtures}fmnist_test256-images-idx3-ubyte.gz,${fixtures}fmnist_test256-labels-idx1-ubyte.gz`, '--points', '1']);
      assert.equal(rep.code, 2, rep.stderr);
      assert.match(rep.stderr, detail);
    }
    // --low-memory compares the graphs too.
    const low = run(['align', a, join(dir, 'flipped.onnx'), '-o', join(dir, 'out.onnx'), '--low-memory']);
    assert.equal(low.code, 2, low.stderr);
    assert.match(low.stderr, /attribute 'transB' is 1 in A, 0 in B/);
    assert.ok(!existsSync(join(dir, 'out.onnx')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a graph ONNX Runtime cannot load is refused even when A has it too (the function check loads it); nothing is written', () => {
  const dir = scratch();
  try {
    const a = save(dir, 'a.onnx', tinyMlp(1, 'a', { extra: 'unknown' }));
    const b = save(dir, 'b.onnx', tinyMlp(2, 'b', { extra: 'unknown' }));
    for (const cmd of ['align', 'merge']) {
      const r = run([cmd, a, b, '-o', join(dir, 'out.onnx')]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /ONNX Runtime cannot load the model/);
      assert.ok(!existsSync(join(dir, 'out.onnx')));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('Constant node weights: merge and barrier refuse when they differ, align keeps B\'s own', async () => {
  const dir = scratch();
  try {
    const a = save(dir, 'a.onnx', tinyMlp(1, 'a', { constant: 0.5 }));
    const b = save(dir, 'b.onnx', tinyMlp(2, 'b', { constant: 0.75 }));
    const merged = join(dir, 'merged.onnx');
    const m = run(['merge', a, b, '-o', merged]);
    assert.equal(m.code, 2, m.stderr);
    assert.match(m.stderr, /weights held in Constant node 'scale' differ between A and B.*rebasin averages only initializers/);
    assert.ok(m.stderr.includes(a) && m.stderr.includes(b));
    assert.ok(!existsSync(merged));
    const bar = run(['barrier', a, b, '--data', 'synthetic:64', '--points', '2']);
    assert.equal(bar.code, 2, bar.stderr);
    assert.match(bar.stderr, /weights held in Constant node 'scale'/);

    const out = join(dir, 'b_aligned.onnx');
    const r = run(['align', a, b, '-o', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /function check passed/);
    const feeds = tinyFeeds();
    assert.ok(maxAbsDiff(await outputsOf(b, feeds), await outputsOf(out, feeds)) <= 1e-5, 'the aligned B computes what B computes, with its own constant');
    const scale = readOnnxFile(out).model.graph.nodes.find((n) => n.name === 'scale')!.attributes.value as { data: Float32Array };
    assert.equal(scale.data[0], 0.75);
    // Equal constants: merge goes ahead.
    const b2 = save(dir, 'b2.onnx', tinyMlp(2, 'b2', { constant: 0.5 }));
    assert.equal(run(['merge', a, b2, '-o', merged]).code, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------------------------------------------------
// 3. The function check

/** mlp_a's derived spec as JSON with one tie dropped: fc2.weight's input axis no longer follows fc1. */
function brokenSpecFile(dir: string): string {
  const r = run(['spec', join(fixtures, 'mlp_a.onnx'), '--json']);
  assert.equal(r.code, 0, r.stderr);
  const json = JSON.parse(r.stdout);
  assert.deepEqual(json.axes['fc2.weight'], ['fc2', 'fc1']);
  json.axes['fc2.weight'] = ['fc2', null];
  const path = join(dir, 'broken-spec.json');
  writeFileSync(path, JSON.stringify(json));
  return path;
}

test('a spec that breaks the function: align (in memory and --low-memory) and merge refuse with exit 2 naming the output and the deviation; no output file', () => {
  const dir = scratch();
  try {
    for (const f of readdirSync(fixtures).filter((f) => f.startsWith('mlp_'))) copyFileSync(join(fixtures, f), join(dir, f));
    const spec = brokenSpecFile(dir);
    const [a, b] = [join(dir, 'mlp_a.onnx'), join(dir, 'mlp_b.onnx')];
    const runs: [string, string[], string][] = [
      ['align', ['align', a, b, '-o', join(dir, 'out.onnx'), '--spec', spec, '--perms', join(dir, 'perms.json')], 'out.onnx'],
      ['align --low-memory', ['align', join(dir, 'mlp_a.ext.onnx'), b, '-o', join(dir, 'low.onnx'), '--spec', spec, '--low-memory'], 'low.onnx'],
      ['merge', ['merge', a, b, '-o', join(dir, 'merged.onnx'), '--spec', spec], 'merged.onnx'],
      ['merge (three models)', ['merge', a, b, a, '-o', join(dir, 'merged3.onnx'), '--spec', spec], 'merged3.onnx'],
    ];
    for (const [what, args, out] of runs) {
      const r = run(args);
      assert.equal(r.code, 2, `${what}: ${r.stderr}`);
      assert.match(r.stderr, /does not compute what .* computes: output 'logits' deviates by up to [0-9.e+-]+ \(allowed [0-9.e+-]+ = 0\.001 x max\(1, max\|output\| [0-9.e+-]+\)\)/, what);
      assert.match(r.stderr, new RegExp(`nothing was written to .*${out.replace('.', '\\.')}`));
      assert.ok(!existsSync(join(dir, out)), `${what} wrote ${out}`);
      assert.ok(!existsSync(join(dir, `${out}.data`)));
    }
    assert.ok(!existsSync(join(dir, 'perms.json')));
    // With the derived spec the same commands pass the check and write.
    const ok = run(['align', a, b, '-o', join(dir, 'out.onnx')]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stderr, /function check passed/);
    const low = run(['align', join(dir, 'mlp_a.ext.onnx'), b, '-o', join(dir, 'low.onnx'), '--low-memory']);
    assert.equal(low.code, 0, low.stderr);
    assert.match(low.stderr, /function check passed/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('function checker: a correct permutation passes at rounding level, a dropped tie fails far above the tolerance (both fixtures)', async () => {
  for (const name of ['mlp_b.onnx', 'resnet_b.onnx']) {
    const { model, params } = readOnnxFile(join(fixtures, name));
    const { spec } = specFromOnnx(model);
    const perms = randomPerms(permSizes(spec, params), 3);
    const checker = await createFunctionChecker(ort, model, { seed: 1 });
    assert.ok(!(checker instanceof ProbeUnavailable));
    try {
      const good = await checker.check(params, applyPermutation(spec, perms, params));
      if (good.status !== 'passed') throw new Error(`${name}: correct permutation ${good.status}`);
      const [dev] = good.outputs;
      assert.ok(dev.maxDeviation < dev.allowed / 100, `${name}: correct permutation deviates by ${dev.maxDeviation} (allowed ${dev.allowed})`);
      // Drop the tie of the widest permutation on its last axis.
      const json = JSON.parse(JSON.stringify(spec.axesToPerm)) as Record<string, (string | null)[]>;
      const [, axes] = Object.entries(spec.permToAxes).sort((x, y) => y[1].length - x[1].length)[0];
      const last = axes[axes.length - 1];
      json[last.tensor][last.axis] = null;
      const broken = specFromJson(JSON.stringify({ axes: json }));
      const bad = await checker.check(params, applyPermutation(broken, perms, params));
      if (bad.status !== 'failed') throw new Error(`${name}: broken spec ${bad.status}`);
      assert.ok(bad.outputs[0].maxDeviation > 10 * bad.outputs[0].allowed, `${name}: broken spec deviates by only ${bad.outputs[0].maxDeviation}`);
    } finally {
      await checker.dispose();
    }
  }
});

test('function check inputs: integer token ids get valid indices; an input without a shape skips the check with a warning', async () => {
  const dir = scratch();
  try {
    // ids [N, T] (int64) -> Gather from a 10 x 2 table -> ReduceMean over T -> the tiny MLP.
    const withEmbedding = (seed: number, label: string): OnnxModel => {
      const m = tinyMlp(seed, label);
      const g = m.proto.graph as unknown as Obj;
      const rng = createRng(seed + 100);
      return onnxModelFromObject(
        {
          ...(m.proto as unknown as Obj),
          graph: {
            ...g,
            node: [node('Gather', ['embed', 'ids'], ['e'], 'gather', [aInt('axis', 0)]), node('ReduceMean', ['e'], ['x'], 'pool', [aInts('axes', [1]), aInt('keepdims', 0)]), ...(g.node as Obj[])],
            initializer: [f32('embed', [10, 2], randn(rng, 20)), ...(g.initializer as Obj[])],
            input: [vi('ids', 7, ['N', 'T'])],
          },
        },
        label,
      );
    };
    const a = save(dir, 'a.onnx', withEmbedding(1, 'a'));
    const b = save(dir, 'b.onnx', withEmbedding(2, 'b'));
    const checker = await createFunctionChecker(ort, readOnnxFile(b).model);
    assert.ok(!(checker instanceof ProbeUnavailable));
    assert.match(checker.probe, /input 'ids' int64 \[2, 2\] \(indices below 10\)/);
    await checker.dispose();
    const r = run(['align', a, b, '-o', join(dir, 'out.onnx')]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /function check passed/);
    assert.doesNotMatch(r.stderr, /skipped/);

    // An input whose shape is not recorded: no probe can be made up; said on stderr (even with --quiet).
    const c = save(dir, 'c.onnx', tinyMlp(1, 'c', { noInputShape: true }));
    const d = save(dir, 'd.onnx', tinyMlp(2, 'd', { noInputShape: true }));
    const s = run(['--quiet', 'align', c, d, '-o', join(dir, 'out2.onnx')]);
    assert.equal(s.code, 0, s.stderr);
    assert.match(s.stderr, /warning: function check skipped: input 'x' has no recorded shape/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('function checker: symbolic lengths too short for the model are retried longer; batch dimensions stay one size', async () => {
  // x [N, 1, T] -> Conv k=5 (no padding: T must be >= 5) -> Relu -> Conv k=1 -> y; a state [2, N, 4] beside it.
  const rng = createRng(4);
  const m = modelOf(
    {
      name: 'conv1d',
      node: [
        node('Conv', ['x', 'c1.weight', 'c1.bias'], ['h'], 'c1', [aInts('kernel_shape', [5])]),
        node('Relu', ['h'], ['r'], 'relu'),
        node('Conv', ['r', 'c2.weight', 'c2.bias'], ['y'], 'c2', [aInts('kernel_shape', [1])]),
        node('Identity', ['state'], ['state_out'], 'keep'),
      ],
      initializer: [f32('c1.weight', [4, 1, 5], randn(rng, 20)), f32('c1.bias', [4], randn(rng, 4)), f32('c2.weight', [3, 4, 1], randn(rng, 12)), f32('c2.bias', [3], randn(rng, 3))],
      input: [vi('x', 1, ['N', 1, 'T']), vi('state', 1, [2, 'N', 4])],
      output: [vi('y', 1, ['N', 3, 'T4']), vi('state_out', 1, [2, 'N', 4])],
    },
    'conv1d.onnx',
  );
  const params = readParams(m);
  const { spec } = specFromOnnx(m);
  assert.deepEqual(Object.keys(spec.permToAxes), ['c1']);
  const checker = await createFunctionChecker(ort, m);
  assert.ok(!(checker instanceof ProbeUnavailable));
  try {
    const r = await checker.check(params, applyPermutation(spec, randomPerms(permSizes(spec, params), 1), params));
    assert.equal(r.status, 'passed', JSON.stringify(r));
    assert.match(checker.probe, /input 'x' float32 \[2, 1, 16\].*input 'state' float32 \[2, 2, 4\]/);
  } finally {
    await checker.dispose();
  }
});

test('function checker: a graph that draws random numbers is reported as not checkable, not passed', async () => {
  const m = modelOf(
    {
      name: 'noisy',
      node: [node('RandomNormalLike', ['x'], ['n'], 'noise'), node('Add', ['x', 'n'], ['y'], 'add')],
      input: [vi('x', 1, ['N', 2])],
      output: [vi('y', 1, ['N', 2])],
    },
    'noisy.onnx',
  );
  const checker = await createFunctionChecker(ort, m);
  assert.ok(checker instanceof ProbeUnavailable);
  assert.match(checker.reason, /node 'noise' \(RandomNormalLike\) draws random numbers/);
});

test('align --low-memory: a model above the limit skips the function check and says so', async () => {
  const warnings: string[] = [];
  const ctx = { warn: (t: string) => warnings.push(t), info: () => {} } as unknown as Context;
  const r = await assertSameFunctionStreamed(ctx, 'big.onnx', LOW_MEMORY_CHECK_LIMIT + 1, specFromJson('{"axes": {"w": ["p"]}}'), {}, { seed: 0, output: 'out.onnx', specSource: 'test' });
  assert.equal(r.status, 'skipped');
  assert.equal(warnings.length, 1);
  assert.match(warnings[0], /function check skipped for memory: .* more than the 128 MiB --low-memory loads whole .*out\.onnx is written without checking/);
});

// ---------------------------------------------------------------------------------------------------------
// 4. Partial specs, --strict, and specs that permute nothing

test('--strict refuses a graph with an op the derivation does not understand; without it the partial spec is announced and listed', async () => {
  const dir = scratch();
  try {
    const a = save(dir, 'a.onnx', tinyMlp(1, 'a', { extra: 'lpnorm' }));
    const b = save(dir, 'b.onnx', tinyMlp(2, 'b', { extra: 'lpnorm' }));
    const out = join(dir, 'out.onnx');
    const data = ['--data', 'synthetic:64', '--points', '2'];
    for (const args of [['align', a, b, '-o', out], ['merge', a, b, '-o', out], ['spec', a], ['barrier', a, b, ...data], ['report', a, b, ...data]]) {
      const r = run([...args, '--strict']);
      assert.equal(r.code, 2, `${args[0]} --strict: ${r.stderr}`);
      assert.match(r.stderr, /'lpnorm' \(LpNormalization\)/);
      assert.ok(!existsSync(out));
    }
    // Partial: fc1's space stays fixed, fc2 is still aligned, and the output computes what B computes.
    const r = run(['align', a, b, '-o', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /partial spec: 2 channel spaces left fixed \(1 unsupported node: 'lpnorm' \(LpNormalization\)\); see `rebasin spec .*a\.onnx`/);
    assert.match(r.stdout, /fc2 +6 units/);
    assert.doesNotMatch(r.stdout, /fc1 +6 units/);
    const feeds = tinyFeeds();
    assert.ok(maxAbsDiff(await outputsOf(b, feeds), await outputsOf(out, feeds)) <= 1e-5);
    const m = run(['merge', a, b, '-o', join(dir, 'merged.onnx')]);
    assert.equal(m.code, 0, m.stderr);
    assert.match(m.stderr, /partial spec: 2 channel spaces left fixed/);
    // `rebasin spec` lists the fixed spaces with reasons and the unsupported node.
    const s = run(['spec', a]);
    assert.equal(s.code, 0, s.stderr);
    const [table, notes] = s.stdout.split('fixed channel spaces');
    assert.match(table, /fc2 +6 +fc2\.\{weight,bias\}:0, fc3\.weight:1/);
    // fc1's outputs feed the LpNormalization; fc2 reads its result: both spaces stay as they are.
    assert.match(notes, /fc1\.\{weight,bias\}:0 +.*'lpnorm' \(LpNormalization\)/);
    assert.match(notes, /fc2\.weight:1 +.*comes from an unsupported op/);
    assert.match(notes, /unsupported nodes: 1 \(a partial spec: the 2 channel spaces they touch are left fixed; --strict refuses the model instead\)\n  'lpnorm' \(LpNormalization\) is not supported/);
    // --json keeps the format --spec FILE reads, notes included.
    const j = run(['spec', a, '--json', '-o', join(dir, 'spec.json')]);
    assert.equal(j.code, 0, j.stderr);
    const json = JSON.parse(j.stdout);
    assert.equal(json.notes.unsupported[0].node, "'lpnorm' (LpNormalization)");
    assert.ok(json.notes.fixed.some((f: { axes: string[] }) => f.axes.includes('fc1.weight:0')));
    const fromFile = run(['align', a, b, '-o', join(dir, 'out2.onnx'), '--spec', join(dir, 'spec.json')]);
    assert.equal(fromFile.code, 0, fromFile.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a spec that permutes nothing: align says the output is B unchanged, merge warns that it averages unaligned models', async () => {
  const dir = scratch();
  try {
    const one = (seed: number, label: string): OnnxModel => {
      const rng = createRng(seed);
      return modelOf(
        {
          name: 'linear',
          node: [node('Gemm', ['x', 'w', 'b'], ['y'], 'linear', [aInt('transB', 1)])],
          initializer: [f32('w', [3, 2], randn(rng, 6)), f32('b', [3], randn(rng, 3))],
          input: [vi('x', 1, ['N', 2])],
          output: [vi('y', 1, ['N', 3])],
        },
        label,
      );
    };
    const a = save(dir, 'a.onnx', one(1, 'a'));
    const b = save(dir, 'b.onnx', one(2, 'b'));
    const out = join(dir, 'out.onnx');
    const r = run(['align', a, b, '-o', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /nothing to align: the spec \(onnx graph\) permutes no channel space; wrote .*b\.onnx unchanged/);
    assert.match(r.stderr, /permutes nothing: every channel space is fixed, so the output is .*b\.onnx unchanged/);
    const feeds = tinyFeeds();
    assert.deepEqual(await outputsOf(out, feeds), await outputsOf(b, feeds));
    const m = run(['merge', a, b, '-o', join(dir, 'merged.onnx')]);
    assert.equal(m.code, 0, m.stderr);
    assert.match(m.stderr, /permutes nothing: every channel space is fixed, so this merge averages unaligned models/);
    assert.match(m.stdout, /not aligned: the spec permutes nothing/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('spec notes: follow-on unsupported nodes are listed under the node that caused them', () => {
  const text = formatSpecNotes({
    spec: specFromJson('{"axes": {"w": [null]}}'),
    files: [],
    source: 'onnx graph',
    fixed: [{ axes: [{ tensor: 'w', axis: 0 }], reason: "node 'r' (Reshape) flattens the channel axis" }],
    unsupported: [
      { node: "'r' (Reshape)", opType: 'Reshape', why: 'flattens the channel axis', followOn: false },
      { node: "'t' (TopK)", opType: 'TopK', why: 'is not supported by the graph walk', followOn: true },
    ],
  });
  assert.match(text, /fixed channel spaces \(never permuted\): 1\n  w:0  node 'r' \(Reshape\) flattens the channel axis\n/);
  assert.match(text, /\n  'r' \(Reshape\) flattens the channel axis\n      't' \(TopK\) is not supported by the graph walk \(follows from the node above\)\n$/);
});
