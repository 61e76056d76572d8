/**
 * Turning the CLI's choices into the library's inputs: which spec (--spec), which model runner (ONNX graph or
 * the built-in MLP), which data (--data).
 */
import { InputError } from '../errors.js';
import type { Params } from '../tensor.js';
import { validateSpec, type PermutationSpec } from '../spec/spec.js';
import { autoSpec, builtinSpec, inferMlp, BUILTIN_KINDS, type BuiltinKind } from '../spec/auto.js';
import { specFromJson } from '../spec/json.js';
import { specFromOnnx } from '../spec/onnx-graph.js';
import { createOnnxRunner } from '../engine/onnx-runner.js';
import { mlpRunner } from '../model/mlp-runner.js';
import { datasetFiles, loadDataset } from '../data/load.js';
import { assertNotInput } from '../io/atomic.js';
import { resolve as resolvePath } from 'node:path';
import type { Dataset } from '../data/dataset.js';
import type { MatmulEngine } from '../engine/matmul.js';
import type { ModelRunner } from '../measure/runner.js';
import { readText, type ModelFile } from './model-file.js';

export interface ResolvedSpec {
  spec: PermutationSpec;
  /** The spec file read, if the spec came from one. */
  files: string[];
  /** Where it came from, for messages: 'onnx graph', 'resnet', 'mlp', a file path... */
  source: string;
  /** For activation matching on ONNX graphs: the value carrying each permutation. */
  taps?: Record<string, { value: string; axis: number }>;
}

/** --spec auto|mlp|resnet|vgg|FILE, validated against every model. */
export function resolveSpec(choice: string, models: readonly ModelFile[]): ResolvedSpec {
  const first = models[0];
  let resolved: ResolvedSpec;
  if (choice === 'auto') {
    if (first.onnx) {
      const { spec, taps } = specFromOnnx(first.onnx);
      resolved = { spec, taps, source: 'onnx graph', files: [] };
    } else {
      const { kind, spec } = autoSpec(first.params);
      resolved = { spec, source: kind, files: [] };
    }
  } else if ((BUILTIN_KINDS as readonly string[]).includes(choice)) {
    resolved = { spec: builtinSpec(choice as BuiltinKind, first.params), source: choice, files: [] };
  } else {
    resolved = { spec: specFromJson(readText(choice), choice), source: choice, files: [choice] };
  }
  validateSpec(resolved.spec, ...models.map((m) => ({ label: m.path, params: m.params })));
  return resolved;
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
 * Refuse, before anything is written, an output that is one of the inputs (or another output of the same
 * command): every file the command read — models, external data, spec, dataset — is an input.
 */
export function assertOutputs(outputs: readonly (string | undefined)[], inputs: readonly string[]): void {
  const given = outputs.filter((o): o is string => o !== undefined);
  given.forEach((out, i) => {
    assertNotInput(out, inputs);
    const twin = given.slice(i + 1).find((other) => resolvePath(other) === resolvePath(out));
    if (twin !== undefined) throw new InputError(`${out} is given as two outputs; choose different paths`);
  });
}

export function resolveData(spec: string | undefined, options: { limit?: number; seed?: number; scale?: number } = {}): Dataset {
  if (spec === undefined) throw new InputError('--data is required (fashion-mnist, synthetic, a folder of IDX files, a .npz file, or x.npy,y.npy)');
  return loadDataset(spec, { limit: options.limit, seed: options.seed, scale: options.scale });
}

export type { Params };
