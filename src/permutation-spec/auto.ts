/**
 * Inferring a permutation spec from tensor names and shapes alone: an MLP chain of Linear layers,
 * and `autoSpec`, which tries the built-in architectures in turn.
 */
import { InputError, isInputError } from '../errors.js';
import type { Params, Tensor } from '../tensor.js';
import { shapeToString } from '../tensor.js';
import type { WeightLayout } from './mlp.js';
import { specFromAxes, type PermutationSpec } from './spec.js';
import { isIgnorable, resnetSpec } from './resnet.js';
import { vggSpec } from './vgg.js';
import { detectTransformer, transformerSpec, type TransformerOptions } from './transformer.js';

/** Compare names with their digit runs as numbers, so 'fc2' < 'fc10' and 'layers.4' < 'layers.10'. */
export function naturalCompare(a: string, b: string): number {
  const ta = a.match(/\d+|\D+/g) ?? [];
  const tb = b.match(/\d+|\D+/g) ?? [];
  for (let i = 0; i < Math.min(ta.length, tb.length); i++) {
    const [x, y] = [ta[i], tb[i]];
    if (x === y) continue;
    const nx = /^\d/.test(x);
    const ny = /^\d/.test(y);
    if (nx && ny) {
      const d = Number(x) - Number(y);
      if (d !== 0) return d;
      return x.length - y.length; // '01' after '1': any fixed rule, so the order is total
    }
    return x < y ? -1 : 1;
  }
  return ta.length - tb.length;
}

export interface MlpLayer {
  /** The layer's name prefix, e.g. 'fc1' or 'layers.0'; also the name of its output permutation. */
  readonly name: string;
  readonly weight: string;
  readonly bias: string | null;
  readonly inputs: number;
  readonly outputs: number;
}

export interface InferredMlp {
  readonly layout: WeightLayout;
  readonly layers: readonly MlpLayer[];
  readonly spec: PermutationSpec;
}

/**
 * Find the chain of Linear layers in `params`: every 2-D `<name>.weight` (torch, (out, in)) or
 * `<name>.kernel` (flax, (in, out)) with an optional 1-D `<name>.bias` ('/' also separates), ordered
 * by natural sort of the names and checked by shapes (outputs of layer i = inputs of layer i+1).
 * Hidden layer i's output permutation is named after the layer. Every other tensor (except scalars)
 * makes it refuse, since it could not know how that tensor depends on the hidden units.
 */
export function inferMlp(params: Params): InferredMlp {
  const kind = 'mlp';
  const found: { name: string; sep: string; leaf: 'weight' | 'kernel'; w: Tensor }[] = [];
  for (const [full, t] of Object.entries(params)) {
    const m = /^(.+)([./])(weight|kernel)$/.exec(full);
    if (m && t.shape.length === 2) found.push({ name: m[1], sep: m[2], leaf: m[3] as 'weight' | 'kernel', w: t });
  }
  if (found.length === 0) throw new InputError(`${kind}: no 2-D '.weight' or '.kernel' tensors`);
  const leaves = new Set(found.map((f) => f.leaf));
  if (leaves.size > 1) {
    const k = found.find((f) => f.leaf === 'kernel')!;
    const w = found.find((f) => f.leaf === 'weight')!;
    throw new InputError(
      `${kind}: mixes torch '.weight' ('${w.name}${w.sep}weight') and flax '.kernel' ('${k.name}${k.sep}kernel') layers`,
    );
  }
  const layout: WeightLayout = found[0].leaf === 'weight' ? 'torch' : 'flax';
  found.sort((a, b) => naturalCompare(a.name, b.name));
  const claimed = new Set<string>();
  const layers: MlpLayer[] = found.map(({ name, sep, leaf, w }) => {
    const weight = `${name}${sep}${leaf}`;
    const [outputs, inputs] = layout === 'torch' ? [w.shape[0], w.shape[1]] : [w.shape[1], w.shape[0]];
    const biasName = `${name}${sep}bias`;
    const b = params[biasName];
    if (b !== undefined && (b.shape.length !== 1 || b.shape[0] !== outputs)) {
      throw new InputError(`${kind}: bias '${biasName}' has shape ${shapeToString(b.shape)} but '${weight}' ${shapeToString(w.shape)} has ${outputs} outputs`);
    }
    claimed.add(weight);
    if (b !== undefined) claimed.add(biasName);
    return { name, weight, bias: b === undefined ? null : biasName, inputs, outputs };
  });

  const other = Object.keys(params).filter((n) => !claimed.has(n) && !isIgnorable(n, params[n]));
  if (other.length > 0) {
    const shown = other.slice(0, 4).map((n) => `'${n}' ${shapeToString(params[n].shape)}`).join(', ');
    throw new InputError(`${kind}: ${other.length} tensor(s) are not Linear weights or biases: ${shown}${other.length > 4 ? ', ...' : ''}`);
  }
  if (found.length < 2) {
    throw new InputError(`${kind}: only one Linear layer ('${found[0].name}${found[0].sep}${found[0].leaf}'), so no hidden units to permute`);
  }

  for (let i = 0; i + 1 < layers.length; i++) {
    const [a, b] = [layers[i], layers[i + 1]];
    if (a.outputs !== b.inputs) {
      throw new InputError(
        `${kind}: layers do not chain in name order: '${a.weight}' ${shapeToString(params[a.weight].shape)} has ${a.outputs} outputs ` +
          `but the next layer, '${b.weight}' ${shapeToString(params[b.weight].shape)}, takes ${b.inputs} inputs (${layout} layout)`,
      );
    }
  }

  const axes: Record<string, (string | null)[]> = Object.create(null);
  layers.forEach((layer, i) => {
    const out = i + 1 < layers.length ? layer.name : null;
    const inp = i > 0 ? layers[i - 1].name : null;
    axes[layer.weight] = layout === 'torch' ? [out, inp] : [inp, out];
    if (layer.bias !== null) axes[layer.bias] = [out];
  });
  return { layout, layers, spec: specFromAxes(axes) };
}

/** The spec of the MLP found by `inferMlp`. */
export function inferMlpSpec(params: Params): PermutationSpec {
  return inferMlp(params).spec;
}

export type BuiltinKind = 'resnet' | 'vgg' | 'mlp' | 'transformer';

export const BUILTIN_KINDS: readonly BuiltinKind[] = ['resnet', 'vgg', 'mlp', 'transformer'];

/** Options some built-in layouts need because a state dict does not hold them (a transformer's heads). */
export type BuiltinOptions = TransformerOptions;

/** The built-in spec of the named kind. */
export function builtinSpec(kind: BuiltinKind, params: Params, options: BuiltinOptions = {}): PermutationSpec {
  switch (kind) {
    case 'transformer':
      return transformerSpec(params, options);
    case 'resnet':
      return resnetSpec(params);
    case 'vgg':
      return vggSpec(params);
    case 'mlp':
      return inferMlpSpec(params);
  }
}

/**
 * Try the built-in layouts (resnet, vgg, mlp) in turn and return the first that fits. Each builder
 * checks names, shapes and that it accounts for every tensor, so at most one normally fits. Names of a
 * transformer family go to the transformer builder alone, so its refusal (e.g. no heads given) is the
 * message, not one item in a list of layouts that never could fit.
 */
export function autoSpec(params: Params, options: BuiltinOptions = {}): { kind: BuiltinKind; spec: PermutationSpec } {
  if (detectTransformer(params) !== null) return { kind: 'transformer', spec: transformerSpec(params, options) };
  const failures: string[] = [];
  for (const kind of BUILTIN_KINDS) {
    if (kind === 'transformer') continue;
    try {
      return { kind, spec: builtinSpec(kind, params) };
    } catch (e) {
      if (!isInputError(e)) throw e;
      failures.push(e.message);
    }
  }
  throw new InputError(
    `could not infer a permutation spec from the tensor names and shapes (tried ${failures.join('; ')}); write one as a rebasin-spec JSON file`,
  );
}
