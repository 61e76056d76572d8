/**
 * The ONNX model runner on ONNX Runtime for Node. The runner itself lives in onnx-runner-core.ts, which takes
 * the ONNX Runtime module as an argument so the browser page can run the same code on onnxruntime-web; this
 * file only binds it to onnxruntime-node and keeps the Node-facing API.
 */
import { ort } from './ort-node.js';
import type { OnnxModel } from '../io/onnx.js';
import { createOnnxRunnerWith, type OnnxRunner, type OnnxRunnerOptions } from './onnx-runner-core.js';

export type { OnnxRunner, OnnxRunnerOptions, OnnxTap, OrtModule } from './onnx-runner-core.js';
export { createOnnxRunnerWith } from './onnx-runner-core.js';

export function createOnnxRunner(model: OnnxModel, options: OnnxRunnerOptions = {}): Promise<OnnxRunner> {
  return createOnnxRunnerWith(ort, model, options);
}
