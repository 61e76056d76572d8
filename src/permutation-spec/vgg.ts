/**
 * The permutation spec of a VGG-style network, read from PyTorch state-dict names: a `features.N`
 * stack of convs (with bias, optionally followed by BatchNorm at a later index before the next conv)
 * and a `classifier.M` stack of Linear layers (or a single `classifier` Linear).
 *
 * Each conv's output channels get their own permutation (named `features.N`), shared by its bias and
 * BatchNorm and by the next conv's input axis; each hidden Linear's outputs likewise (`classifier.M`).
 * The network's input channels and the last Linear's outputs are never permuted.
 *
 * The join needs care: after `flatten`, the first Linear's input index is `channel * S + position`
 * over S spatial positions, so a channel permutation acts on it as blocks of S columns. A spec is
 * axis-level (one permutation of one axis) and cannot say that, so only S = 1 (pooling to 1×1 before
 * the flatten, as in CIFAR VGGs) is accepted; anything else is refused with the sizes named.
 */
import { InputError } from '../errors.js';
import type { Params } from '../tensor.js';
import { shapeToString } from '../tensor.js';
import { specFromAxes, validateSpec, type PermutationSpec } from './spec.js';
import { BN_CHANNEL_TENSORS, assertAllCovered, findPrefix } from './resnet.js';

interface Module {
  readonly index: number;
  readonly leaves: Set<string>;
}

function modulesUnder(params: Params, head: string): Module[] {
  const byIndex = new Map<number, Set<string>>();
  for (const name of Object.keys(params)) {
    if (!name.startsWith(head)) continue;
    const m = /^(\d+)\.([A-Za-z_]+)$/.exec(name.slice(head.length));
    if (!m) continue;
    const index = Number(m[1]);
    let leaves = byIndex.get(index);
    if (leaves === undefined) byIndex.set(index, (leaves = new Set()));
    leaves.add(m[2]);
  }
  return [...byIndex.entries()].sort((a, b) => a[0] - b[0]).map(([index, leaves]) => ({ index, leaves }));
}

export function vggSpec(params: Params): PermutationSpec {
  const kind = 'vgg';
  const prefix = findPrefix(params, /features\.\d+\.weight$/);
  if (prefix === null) throw new InputError(`${kind}: no tensor named like 'features.0.weight'`);
  const axes: Record<string, (string | null)[]> = Object.create(null);
  const feat = `${prefix}features.`;

  let last: { name: string; perm: string; channels: number } | null = null;
  let inputPerm: string | null = null;
  for (const mod of modulesUnder(params, feat)) {
    const base = `${feat}${mod.index}`;
    const w = params[`${base}.weight`];
    if (w !== undefined && w.shape.length === 4) {
      const perm = `features.${mod.index}`;
      axes[`${base}.weight`] = [perm, inputPerm, null, null];
      if (mod.leaves.has('bias')) axes[`${base}.bias`] = [perm];
      last = { name: `${base}.weight`, perm, channels: w.shape[0] };
      inputPerm = perm;
      continue;
    }
    // Anything else between convs must be a BatchNorm of the conv before it: per-channel, rank 1.
    const isNorm = [...mod.leaves].every((l) => (BN_CHANNEL_TENSORS as readonly string[]).includes(l) || l === 'num_batches_tracked');
    if (!isNorm) {
      throw new InputError(`${kind}: module '${base}' (${[...mod.leaves].join(', ')}) is neither a conv nor a BatchNorm`);
    }
    if (last === null) throw new InputError(`${kind}: BatchNorm '${base}' comes before any conv`);
    for (const leaf of BN_CHANNEL_TENSORS) {
      const name = `${base}.${leaf}`;
      const t = params[name];
      if (t === undefined) continue;
      if (t.shape.length !== 1) throw new InputError(`${kind}: BatchNorm tensor '${name}' should have rank 1 but has shape ${shapeToString(t.shape)}`);
      axes[name] = [last.perm];
    }
  }
  if (last === null) throw new InputError(`${kind}: no 4-D conv weight under '${feat}'`);
  const tail = last;

  const cls = `${prefix}classifier`;
  const heads = params[`${cls}.weight`] !== undefined ? [cls] : modulesUnder(params, `${cls}.`).map((m) => `${cls}.${m.index}`);
  if (heads.length === 0) throw new InputError(`${kind}: no Linear layers '${cls}.M.weight' or '${cls}.weight'`);
  heads.forEach((head, k) => {
    const w = params[`${head}.weight`];
    if (w === undefined || w.shape.length !== 2) {
      throw new InputError(`${kind}: expected a 2-D Linear weight '${head}.weight'${w ? ` but its shape is ${shapeToString(w.shape)}` : ''}`);
    }
    const perm = k + 1 < heads.length ? head.slice(prefix.length) : null;
    let inp = inputPerm;
    if (k === 0) {
      const features = w.shape[1];
      if (features !== tail.channels) {
        const lead = `${kind}: '${head}.weight' ${shapeToString(w.shape)} takes ${features} input features`;
        const conv = `'${tail.name}'`;
        throw new InputError(
          features % tail.channels === 0
            ? `${lead} = ${tail.channels} channels of ${conv} x ${features / tail.channels} spatial positions; a channel permutation then moves blocks of columns, which an axis-level spec cannot express (pool to 1x1 before the flatten)`
            : `${lead}, not a multiple of the ${tail.channels} output channels of ${conv}`,
        );
      }
      inp = tail.perm;
    }
    axes[`${head}.weight`] = [perm, inp];
    if (params[`${head}.bias`] !== undefined) axes[`${head}.bias`] = [perm];
    inputPerm = perm;
  });

  assertAllCovered(kind, axes, params);
  const spec = specFromAxes(axes);
  validateSpec(spec, { label: 'the params', params });
  return spec;
}
