/**
 * rebasin's browser-safe entry (`rebasin/core`): permutation specs, permutations, matching, barrier math,
 * merging, and models and datasets parsed from bytes. Nothing here, directly or through what it imports,
 * touches node:* or onnxruntime-node, so it bundles for a browser or a worker as it is; ONNX Runtime is
 * passed in (createOrtMatmulWith / createOnnxRunnerWith take onnxruntime-web or onnxruntime-node).
 *
 * This list is the public API: what the README's examples and the CLI's own pipeline need. Everything
 * else under dist/src stays importable by path for tests and benchmarks, but may change without notice.
 * test/package-entries.test.ts checks that the list stays browser-safe.
 */

// Tensors, parameters and errors.
export { tensor, sizeOf, type Tensor, type Params } from './tensor.js';
export { InputError, isInputError } from './errors.js';

// Permutations: applying, composing, measuring.
export {
  applyPermutation,
  identityPerms,
  randomPerms,
  inversePermutation,
  composePermutations,
  isPermutation,
  isIdentity,
  churn,
  type Perms,
} from './permute.js';

// Permutation specs: built in, inferred from names, derived from an ONNX graph, or read from JSON.
export {
  specFromAxes,
  validateSpec,
  permNames,
  permSizes,
  type PermutationSpec,
  type AxisRef,
  type AxesToPerm,
  type HeadGroup,
  type Segmentation,
  type Segments,
} from './permutation-spec/spec.js';
export { randomSpecPerms, checkHeadPerms } from './permutation-spec/heads.js';
export { splitSegments, joinSegments } from './permutation-spec/segments.js';
export { transformerSpec, type TransformerOptions } from './permutation-spec/transformer.js';
export { mlpSpec, type MlpSpecOptions, type WeightLayout } from './permutation-spec/mlp.js';
export { resnetSpec } from './permutation-spec/resnet.js';
export { vggSpec } from './permutation-spec/vgg.js';
export { autoSpec, builtinSpec, inferMlpSpec, BUILTIN_KINDS, type BuiltinKind } from './permutation-spec/auto.js';
export { specToJson, specFromJson } from './permutation-spec/json.js';
export { formatSpecTable } from './permutation-spec/table.js';
export { specFromOnnx, type OnnxSpec, type OnnxSpecOptions } from './permutation-spec/onnx-graph.js';

// Matching.
export {
  weightMatching,
  weightMatchingFrom,
  matchingObjective,
  type WeightMatchingOptions,
  type WeightMatchingResult,
  type SourceMatchingOptions,
  type PassRecord,
  type WeightScore,
} from './match/weight-matching.js';
export { paramsSource, type ParamSource } from './match/param-source.js';
export { sortedStart, weightMatchingChecked, weightMatchingCheckedInMemory, type CheckedMatchingResult } from './match/sorted-start.js';
export {
  activationMatching,
  type ActivationMatchingResult,
  type ActivationScore,
  type LayerActivations,
} from './match/activation-matching.js';
export { solveAssignment, type AssignmentOptions, type AssignmentResult } from './match/lap.js';

// Engines: products for matching, models for measuring. ONNX Runtime is passed in.
export { jsMatmul, type MatmulEngine } from './engine/matmul.js';
export { createOrtMatmulWith, type OrtMatmulOptions } from './engine/ort-matmul-core.js';
export { createOnnxRunnerWith, type OnnxRunner, type OnnxRunnerOptions, type OrtModule } from './engine/onnx-runner-core.js';
export { mlpRunner } from './model/mlp-runner.js';
export type { ModelRunner, LabelledData, ProbeBatch } from './measure/runner.js';

// The loss barrier and the report.
export { alphaGrid, interpolate, sweep, barrierOf, reduction, type Barrier, type CurvePoint, type Evaluation } from './measure/barrier.js';
export {
  alignmentReport,
  reportToJson,
  type AlignmentReport,
  type AlignmentReportOptions,
  type AlignMethod,
} from './pipeline/alignment-report.js';
export { verdictOf, type Verdict } from './measure/checks.js';
export { formatReport } from './report/text.js';
export { renderHtmlReport } from './report/html.js';

// Merging.
export { averageParams, mergeMany, type MergeManyOptions, type MergeManyResult } from './merge/merge-many.js';
export { repairMerged, type RepairLayer, type RepairOptions } from './merge/repair.js';
export { resetBatchNormStats } from './merge/batchnorm.js';
export { trainMlp, type TrainOptions, type TrainResult } from './train/mlp-trainer.js';

// Models from bytes.
export {
  parseSafetensors,
  serializeSafetensors,
  toParams,
  paramsToSafetensors,
  type SafetensorsFile,
} from './io/safetensors.js';
export { parseOnnx, serializeOnnx, onnxParams, withInitializers, type OnnxModel } from './io/onnx.js';
export { compareOnnxGraphs, assertSameOnnxGraph } from './io/onnx-compare.js';
export { parseTorchCheckpoint, type TorchCheckpoint } from './io/torch-checkpoint.js';

// Datasets from bytes.
export { makeDataset, sliceDataset, limitDataset, reshapeInputs, type Dataset } from './data/dataset.js';
export { parseIdx, isGzip, isIdx, type IdxArray } from './data/idx.js';
export { parseNpy, parseNpz, npzKeys, isNpy, isZip, type NpyArray } from './data/npy.js';
export { idxToDataset, arraysToDataset, sniffBytes, type IdxLoadOptions, type ArrayLoadOptions } from './data/from-arrays.js';
export { threeClusters } from './data/synthetic.js';
