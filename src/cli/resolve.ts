/**
 * Turning the CLI's choices into the library's inputs: which spec (--spec), which model runner (ONNX graph or
 * the built-in MLP), which data (--data).
 */
import { InputError } from '../errors.js';
import type { Params } from '../tensor.js';
import { validateSpec, type PermutationSpec } from '../permutation-spec/spec.js';
import { autoSpec, builtinSpec, inferMlp, BUILTIN_KINDS, type BuiltinKind } from '../permutation-spec/auto.js';
import { specFromJson } from '../permutation-spec/json.js';
import { specFromOnnx, type OnnxFixedAxes, type OnnxUnsupportedNode } from '../permutation-spec/onnx-graph.js';
import { specToJson } from '../permutation-spec/json.js';
import { assertSameOnnxGraph } from '../io/onnx-compare.js';
import { createOnnxRunner } from '../engine/onnx-runner.js';
import { mlpRunner } from '../model/mlp-runner.js';
import { datasetFiles, loadDataset } from '../data/load.js';
import type { Dataset } from '../data/dataset.js';
import { validateDataset, type DataExpectation } from '../data/validate.js';
import type { MatmulEngine } from '../engine/matmul.js';
import type { ModelRunner } from '../measure/runner.js';
import { readModel, readText, type ModelFile } from './model-file.js';
import { readRegularHead } from '../io/regular-file.js';
import { specFromExport, type ExportSpec } from '../permutation-spec/from-export.js';

export interface ResolvedSpec {
  spec: PermutationSpec;
  /** The spec file read, if the spec came from one. */
  files: string[];
  /** Where it came from, for messages: 'onnx graph', 'resnet', 'mlp', a file path... */
  source: string;
  /** For activation matching on ONNX graphs: the value carrying each permutation. */
  taps?: Record<string, { value: string; axis: number }>;
  /** Specs derived from an ONNX graph: the channel spaces left unpermuted, and why. */
  fixed?: readonly OnnxFixedAxes[];
  /** Specs derived from an ONNX graph: nodes the derivation does not understand (their spaces are fixed). */
  unsupported?: readonly OnnxUnsupportedNode[];
  /** --spec EXPORT.onnx: how each tensor was placed in the export. */
  fromExport?: ExportSpec;
}

export interface ResolveSpecOptions {
  /** --strict: refuse a graph with nodes the derivation does not understand instead of a partial spec. */
  strict?: boolean;
  /**
   * The command averages or interpolates the models (merge, barrier, report): float values held in the
   * graph itself (Constant nodes) must then be equal too, as only initializers are averaged.
   */
  averages?: boolean;
  /** Attention heads per block, for transformer state dicts (a state dict does not store it). */
  heads?: number;
}

/** `--spec transformer:H` names the heads in the choice itself; `transformer` alone leaves them to options. */
const TRANSFORMER_CHOICE = /^transformer(?::(\d+))?$/;

/**
 * Every ONNX model's graph must be the first one's (io/onnx-compare.ts): the spec is derived from one graph
 * and applied to all, and merged weights are written into the first model's graph. Checked before any work.
 */
export function assertSameGraphs(models: readonly ModelFile[], options: { averages: boolean }): void {
  const first = models[0];
  if (first?.onnx === undefined) return;
  for (const m of models.slice(1)) if (m.onnx !== undefined) assertSameOnnxGraph(first.onnx, m.onnx, options);
}

/**
 * --spec auto|mlp|resnet|vgg|transformer[:H]|FILE, validated against every model. FILE is a spec JSON file, or an ONNX
 * export of the same network (see specFromExportFile). ONNX models are first compared with the
 * first one (assertSameGraphs); a spec derived from the graph is derived from each model's and must agree.
 */
export function resolveSpec(choice: string, models: readonly ModelFile[], options: ResolveSpecOptions = {}): ResolvedSpec {
  const first = models[0];
  assertSameGraphs(models, { averages: options.averages ?? false });
  let resolved: ResolvedSpec;
  if (choice === 'auto') {
    if (first.onnx) {
      const strict = options.strict ?? false;
      const { spec, taps, fixed, unsupported } = specFromOnnx(first.onnx, { strict });
      // Identical graphs give identical specs; deriving each is cheap (milliseconds) and makes sure of it.
      const json = specToJson(spec);
      for (const m of models.slice(1)) {
        if (m.onnx === undefined) continue;
        if (specToJson(specFromOnnx(m.onnx, { strict }).spec) !== json) {
          throw new InputError(`${m.path}: the permutation spec derived from its graph differs from the one derived from ${first.path}; align models of one architecture, or give the spec with --spec FILE`);
        }
      }
      resolved = { spec, taps, fixed, unsupported, source: 'onnx graph', files: [] };
    } else {
      const { kind, spec } = autoSpec(first.params, { heads: options.heads });
      resolved = { spec, source: kind, files: [] };
    }
  } else if (TRANSFORMER_CHOICE.test(choice)) {
    const given = TRANSFORMER_CHOICE.exec(choice)![1];
    const heads = given === undefined ? options.heads : Number(given);
    resolved = { spec: builtinSpec('transformer', first.params, { heads }), source: 'transformer', files: [] };
  } else if ((BUILTIN_KINDS as readonly string[]).includes(choice)) {
    resolved = { spec: builtinSpec(choice as BuiltinKind, first.params), source: choice, files: [] };
  } else if (isJsonFile(choice)) {
    resolved = { spec: specFromJson(readText(choice), choice), source: choice, files: [choice] };
  } else {
    resolved = specFromExportFile(choice, models, options);
  }
  validateSpec(resolved.spec, ...models.map((m) => ({ label: m.path, params: m.params })));
  return resolved;
}

/** A spec file is JSON (its first non-blank byte is '{'); anything else given as --spec FILE is read as a model. */
function isJsonFile(path: string): boolean {
  const head = readRegularHead(path, 256);
  const first = head.find((b) => b !== 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d && b !== 0xef && b !== 0xbb && b !== 0xbf);
  return first === undefined || first === 0x7b;
}

/**
 * --spec EXPORT.onnx: the spec derived from an ONNX export of the network, mapped onto the models' tensors
 * (permutation-spec/from-export.ts): for state dicts with names or layers (BatchNorm) no built-in spec knows. The
 * export's values break ties between tensors of one shape: they are compared with each model in turn, as
 * the export usually holds one of them.
 */
function specFromExportFile(path: string, models: readonly ModelFile[], options: ResolveSpecOptions): ResolvedSpec {
  const exported = readModel(path);
  if (exported.onnx === undefined) {
    throw new InputError(`--spec ${path}: a spec file is a rebasin-spec JSON file or an ONNX export of the network, not a ${exported.pytorch ? 'PyTorch checkpoint' : 'safetensors file'}`);
  }
  const derived = specFromOnnx(exported.onnx, { strict: options.strict ?? false });
  const side = { model: exported.onnx, params: exported.params, spec: derived };
  let firstError: unknown;
  for (const m of models) {
    try {
      const mapped = specFromExport(side, { label: m.path, params: m.params });
      const fixed = derived.fixed.map((f) => ({ ...f, axes: f.axes.flatMap((ref) => stateDictAxes(mapped, ref)) })).filter((f) => f.axes.length > 0);
      return { spec: mapped.spec, source: `ONNX export ${path}`, files: [...exported.files], fixed, unsupported: derived.unsupported, fromExport: mapped };
    } catch (e) {
      firstError ??= e;
    }
  }
  throw firstError;
}

/** The state-dict axes an export initializer's axis was mapped to (fixed spaces are reported in the models' names). */
function stateDictAxes(mapped: ExportSpec, ref: { tensor: string; axis: number }): { tensor: string; axis: number }[] {
  const out: { tensor: string; axis: number }[] = [];
  for (const [tensor, m] of Object.entries(mapped.matches)) {
    if (m.how !== 'batchnorm' && m.init === ref.tensor) out.push({ tensor, axis: m.transposed ? 1 - ref.axis : ref.axis });
  }
  return out;
}

/** One line on how a spec from an export placed the tensors (`rebasin spec`, align's info line). */
export function exportMappingNote(spec: ResolvedSpec): string | null {
  const m = spec.fromExport;
  if (m === undefined) return null;
  const counts = new Map<string, number>();
  for (const x of Object.values(m.matches)) {
    const key = x.how === 'batchnorm' ? 'folded BatchNorm' : x.how === 'alias' ? 'name' : x.how;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  const parts = ['name', 'shape', 'values', 'bias', 'folded BatchNorm'].filter((k) => counts.has(k)).map((k) => `${counts.get(k)} by ${k === 'folded BatchNorm' ? 'the conv they follow (BatchNorm folded by the exporter)' : k}`);
  if (m.scalars.length > 0) parts.push(`${m.scalars.length} scalar${m.scalars.length === 1 ? '' : 's'} left as they are`);
  return `spec from ${spec.source}: tensors placed ${parts.join(', ')}`;
}

/** Whether the spec permutes anything at all. */
export function specPermutesNothing(spec: ResolvedSpec): boolean {
  return Object.keys(spec.spec.permToAxes).length === 0;
}

/**
 * The fixed channel spaces a partial spec owes to unsupported nodes: those whose reason names one of them
 * (the node itself, an initializer it uses) or a value computed by one.
 */
export function fixedByUnsupported(spec: ResolvedSpec): OnnxFixedAxes[] {
  const nodes = (spec.unsupported ?? []).map((u) => u.node);
  return (spec.fixed ?? []).filter((f) => nodes.some((n) => f.reason.includes(n)) || f.reason.includes('unsupported op'));
}

/**
 * One line for align/merge when the derived spec is partial: how many channel spaces were left fixed and
 * which nodes caused it (follow-on nodes left out); null when the spec is complete.
 */
export function partialSpecNote(spec: ResolvedSpec, modelPath: string): string | null {
  const unsupported = spec.unsupported ?? [];
  if (unsupported.length === 0) return null;
  const causes = unsupported.filter((u) => !u.followOn);
  const shown = (causes.length > 0 ? causes : unsupported).map((u) => u.node);
  const list = shown.slice(0, 3).join(', ') + (shown.length > 3 ? `, ... (${shown.length} in all)` : '');
  const followOn = unsupported.length - causes.length;
  const n = fixedByUnsupported(spec).length;
  return `partial spec: ${n} channel space${n === 1 ? '' : 's'} left fixed (${shown.length} unsupported node${shown.length === 1 ? '' : 's'}: ${list}${followOn > 0 && causes.length > 0 ? `; ${followOn} more after them` : ''}); see \`rebasin spec ${modelPath}\``;
}

/** A runner that evaluates params of `model`'s architecture: its ONNX graph, or the built-in MLP. */
export async function resolveRunner(
  model: ModelFile,
  spec: ResolvedSpec,
  engine: MatmulEngine,
): Promise<ModelRunner & { dispose?: () => Promise<void> }> {
  if (model.onnx) return createOnnxRunner(model.onnx, { taps: spec.taps });
  let mlp;
  try {
    mlp = inferMlp(model.params);
  } catch (e) {
    throw new InputError(
      `${model.path}: safetensors files carry no graph, and this is not a plain MLP (${(e as Error).message}); evaluate the ONNX export instead`,
    );
  }
  if (mlp.layout !== 'torch') throw new InputError(`${model.path}: evaluating flax-layout MLPs is not supported; give the ONNX export`);
  const hiddenPerms = hiddenPermNames(spec.spec, mlp.layers.map((l) => l.weight));
  return mlpRunner({ layers: mlp.layers }, engine, { hiddenPerms });
}

/** The permutation acting on axis 0 of each hidden layer's weight (the units it produces). */
function hiddenPermNames(spec: PermutationSpec, weights: readonly string[]): string[] {
  return weights.slice(0, -1).map((w) => {
    const p = spec.axesToPerm[w]?.[0];
    if (!p) throw new InputError(`the spec does not permute the output units of '${w}'`);
    return p;
  });
}

/** The files a --data value reads (see datasetFiles); none without one. */
export function dataFiles(spec: string | undefined): string[] {
  return spec === undefined ? [] : datasetFiles(spec);
}

/**
 * What `model` takes and gives (validate.ts), read from its file: the built-in MLP's first and last weights,
 * or an ONNX graph's one data input and one [batch, classes] output where their sizes are numbers.
 */
export function dataExpectation(model: ModelFile): DataExpectation {
  const label = model.path;
  if (model.onnx === undefined) {
    try {
      const { layers, layout } = inferMlp(model.params);
      if (layout !== 'torch' || layers.length === 0) return { inputSize: null, classes: null, label };
      return { inputSize: layers[0].inputs, classes: layers[layers.length - 1].outputs, label };
    } catch {
      return { inputSize: null, classes: null, label }; // resolveRunner says why it cannot evaluate this model
    }
  }
  const graph = model.onnx.graph;
  const weights = new Set(model.onnx.initializerNames);
  const dataInputs = graph.inputs.filter((v) => !weights.has(v.name));
  const known = (d: unknown): d is number => typeof d === 'number' && d > 0;
  const example = dataInputs.length === 1 ? dataInputs[0].shape?.slice(1) ?? null : null;
  const inputSize = example !== null && example.length > 0 && example.every(known) ? example.reduce((a, b) => a * b, 1) : null;
  const out = graph.outputs.length === 1 ? graph.outputs[0].shape : null;
  const classes = out != null && out.length === 2 && known(out[1]) ? out[1] : null;
  return { inputSize, classes, label };
}

/**
 * The --data dataset, checked (validate.ts) before any work: against `model` when given (what it takes and
 * how many classes it has), else for train's sake that its labels ask for a sane number of classes.
 */
export function resolveData(spec: string | undefined, options: { limit?: number; seed?: number; scale?: number; model?: ModelFile } = {}): Dataset {
  if (spec === undefined) throw new InputError('--data is required (fashion-mnist, synthetic, a folder of IDX files, a .npz file, or x.npy,y.npy)');
  const data = loadDataset(spec, { limit: options.limit, seed: options.seed, scale: options.scale });
  validateDataset(data, `'${spec}'`, options.model === undefined ? undefined : dataExpectation(options.model));
  return data;
}

export type { Params };
