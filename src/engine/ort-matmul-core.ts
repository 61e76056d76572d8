/**
 * A·Bᵀ through ONNX Runtime: one single-node Gemm graph (transB = 1) with symbolic dimensions, so a single
 * session serves every shape. ORT's MLAS kernels run at BLAS speed here; see DESIGN.md for the figures.
 * The ONNX Runtime module is passed in (onnxruntime-node from ort-matmul.ts, onnxruntime-web in the browser
 * page), so this file imports no Node module.
 */
import protobuf from 'protobufjs';
import type * as OrtCommon from 'onnxruntime-common';
import type { MatmulEngine } from './matmul.js';
import { checkSizes } from './matmul.js';
import type { OrtModule } from './onnx-runner-core.js';

const FLOAT = 1;
const ATTRIBUTE_INT = 2;
const W = protobuf.Writer;

// The few ONNX protobuf messages these graphs need, written field by field (onnx.proto3 field numbers).

/** ValueInfoProto of a float tensor; a string dimension is symbolic, a number fixed. */
function valueInfo(name: string, dims: readonly (string | number)[]): Uint8Array {
  const shape = W.create();
  for (const d of dims) {
    const dim = W.create();
    if (typeof d === 'string') dim.uint32((2 << 3) | 2).string(d);
    else dim.uint32((1 << 3) | 0).int64(d);
    shape.uint32((1 << 3) | 2).bytes(dim.finish());
  }
  const tensorType = W.create().uint32((1 << 3) | 0).int32(FLOAT).uint32((2 << 3) | 2).bytes(shape.finish());
  const type = W.create().uint32((1 << 3) | 2).bytes(tensorType.finish());
  return W.create().uint32((1 << 3) | 2).string(name).uint32((2 << 3) | 2).bytes(type.finish()).finish();
}

/** NodeProto of `op` with an optional transB = 1 attribute (Gemm). */
function nodeProto(op: string, inputs: readonly string[], outputs: readonly string[], transB = false): Uint8Array {
  const node = W.create();
  for (const x of inputs) node.uint32((1 << 3) | 2).string(x);
  for (const y of outputs) node.uint32((2 << 3) | 2).string(y);
  node.uint32((4 << 3) | 2).string(op);
  if (transB) {
    const attr = W.create().uint32((1 << 3) | 2).string('transB').uint32((3 << 3) | 0).int64(1).uint32((20 << 3) | 0).int32(ATTRIBUTE_INT).finish();
    node.uint32((5 << 3) | 2).bytes(attr);
  }
  return node.finish();
}

/** ModelProto (IR version 8, opset 13) of a graph with these nodes, inputs and outputs. */
function modelProto(name: string, nodes: readonly Uint8Array[], inputs: readonly Uint8Array[], outputs: readonly Uint8Array[]): Uint8Array {
  const graph = W.create();
  for (const n of nodes) graph.uint32((1 << 3) | 2).bytes(n);
  graph.uint32((2 << 3) | 2).string(name);
  for (const x of inputs) graph.uint32((11 << 3) | 2).bytes(x);
  for (const y of outputs) graph.uint32((12 << 3) | 2).bytes(y);
  const opset = W.create().uint32((1 << 3) | 2).string('').uint32((2 << 3) | 0).int64(13).finish();
  return W.create()
    .uint32((1 << 3) | 0).int64(8)
    .uint32((2 << 3) | 2).string('rebasin')
    .uint32((7 << 3) | 2).bytes(graph.finish())
    .uint32((8 << 3) | 2).bytes(opset)
    .finish();
}

/**
 * Encodes the ModelProto of Y = Gemm(A, B, transB=1) with inputs A[M,K], B[N,K] and output Y[M,N]; with
 * `addRow`, Y = Gemm(A, B, C, transB=1) with a third input C[N] broadcast over the rows.
 */
export function gemmAbtModel(addRow = false): Uint8Array {
  const inputs = [valueInfo('A', ['M', 'K']), valueInfo('B', ['N', 'K'])];
  if (addRow) inputs.push(valueInfo('C', ['N']));
  return modelProto('abt', [nodeProto('Gemm', addRow ? ['A', 'B', 'C'] : ['A', 'B'], ['Y'], true)], inputs, [valueInfo('Y', ['M', 'N'])]);
}

/**
 * Encodes the ModelProto of a chain of dense layers with ReLU between them: input X[N, widths[0]], for each
 * layer l its weight Wl[widths[l+1], widths[l]] (and bias bl[widths[l+1]] where `biases[l]`) as inputs, so one
 * session serves any weights of that shape; output Y[N, widths[last]].
 */
export function denseChainModel(widths: readonly number[], biases: readonly boolean[]): Uint8Array {
  const layers = widths.length - 1;
  const nodes: Uint8Array[] = [];
  const inputs = [valueInfo('X', ['N', widths[0]])];
  let h = 'X';
  for (let l = 0; l < layers; l++) {
    inputs.push(valueInfo(`W${l}`, [widths[l + 1], widths[l]]));
    if (biases[l]) inputs.push(valueInfo(`b${l}`, [widths[l + 1]]));
    const y = l === layers - 1 ? 'Y' : `z${l}`;
    nodes.push(nodeProto('Gemm', biases[l] ? [h, `W${l}`, `b${l}`] : [h, `W${l}`], [y], true));
    if (l < layers - 1) {
      nodes.push(nodeProto('Relu', [y], [`h${l}`]));
      h = `h${l}`;
    }
  }
  return modelProto('dense_chain', nodes, inputs, [valueInfo('Y', ['N', widths[layers]])]);
}

export interface OrtMatmulOptions {
  /** Intra-op threads; default 2 (this project's machines have 2 cores). Left unset for onnxruntime-web. */
  threads?: number | null;
}

/** The Gemm engine on a given ONNX Runtime module. `threads: null` leaves the thread count to the runtime. */
export async function createOrtMatmulWith(ort: OrtModule, options: OrtMatmulOptions = {}): Promise<MatmulEngine> {
  const threads = options.threads === undefined ? 2 : options.threads;
  const sessionOptions = {
    ...(threads === null ? {} : { intraOpNumThreads: threads, interOpNumThreads: 1 }),
    graphOptimizationLevel: 'all' as const,
    executionMode: 'sequential' as const,
  };
  const session = await ort.InferenceSession.create(gemmAbtModel(), sessionOptions);
  type Session = Awaited<ReturnType<typeof ort.InferenceSession.create>>;
  // The Gemm with a row input, made on first use (matching never needs it; dense layers do).
  let withRow: Promise<Session> | null = null;
  // Dense chains by their shape (widths and which layers have a bias): one per architecture evaluated.
  const chains = new Map<string, Promise<Session>>();
  // The first rows × cols values of x as a tensor (callers may pass longer arrays).
  const leading = (x: Float32Array, rows: number, cols: number) =>
    new ort.Tensor('float32', x.length === rows * cols ? x : x.subarray(0, rows * cols), [rows, cols]);
  const operands = (a: Float32Array, m: number, b: Float32Array, n: number, k: number) => ({ A: leading(a, m, k), B: leading(b, n, k) });
  return {
    name: 'onnxruntime',
    async abt(a, m, b, n, k) {
      checkSizes(a, m, b, n, k);
      if (m === 0 || n === 0) return new Float32Array(m * n);
      const out = await session.run(operands(a, m, b, n, k));
      return out.Y.data as Float32Array;
    },
    async abtAddRow(a, m, b, n, k, row) {
      checkSizes(a, m, b, n, k);
      if (row.length !== n) throw new Error(`abtAddRow: a row of length ${row.length} for ${n} columns`);
      if (m === 0 || n === 0) return new Float32Array(m * n);
      withRow ??= ort.InferenceSession.create(gemmAbtModel(true), sessionOptions);
      const out = await (await withRow).run({ ...operands(a, m, b, n, k), C: new ort.Tensor('float32', row, [n]) });
      return out.Y.data as Float32Array;
    },
    async denseChain(layers, x, batch) {
      if (layers.length === 0) throw new Error('denseChain: no layers');
      const widths = [layers[0].inputs, ...layers.map((l) => l.outputs)];
      layers.forEach((l, i) => {
        if (i > 0 && l.inputs !== layers[i - 1].outputs) {
          throw new Error(`denseChain: layer ${i} takes ${l.inputs} inputs but layer ${i - 1} gives ${layers[i - 1].outputs}`);
        }
        if (l.weight.length !== l.outputs * l.inputs) throw new Error(`denseChain: layer ${i}'s weight holds ${l.weight.length} values, not ${l.outputs} × ${l.inputs}`);
        if (l.bias !== null && l.bias.length !== l.outputs) throw new Error(`denseChain: layer ${i}'s bias holds ${l.bias.length} values, not ${l.outputs}`);
      });
      if (!Number.isInteger(batch) || batch < 0 || x.length < batch * widths[0]) {
        throw new Error(`denseChain: an input of ${x.length} values is too short for ${batch} × ${widths[0]}`);
      }
      if (batch === 0) return new Float32Array(0);
      const biases = layers.map((l) => l.bias !== null);
      const key = `${widths.join('x')}/${biases.map(Number).join('')}`;
      let chain = chains.get(key);
      if (chain === undefined) {
        chain = ort.InferenceSession.create(denseChainModel(widths, biases), sessionOptions);
        chains.set(key, chain);
      }
      const feeds: Record<string, OrtCommon.Tensor> = { X: leading(x, batch, widths[0]) };
      layers.forEach((l, i) => {
        feeds[`W${i}`] = new ort.Tensor('float32', l.weight, [l.outputs, l.inputs]);
        if (l.bias !== null) feeds[`b${i}`] = new ort.Tensor('float32', l.bias, [l.outputs]);
      });
      const out = await (await chain).run(feeds);
      return out.Y.data as Float32Array;
    },
    async dispose() {
      await session.release();
      if (withRow) await (await withRow).release();
      for (const chain of chains.values()) await (await chain).release();
      chains.clear();
    },
  };
}
