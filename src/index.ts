/**
 * rebasin's Node entry (`rebasin`): everything of the browser-safe core (core.ts) plus files (models,
 * datasets, streamed reading and writing for models larger than memory) and ONNX Runtime for Node, which is
 * loaded only when a function that runs it is first called (runtime-node.ts). Internals stay importable by
 * their paths under dist/src for tests and benchmarks, but are not part of the API.
 */
export * from './core.js';

// Models on disk: read whole, or tensor by tensor for models larger than memory.
export { readSafetensorsFile, writeSafetensorsFile } from './io/safetensors-fs.js';
export { readOnnxFile, writeOnnxFile, type OnnxFile, type WriteOnnxOptions } from './io/onnx-file.js';
export { readTorchCheckpointFile } from './io/torch-checkpoint-fs.js';
export { openSafetensorsSource, type SafetensorsSource, type SafetensorsSourceOptions } from './match/param-source-fs.js';
export { openOnnxSource, type OnnxSource, type OnnxSourceOptions } from './match/param-source-onnx.js';
export { writePermutedSafetensors } from './io/safetensors-stream.js';
export { writePermutedOnnx } from './io/onnx-stream.js';

// Datasets on disk: 'fashion-mnist', 'synthetic:N', IDX folders and pairs, .npz, x.npy,y.npy.
export { loadDataset, loadIdxPair, loadNpzDataset, loadNpyPair, loadFashionMnist, type LoadDatasetOptions } from './data/load.js';

// ONNX Runtime for Node, loaded lazily.
export { createOrtMatmul, defaultMatmul, createOnnxRunner } from './runtime-node.js';
