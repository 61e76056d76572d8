/**
 * A·Bᵀ through ONNX Runtime: one single-node Gemm graph (transB = 1) with symbolic dimensions, so a single
 * session serves every shape. ORT's MLAS kernels run at BLAS speed here; see DESIGN.md for the figures.
 * The ONNX Runtime module is passed in (onnxruntime-node from ort-matmul.ts, onnxruntime-web in the browser
 * page), so this file imports no Node module.
 */
import protobuf from 'protobufjs';
import type { MatmulEngine } from './matmul.js';
import { checkSizes } from './matmul.js';
import type { OrtModule } from './onnx-runner-core.js';

const FLOAT = 1;
const ATTRIBUTE_INT = 2;

/**
 * Encodes the ModelProto of Y = Gemm(A, B, transB=1) with inputs A[M,K], B[N,K] and output Y[M,N]; with
 * `addRow`, Y = Gemm(A, B, C, transB=1) with a third input C[N] broadcast over the rows.
 */
export function gemmAbtModel(addRow = false): Uint8Array {
  const W = protobuf.Writer;
  const valueInfo = (name: string, dims: string[]) => {
    const shape = W.create();
    for (const d of dims) shape.uint32((1 << 3) | 2).fork().uint32((2 << 3) | 2).string(d).ldelim();
    const tensorType = W.create().uint32((1 << 3) | 0).int32(FLOAT).uint32((2 << 3) | 2).bytes(shape.finish());
    const type = W.create().uint32((1 << 3) | 2).bytes(tensorType.finish());
    return W.create().uint32((1 << 3) | 2).string(name).uint32((2 << 3) | 2).bytes(type.finish()).finish();
  };
  const attr = W.create().uint32((1 << 3) | 2).string('transB').uint32((3 << 3) | 0).int64(1).uint32((20 << 3) | 0).int32(ATTRIBUTE_INT).finish();
  const node = W.create()
    .uint32((1 << 3) | 2).string('A')
    .uint32((1 << 3) | 2).string('B');
  if (addRow) node.uint32((1 << 3) | 2).string('C');
  node
    .uint32((2 << 3) | 2).string('Y')
    .uint32((4 << 3) | 2).string('Gemm')
    .uint32((5 << 3) | 2).bytes(attr);
  const graph = W.create()
    .uint32((1 << 3) | 2).bytes(node.finish())
    .uint32((2 << 3) | 2).string('abt')
    .uint32((11 << 3) | 2).bytes(valueInfo('A', ['M', 'K']))
    .uint32((11 << 3) | 2).bytes(valueInfo('B', ['N', 'K']));
  if (addRow) graph.uint32((11 << 3) | 2).bytes(valueInfo('C', ['N']));
  graph.uint32((12 << 3) | 2).bytes(valueInfo('Y', ['M', 'N']));
  const opset = W.create().uint32((1 << 3) | 2).string('').uint32((2 << 3) | 0).int64(13).finish();
  return W.create()
    .uint32((1 << 3) | 0).int64(8)
    .uint32((2 << 3) | 2).string('rebasin')
    .uint32((7 << 3) | 2).bytes(graph.finish())
    .uint32((8 << 3) | 2).bytes(opset)
    .finish();
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
  // The Gemm with a row input, made on first use (matching never needs it; dense layers do).
  let withRow: Promise<Awaited<ReturnType<typeof ort.InferenceSession.create>>> | null = null;
  const operands = (a: Float32Array, m: number, b: Float32Array, n: number, k: number) => ({
    A: new ort.Tensor('float32', a.length === m * k ? a : a.subarray(0, m * k), [m, k]),
    B: new ort.Tensor('float32', b.length === n * k ? b : b.subarray(0, n * k), [n, k]),
  });
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
    async dispose() {
      await session.release();
      if (withRow) await (await withRow).release();
    },
  };
}
