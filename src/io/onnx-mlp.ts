/**
 * An ONNX graph for the built-in MLP (Gemm with transB = 1, Relu between layers), so models trained by
 * `rebasin train` load in ONNX Runtime and anywhere else ONNX does. Initializers keep the PyTorch
 * state-dict names (fc1.weight, ...), like the fixtures exported by torch.onnx.
 */
import type { Params } from '../tensor.js';
import { encodeF32 } from './dtype.js';
import { onnxModelFromObject, type OnnxModel } from './onnx.js';
import type { MlpArch } from '../model/mlp.js';
import { mlpWidths } from '../model/mlp.js';

const FLOAT = 1;
const ATTRIBUTE_INT = 2;

export function mlpToOnnx(arch: MlpArch, params: Params, options: { input?: string; output?: string } = {}): OnnxModel {
  const input = options.input ?? 'input';
  const output = options.output ?? 'logits';
  const widths = mlpWidths(arch, params);
  const nodes: unknown[] = [];
  const initializer: unknown[] = [];
  let current = input;
  arch.layers.forEach((layer, i) => {
    const last = i === arch.layers.length - 1;
    const gemmOut = last ? output : `${layer.weight}:z`;
    const inputs = [current, layer.weight, ...(layer.bias === null ? [] : [layer.bias])];
    nodes.push({ op_type: 'Gemm', name: `gemm${i}`, input: inputs, output: [gemmOut], attribute: [{ name: 'transB', type: ATTRIBUTE_INT, i: 1 }] });
    for (const name of inputs.slice(1)) {
      const t = params[name];
      initializer.push({ name, dims: [...t.shape], data_type: FLOAT, raw_data: encodeF32(t.data) });
    }
    if (!last) {
      const relu = `${layer.weight}:relu`;
      nodes.push({ op_type: 'Relu', name: `relu${i}`, input: [gemmOut], output: [relu] });
      current = relu;
    }
  });
  const valueInfo = (name: string, dims: (number | string)[]) => ({
    name,
    type: { tensor_type: { elem_type: FLOAT, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: d })) } } },
  });
  return onnxModelFromObject(
    {
      ir_version: 8,
      producer_name: 'rebasin',
      opset_import: [{ domain: '', version: 13 }],
      graph: {
        name: 'mlp',
        node: nodes,
        initializer,
        input: [valueInfo(input, ['N', widths[0]])],
        output: [valueInfo(output, ['N', widths[widths.length - 1]])],
      },
    },
    'mlp',
  );
}
