/**
 * The ONNX Runtime matmul engine for Node: ort-matmul-core.ts bound to onnxruntime-node.
 */
import { ort } from './ort-node.js';
import type { MatmulEngine } from './matmul.js';
import { createOrtMatmulWith, type OrtMatmulOptions } from './ort-matmul-core.js';

export { gemmAbtModel, createOrtMatmulWith, type OrtMatmulOptions } from './ort-matmul-core.js';

export function createOrtMatmul(options: OrtMatmulOptions = {}): Promise<MatmulEngine> {
  return createOrtMatmulWith(ort, options);
}

let shared: Promise<MatmulEngine> | null = null;

/** One process-wide ORT engine, created on first use; falls back to the JS engine where the native binding fails. */
export function defaultMatmul(): Promise<MatmulEngine> {
  shared ??= createOrtMatmul().catch(async () => (await import('./matmul.js')).jsMatmul);
  return shared;
}
