/**
 * The permutation spec of a transformer, read from state-dict names.
 *
 * Understood families: timm ViT (`blocks.N.attn.qkv`, fused q|k|v rows), ViTs with separate q/k/v Linears
 * under timm's names (`blocks.N.attn.q/k/v`), PyTorch `nn.TransformerEncoderLayer` stacks
 * (`layers.N.self_attn.in_proj_weight`), Hugging Face BERT (`encoder.layer.N.attention.self.query`) and ViT
 * (`attention.attention.query`, `layernorm_before/after`), and GPT-2 (`h.N.attn.c_attn`, Conv1D layout
 * [in, out]). A common prefix (`module.`, `bert.`, `transformer.`) is allowed.
 *
 * The symmetries, all exact:
 * - one residual-stream permutation (`residual`): every tensor that writes into the stream (embeddings,
 *   class token, position embedding, attention out-projection, MLP fc2) permutes its output axis with it,
 *   every tensor that reads from it (q, k, v, fc1, the head) its input axis, and every LayerNorm its
 *   weight and bias (a LayerNorm normalises over the whole stream, so it commutes with permuting it);
 * - per block, the MLP's hidden units (`<block>.mlp`: fc1 rows and bias, fc2 columns);
 * - per block, the attention units, in a head group `<block>.attn` of two permutations: `<block>.attn.qk`
 *   on the rows of q and k (one order for both keeps every q·kᵀ) and `<block>.attn.v` on the rows of v and
 *   the out-projection's columns. Both move whole heads alike; inside a head each is free.
 *
 * A fused q|k|v projection is a segmented tensor (segments.ts) with parts `<tensor>#q`, `#k`, `#v`.
 *
 * The number of heads is not stored in a state dict, and a wrong count makes "keep heads whole" cut
 * through real heads, which changes the function; so it must be given, and the builder refuses without it.
 * The residual permutation is only exact when something maps the model's input into the stream and
 * something reads the stream out to the model's output; a state dict with no embedding or no head (a bare
 * encoder whose hidden states are the output) is refused rather than permuted into a different output.
 */
import { InputError } from '../errors.js';
import type { Params, Tensor } from '../tensor.js';
import { shapeToString } from '../tensor.js';
import { specFromAxes, validateSpec, type HeadGroup, type PermutationSpec } from './spec.js';
import type { Segmentation } from './segments.js';
import { assertAllCovered } from './resnet.js';

export type TransformerFamily = 'timm-vit' | 'vit-sep' | 'torch-encoder' | 'bert' | 'hf-vit' | 'gpt2';

export interface TransformerOptions {
  /** Attention heads per block (every block alike). Required: a state dict does not store it. */
  readonly heads?: number;
}

/**
 * What an axis carries: the residual stream, a block's q/k units, v units, MLP hidden units, or nothing
 * permuted. 'pooled': what a BERT classifier reads, the pooler's output (not permuted) when there is a
 * pooler, else the stream at every token (token classification).
 */
type Role = 'res' | 'qk' | 'v' | 'mlp' | 'pooled' | null;

type Module =
  /** torch Linear or Conv: weight [out, in, ...kernel], optional bias [out]. */
  | { readonly kind: 'linear'; readonly out: Role; readonly in: Role; readonly rank?: number }
  /** GPT-2's Conv1D: weight [in, out], optional bias [out]. */
  | { readonly kind: 'conv1d'; readonly in: Role; readonly out: Role }
  /** LayerNorm over the residual stream: weight and optional bias [E]. */
  | { readonly kind: 'norm' }
  /** Fused q|k|v: torch layout weight [3E, E] (rows q|k|v), or Conv1D layout [E, 3E]; optional bias [3E]. */
  | { readonly kind: 'qkv'; readonly layout: 'torch' | 'conv1d'; readonly weight: string; readonly bias: string }
  /** One parameter whose last axis is the residual stream (class token [1, 1, E], position embedding [1, T, E]). */
  | { readonly kind: 'stream-param'; readonly rank: number }
  /** A buffer with no permuted axis (a causal mask, position ids). */
  | { readonly kind: 'fixed'; readonly rank: number };

interface Entry {
  /** Module path (for 'linear', 'conv1d', 'norm': its '.weight'/'.bias' follow) or tensor name. */
  readonly path: string;
  readonly module: Module;
  /** Block entries: required unless optional. Global entries: always optional (checked by inputs/outputs). */
  readonly optional?: boolean;
}

interface Layout {
  readonly family: TransformerFamily;
  readonly label: string;
  /** Blocks are named `<prefix><blocks>.<N>.`. */
  readonly blocks: string;
  /** A tensor every block of this family has (relative to the block), which tells the families apart. */
  readonly anchor: string;
  readonly block: readonly Entry[];
  /** Names relative to the model prefix, or (heads outside the backbone, e.g. `classifier`) to the root. */
  readonly globals: readonly Entry[];
  /** Entries that map the input into the stream: at least one must be present. */
  readonly inputs: readonly string[];
  /** Entries through which the stream reaches the output: at least one must be present. */
  readonly outputs: readonly string[];
}

const linear = (out: Role, inp: Role, rank = 2): Module => ({ kind: 'linear', out, in: inp, rank });
const conv1d = (inp: Role, out: Role): Module => ({ kind: 'conv1d', in: inp, out });
const norm: Module = { kind: 'norm' };

/** timm-style ViT globals, shared by the ViT families whose blocks differ. */
const VIT_GLOBALS: readonly Entry[] = [
  { path: 'patch_embed.proj', module: linear('res', null, 4) },
  { path: 'cls_token', module: { kind: 'stream-param', rank: 3 } },
  { path: 'reg_token', module: { kind: 'stream-param', rank: 3 } },
  { path: 'pos_embed', module: { kind: 'stream-param', rank: 3 } },
  { path: 'norm', module: norm },
  { path: 'fc_norm', module: norm },
  { path: 'head', module: linear(null, 'res') },
];
const VIT_INPUTS = ['patch_embed.proj'];
const VIT_OUTPUTS = ['head'];

const PRE_NORM_MLP: readonly Entry[] = [
  { path: 'norm1', module: norm },
  { path: 'norm2', module: norm },
  { path: 'mlp.fc1', module: linear('mlp', 'res') },
  { path: 'mlp.fc2', module: linear('res', 'mlp') },
];

const LAYOUTS: readonly Layout[] = [
  {
    family: 'timm-vit',
    label: 'timm ViT',
    blocks: 'blocks',
    anchor: 'attn.qkv.weight',
    block: [
      { path: 'attn.qkv', module: { kind: 'qkv', layout: 'torch', weight: 'attn.qkv.weight', bias: 'attn.qkv.bias' } },
      { path: 'attn.proj', module: linear('res', 'v') },
      ...PRE_NORM_MLP,
    ],
    globals: VIT_GLOBALS,
    inputs: VIT_INPUTS,
    outputs: VIT_OUTPUTS,
  },
  {
    family: 'vit-sep',
    label: 'ViT with separate q/k/v',
    blocks: 'blocks',
    anchor: 'attn.q.weight',
    block: [
      { path: 'attn.q', module: linear('qk', 'res') },
      { path: 'attn.k', module: linear('qk', 'res') },
      { path: 'attn.v', module: linear('v', 'res') },
      { path: 'attn.proj', module: linear('res', 'v') },
      ...PRE_NORM_MLP,
    ],
    globals: VIT_GLOBALS,
    inputs: VIT_INPUTS,
    outputs: VIT_OUTPUTS,
  },
  {
    family: 'torch-encoder',
    label: 'PyTorch nn.TransformerEncoderLayer stack',
    blocks: 'layers',
    anchor: 'self_attn.in_proj_weight',
    block: [
      { path: 'self_attn', module: { kind: 'qkv', layout: 'torch', weight: 'self_attn.in_proj_weight', bias: 'self_attn.in_proj_bias' } },
      { path: 'self_attn.out_proj', module: linear('res', 'v') },
      { path: 'linear1', module: linear('mlp', 'res') },
      { path: 'linear2', module: linear('res', 'mlp') },
      { path: 'norm1', module: norm },
      { path: 'norm2', module: norm },
    ],
    globals: VIT_GLOBALS,
    inputs: VIT_INPUTS,
    outputs: VIT_OUTPUTS,
  },
  {
    family: 'bert',
    label: 'Hugging Face BERT',
    blocks: 'encoder.layer',
    anchor: 'attention.self.query.weight',
    block: [
      { path: 'attention.self.query', module: linear('qk', 'res') },
      { path: 'attention.self.key', module: linear('qk', 'res') },
      { path: 'attention.self.value', module: linear('v', 'res') },
      { path: 'attention.output.dense', module: linear('res', 'v') },
      { path: 'attention.output.LayerNorm', module: norm },
      { path: 'intermediate.dense', module: linear('mlp', 'res') },
      { path: 'output.dense', module: linear('res', 'mlp') },
      { path: 'output.LayerNorm', module: norm },
    ],
    globals: [
      { path: 'embeddings.word_embeddings', module: linear(null, 'res') },
      { path: 'embeddings.position_embeddings', module: linear(null, 'res') },
      { path: 'embeddings.token_type_embeddings', module: linear(null, 'res') },
      { path: 'embeddings.LayerNorm', module: norm },
      { path: 'embeddings.position_ids', module: { kind: 'fixed', rank: 2 } },
      { path: 'embeddings.token_type_ids', module: { kind: 'fixed', rank: 2 } },
      // The pooler reads the stream at the first token; its output (tanh) is not permuted, so the
      // classifier on top of it keeps both axes.
      { path: 'pooler.dense', module: linear(null, 'res') },
      { path: 'classifier', module: linear(null, 'pooled') },
      { path: 'qa_outputs', module: linear(null, 'res') },
    ],
    inputs: ['embeddings.word_embeddings'],
    outputs: ['pooler.dense', 'classifier', 'qa_outputs'],
  },
  {
    family: 'hf-vit',
    label: 'Hugging Face ViT',
    blocks: 'encoder.layer',
    anchor: 'attention.attention.query.weight',
    block: [
      { path: 'layernorm_before', module: norm },
      { path: 'attention.attention.query', module: linear('qk', 'res') },
      { path: 'attention.attention.key', module: linear('qk', 'res') },
      { path: 'attention.attention.value', module: linear('v', 'res') },
      { path: 'attention.output.dense', module: linear('res', 'v') },
      { path: 'layernorm_after', module: norm },
      { path: 'intermediate.dense', module: linear('mlp', 'res') },
      { path: 'output.dense', module: linear('res', 'mlp') },
    ],
    globals: [
      { path: 'embeddings.patch_embeddings.projection', module: linear('res', null, 4) },
      { path: 'embeddings.cls_token', module: { kind: 'stream-param', rank: 3 } },
      { path: 'embeddings.mask_token', module: { kind: 'stream-param', rank: 3 } },
      { path: 'embeddings.position_embeddings', module: { kind: 'stream-param', rank: 3 } },
      { path: 'layernorm', module: norm },
      { path: 'pooler.dense', module: linear(null, 'res') },
      { path: 'classifier', module: linear(null, 'res') },
    ],
    inputs: ['embeddings.patch_embeddings.projection'],
    outputs: ['classifier', 'pooler.dense'],
  },
  {
    family: 'gpt2',
    label: 'GPT-2',
    blocks: 'h',
    anchor: 'attn.c_attn.weight',
    block: [
      { path: 'ln_1', module: norm },
      { path: 'attn.c_attn', module: { kind: 'qkv', layout: 'conv1d', weight: 'attn.c_attn.weight', bias: 'attn.c_attn.bias' } },
      { path: 'attn.c_proj', module: conv1d('v', 'res') },
      { path: 'ln_2', module: norm },
      { path: 'mlp.c_fc', module: conv1d('res', 'mlp') },
      { path: 'mlp.c_proj', module: conv1d('mlp', 'res') },
      // Buffers of older transformers versions: the causal mask [1, 1, n, n] and a scalar.
      { path: 'attn.bias', module: { kind: 'fixed', rank: 4 }, optional: true },
      { path: 'attn.masked_bias', module: { kind: 'fixed', rank: 0 }, optional: true },
    ],
    globals: [
      // The LM head is tied to wte (logits = h · wteᵀ), so wte's axis 1 is where the stream is read out too.
      { path: 'wte', module: linear(null, 'res') },
      { path: 'wpe', module: linear(null, 'res') },
      { path: 'ln_f', module: norm },
      { path: 'lm_head', module: linear(null, 'res') },
      { path: 'score', module: linear(null, 'res') },
    ],
    inputs: ['wte'],
    outputs: ['wte'],
  },
];

export const TRANSFORMER_FAMILIES: readonly TransformerFamily[] = LAYOUTS.map((l) => l.family);

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The family whose block anchor some tensor has, its model prefix and block numbers; null when none fits. */
function findBlocks(params: Params): { layout: Layout; prefix: string; blocks: number[] } | null {
  for (const layout of LAYOUTS) {
    const re = new RegExp(`^(.*?)${escapeRe(layout.blocks)}\\.(\\d+)\\.${escapeRe(layout.anchor)}$`);
    const byPrefix = new Map<string, Set<number>>();
    for (const name of Object.keys(params)) {
      const m = re.exec(name);
      if (!m || (m[1] !== '' && !m[1].endsWith('.'))) continue;
      const set = byPrefix.get(m[1]) ?? new Set<number>();
      set.add(Number(m[2]));
      byPrefix.set(m[1], set);
    }
    if (byPrefix.size === 0) continue;
    if (byPrefix.size > 1) {
      const shown = [...byPrefix.keys()].map((p) => `'${p}${layout.blocks}.N.'`).join(', ');
      throw new InputError(`transformer (${layout.label}): blocks under more than one prefix (${shown}); one model per state dict`);
    }
    const [[prefix, set]] = [...byPrefix];
    return { layout, prefix, blocks: [...set].sort((a, b) => a - b) };
  }
  return null;
}

/** Which transformer family the names belong to, or null: cheap, for autoSpec to decide whether to try. */
export function detectTransformer(params: Params): TransformerFamily | null {
  return findBlocks(params)?.layout.family ?? null;
}

class Builder {
  readonly axes: Record<string, (string | null)[]> = Object.create(null);
  readonly segments: Record<string, Segmentation> = Object.create(null);
  constructor(
    private readonly where: string,
    private readonly params: Params,
  ) {}

  has(name: string): boolean {
    return Object.hasOwn(this.params, name);
  }

  private need(name: string, rank: number, what: string): Tensor {
    const t = this.has(name) ? this.params[name] : undefined;
    if (t === undefined) throw new InputError(`${this.where}: expected tensor '${name}' (${what}), which the params do not have`);
    if (t.shape.length !== rank) {
      throw new InputError(`${this.where}: tensor '${name}' (${what}) should have rank ${rank} but has shape ${shapeToString(t.shape)}`);
    }
    return t;
  }

  /** Whether the entry's tensors are there (its weight, or the tensor itself). */
  present(base: string, entry: Entry): boolean {
    const m = entry.module;
    if (m.kind === 'qkv') return this.has(base + m.weight);
    if (m.kind === 'stream-param' || m.kind === 'fixed') return this.has(base + entry.path);
    return this.has(`${base}${entry.path}.weight`);
  }

  add(base: string, entry: Entry, perm: (role: Role) => string | null): void {
    const m = entry.module;
    const name = base + entry.path;
    const withBias = (weight: string, axes: (string | null)[], rank: number, biasAxis: string | null, what: string): void => {
      this.need(weight, rank, what);
      this.axes[weight] = axes;
      const bias = weight.replace(/weight$/, 'bias');
      if (bias !== weight && this.has(bias)) {
        this.need(bias, 1, `${what} bias`);
        this.axes[bias] = [biasAxis];
      }
    };
    switch (m.kind) {
      case 'linear': {
        const rank = m.rank ?? 2;
        withBias(`${name}.weight`, [perm(m.out), perm(m.in), ...Array<null>(rank - 2).fill(null)], rank, perm(m.out), 'Linear/Conv [out, in]');
        return;
      }
      case 'conv1d':
        withBias(`${name}.weight`, [perm(m.in), perm(m.out)], 2, perm(m.out), 'Conv1D [in, out]');
        return;
      case 'norm':
        withBias(`${name}.weight`, [perm('res')], 1, perm('res'), 'LayerNorm');
        return;
      case 'stream-param': {
        this.need(name, m.rank, 'parameter added to the residual stream');
        this.axes[name] = [...Array<null>(m.rank - 1).fill(null), perm('res')];
        return;
      }
      case 'fixed':
        this.need(name, m.rank, 'buffer');
        this.axes[name] = Array<null>(m.rank).fill(null);
        return;
      case 'qkv': {
        const fusedAxis = m.layout === 'torch' ? 0 : 1;
        const roles: Role[] = ['qk', 'qk', 'v'];
        const cut = (source: string, rank: number, what: string, axesOf: (own: string | null) => (string | null)[]): void => {
          this.need(source, rank, what);
          const parts = ['q', 'k', 'v'].map((s) => `${source}#${s}`);
          this.segments[source] = { axis: rank === 1 ? 0 : fusedAxis, parts };
          parts.forEach((part, i) => (this.axes[part] = axesOf(perm(roles[i]))));
        };
        const layoutWhat = m.layout === 'torch' ? 'fused q|k|v [3E, E]' : 'fused q|k|v Conv1D [E, 3E]';
        cut(base + m.weight, 2, layoutWhat, (own) => (m.layout === 'torch' ? [own, perm('res')] : [perm('res'), own]));
        if (this.has(base + m.bias)) cut(base + m.bias, 1, 'fused q|k|v bias [3E]', (own) => [own]);
        return;
      }
    }
  }
}

/**
 * The spec of a transformer from its state-dict names (see the top of this file), with the family found.
 * Throws an InputError naming the tensor when names or shapes do not fit, when `heads` is missing or does
 * not divide the attention width, and when the stream has no embedding or no head.
 */
export function transformerSpecOf(params: Params, options: TransformerOptions = {}): { family: TransformerFamily; spec: PermutationSpec } {
  const found = findBlocks(params);
  if (found === null) {
    const anchors = LAYOUTS.map((l) => `'${l.blocks}.N.${l.anchor}'`).join(', ');
    throw new InputError(`transformer: no tensor named like a transformer block (${anchors})`);
  }
  const { layout, prefix, blocks } = found;
  const where = `transformer (${layout.label})`;
  const b = new Builder(where, params);
  const residual = 'residual';
  const heads: Record<string, HeadGroup> = Object.create(null);

  const firstQ = qWidth(layout, prefix, blocks[0], params);
  if (options.heads === undefined) {
    throw new InputError(
      `${where}: the number of attention heads is not stored in a state dict, and a wrong guess changes what the model computes; ` +
        `give it (--spec transformer:H, or the 'heads' option; it divides the attention width ${firstQ}: ${divisors(firstQ).join(', ')})`,
    );
  }
  const h = options.heads;
  if (!Number.isSafeInteger(h) || h < 1) throw new InputError(`${where}: heads must be a positive integer, got ${String(h)}`);

  // Globals first, so the residual stream is the spec's first permutation. They live under the model
  // prefix ('bert.embeddings...') or at the root ('classifier').
  const pooler = [prefix, ''].some((p) => b.has(`${p}pooler.dense.weight`));
  const globalPerm = (role: Role): string | null => (role === 'res' || (role === 'pooled' && !pooler) ? residual : null);
  const present = new Set<string>();
  for (const entry of layout.globals) {
    const base = [prefix, ''].find((p) => b.present(p, entry));
    if (base === undefined) continue;
    b.add(base, entry, globalPerm);
    present.add(entry.path);
  }
  for (const n of blocks) {
    const block = `${layout.blocks}.${n}.`;
    const base = prefix + block;
    const width = qWidth(layout, prefix, n, params);
    if (width % h !== 0) {
      throw new InputError(`${where}: block '${base.slice(0, -1)}' has attention width ${width}, which ${h} heads do not divide (divisors: ${divisors(width).join(', ')})`);
    }
    const perm = (role: Role): string | null =>
      role === null ? null : role === 'res' ? residual : role === 'mlp' ? `${block}mlp` : `${block}attn.${role}`;
    for (const entry of layout.block) {
      if (entry.optional && !b.present(base, entry)) continue;
      b.add(base, entry, perm);
    }
    heads[`${block}attn`] = { count: h, perms: [`${block}attn.qk`, `${block}attn.v`] };
  }

  const names = (paths: readonly string[]): string => paths.map((p) => `'${prefix}${p}'`).join(' or ');
  if (!layout.inputs.some((p) => present.has(p))) {
    throw new InputError(`${where}: no embedding (${names(layout.inputs)}) maps the input into the residual stream, so permuting the stream would change what the blocks are given`);
  }
  if (!layout.outputs.some((p) => present.has(p))) {
    throw new InputError(`${where}: no head (${names(layout.outputs)}) reads the residual stream out, so permuting the stream would permute the model's output features`);
  }

  assertAllCovered(where, { ...b.axes, ...b.segments }, params);
  const spec = specFromAxes(b.axes, heads, b.segments);
  validateSpec(spec, { label: 'the params', params });
  return { family: layout.family, spec };
}

/** The spec of a transformer from its state-dict names; see transformerSpecOf. */
export function transformerSpec(params: Params, options: TransformerOptions = {}): PermutationSpec {
  return transformerSpecOf(params, options).spec;
}

/** The number of q units (rows of q, or a third of the fused projection) of block n. */
function qWidth(layout: Layout, prefix: string, n: number, params: Params): number {
  const name = `${prefix}${layout.blocks}.${n}.${layout.anchor}`;
  const t = Object.hasOwn(params, name) ? params[name] : undefined;
  if (t === undefined || t.shape.length !== 2) {
    throw new InputError(`transformer (${layout.label}): expected a 2-D tensor '${name}', got ${t === undefined ? 'none' : `shape ${shapeToString(t.shape)}`}`);
  }
  const fused = layout.block.find((e) => e.module.kind === 'qkv')?.module;
  if (fused === undefined) return t.shape[0];
  const axis = fused.kind === 'qkv' && fused.layout === 'conv1d' ? 1 : 0;
  if (t.shape[axis] % 3 !== 0) {
    throw new InputError(`transformer (${layout.label}): fused q|k|v '${name}' ${shapeToString(t.shape)} has ${t.shape[axis]} units on axis ${axis}, not three equal parts`);
  }
  return t.shape[axis] / 3;
}

function divisors(n: number): number[] {
  const out: number[] = [];
  for (let d = 1; d <= n; d++) if (n % d === 0) out.push(d);
  return out;
}
