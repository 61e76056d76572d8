/**
 * ONNX Runtime for Node, loaded only when something asks for it. onnxruntime-node's native binaries take
 * time and memory to load and a user who wants specs, matching on the JavaScript engine or file helpers
 * needs none of them, so the Node entry reaches engine/ort-node.ts through a dynamic import here instead of
 * a static one (test/package-entries.test.ts imports the entry and checks the binding was not loaded).
 * Each function hands over to the engine module of the same name, so the process keeps one shared engine.
 */
import type { OnnxModel } from './io/onnx.js';
import type { MatmulEngine } from './engine/matmul.js';
import type { OrtMatmulOptions } from './engine/ort-matmul-core.js';
import type { OnnxRunner, OnnxRunnerOptions } from './engine/onnx-runner-core.js';

/** A matmul engine on one reused ONNX Runtime Gemm session (onnxruntime-node, loaded on the first call). */
export async function createOrtMatmul(options: OrtMatmulOptions = {}): Promise<MatmulEngine> {
  return (await import('./engine/ort-matmul.js')).createOrtMatmul(options);
}

/** The process-wide ONNX Runtime matmul engine, or the JavaScript one where the native binding fails to load. */
export async function defaultMatmul(): Promise<MatmulEngine> {
  return (await import('./engine/ort-matmul.js')).defaultMatmul();
}

/** Runs an ONNX model on onnxruntime-node (loaded on the first call), weights fed as inputs. */
export async function createOnnxRunner(model: OnnxModel, options: OnnxRunnerOptions = {}): Promise<OnnxRunner> {
  return (await import('./engine/onnx-runner.js')).createOnnxRunner(model, options);
}
