/**
 * The permutation spec of a ResNet, read from PyTorch state-dict names.
 *
 * Understood layouts: CIFAR-style ResNets (ResNet-20: `conv1`/`bn1` stem, `layerK.B.{conv1,bn1,conv2,bn2}`,
 * projection shortcut `layerK.B.shortcut.0/1`, head `linear`) and torchvision ResNets (`downsample.0/1`,
 * head `fc`, Bottleneck blocks with `conv3`/`bn3`). A common prefix such as `module.` is allowed.
 *
 * Why the permutations are tied as they are: a residual add `x + f(x)` only commutes with a channel
 * permutation when both summands are permuted alike, so everything that writes into one residual
 * stream (the stem, each block's last conv/BN, a projection shortcut) shares one permutation, and
 * everything that reads from it (the next block's first conv and shortcut conv, the head) uses it on
 * its input axis. An identity shortcut passes the stream through unchanged, so the block's output
 * stays on the same permutation; a projection shortcut starts a new stream. Inside a block, each
 * conv+BN output before the last one is free and has its own permutation. BatchNorm's weight, bias,
 * running_mean and running_var are per-channel and move together; num_batches_tracked is a scalar
 * counter and is left out of the spec.
 */
import { InputError } from '../errors.js';
import type { Params, Tensor } from '../tensor.js';
import { shapeToString } from '../tensor.js';
import { specFromAxes, validateSpec, type PermutationSpec } from './spec.js';

/** The per-channel tensors of a BatchNorm module. */
export const BN_CHANNEL_TENSORS = ['weight', 'bias', 'running_mean', 'running_var'] as const;

/** Tensors no spec needs to cover: scalars (rank 0, e.g. BatchNorm's counter) cannot be permuted. */
export function isIgnorable(name: string, t: Tensor): boolean {
  return t.shape.length === 0 || name.endsWith('num_batches_tracked');
}

/**
 * Refuse a built-in spec that leaves some tensor of the params out: a tensor the builder did not
 * recognise may well depend on a permuted axis, and silently not permuting it would change the
 * network's function.
 */
export function assertAllCovered(kind: string, axes: Readonly<Record<string, unknown>>, params: Params): void {
  const left = Object.keys(params).filter((n) => !Object.hasOwn(axes, n) && !isIgnorable(n, params[n]));
  if (left.length > 0) {
    const shown = left.slice(0, 4).map((n) => `'${n}' ${shapeToString(params[n].shape)}`).join(', ');
    const more = left.length > 4 ? ` and ${left.length - 4} more` : '';
    throw new InputError(`${kind}: ${left.length} tensor(s) are not part of the recognised layout: ${shown}${more}`);
  }
}

/** The prefix before `anchor` in some tensor name (`''` or ending in '.'), or null when none has it. */
export function findPrefix(params: Params, anchor: RegExp): string | null {
  let best: string | null = null;
  for (const name of Object.keys(params)) {
    const m = anchor.exec(name);
    if (!m) continue;
    const prefix = name.slice(0, m.index);
    if (prefix !== '' && !prefix.endsWith('.')) continue;
    if (best === null || prefix.length < best.length) best = prefix;
  }
  return best;
}

class AxesBuilder {
  readonly axes: Record<string, (string | null)[]> = Object.create(null);
  constructor(
    private readonly kind: string,
    private readonly params: Params,
  ) {}

  has(name: string): boolean {
    return name in this.params;
  }

  need(name: string, rank: number, what: string): Tensor {
    const t = this.params[name];
    if (t === undefined) throw new InputError(`${this.kind}: expected tensor '${name}' (${what}), which the params do not have`);
    if (t.shape.length !== rank) {
      throw new InputError(`${this.kind}: tensor '${name}' (${what}) should have rank ${rank} but has shape ${shapeToString(t.shape)}`);
    }
    return t;
  }

  /** A conv (OIHW) or linear (out, in) layer: output axis 0, input axis 1, optional bias. */
  layer(prefix: string, rank: number, out: string | null, inp: string | null, what: string): Tensor {
    const w = this.need(`${prefix}.weight`, rank, what);
    this.axes[`${prefix}.weight`] = [out, inp, ...Array<null>(rank - 2).fill(null)];
    if (this.has(`${prefix}.bias`)) {
      this.need(`${prefix}.bias`, 1, `${what} bias`);
      this.axes[`${prefix}.bias`] = [out];
    }
    return w;
  }

  batchNorm(prefix: string, perm: string): void {
    const present = BN_CHANNEL_TENSORS.filter((leaf) => this.has(`${prefix}.${leaf}`));
    if (present.length === 0) {
      throw new InputError(`${this.kind}: expected BatchNorm tensors '${prefix}.weight', '${prefix}.running_mean', ..., which the params do not have`);
    }
    for (const leaf of present) {
      this.need(`${prefix}.${leaf}`, 1, 'BatchNorm channel tensor');
      this.axes[`${prefix}.${leaf}`] = [perm];
    }
  }
}

function numbersAfter(names: readonly string[], re: RegExp): number[] {
  const found = new Set<number>();
  for (const n of names) {
    const m = re.exec(n);
    if (m) found.add(Number(m[1]));
  }
  return [...found].sort((a, b) => a - b);
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * The spec of a CIFAR-style or torchvision-style ResNet. Permutations: `streamK` for the residual
 * stream started at stage K (`stream0` when the stem's width differs from stage 1's, as in
 * Bottleneck ResNets), `layerK.B.inner` for a BasicBlock's internal channels (`inner1`, `inner2` in
 * a Bottleneck). Throws an InputError naming the tensor when the names or shapes do not fit.
 */
export function resnetSpec(params: Params): PermutationSpec {
  const kind = 'resnet';
  const prefix = findPrefix(params, /layer\d+\.\d+\.conv1\.weight$/);
  if (prefix === null) throw new InputError(`${kind}: no tensor named like 'layer1.0.conv1.weight'`);
  const names = Object.keys(params);
  const b = new AxesBuilder(kind, params);
  const p = escapeRe(prefix);

  const stages = numbersAfter(names, new RegExp(`^${p}layer(\\d+)\\.\\d+\\.`));
  // The first block decides whether the stem already writes the stage-1 stream.
  const firstBlock = (stage: number): number => numbersAfter(names, new RegExp(`^${p}layer${stage}\\.(\\d+)\\.`))[0];
  const shortcutOf = (block: string): string | null => {
    for (const style of ['shortcut', 'downsample']) {
      if (b.has(`${block}.${style}.0.weight`)) return `${block}.${style}`;
    }
    return null;
  };
  const firstIsProjection = shortcutOf(`${prefix}layer${stages[0]}.${firstBlock(stages[0])}`) !== null;
  let stream = firstIsProjection ? 'stream0' : `stream${stages[0]}`;

  const stemConv = b.layer(`${prefix}conv1`, 4, stream, null, 'stem conv');
  b.batchNorm(`${prefix}bn1`, stream);
  let channels = stemConv.shape[0];

  for (const stage of stages) {
    const blocks = numbersAfter(names, new RegExp(`^${p}layer${stage}\\.(\\d+)\\.`));
    for (const block of blocks) {
      const path = `layer${stage}.${block}`;
      const full = prefix + path;
      const bottleneck = b.has(`${full}.conv3.weight`);
      const convs = bottleneck ? 3 : 2;
      const sc = shortcutOf(full);
      const out = sc === null ? stream : block === blocks[0] ? `stream${stage}` : `stream${stage}.${block}`;
      let inp = stream;
      for (let c = 1; c <= convs; c++) {
        const own = c === convs ? out : bottleneck ? `${path}.inner${c}` : `${path}.inner`;
        b.layer(`${full}.conv${c}`, 4, own, inp, `block conv${c}`);
        b.batchNorm(`${full}.bn${c}`, own);
        inp = own;
      }
      const width = params[`${full}.conv${convs}.weight`].shape[0];
      if (sc === null && width !== channels) {
        throw new InputError(
          `${kind}: block '${full}' maps ${channels} channels to ${width} with no shortcut weights ` +
            `('${full}.shortcut.0.weight' or '${full}.downsample.0.weight'); a parameter-free (padding) shortcut ` +
            `cannot be expressed as an axis-level permutation`,
        );
      }
      if (sc !== null) {
        b.layer(`${sc}.0`, 4, out, stream, 'shortcut conv');
        b.batchNorm(`${sc}.1`, out);
      }
      stream = out;
      channels = width;
    }
  }

  const head = b.has(`${prefix}linear.weight`) ? `${prefix}linear` : b.has(`${prefix}fc.weight`) ? `${prefix}fc` : null;
  if (head === null) throw new InputError(`${kind}: no classifier head '${prefix}linear.weight' or '${prefix}fc.weight'`);
  b.layer(head, 2, null, stream, 'classifier head');

  assertAllCovered(kind, b.axes, params);
  const spec = specFromAxes(b.axes);
  validateSpec(spec, { label: 'the params', params });
  return spec;
}
