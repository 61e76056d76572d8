/**
 * What the page computes, as one function over bytes: the same steps, in the same order and with the same
 * defaults, as `rebasin report A B --data D --json` (src/cli/report.ts), so the page and the CLI give the same
 * numbers for the same inputs and seed. The ONNX Runtime module is passed in (onnxruntime-web in the page's
 * worker; onnxruntime-node works as well), and nothing here touches files or the network.
 */
import {
  InputError,
  onnxParams,
  parseOnnx,
  serializeOnnx,
  withInitializers,
  specFromOnnx,
  assertSameOnnxGraph,
  validateSpec,
  applyPermutation,
  interpolate,
  alignmentReport,
  reportToJson,
  renderHtmlReport,
  createOnnxRunnerWith,
  createOrtMatmulWith,
  sliceDataset,
  type OnnxModel,
  type Params,
  type AlignMethod,
  type AlignmentReport,
  type OrtModule,
  type Dataset,
} from '../../src/core.js';
// Two internals of the CLI's report, used so the page's JSON and hint match it exactly.
import { normalisationOf } from '../../src/measure/advice.js';
import { jsonDocument } from '../../src/report/json.js';
import { datasetFromFiles, syntheticDataset, type NamedBytes } from './data-files.js';

export type { NamedBytes } from './data-files.js';

export const METHODS: readonly AlignMethod[] = ['weight', 'cosine', 'activation'];

/** The CLI's defaults (src/cli/report.ts): seed 0, K = 24, 1000 probe examples, 3000 synthetic points. */
export const DEFAULTS = { method: 'weight' as AlignMethod, seed: 0, points: 24, probe: 1000, syntheticCount: 3000 };

export type DataChoice = { kind: 'files'; files: NamedBytes[] } | { kind: 'synthetic'; count: number };

export interface RunOptions {
  method: AlignMethod;
  seed: number;
  /** Interior steps K of the sweep. */
  points: number;
  probe: number;
  limit?: number;
  data: DataChoice;
}

export interface LoadedModel {
  name: string;
  bytes: Uint8Array;
  onnx: OnnxModel;
  params: Params;
}

export interface RunResult {
  /** Exactly the object `rebasin report ... --json` prints: { data, report }. */
  json: { data: { name: string; count: number; preprocessing: string }; report: unknown };
  report: AlignmentReport;
  /** The self-contained HTML report (src/report/html.ts). */
  html: string;
  /** B with its units permuted to line up with A's, in B's graph and dtypes. */
  aligned: Uint8Array;
  /** (A + aligned B) / 2 in A's graph: what `rebasin merge A B` writes at its default α = 0.5. */
  merged: Uint8Array;
}

export type StageCallback = (stage: string, done: number, total: number) => void;

/** Reads an ONNX model from bytes, with messages naming the file; safetensors and external data are refused. */
export function loadModel(file: NamedBytes): LoadedModel {
  const { name, bytes } = file;
  if (bytes.length === 0) throw new InputError(`${name}: the file is empty`);
  if (bytes.length >= 9 && bytes[8] === 0x7b /* '{' */) {
    throw new InputError(`${name}: this is a safetensors file, which carries no graph to evaluate; drop the model's ONNX export`);
  }
  const onnx = parseOnnx(bytes, name);
  const external = onnx.initializerNames.find((n) => onnx.initializers[n].external !== null);
  if (external !== undefined) {
    const where = onnx.initializers[external].external?.location ?? '?';
    throw new InputError(
      `${name}: the weights are kept in a separate file ('${where}'), which a page cannot open beside the model; save the model with its weights embedded`,
    );
  }
  if (onnx.initializerNames.length === 0) throw new InputError(`${name}: the model has no weights (no initializers)`);
  return { name, bytes, onnx, params: onnxParams(onnx) };
}

export function loadData(choice: DataChoice, options: { limit?: number; seed: number }): Dataset {
  if (choice.kind === 'synthetic') return syntheticDataset(choice.count, options);
  return datasetFromFiles(choice.files, { limit: options.limit });
}

/** Aligns B to A and builds the report, the downloads and the CLI's JSON. */
export async function runAlignment(
  ort: OrtModule,
  files: { a: NamedBytes; b: NamedBytes },
  o: RunOptions,
  onStage: StageCallback = () => {},
): Promise<RunResult> {
  onStage('reading the models', 0, 1);
  const a = loadModel(files.a);
  const b = loadModel(files.b);
  // As the CLI's report: B's graph must be A's (the page interpolates and merges, so Constant values too).
  assertSameOnnxGraph(a.onnx, b.onnx, { averages: true });
  const { spec, taps } = specFromOnnx(a.onnx);
  validateSpec(spec, { label: a.name, params: a.params }, { label: b.name, params: b.params });
  const data = loadData(o.data, { limit: o.limit, seed: o.seed });
  onStage('reading the models', 1, 1);

  const engine = await createOrtMatmulWith(ort, { threads: null });
  const runner = await createOnnxRunnerWith(ort, a.onnx, { taps });
  const evalData = { inputs: data.inputs, labels: data.labels, count: data.count };
  const probeSet = sliceDataset(data, 0, Math.min(o.probe, data.count));
  const probe = { inputs: probeSet.inputs, count: probeSet.count };
  let report: AlignmentReport;
  try {
    report = await alignmentReport({
      a: a.params,
      b: b.params,
      spec,
      runner,
      data: evalData,
      probe,
      method: o.method,
      points: o.points,
      seed: o.seed,
      engine,
      title: `${b.name} aligned to ${a.name} (${o.method} matching)`,
      normalisation: normalisationOf(Object.keys(a.params), a.onnx),
      onStage,
    });
  } finally {
    await runner.dispose();
    await engine.dispose?.();
  }

  onStage('writing the models', 0, 1);
  const alignedParams = applyPermutation(spec, report.perms, b.params);
  const aligned = serializeOnnx(withInitializers(b.onnx, alignedParams));
  const merged = serializeOnnx(withInitializers(a.onnx, interpolate(a.params, alignedParams, 0.5)));
  const dataInfo = { name: data.name, count: data.count, preprocessing: data.preprocessing };
  const html = renderHtmlReport([report], {
    title: `rebasin report: ${b.name} aligned to ${a.name}`,
    subtitle: `${data.name}, ${data.count} examples (${data.preprocessing})`,
    generatedBy: 'the rebasin page (ONNX Runtime Web, in the browser)',
  });
  onStage('writing the models', 1, 1);
  return { json: jsonDocument('report', { data: dataInfo, report: reportToJson(report) }), report, html, aligned, merged };
}
