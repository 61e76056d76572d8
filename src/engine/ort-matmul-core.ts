/**
 * A·Bᵀ through ONNX Runtime: one single-node Gemm graph (transB = 1) with symbolic dimensions, so a single
 * session serves every shape. ORT's MLAS kernels run at BLAS speed here; see DESIGN.md for the figures.
 * The ONNX Runtime module is passed in (onnxruntime-node from ort-matmul.ts, onnxruntime-web in the browser
 * page), so this file imports no Node module.
 */
import type * as OrtCommon from 'onnxruntime-common';
import type { MatmulEngine } from './matmul.js';
import { checkSizes } from './matmul.js';
import type { OrtModule } from './onnx-runner-core.js';
import { onnxModelFromObject, serializeOnnx } from '../io/onnx.js';
import { AttributeType, DataType } from '../io/onnx-schema.js';

// The few ONNX messages these graphs need, as plain ModelProto-shaped objects encoded by the one ONNX
// schema the file readers use (io/onnx.ts).

/** ValueInfoProto of a float tensor; a string dimension is symbolic, a number fixed. */
function valueInfo(name: string, dims: readonly (string | number)[]): Record<string, unknown> {
  const dim = dims.map((d) => (typeof d === 'string' ? { dim_param: d } : { dim_value: d }));
  return { name, type: { tensor_type: { elem_type: DataType.FLOAT, shape: { dim } } } };
}

/** NodeProto of `op` with an optional transB = 1 attribute (Gemm). */
function nodeProto(op: string, inputs: readonly string[], outputs: readonly string[], transB = false): Record<string, unknown> {
  const attribute = transB ? [{ name: 'transB', type: AttributeType.INT, i: 1 }] : [];
  return { op_type: op, input: [...inputs], output: [...outputs], attribute };
}

/** ModelProto (IR version 8, opset 13) of a graph with these nodes, inputs and outputs, encoded. */
function modelProto(name: string, node: readonly Record<string, unknown>[], input: readonly Record<string, unknown>[], output: readonly Record<string, unknown>[]): Uint8Array {
  const fields = { ir_version: 8, producer_name: 'rebasin', opset_import: [{ domain: '', version: 13 }], graph: { name, node, input, output } };
  return serializeOnnx(onnxModelFromObject(fields, name));
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
  const nodes: Record<string, unknown>[] = [];
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
